"""Tests for loadgen.sim.engine: KV sizing, vLLM prefill-first steps, preemption, SplitFuse.

The engines run a tiny model (hidden 8, FFN 16, 2 layers, 2 heads, 1 KV head, vocab 10,
context 64: weights 2624 bytes, K+V 32 bytes per token) on a toy GPU sized by hand to hold
exactly the number of KV blocks a test wants, with gpu_memory_utilization 1.0:
  weights 2624 + activations batch_tokens * (4*8 + 2*16) * 2 + max_num_seqs * 10 * 4
  + blocks * block_size * 32.
Step time is a constant 1 s from a cost model that records every BatchShape it is given.
"""

from __future__ import annotations

import numpy as np
import pytest

from loadgen.sim.cost_model import BatchShape
from loadgen.sim.engine import (
    Engine,
    EngineConfig,
    StepResult,
    activation_bytes,
    kv_cache_blocks,
)
from loadgen.sim.presets import GPUS, MODELS, GpuSpec, PresetError
from loadgen.sim.sequence import Sequence
from tests.support.sim_toys import TINY, RecordingCost


def make_engine(
    blocks: int,
    *,
    policy: str = "vllm",
    block_size: int = 4,
    max_num_seqs: int = 4,
    max_num_batched_tokens: int | None = None,
    token_budget: int = 512,
    watermark: float = 0.0,
) -> Engine:
    config = EngineConfig(
        policy=policy,  # type: ignore[arg-type]
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens,
        token_budget=token_budget,
        gpu_memory_utilization=1.0,
        block_size=block_size,
        watermark=watermark,
    )
    batch_tokens = token_budget if policy == "splitfuse" else max_num_batched_tokens or 64
    memory = 2624 + batch_tokens * 128 + max_num_seqs * 40 + blocks * block_size * 32
    engine = Engine(TINY, GpuSpec("toy", memory / 2**30, 1.0, 1.0), config, RecordingCost())
    assert engine.total_blocks == blocks
    return engine


def check_blocks(engine: Engine) -> None:
    """Every block is free or held by a running sequence, ceil(computed / block) of them."""
    size = engine.config.block_size
    assert engine.free_blocks + sum(seq.blocks for seq in engine.running) == engine.total_blocks
    for seq in engine.running:
        assert seq.blocks == -(-seq.computed // size), seq
    assert all(seq.blocks == 0 for seq in engine.waiting)


def add(engine: Engine, rid: int, prompt: int, output: int) -> Sequence:
    assert engine.refusal(prompt, output) is None
    seq = Sequence(rid=rid, prompt_tokens=prompt, output_tokens=output)
    engine.add(seq)
    return seq


def step(engine: Engine) -> StepResult:
    result = engine.step()
    check_blocks(engine)
    return result


# ---- KV cache sizing --------------------------------------------------------------------


def test_activation_bytes_by_hand() -> None:
    # vllm: context 64 tokens * (4*8 + 2*16) * 2 bytes + 256 seqs * vocab 10 * 4 bytes
    assert activation_bytes(TINY, EngineConfig()) == 8192 + 10_240
    # splitfuse: the token budget instead of the context
    config = EngineConfig(policy="splitfuse", token_budget=32, max_num_seqs=4)
    assert activation_bytes(TINY, config) == 32 * 64 * 2 + 4 * 10 * 4


def test_kv_cache_blocks_by_hand() -> None:
    gpu = GpuSpec("1 MiB", 1 / 1024, 1.0, 1.0)
    # (1_048_576 * 0.9 - weights 2624 - activations 18_432) // (16 tokens * 32 bytes)
    #   = 922_662.4 // 512 = 1802
    assert kv_cache_blocks(TINY, gpu, EngineConfig()) == 1802
    # whole blocks only: weights 2624 + activations 64*64*2 + 4*10*4 + 3.75 blocks of 4*32
    gpu = GpuSpec("3.75 blocks", (2624 + 8192 + 160 + 480) / 2**30, 1.0, 1.0)
    config = EngineConfig(max_num_seqs=4, gpu_memory_utilization=1.0, block_size=4)
    assert kv_cache_blocks(TINY, gpu, config) == 3


def test_kv_cache_blocks_for_llama_on_a100() -> None:
    llama = MODELS["llama-2-7b"]
    # 80 GiB * 0.9 = 77_309_411_328; weights 13_476_298_752; activations
    # 4096 * (4*4096 + 2*11008) * 2 + 256 * 32000 * 4 = 314_572_800 + 32_768_000;
    # left 63_485_771_776 // (16 * 524_288) = 7568 blocks (121k tokens)
    assert kv_cache_blocks(llama, GPUS["a100"], EngineConfig()) == 7568


def test_too_little_memory_raises() -> None:
    # room for weights and activations plus 115 of the 128 bytes of a block
    gpu = GpuSpec("tiny gpu", (2624 + 8192 + 4 * 40 + 115) / 2**30, 1.0, 1.0)
    config = EngineConfig(max_num_seqs=4, gpu_memory_utilization=1.0, block_size=4)
    with pytest.raises(PresetError, match="leaves no room for a KV cache"):
        kv_cache_blocks(TINY, gpu, config)
    with pytest.raises(PresetError, match="leaves no room"):
        Engine(TINY, gpu, config, RecordingCost())
    with pytest.raises(PresetError, match="Llama-2-13B"):  # 26 GB of weights in 24 GiB
        kv_cache_blocks(MODELS["llama-2-13b"], GPUS["rtx3090"], EngineConfig())


def test_vllm_needs_a_whole_context_per_step() -> None:
    with pytest.raises(PresetError, match=r"max_num_batched_tokens 32 is below .* 64"):
        make_engine(8, max_num_batched_tokens=32)
    make_engine(8, policy="splitfuse", token_budget=8)  # chunked prefill may use less


# ---- vllm policy ------------------------------------------------------------------------


def test_a_sequence_emits_its_first_token_at_prefill_and_stops_at_output_tokens() -> None:
    engine = make_engine(10)
    seq = add(engine, 0, prompt=5, output=3)
    first = step(engine)
    assert (first.prefilled, first.emitted, first.finished) == ([seq], [seq], [])
    assert first.batch == BatchShape(prefill_tokens=5, prefill_pairs=25, prefill_seqs=1, sampled=1)
    assert (seq.generated, seq.computed, seq.blocks) == (1, 5, 2)  # ceil(5/4) blocks
    second = step(engine)
    assert second.emitted == [seq]
    assert second.batch == BatchShape(decode_seqs=1, decode_context_tokens=6, sampled=1)
    third = step(engine)
    assert (third.emitted, third.finished) == ([seq], [seq])
    assert (seq.generated, seq.done, seq.blocks) == (3, True, 0)
    assert (engine.free_blocks, engine.has_work(), engine.kv_usage) == (10, False, 0.0)


def test_a_one_token_output_finishes_at_prefill() -> None:
    engine = make_engine(10)
    seq = add(engine, 0, prompt=7, output=1)
    result = step(engine)
    assert result.finished == [seq]
    assert not engine.has_work()


def test_prefill_first_a_fitting_prompt_stops_every_decode() -> None:
    engine = make_engine(20)
    a = add(engine, 0, prompt=4, output=5)
    step(engine)
    b = add(engine, 1, prompt=6, output=5)
    result = step(engine)
    assert (result.prefilled, result.emitted) == ([b], [b])
    assert result.batch.decode_seqs == 0
    assert a.generated == 1  # A did not decode
    result = step(engine)
    assert result.emitted == [a, b]
    # contexts (4 + 1) + (6 + 1), the new token included
    assert result.batch == BatchShape(decode_seqs=2, decode_context_tokens=12, sampled=2)


def test_each_decode_step_emits_one_token_per_running_sequence() -> None:
    engine = make_engine(30)
    seqs = [add(engine, rid, prompt=3 + rid, output=6) for rid in range(3)]
    assert step(engine).batch.prefill_seqs == 3
    for expected in (2, 3, 4, 5):
        result = step(engine)
        assert result.emitted == seqs
        assert [seq.generated for seq in seqs] == [expected] * 3


def test_max_num_seqs_caps_running() -> None:
    engine = make_engine(20, max_num_seqs=2)
    a, b, c = (add(engine, rid, prompt=4, output=2) for rid in range(3))
    assert step(engine).prefilled == [a, b]
    assert list(engine.waiting) == [c]
    result = step(engine)  # C waits for a seat: both decode and finish
    assert (result.batch.prefill_seqs, result.finished) == (0, [a, b])
    assert step(engine).prefilled == [c]


@pytest.mark.parametrize(
    ("limit", "first", "second"), [(64, [0], [1, 2]), (80, [0, 1], [2]), (90, [0, 1, 2], [])]
)
def test_max_num_batched_tokens_caps_a_prefill_step(
    limit: int, first: list[int], second: list[int]
) -> None:
    engine = make_engine(40, max_num_batched_tokens=limit)
    for rid, prompt in enumerate((40, 30, 20)):
        add(engine, rid, prompt=prompt, output=3)
    result = step(engine)
    assert [seq.rid for seq in result.prefilled] == first
    assert result.batch.prefill_tokens <= limit
    if second:
        assert [seq.rid for seq in step(engine).prefilled] == second


def test_admission_keeps_the_watermark_free() -> None:
    engine = make_engine(20, watermark=0.1)  # 2 blocks held back from new prompts
    add(engine, 0, prompt=56, output=4)  # 14 blocks: 6 left
    step(engine)
    assert engine.kv_usage == pytest.approx(0.7)
    add(engine, 1, prompt=20, output=4)  # 5 blocks would leave 1 < 2
    assert step(engine).batch.prefill_seqs == 0
    engine = make_engine(20, watermark=0.1)
    add(engine, 0, prompt=56, output=4)
    step(engine)
    add(engine, 1, prompt=16, output=4)  # 4 blocks leave 2
    assert step(engine).batch.prefill_seqs == 1


def test_refusal_past_the_context_length() -> None:
    engine = make_engine(20)
    assert engine.refusal(50, 14) is None  # exactly 64
    assert engine.refusal(50, 15) is not None


def test_refusal_uses_vllms_exact_wording() -> None:
    # vllm/entrypoints/openai/serving_engine.py, _validate_prompt_and_tokenize
    assert make_engine(20).refusal(50, 15) == (
        "This model's maximum context length is 64 tokens. However, you requested 65 tokens "
        "(50 in the messages, 15 in the completion). Please reduce the length of the messages "
        "or completion."
    )


def test_refusal_when_the_kv_cache_is_too_small() -> None:
    engine = make_engine(4)  # 16 tokens
    assert engine.refusal(10, 6) is None
    assert engine.refusal(10, 7) == "17 tokens do not fit in the KV cache (4 blocks)"
    engine = make_engine(8, watermark=0.25)  # 2 blocks reserved: 24 tokens usable
    assert engine.refusal(20, 4) is None
    assert engine.refusal(20, 5) is not None


def test_preemption_by_recompute() -> None:
    engine = make_engine(4)  # 16 token slots
    a = add(engine, 0, prompt=4, output=8)
    b = add(engine, 1, prompt=4, output=8)
    b_tokens = len(step(engine).emitted) - 1  # prefill A and B: 1 block each
    c = add(engine, 2, prompt=12, output=1)  # 3 blocks: never fits beside A and B
    for _ in range(4):  # tokens 2..5; A and B grow to 2 blocks each
        result = step(engine)
        assert (result.batch.decode_seqs, result.preempted) == (2, 0)
        b_tokens += b in result.emitted
    assert (a.generated, b.generated, a.blocks, b.blocks, engine.free_blocks) == (5, 5, 2, 2, 0)
    # A needs a third block for its 9th token and none is free: B, the newest, is preempted
    result = step(engine)
    assert (result.preempted, result.emitted, engine.running) == (1, [a], [a])
    assert list(engine.waiting) == [b, c]  # back to the front, ahead of C
    assert (b.blocks, b.computed, b.preemptions, b.generated) == (0, 0, 1, 5)
    assert engine.free_blocks == 1
    assert step(engine).emitted == [a]  # B needs 3 blocks, 1 is free
    assert step(engine).finished == [a]
    # B prefills its prompt and its 5 tokens again, and samples its 6th
    result = step(engine)
    assert (result.prefilled, result.emitted) == ([b], [b])
    assert result.batch.prefill_tokens == 4 + 5
    assert result.batch.prefill_pairs == 9 * 9
    b_tokens += 1
    while engine.has_work():
        result = step(engine)
        b_tokens += b in result.emitted
    assert (b.generated, b_tokens, b.done) == (8, 8, True)
    assert (c.generated, c.done, engine.free_blocks) == (1, True, 4)


def test_preemption_takes_the_newest_sequence() -> None:
    engine = make_engine(6)
    a, b, c = (add(engine, rid, prompt=4, output=8) for rid in range(3))
    for _ in range(5):  # prefill, then tokens 2..5: 2 blocks each, none free
        assert step(engine).preempted == 0
    assert engine.free_blocks == 0
    # A needs a block: C (newest) is preempted, then A and B each take one of its two
    result = step(engine)
    assert (result.preempted, result.emitted) == (1, [a, b])
    assert (engine.running, list(engine.waiting)) == ([a, b], [c])
    assert (a.blocks, b.blocks, c.blocks) == (3, 3, 0)


def test_abort_frees_blocks() -> None:
    engine = make_engine(10, max_num_seqs=1)
    a = add(engine, 0, prompt=9, output=5)
    b = add(engine, 1, prompt=4, output=5)
    step(engine)
    assert engine.free_blocks == 7  # 10 - ceil(9/4)
    engine.abort(a)
    assert (a.done, a.blocks, engine.free_blocks, engine.running) == (True, 0, 10, [])
    engine.abort(a)  # twice is harmless
    engine.abort(b)  # a waiting one leaves the queue
    assert (b.done, engine.has_work()) == (True, False)
    check_blocks(engine)


# ---- splitfuse policy -------------------------------------------------------------------


def test_splitfuse_splits_a_long_prompt_into_chunks() -> None:
    engine = make_engine(10, policy="splitfuse", token_budget=4)
    seq = add(engine, 0, prompt=10, output=2)
    shapes = []
    for computed in (4, 8, 10):
        result = step(engine)
        shapes.append(result.batch)
        assert seq.computed == computed
        assert result.emitted == ([seq] if computed == 10 else [])
    assert shapes == [
        BatchShape(prefill_tokens=4, prefill_pairs=16, prefill_seqs=1),  # 4 * (0 + 4)
        BatchShape(prefill_tokens=4, prefill_pairs=32, cached_tokens=4, prefill_seqs=1),
        BatchShape(  # 2 * (8 + 2), the last chunk samples
            prefill_tokens=2, prefill_pairs=20, cached_tokens=8, prefill_seqs=1, sampled=1
        ),
    ]
    assert step(engine).finished == [seq]


def test_splitfuse_decodes_first_then_fills_with_prompt_chunks() -> None:
    engine = make_engine(20, policy="splitfuse", token_budget=4)
    a, b, c = (add(engine, rid, prompt=2, output=10) for rid in range(3))
    assert step(engine).prefilled == [a, b]  # 2 + 2 tokens fill the budget
    result = step(engine)
    assert (result.batch.decode_seqs, result.prefilled) == (2, [c])
    d = add(engine, 3, prompt=10, output=2)
    result = step(engine)
    assert result.batch.decode_seqs == 3
    assert result.prefilled == [d]
    assert (result.batch.prefill_tokens, result.batch.tokens) == (1, 4)
    assert result.emitted == [a, b, c]


def test_splitfuse_continues_a_started_prompt_before_a_new_one() -> None:
    engine = make_engine(20, policy="splitfuse", token_budget=6)
    a = add(engine, 0, prompt=10, output=2)
    b = add(engine, 1, prompt=10, output=2)
    assert step(engine).prefilled == [a]  # 6 of A's 10
    result = step(engine)
    assert result.prefilled == [a, b]
    assert (a.computed, b.computed) == (10, 2)
    assert result.emitted == [a]
    assert result.batch.cached_tokens == 6


def _run_random_load(policy: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    engine = make_engine(
        int(rng.integers(16, 40)), policy=policy, block_size=int(rng.choice([1, 4, 16])),
        max_num_seqs=int(rng.integers(1, 6)), token_budget=int(rng.integers(3, 20)),
    )  # fmt: skip
    pending = [
        Sequence(rid, int(rng.integers(1, 30)), int(rng.integers(1, 30))) for rid in range(20)
    ]
    pending = [
        seq for seq in pending if engine.refusal(seq.prompt_tokens, seq.output_tokens) is None
    ]
    emitted = {seq.rid: 0 for seq in pending}
    everyone, steps = list(pending), 0
    while pending or engine.has_work():
        if pending and rng.random() < 0.4:
            engine.add(pending.pop(0))
        if not engine.has_work():
            continue
        result = step(engine)
        steps += 1
        assert result.batch.tokens > 0  # always progress
        assert len(engine.running) <= engine.config.max_num_seqs
        if policy == "splitfuse":
            assert result.batch.tokens <= engine.config.token_budget
        for seq in result.emitted:
            emitted[seq.rid] += 1
        assert steps < 10_000
    assert all(emitted[seq.rid] == seq.output_tokens and seq.done for seq in everyone)


@pytest.mark.parametrize("policy", ["vllm", "splitfuse"])
def test_random_loads_keep_the_books_and_finish_every_sequence(policy: str) -> None:
    for seed in range(40):
        _run_random_load(policy, seed)
