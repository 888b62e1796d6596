"""A GPU serving engine as a pure step model: batches, paged KV cache, preemption (tokens, s).

Each `Engine.step()` forms one batch under the scheduler policy, prices it with a cost model,
and says which sequences emitted a token and which finished. Time does not pass here: the
caller advances its own clock (virtual or real) by the returned duration.

- `vllm`: continuous batching with prefill-first steps (vLLM 0.2.x, the paper's version):
  while prompts wait and fit (`max_num_seqs`, `max_num_batched_tokens`, free KV blocks above a
  1% watermark) a step prefills them and nothing decodes; otherwise every running sequence
  decodes one token. A decode that needs a KV block when none is free preempts the newest
  running sequence by recompute: its blocks are freed and it waits, at the front of the queue,
  to prefill its prompt and the tokens it had generated again.
- `splitfuse`: a fixed token budget per step (DeepSpeed-MII's Dynamic SplitFuse, vLLM's chunked
  prefill): running sequences decode first, then prompt chunks fill what is left, continuing
  partly prefilled prompts before starting new ones.

With prefix caching on (vLLM V1's default), a sequence given its prompt's token content starts
with its longest run of leading full blocks already cached (see kv_cache.py): those tokens are
neither computed nor given new blocks, and at least one prompt token is always computed (vLLM
caps a hit at the prompt length minus one, in whole blocks). Every block a sequence fills,
prompt or output, is cached once its KV is computed.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from loadgen.sim.cost_model import BatchShape, CostModel
from loadgen.sim.kv_cache import BlockPool
from loadgen.sim.presets import GpuSpec, ModelSpec, PresetError
from loadgen.sim.sequence import Sequence

Policy = Literal["vllm", "splitfuse"]
POLICIES: tuple[Policy, ...] = ("vllm", "splitfuse")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Scheduler limits; `max_num_batched_tokens` None means the model's context length."""

    policy: Policy = "vllm"
    max_num_seqs: int = 256
    max_num_batched_tokens: int | None = None
    token_budget: int = 512
    gpu_memory_utilization: float = 0.9
    block_size: int = 16
    watermark: float = 0.01
    enable_prefix_caching: bool = True


def activation_bytes(model: ModelSpec, config: EngineConfig) -> int:
    """Memory vLLM's profiling pass keeps for activations and logits (bytes).

    One layer's widest activations for a full batch of tokens (QKV, attention output and the
    two FFN halves) in the model's dtype, plus float32 logits for every sequence.
    """
    tokens = batched_token_limit(model, config)
    widths = 4 * model.hidden + 2 * model.ffn_hidden
    return tokens * widths * model.dtype_bytes + config.max_num_seqs * model.vocab * 4


def batched_token_limit(model: ModelSpec, config: EngineConfig) -> int:
    """Tokens one step may compute: the budget under splitfuse, else the batched-token cap."""
    if config.policy == "splitfuse":
        return config.token_budget
    return config.max_num_batched_tokens or model.max_model_len


def kv_cache_blocks(model: ModelSpec, gpu: GpuSpec, config: EngineConfig) -> int:
    """KV blocks that fit in `gpu_memory_utilization` of memory after weights and activations."""
    free_bytes = gpu.memory_bytes * config.gpu_memory_utilization
    free_bytes -= model.weight_bytes + activation_bytes(model, config)
    blocks = int(free_bytes // (config.block_size * model.kv_bytes_per_token))
    if blocks < 1:
        raise PresetError(
            f"{model.name} ({model.weight_bytes / 1e9:.1f} GB of weights) leaves no room for a "
            f"KV cache in {config.gpu_memory_utilization:.0%} of a {gpu.name}"
        )
    return blocks


@dataclass(frozen=True, slots=True)
class StepResult:
    """One engine step: its batch and duration (s), who prefilled, emitted a token, finished.

    `cache_queries` and `cache_hits` add up the prompt tokens that sequences scheduled for the
    first time looked up in the prefix cache, and found (vLLM's prefix-cache counters).
    """

    duration_s: float
    batch: BatchShape
    prefilled: list[Sequence]
    emitted: list[Sequence]
    finished: list[Sequence]
    preempted: int
    cache_queries: int = 0
    cache_hits: int = 0


@dataclass(slots=True)
class _Batch:
    """A batch being formed: prompt chunks `(sequence, tokens)` and decoding sequences."""

    chunks: list[tuple[Sequence, int]] = field(default_factory=list)
    decodes: list[Sequence] = field(default_factory=list)
    preempted: int = 0
    cache_queries: int = 0
    cache_hits: int = 0


class Engine:
    """The engine's queues and KV cache, stepped by the caller."""

    def __init__(
        self,
        model: ModelSpec,
        gpu: GpuSpec,
        config: EngineConfig,
        cost: CostModel,
    ) -> None:
        self.model = model
        self.config = config
        self._cost = cost
        self.total_blocks = kv_cache_blocks(model, gpu, config)
        self._pool = BlockPool(self.total_blocks, caching=config.enable_prefix_caching)
        self._watermark_blocks = int(self.total_blocks * config.watermark)
        self._token_limit = batched_token_limit(model, config)
        if config.policy == "vllm" and self._token_limit < model.max_model_len:
            # As vLLM without chunked prefill: a recomputed sequence must fit in one step.
            raise PresetError(
                f"max_num_batched_tokens {self._token_limit} is below the model's context "
                f"length {model.max_model_len}; use the splitfuse policy for a smaller budget"
            )
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        # Since the start: preemptions, prompt tokens looked up in the prefix cache and found.
        self.preemptions = self.cache_queries = self.cache_hits = 0

    @property
    def free_blocks(self) -> int:
        """KV blocks no sequence holds (free cached blocks included, as vLLM counts them)."""
        return self._pool.free_blocks

    @property
    def cached_blocks(self) -> int:
        """KV blocks in the prefix cache, held or free."""
        return self._pool.cached_blocks

    @property
    def kv_usage(self) -> float:
        """Fraction of KV blocks in use (0..1)."""
        return 1.0 - self.free_blocks / self.total_blocks

    def has_work(self) -> bool:
        """True while any sequence waits or runs."""
        return bool(self.waiting or self.running)

    def refusal(self, prompt_tokens: int, max_tokens: int) -> str | None:
        """Why a request can never run (vLLM's 400 wording), or None when it can."""
        limit = self.model.max_model_len
        if prompt_tokens + max_tokens > limit:
            return (
                f"This model's maximum context length is {limit} tokens. However, you "
                f"requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the "
                f"messages, {max_tokens} in the completion). Please reduce the length of the "
                "messages or completion."
            )
        total = prompt_tokens + max_tokens
        if self._blocks_for(total) > self.total_blocks - self._watermark_blocks:
            return f"{total} tokens do not fit in the KV cache ({self.total_blocks} blocks)"
        return None

    def add(self, seq: Sequence) -> None:
        """Queue `seq` (checked with `refusal` by the caller); hash its prompt's full blocks."""
        seq.prefill_target = seq.prompt_tokens
        if self._pool.caching:
            seq.hash_prompt(self.config.block_size)
        seq.prompt = None
        self.waiting.append(seq)

    def abort(self, seq: Sequence) -> None:
        """Drop `seq` wherever it is and free its blocks (the client went away)."""
        if seq.done:
            return
        seq.done = True
        if seq in self.waiting:
            self.waiting.remove(seq)
        else:
            self.running.remove(seq)
            self._free(seq)

    def step(self) -> StepResult:
        """Schedule, price and apply one step (an empty result when there is no work)."""
        batch = self._schedule_vllm() if self.config.policy == "vllm" else self._schedule_fused()
        shape = _shape(batch)
        emitted: list[Sequence] = []
        finished: list[Sequence] = []
        for seq, tokens in batch.chunks:
            seq.computed += tokens
            if seq.commit_at <= seq.computed:
                self._commit(seq)
            if not seq.prefilling:
                self._sample(seq, emitted, finished)
        for seq in batch.decodes:
            seq.computed += 1
            if seq.commit_at <= seq.computed:
                self._commit(seq)
            self._sample(seq, emitted, finished)
        if finished:
            self.running = [seq for seq in self.running if not seq.done]
        duration_s = self._cost.step_time_s(shape)
        prefilled = [seq for seq, _ in batch.chunks]
        self.preemptions += batch.preempted
        self.cache_queries += batch.cache_queries
        self.cache_hits += batch.cache_hits
        return StepResult(
            duration_s,
            shape,
            prefilled,
            emitted,
            finished,
            batch.preempted,
            batch.cache_queries,
            batch.cache_hits,
        )

    def _sample(self, seq: Sequence, emitted: list[Sequence], finished: list[Sequence]) -> None:
        seq.generated += 1
        emitted.append(seq)
        if seq.generated >= seq.output_tokens:
            seq.done = True
            self._free(seq)
            finished.append(seq)

    def _schedule_vllm(self) -> _Batch:
        """Prefill-first: a step of new prompts if any fit, else one decode of every runner."""
        batch = _Batch()
        self._admit(batch, self._token_limit, whole_prompts=True)
        if not batch.chunks:
            batch.preempted = self._reserve_decodes(list(self.running), batch)
        return batch

    def _schedule_fused(self) -> _Batch:
        """Decodes first within the token budget, then prompt chunks fill the rest."""
        batch = _Batch()
        decoding = [seq for seq in self.running if not seq.prefilling]
        batch.preempted = self._reserve_decodes(decoding[: self.config.token_budget], batch)
        budget = self.config.token_budget - len(batch.decodes)
        for seq in [seq for seq in self.running if seq.prefilling]:
            if budget == 0:
                break
            tokens = min(seq.prefill_target - seq.computed, budget)
            if not self._grow(seq, seq.computed + tokens, self._watermark_blocks):
                break
            batch.chunks.append((seq, tokens))
            budget -= tokens
        self._admit(batch, budget, whole_prompts=False)
        return batch

    def _admit(self, batch: _Batch, budget: int, *, whole_prompts: bool) -> None:
        """Move waiting sequences into the batch (FCFS) while seats, tokens and blocks last."""
        while self.waiting and budget > 0 and len(self.running) < self.config.max_num_seqs:
            seq = self.waiting[0]
            tokens = self._start(seq, budget, whole_prompts)
            if tokens is None:
                return
            self.waiting.popleft()
            self.running.append(seq)
            batch.chunks.append((seq, tokens))
            budget -= tokens
            if seq.preemptions == 0 and self._pool.caching:
                seq.cache_queries, seq.cache_hits = seq.prefill_target, seq.computed
                batch.cache_queries += seq.cache_queries
                batch.cache_hits += seq.cache_hits

    def _start(self, seq: Sequence, budget: int, whole_prompt: bool) -> int | None:
        """Give a waiting sequence its cached prefix and the blocks of its first chunk.

        Returns the chunk's tokens to compute, or None when they exceed `budget` or the blocks
        (new ones, and free cached ones it would share) would eat into the watermark.
        """
        size = self.config.block_size
        hit_blocks = self._pool.longest_hit(seq.hashes, (seq.prefill_target - 1) // size)
        hit = hit_blocks * size
        need = seq.prefill_target - hit
        tokens = need if whole_prompt else min(need, budget)
        if tokens > budget:
            return None
        shared = seq.hashes[:hit_blocks]
        new_blocks = self._blocks_for(hit + tokens) - hit_blocks
        taken = new_blocks + self._pool.idle_among(shared)
        if self._pool.free_blocks - taken < self._watermark_blocks:
            return None
        self._pool.share(shared)  # before taking blocks, which may evict free cached ones
        self._pool.take(new_blocks)
        seq.cached = list(shared)
        seq.committed = hit_blocks
        if seq.tail is not None:
            seq.commit_at = (hit_blocks + 1) * size
        seq.blocks = hit_blocks + new_blocks
        seq.computed = hit
        return tokens

    def _commit(self, seq: Sequence) -> None:
        """Cache the blocks `seq` has just filled (their KV is now computed)."""
        size = self.config.block_size
        while seq.commit_at <= seq.computed:
            block_hash = seq.block_hash(seq.committed, size)
            if self._pool.register(block_hash):
                seq.cached.append(block_hash)
            seq.committed += 1
            seq.commit_at += size

    def _reserve_decodes(self, candidates: list[Sequence], batch: _Batch) -> int:
        """Give each candidate a KV slot for one more token, preempting the newest if needed.

        Victims come from the back of the queue still to be served (vLLM's order), then from
        prompts being prefilled; a sequence with nothing left to preempt preempts itself.
        """
        queue = deque(candidates)
        spare = [seq for seq in self.running if seq.prefilling]
        preempted = 0
        while queue:
            seq = queue.popleft()
            while not self._grow(seq, seq.computed + 1, 0):
                victim = queue.pop() if queue else spare.pop() if spare else seq
                self._preempt(victim)
                preempted += 1
                if victim is seq:
                    break
            else:
                batch.decodes.append(seq)
        return preempted

    def _preempt(self, seq: Sequence) -> None:
        """Recompute preemption: free every block; prefill prompt and output again later."""
        self._free(seq)
        seq.computed = seq.committed = 0
        seq.prefill_target = seq.prompt_tokens + seq.generated
        seq.preemptions += 1
        self.running.remove(seq)
        self.waiting.appendleft(seq)

    def _grow(self, seq: Sequence, tokens: int, reserve_blocks: int) -> bool:
        """Give `seq` blocks for `tokens` tokens if more than `reserve_blocks` stay free."""
        extra = self._blocks_for(tokens) - seq.blocks
        if extra <= 0:
            return True
        if self._pool.free_blocks - extra < reserve_blocks:
            return False
        self._pool.take(extra)
        seq.blocks += extra
        return True

    def _free(self, seq: Sequence) -> None:
        self._pool.release(seq.cached, seq.blocks - len(seq.cached))
        seq.blocks = 0
        seq.cached = []

    def _blocks_for(self, tokens: int) -> int:
        return math.ceil(tokens / self.config.block_size)


def _shape(batch: _Batch) -> BatchShape:
    """The cost model's view of a formed batch."""
    prefill_tokens = prefill_pairs = cached = sampled = 0
    for seq, tokens in batch.chunks:
        before = seq.computed
        prefill_tokens += tokens
        prefill_pairs += tokens * (before + tokens)
        cached += before
        sampled += before + tokens >= seq.prefill_target
    context = sum(seq.computed + 1 for seq in batch.decodes)
    return BatchShape(
        prefill_tokens=prefill_tokens,
        prefill_pairs=prefill_pairs,
        cached_tokens=cached,
        prefill_seqs=len(batch.chunks),
        decode_seqs=len(batch.decodes),
        decode_context_tokens=context,
        sampled=sampled + len(batch.decodes),
    )
