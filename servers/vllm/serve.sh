#!/usr/bin/env bash
# Start vLLM's OpenAI-compatible server with the settings we fix for benchmarking (README.md).
# Every setting below can be overridden from the environment; extra arguments go to `vllm serve`
# unchanged and, coming last, win over the ones set here. Example:
#   MODEL=mistralai/Mistral-7B-Instruct-v0.2 PORT=8100 ./serve.sh --tensor-parallel-size 2
set -euo pipefail

MODEL="${MODEL:-meta-llama/Llama-2-7b-chat-hf}"
SERVED_MODEL_NAME="${SERVED_MODEL_NAME:-$MODEL}"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
DTYPE="${DTYPE:-float16}"
MAX_MODEL_LEN="${MAX_MODEL_LEN:-4096}"
MAX_NUM_SEQS="${MAX_NUM_SEQS:-256}"
MAX_NUM_BATCHED_TOKENS="${MAX_NUM_BATCHED_TOKENS:-4096}"
GPU_MEMORY_UTILIZATION="${GPU_MEMORY_UTILIZATION:-0.90}"
SEED="${SEED:-0}"

if ! command -v vllm >/dev/null 2>&1; then
    echo "serve.sh: 'vllm' is not on PATH; install it first: pip install vllm" >&2
    exit 2
fi

args=(
    serve "$MODEL"
    --served-model-name "$SERVED_MODEL_NAME"
    --host "$HOST"
    --port "$PORT"
    --dtype "$DTYPE"
    --max-model-len "$MAX_MODEL_LEN"
    --max-num-seqs "$MAX_NUM_SEQS"
    --max-num-batched-tokens "$MAX_NUM_BATCHED_TOKENS"
    --gpu-memory-utilization "$GPU_MEMORY_UTILIZATION"
    --seed "$SEED"
    --no-enable-prefix-caching
    --generation-config vllm
    --disable-uvicorn-access-log
)

# Log the exact command line, so a results folder can record how the server was started.
printf 'serve.sh: vllm' >&2
printf ' %q' "${args[@]}" "$@" >&2
printf '\n' >&2
exec vllm "${args[@]}" "$@"
