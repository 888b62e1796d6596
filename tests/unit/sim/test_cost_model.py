"""Tests for loadgen.sim.cost_model: FLOPs and bytes of a step, the roofline, the paper's fit.

The small cases use a tiny model (hidden 8, FFN 16, 2 layers, 2 heads, 1 KV head, vocab 10)
whose sizes are worked out by hand:
  kv_dim = 4, layer_params = 8*(8+2*4) + 8*8 + 3*8*16 = 576, K+V bytes per token = 2*2*4*2 = 32
  weights read per step = layers*layer*2 bytes + LM head vocab*h*2 = 2304 + 160 = 2464 bytes.
The real-preset cases write the paper's numbers out as arithmetic literals.
"""

from __future__ import annotations

import pytest

from loadgen.sim.cost_model import BatchShape, Overheads, PaperFitCost, RooflineCost, step_work
from loadgen.sim.presets import GPUS, MODELS, GpuSpec
from tests.support.sim_toys import TINY

LLAMA = MODELS["llama-2-7b"]
A100, H100, H200 = GPUS["a100"], GPUS["h100"], GPUS["h200"]

NO_OVERHEAD = Overheads(step_s=0.0, seq_s=0.0, compute_efficiency=1.0, memory_efficiency=1.0)
# 1e9 bytes/s against 1e11 FLOP/s: the tiny model's steps are all memory-bound here
MEMORY_BOUND_GPU = GpuSpec("membound", 1.0, bandwidth_gbps=1.0, peak_tflops=0.1)
# 1e12 bytes/s against 1e6 FLOP/s: all compute-bound
COMPUTE_BOUND_GPU = GpuSpec("slow", 1.0, bandwidth_gbps=1000.0, peak_tflops=1e-6)

# one whole 3-token prompt
PREFILL_3 = BatchShape(prefill_tokens=3, prefill_pairs=9, prefill_seqs=1, sampled=1)
# two sequences decoding over contexts of 5 and 7 tokens (new token included)
DECODE_2 = BatchShape(decode_seqs=2, decode_context_tokens=12, sampled=2)
# a 4-token chunk after 6 cached tokens (prompt not finished) plus one decode over 9 tokens
MIXED = BatchShape(
    prefill_tokens=4,
    prefill_pairs=40,  # 4 * (6 + 4)
    cached_tokens=6,
    prefill_seqs=1,
    decode_seqs=1,
    decode_context_tokens=9,
    sampled=1,
)


def decode(batch: int, context: int) -> BatchShape:
    return BatchShape(decode_seqs=batch, decode_context_tokens=batch * context, sampled=batch)


def prefill(seqs: int, prompt: int) -> BatchShape:
    return BatchShape(
        prefill_tokens=seqs * prompt,
        prefill_pairs=seqs * prompt * prompt,
        prefill_seqs=seqs,
        sampled=seqs,
    )


# ---- BatchShape and step_work --------------------------------------------------------------


def test_batch_shape_counts_tokens_and_sequences() -> None:
    assert (MIXED.tokens, MIXED.seqs) == (5, 2)  # 4 prompt tokens + 1 decode
    assert (BatchShape().tokens, BatchShape().seqs) == (0, 0)


def test_step_work_of_a_whole_prompt() -> None:
    work = step_work(TINY, PREFILL_3)
    # 2 * tokens * layers * layer + LM head 2 * sampled * h * vocab = 2*3*2*576 + 2*1*8*10
    assert work.linear_flops == 6912 + 160
    # 4 * pairs * (h + heads) * layers = 4 * 9 * (8 + 2) * 2
    assert work.attention_flops == 720
    assert work.weight_bytes == 2464  # 2*576*2 + 10*8*2
    assert work.kv_bytes == 96  # 3 new tokens * 32


def test_step_work_of_a_decode_batch() -> None:
    work = step_work(TINY, DECODE_2)
    assert work.linear_flops == 2 * 2 * 2 * 576 + 2 * 2 * 8 * 10  # = 4608 + 320
    assert work.attention_flops == 4 * 12 * 10 * 2  # = 960
    assert work.weight_bytes == 2464
    assert work.kv_bytes == 12 * 32  # whole contexts read = 384


def test_step_work_of_a_mixed_batch() -> None:
    work = step_work(TINY, MIXED)
    # 5 tokens through the layers; only the decode samples (the chunk does not finish)
    assert work.linear_flops == 2 * 5 * 2 * 576 + 2 * 1 * 8 * 10  # = 11_520 + 160
    assert work.attention_flops == 4 * (40 + 9) * 10 * 2  # = 3920
    assert work.weight_bytes == 2464  # weights are read once per step, however big the batch
    assert work.kv_bytes == (6 + 9 + 4) * 32  # cached + decode contexts + new = 608


def test_lm_head_runs_only_for_sampled_sequences() -> None:
    chunk = BatchShape(prefill_tokens=4, prefill_pairs=16, prefill_seqs=1, sampled=0)
    assert step_work(TINY, chunk).linear_flops == 2 * 4 * 2 * 576  # = 9216, no LM head


def test_step_work_on_llama_decode() -> None:
    work = step_work(LLAMA, decode(1, 128))
    # 2 * 32 * 202_375_168 + 2 * 4096 * 32000
    assert work.linear_flops == 12_952_010_752 + 262_144_000
    assert work.attention_flops == 4 * 128 * (4096 + 32) * 32  # = 67_633_152
    # 32 * 202_375_168 * 2 + 32000 * 4096 * 2 (the input embedding is not read)
    assert work.weight_bytes == 12_952_010_752 + 262_144_000
    assert work.kv_bytes == 128 * 524_288


def test_gqa_reads_a_quarter_of_the_kv_bytes() -> None:
    llama = step_work(LLAMA, decode(4, 1000)).kv_bytes
    mistral = step_work(MODELS["mistral-7b"], decode(4, 1000)).kv_bytes
    assert llama == 4000 * 524_288
    assert mistral == 4000 * 131_072
    assert mistral * 4 == llama


# ---- RooflineCost on toy GPUs ----------------------------------------------------------------


def test_small_decode_is_memory_bound() -> None:
    overheads = Overheads(step_s=0.004, seq_s=0.001, compute_efficiency=0.5, memory_efficiency=0.8)
    cost = RooflineCost(TINY, MEMORY_BOUND_GPU, overheads)
    # (weights 2464 + KV 384 bytes) / (1e9 * 0.8) = 3.56e-6 s; FLOPs would take ~1e-7 s
    assert cost.kernel_time_s(DECODE_2) == pytest.approx(3.56e-6, rel=1e-9)
    # + step 0.004 + 2 seqs * 0.001
    assert cost.step_time_s(DECODE_2) == pytest.approx(0.006 + 3.56e-6, rel=1e-9)


def test_whole_prompt_on_a_slow_gpu_is_compute_bound() -> None:
    cost = RooflineCost(TINY, COMPUTE_BOUND_GPU, NO_OVERHEAD)
    # (7072 + 720) FLOPs / 1e6 FLOP/s
    assert cost.kernel_time_s(PREFILL_3) == pytest.approx(7.792e-3, rel=1e-9)
    half = RooflineCost(TINY, COMPUTE_BOUND_GPU, Overheads(0.0, 0.0, 0.5, 1.0))
    assert half.kernel_time_s(PREFILL_3) == pytest.approx(2 * 7.792e-3, rel=1e-9)


def test_projections_and_attention_are_bound_separately() -> None:
    # 1e9 bytes/s, 4e9 FLOP/s: the projections (2.9 FLOP/byte) are memory-bound, the
    # attention (7.5 FLOP/byte) compute-bound
    gpu = GpuSpec("between", 1.0, bandwidth_gbps=1.0, peak_tflops=0.004)
    cost = RooflineCost(TINY, gpu, NO_OVERHEAD)
    # max(7072/4e9, 2464/1e9) + max(720/4e9, 96/1e9) = 2.464e-6 + 1.8e-7
    assert cost.kernel_time_s(PREFILL_3) == pytest.approx(2.644e-6, rel=1e-9)


def test_mixed_batch_on_the_memory_bound_gpu() -> None:
    cost = RooflineCost(TINY, MEMORY_BOUND_GPU, NO_OVERHEAD)
    # weights 2464 + KV 608 bytes at 1e9 bytes/s
    assert cost.kernel_time_s(MIXED) == pytest.approx(3.072e-6, rel=1e-9)


def test_overhead_is_per_step_plus_per_sequence() -> None:
    overheads = Overheads(step_s=0.01, seq_s=0.002, compute_efficiency=1.0, memory_efficiency=1.0)
    cost = RooflineCost(TINY, MEMORY_BOUND_GPU, overheads)
    batch = BatchShape(
        prefill_tokens=6, prefill_pairs=12, prefill_seqs=3, decode_seqs=2,
        decode_context_tokens=10, sampled=5,
    )  # fmt: skip
    overhead = cost.step_time_s(batch) - cost.kernel_time_s(batch)
    assert overhead == pytest.approx(0.01 + 5 * 0.002, rel=1e-9)


def test_empty_batch_costs_nothing() -> None:
    for gpu in (MEMORY_BOUND_GPU, A100):
        cost = RooflineCost(TINY, gpu)
        assert cost.kernel_time_s(BatchShape()) == 0.0
        assert cost.step_time_s(BatchShape()) == 0.0


def test_default_overheads() -> None:
    assert Overheads() == Overheads(
        step_s=0.002, seq_s=0.00016, compute_efficiency=0.4, memory_efficiency=0.8
    )


# ---- RooflineCost on the real presets ----------------------------------------------------------


def test_llama_decode_at_batch_1_on_a100_reads_the_weights_once() -> None:
    step = RooflineCost(LLAMA, A100).step_time_s(decode(1, 128))
    # (layer weights 32*202_375_168*2 + LM head 32000*4096*2 + KV 128*524_288 bytes)
    #   / (2039e9 B/s * 0.8) + step 0.002 + one sequence 0.00016  = 8.142 ms + 2.16 ms
    weights_and_kv = 12_952_010_752 + 262_144_000 + 67_108_864
    expected = weights_and_kv / (2039e9 * 0.8) + 0.002 + 0.00016
    assert step == pytest.approx(expected, rel=1e-9)
    assert step == pytest.approx(0.010302, rel=1e-4)
    # within 2% of the brief's "13.5 GB of weights / (2039 GB/s * 0.8) + overhead"
    assert step == pytest.approx(13.5e9 / (2039e9 * 0.8) + 0.00216, rel=0.02)


def test_big_prefill_on_a100_is_compute_bound() -> None:
    kernel = RooflineCost(LLAMA, A100).kernel_time_s(prefill(8, 512))
    linear = 2 * 4096 * 32 * 202_375_168 + 2 * 8 * 4096 * 32000  # 4096 tokens, 8 sampled
    attention = 4 * (8 * 512 * 512) * (4096 + 32) * 32
    assert kernel == pytest.approx((linear + attention) / (312e12 * 0.4), rel=1e-9)
    assert kernel > 0.4  # vs 8 ms to read the weights


def test_doubling_prefill_tokens_doubles_kernel_time() -> None:
    cost = RooflineCost(LLAMA, A100)
    # twice the prompts of the same length: every FLOP doubles
    ratio = cost.kernel_time_s(prefill(16, 512)) / cost.kernel_time_s(prefill(8, 512))
    assert ratio == pytest.approx(2.0, rel=1e-9)
    # one prompt twice as long: the projections double, the (small) attention quadruples
    ratio = cost.kernel_time_s(prefill(1, 2048)) / cost.kernel_time_s(prefill(1, 1024))
    assert 2.0 < ratio < 2.15


def test_h100_is_faster_than_a100() -> None:
    for batch in (decode(1, 128), decode(64, 1024), prefill(8, 512)):
        a100 = RooflineCost(LLAMA, A100).step_time_s(batch)
        h100 = RooflineCost(LLAMA, H100).step_time_s(batch)
        assert h100 < a100


def test_h200_bandwidth_helps_decode_but_not_compute_bound_prefill() -> None:
    h100, h200 = RooflineCost(LLAMA, H100), RooflineCost(LLAMA, H200)
    assert h200.kernel_time_s(decode(1, 128)) < h100.kernel_time_s(decode(1, 128))
    # same 989 TFLOP/s peak
    big = prefill(8, 512)
    assert h200.kernel_time_s(big) == pytest.approx(h100.kernel_time_s(big), rel=1e-12)


def test_batching_decodes_pays() -> None:
    cost = RooflineCost(LLAMA, A100)
    one = cost.step_time_s(decode(1, 128))
    many = cost.step_time_s(decode(256, 128))
    assert many > one
    assert many < 256 * one / 10  # ~83 ms against 256 * 12.3 ms = 3.1 s


# ---- PaperFitCost ----------------------------------------------------------------------


def test_paper_fit_decode_b8_s512_is_12_4_ms() -> None:
    step = PaperFitCost(LLAMA).step_time_s(decode(8, 512))
    assert step == pytest.approx(0.0124, rel=0.02)
    # f*b*s*h*l + p*b*s*n*l + w*b*h*l + v (ms), with w = 1.63e-11
    ms = 2.23e-9 * 4096 * 4096 * 32 + 1.75e-11 * 4096 * 32 * 32 + 1.63e-11 * 8 * 4096 * 32 + 11.2
    assert step == pytest.approx(ms / 1000, rel=1e-9)


def test_paper_fit_prefill_of_one_512_token_prompt() -> None:
    step = PaperFitCost(LLAMA).step_time_s(prefill(1, 512))
    # a*bs*h^2*l + B*bs*h*h'*l + g*b*s^2*n*l + e*bs*h*l + L*bs*h'*l + m (ms)
    ms = (
        4.51e-11 * 512 * 4096**2 * 32
        + 3.35e-11 * 512 * 4096 * 11008 * 32
        + 2.29e-9 * 512**2 * 32 * 32
        + 5.88e-8 * 512 * 4096 * 32
        + 6.26e-9 * 512 * 11008 * 32
        - 1.64
    )
    assert step == pytest.approx(ms / 1000, rel=1e-9)
    assert step == pytest.approx(0.0412, rel=0.01)


def test_paper_fit_mixed_step_is_prefill_plus_decode() -> None:
    cost = PaperFitCost(LLAMA)
    both = BatchShape(
        prefill_tokens=512, prefill_pairs=512 * 512, prefill_seqs=1,
        decode_seqs=8, decode_context_tokens=4096, sampled=9,
    )  # fmt: skip
    alone = cost.step_time_s(prefill(1, 512)) + cost.step_time_s(decode(8, 512))
    assert cost.step_time_s(both) == pytest.approx(alone, rel=1e-12)


def test_paper_fit_never_goes_negative() -> None:
    # one prompt token: ~0.08 ms of terms against m = -1.64 ms
    assert PaperFitCost(LLAMA).step_time_s(prefill(1, 1)) == 0.0
    assert PaperFitCost(LLAMA).step_time_s(BatchShape()) == 0.0
