"""Tests for prefix caching in loadgen.sim.engine: hits, shared blocks, prefill saved, eviction.

A tiny model with a 256-token context (hidden 8, FFN 16, 2 layers, 2 heads, 1 KV head, vocab
10; K+V 32 bytes per token) runs on a toy GPU sized by hand for a given number of 16-token KV
blocks, with no watermark. Every step costs 1 s and the cost model keeps each batch it priced.
Prompts are lists of distinct words, so which tokens two prompts share is written down.
"""

from __future__ import annotations

import numpy as np
import pytest

from loadgen.sim.cost_model import RooflineCost
from loadgen.sim.engine import Engine, EngineConfig, StepResult
from loadgen.sim.presets import GPUS, MODELS, GpuSpec, ModelSpec
from loadgen.sim.sequence import Sequence
from loadgen.sim.tokens import Token, message_tokens, output_tokens, token_text
from tests.support.sim_toys import RecordingCost

LONG = ModelSpec("tiny-long", 8, 16, 2, 2, 1, 10, 256)
BLOCK = 16


def make_engine(
    blocks: int,
    *,
    caching: bool = True,
    policy: str = "vllm",
    max_num_seqs: int = 4,
    token_budget: int = 512,
) -> Engine:
    config = EngineConfig(
        policy=policy,  # type: ignore[arg-type]
        max_num_seqs=max_num_seqs,
        token_budget=token_budget,
        gpu_memory_utilization=1.0,
        block_size=BLOCK,
        watermark=0.0,
        enable_prefix_caching=caching,
    )
    batch_tokens = token_budget if policy == "splitfuse" else LONG.max_model_len
    memory = 2624 + batch_tokens * 128 + max_num_seqs * 40 + blocks * BLOCK * 32
    engine = Engine(LONG, GpuSpec("toy", memory / 2**30, 1.0, 1.0), config, RecordingCost())
    assert engine.total_blocks == blocks
    return engine


def words(count: int, tag: str) -> list[Token]:
    """`count` distinct words: tag0, tag1, ..."""
    return [f"{tag}{i}" for i in range(count)]


def add(engine: Engine, rid: int, prompt: list[Token], output: int) -> Sequence:
    seq = Sequence(rid, len(prompt), output, prompt=tuple(prompt))
    engine.add(seq)
    return seq


def drain(engine: Engine) -> list[StepResult]:
    results = []
    while engine.has_work():
        results.append(engine.step())
        assert len(results) < 10_000
    return results


def first_step_of(seq: Sequence, results: list[StepResult]) -> StepResult:
    return next(result for result in results if seq in result.prefilled)


# ---- hits -----------------------------------------------------------------------------------


@pytest.mark.parametrize("blocks", [1, 2, 4])
def test_a_shared_prefix_of_k_full_blocks_hits_16k_tokens(blocks: int) -> None:
    engine = make_engine(64)
    shared = words(BLOCK * blocks, "p")
    a = add(engine, 0, shared + words(5, "a"), output=3)
    drain(engine)
    b = add(engine, 1, shared + words(7, "b"), output=3)
    result = engine.step()

    hit = BLOCK * blocks
    assert (a.cache_queries, a.cache_hits) == (hit + 5, 0)
    assert (b.cache_queries, b.cache_hits) == (hit + 7, hit)
    assert (result.cache_queries, result.cache_hits) == (hit + 7, hit)
    assert (engine.cache_queries, engine.cache_hits) == (2 * hit + 12, hit)


def test_different_text_gets_no_hits() -> None:
    engine = make_engine(64)
    shared = words(47, "p")
    add(engine, 0, ["a", *shared], output=2)
    drain(engine)
    b = add(engine, 1, ["b", *shared], output=2)  # differs in its first word only
    engine.step()
    assert b.cache_hits == 0


def test_a_partial_block_is_not_cached() -> None:
    engine = make_engine(64)
    shared = words(40, "p")  # two full blocks and half of a third
    add(engine, 0, shared, output=1)
    drain(engine)
    b = add(engine, 1, [*shared, *words(30, "b")], output=1)
    engine.step()
    assert b.cache_hits == 32


@pytest.mark.parametrize(("length", "hit"), [(64, 48), (65, 64), (16, 0), (17, 16)])
def test_a_cached_prompt_still_computes_its_last_token(length: int, hit: int) -> None:
    # As vLLM: a hit stops one token short of the prompt, rounded down to whole blocks.
    engine = make_engine(64)
    prompt = words(length, "p")
    add(engine, 0, prompt, output=1)
    drain(engine)
    again = add(engine, 1, prompt, output=1)
    result = engine.step()
    assert again.cache_hits == hit
    assert result.batch.prefill_tokens == length - hit


def test_a_running_sequences_blocks_are_shared_not_allocated_again() -> None:
    engine = make_engine(64)
    shared = words(64, "p")
    a = add(engine, 0, shared, output=100)
    engine.step()  # A prefills 64 tokens: 4 blocks, all full, all cached
    engine.step()  # and decodes into a fifth block
    free = engine.free_blocks
    b = add(engine, 1, [*shared, *words(4, "b")], output=100)
    engine.step()
    assert (a.blocks, b.blocks, b.cache_hits) == (5, 5, 64)
    assert engine.free_blocks == free - 1  # B's one block of its own


# ---- the work saved -------------------------------------------------------------------------


def test_hit_tokens_skip_prefill_work() -> None:
    engine = make_engine(64)
    shared = words(48, "p")
    add(engine, 0, [*shared, *words(10, "a")], output=1)
    cold = drain(engine)[0].batch
    add(engine, 1, [*shared, *words(10, "b")], output=1)
    warm = drain(engine)[0].batch

    # Cold: 58 tokens computed over 58 positions. Warm: 10 tokens over the 48 cached ones.
    assert (cold.prefill_tokens, cold.cached_tokens, cold.prefill_pairs) == (58, 0, 58 * 58)
    assert (warm.prefill_tokens, warm.cached_tokens, warm.prefill_pairs) == (10, 48, 10 * 58)


def test_a_warm_prefill_step_of_llama_on_an_a100_takes_less_time() -> None:
    # 2000 shared tokens of 2048 (125 whole blocks): the warm step computes the other 48, a
    # step the roofline prices near its weight-bound floor.
    model, gpu = MODELS["llama-2-7b"], GPUS["a100"]
    engine = Engine(model, gpu, EngineConfig(), RooflineCost(model, gpu))
    shared = words(2000, "p")
    add(engine, 0, [*shared, *words(48, "a")], output=1)
    cold = drain(engine)[0]
    add(engine, 1, [*shared, *words(48, "b")], output=1)
    warm = drain(engine)[0]
    assert (cold.batch.prefill_tokens, warm.batch.prefill_tokens) == (2048, 48)
    assert warm.duration_s < cold.duration_s / 5


def test_without_prefix_caching_nothing_is_shared_or_counted() -> None:
    engine = make_engine(64, caching=False)
    shared = words(48, "p")
    add(engine, 0, [*shared, "a"], output=1)
    drain(engine)
    b = add(engine, 1, [*shared, "b"], output=1)
    result = engine.step()
    assert (b.cache_queries, b.cache_hits, result.cache_queries) == (0, 0, 0)
    assert result.batch.prefill_tokens == 49
    assert engine.cached_blocks == 0


# ---- eviction -------------------------------------------------------------------------------


def test_cached_blocks_are_evicted_only_when_blocks_are_needed() -> None:
    engine = make_engine(8)
    a_prompt = words(33, "a")  # 2 full blocks cached, a third partial one
    add(engine, 0, a_prompt, output=1)
    drain(engine)
    add(engine, 1, words(80, "c"), output=1)  # 5 blocks: 6 are blank, none is evicted
    drain(engine)
    again = add(engine, 2, a_prompt, output=1)
    engine.step()
    assert again.cache_hits == 32


def test_eviction_under_pressure_takes_the_least_recently_used_blocks() -> None:
    engine = make_engine(8)
    a_prompt, b_prompt = words(33, "a"), words(33, "b")
    add(engine, 0, a_prompt, output=1)
    drain(engine)
    add(engine, 1, b_prompt, output=1)
    drain(engine)  # cached: A's 2 blocks (older), B's 2; 2 partial blocks went blank
    assert (engine.cached_blocks, engine.free_blocks) == (4, 8)
    add(engine, 2, words(112, "c"), output=1)  # 7 blocks: 4 blank, then A's 2 and B's tail
    drain(engine)
    b_again = add(engine, 3, b_prompt, output=1)
    engine.step()
    a_again = add(engine, 4, a_prompt, output=1)
    engine.step()
    assert (a_again.cache_hits, b_again.cache_hits) == (0, 16)


# ---- preemption -----------------------------------------------------------------------------


def test_a_preempted_sequence_finds_its_own_blocks_and_is_not_counted_again() -> None:
    engine = make_engine(6)
    a = add(engine, 0, words(16, "a"), output=60)  # 76 tokens: 5 blocks
    b = add(engine, 1, words(16, "b"), output=60)
    results = drain(engine)

    # B is preempted at 48 computed tokens (3 cached blocks) when A needs its fourth block;
    # A's growth evicts B's last two; B comes back with 16 prompt + 33 generated tokens, finds
    # its first block, and computes the other 33.
    assert (a.preemptions, b.preemptions, engine.preemptions) == (0, 1, 1)
    back = [result for result in results if b in result.prefilled][-1]
    assert (back.batch.prefill_tokens, back.batch.cached_tokens) == (33, 16)
    assert (back.cache_queries, back.cache_hits) == (0, 0)  # not a first lookup
    assert (b.cache_queries, b.cache_hits) == (16, 0)
    assert (engine.cache_queries, engine.cache_hits) == (32, 0)
    assert (a.generated, b.generated) == (60, 60)


# ---- conversations --------------------------------------------------------------------------


def test_a_follow_up_that_holds_the_answer_hits_through_it() -> None:
    engine = make_engine(64)
    question = words(32, "q")
    add(engine, 0, question, output=20)
    drain(engine)  # KV computed for 32 + 19 tokens: 3 full blocks
    answer = output_tokens(0, 0, 20)
    follow_up = add(engine, 1, [*question, *answer, *words(5, "f")], output=1)
    engine.step()
    assert follow_up.cache_hits == 48


def test_a_chat_follow_up_hits_through_the_assistants_turn() -> None:
    engine = make_engine(64)
    user = {"role": "user", "content": " ".join(map(str, words(32, "q")))}
    first = Sequence(0, 32, 20, prompt=tuple(message_tokens([user])), role="assistant")
    engine.add(first)
    drain(engine)
    answer = {"role": "assistant", "content": "".join(token_text(0, p) for p in range(20))}
    turn = [user, answer, {"role": "user", "content": "and then"}]
    prompt = message_tokens(turn)
    second = Sequence(1, len(prompt), 1, prompt=tuple(prompt), role="assistant")
    engine.add(second)
    engine.step()
    assert second.cache_hits == 48
    # A completion's answer is not an assistant's turn: the third block differs.
    plain = Sequence(2, 32, 20, prompt=tuple(message_tokens([user])))
    engine.add(plain)
    drain(engine)
    assert plain.cache_hits == 16  # (32 - 1) // 16 blocks of the question


# ---- the books ------------------------------------------------------------------------------


def check_books(engine: Engine) -> None:
    """Free blocks, private blocks and held cached blocks add up to the cache."""
    held = {block_hash for seq in engine.running for block_hash in seq.cached}
    private = sum(seq.blocks - len(seq.cached) for seq in engine.running)
    assert engine.free_blocks + private + len(held) == engine.total_blocks
    for seq in engine.running:
        assert seq.blocks == -(-seq.computed // BLOCK), seq


@pytest.mark.parametrize("policy", ["vllm", "splitfuse"])
def test_random_loads_with_shared_prefixes_keep_the_books(policy: str) -> None:
    hits = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        engine = make_engine(int(rng.integers(12, 30)), policy=policy, token_budget=64)
        prefixes = [words(int(rng.integers(0, 60)), f"s{i}-") for i in range(3)]
        pending = []
        for rid in range(25):
            prompt = prefixes[rid % 3] + words(int(rng.integers(1, 40)), f"r{rid}-")
            seq = Sequence(rid, len(prompt), int(rng.integers(1, 60)), prompt=tuple(prompt))
            if engine.refusal(seq.prompt_tokens, seq.output_tokens) is None:
                pending.append(seq)
        everyone = list(pending)
        while pending or engine.has_work():
            if pending and rng.random() < 0.3:
                engine.add(pending.pop(0))
            if engine.has_work():
                assert engine.step().batch.tokens > 0
                check_books(engine)
        assert all(seq.done and seq.generated == seq.output_tokens for seq in everyone)
        assert engine.free_blocks == engine.total_blocks
        hits += engine.cache_hits
    assert hits > 0
