"""Tests for loadgen.sim.virtual: the engine run in virtual time, records out.

A tiny model (hidden 8, FFN 16, 2 layers, 2 heads, 1 KV head, vocab 10; 32 bytes of K+V per
token) runs on a toy GPU sized by hand for a given number of 4-token KV blocks, and every step
costs exactly 1 s, so token times are whole seconds that can be written down in advance.
"""

from __future__ import annotations

import numpy as np
import pytest

from loadgen.core.records import RequestRecord, RequestSpec
from loadgen.sim.cost_model import BatchShape
from loadgen.sim.engine import Engine, EngineConfig
from loadgen.sim.presets import GpuSpec, ModelSpec
from loadgen.sim.reasoning import ReasoningRange
from loadgen.sim.tokens import prompt_tokens
from loadgen.sim.virtual import OutputPolicy, simulate_requests, spec_prompt, spec_prompt_tokens
from tests.support.sim_toys import TINY, RecordingCost

NS = 1_000_000_000


def make_engine(
    blocks: int = 100,
    model: ModelSpec = TINY,
    max_num_seqs: int = 8,
    *,
    caching: bool = True,
) -> tuple[Engine, RecordingCost]:
    config = EngineConfig(
        max_num_seqs=max_num_seqs,
        gpu_memory_utilization=1.0,
        block_size=4,
        enable_prefix_caching=caching,
    )
    # weights + activations (context * (4h + 2h') * 2 + seqs * vocab * 4) + KV blocks
    act = model.max_model_len * (4 * 8 + 2 * 16) * 2 + max_num_seqs * 10 * 4
    memory = 2624 + act + blocks * 4 * 32
    cost = RecordingCost()
    engine = Engine(model, GpuSpec("toy", memory / 2**30, 1.0, 1.0), config, cost)
    assert engine.total_blocks == blocks
    return engine, cost


def run(
    specs: list[RequestSpec],
    offsets: list[float],
    outputs: OutputPolicy | None = None,
    engine: Engine | None = None,
    seed: int = 0,
    reasoning: ReasoningRange | None = None,
) -> list[RequestRecord]:
    return simulate_requests(
        engine or make_engine()[0],
        specs,
        np.array(offsets, dtype=np.float64),
        outputs or OutputPolicy(ignore_eos=True, min_tokens=0, eos_mean_tokens=256.0),
        np.random.default_rng(seed),
        reasoning,
    )


def times_s(record: RequestRecord) -> list[float]:
    return [t / NS for t in record.chunk_times_ns]


# ---- timing ---------------------------------------------------------------------------------


def test_a_lone_request_starts_at_its_arrival() -> None:
    [record] = run([RequestSpec("one two three four", max_tokens=3)], [5.0])
    # prefill 5 -> 6 s emits the first token, two decodes end at 7 s and 8 s
    assert times_s(record) == [6.0, 7.0, 8.0]
    assert (record.t_sched_ns, record.t_send_ns, record.slot_wait_ns) == (5 * NS, 5 * NS, 0)
    assert (record.t_first_ns, record.t_last_ns, record.t_done_ns) == (6 * NS, 8 * NS, 8 * NS)
    assert (record.tokens_in, record.tokens_out, record.tokens_source) == (4, 3, "server")
    assert (record.status, record.error_kind, record.ok) == (200, None, True)


def test_a_request_after_the_engine_drained_starts_at_its_own_arrival() -> None:
    specs = [RequestSpec("a", max_tokens=2), RequestSpec("b", max_tokens=2)]
    first, second = run(specs, [0.0, 100.0])
    assert times_s(first) == [1.0, 2.0]
    assert times_s(second) == [101.0, 102.0]


def test_a_request_sent_during_a_step_joins_at_the_next_step() -> None:
    specs = [RequestSpec("a b", max_tokens=3), RequestSpec("c", max_tokens=2)]
    a, b = run(specs, [0.0, 0.5])
    # 0-1 prefill A; 1-2 prefill B alone (prefill first); 2-3 both decode; 3-4 A decodes
    assert times_s(a) == [1.0, 3.0, 4.0]
    assert times_s(b) == [2.0, 3.0]
    assert b.t_send_ns == NS // 2


def test_a_request_arriving_as_a_step_ends_joins_the_next_one() -> None:
    specs = [RequestSpec("a", max_tokens=2), RequestSpec("b", max_tokens=1)]
    a, b = run(specs, [0.0, 1.0])
    assert times_s(a) == [1.0, 3.0]
    assert times_s(b) == [2.0]


def test_the_engine_sees_the_workloads_token_counts() -> None:
    engine, cost = make_engine()
    [record] = run([RequestSpec("short", max_tokens=2, tokens_in=30)], [0.0], engine=engine)
    assert record.tokens_in == 30
    assert cost.shapes[0] == BatchShape(
        prefill_tokens=30, prefill_pairs=900, prefill_seqs=1, sampled=1
    )
    assert cost.shapes[1] == BatchShape(decode_seqs=1, decode_context_tokens=31, sampled=1)


def test_records_come_back_in_send_order() -> None:
    specs = [RequestSpec("x", max_tokens=1) for _ in range(3)]
    records = run(specs, [2.0, 0.0, 1.0])
    assert [record.index for record in records] == [0, 1, 2]
    assert [record.t_send_ns for record in records] == [2 * NS, 0, NS]
    assert [times_s(record) for record in records] == [[3.0], [1.0], [2.0]]


def test_records_on_a_busy_random_workload() -> None:
    rng = np.random.default_rng(7)
    offsets = np.cumsum(rng.exponential(0.7, size=40))
    specs = [
        RequestSpec(" ".join(["w"] * int(rng.integers(1, 20))), max_tokens=int(rng.integers(1, 30)))
        for _ in range(40)
    ]
    engine, _ = make_engine(blocks=30, max_num_seqs=4)
    records = run(specs, list(offsets), engine=engine)
    for index, (spec, record) in enumerate(zip(specs, records, strict=True)):
        assert record.index == index
        assert record.t_sched_ns == record.t_send_ns == round(offsets[index] * NS)
        assert record.ok
        assert record.tokens_out == spec.max_tokens
        assert len(record.chunk_times_ns) == record.tokens_out
        assert list(record.chunk_times_ns) == sorted(record.chunk_times_ns)
        assert record.t_send_ns < record.t_first_ns <= record.t_last_ns == record.t_done_ns
        assert record.tokens_in == len(spec.prompt.split())
    assert not engine.has_work()


def test_runs_are_reproducible() -> None:
    specs = [RequestSpec("a b c", max_tokens=40) for _ in range(10)]
    outputs = OutputPolicy(ignore_eos=False, min_tokens=0, eos_mean_tokens=8.0)
    engine_a, _ = make_engine()
    engine_b, _ = make_engine()
    offsets = [0.3 * i for i in range(10)]
    assert run(specs, offsets, outputs, engine_a, seed=3) == run(
        specs, offsets, outputs, engine_b, seed=3
    )


# ---- refusals -----------------------------------------------------------------------------


def test_a_refused_request_becomes_a_400_record() -> None:
    specs = [
        RequestSpec("a", max_tokens=2),
        RequestSpec("too long", max_tokens=10, tokens_in=60),  # 70 > 64
        RequestSpec("b", max_tokens=2),
    ]
    ok_a, refused, ok_b = run(specs, [0.0, 0.2, 0.4])
    assert (refused.error_kind, refused.status, refused.ok) == ("http_4xx", 400, False)
    assert refused.error is not None
    assert refused.error.startswith("This model's maximum context length is 64 tokens.")
    assert "you requested 70 tokens (60 in the messages, 10 in the completion)" in refused.error
    assert (refused.t_sched_ns, refused.t_send_ns, refused.t_done_ns) == (NS // 5,) * 3
    assert (refused.tokens_in, refused.tokens_out, tuple(refused.chunk_times_ns)) == (60, 0, ())
    assert refused.t_first_ns is None
    assert ok_a.ok
    assert ok_b.ok
    assert (ok_a.tokens_out, ok_b.tokens_out) == (2, 2)


def test_a_request_larger_than_the_kv_cache_is_refused() -> None:
    engine, _ = make_engine(blocks=4)  # 16 tokens
    [record] = run([RequestSpec("x", max_tokens=20)], [0.0], engine=engine)
    assert (record.status, record.error_kind) == (400, "http_4xx")
    assert record.error == "21 tokens do not fit in the KV cache (4 blocks)"


# ---- output lengths -----------------------------------------------------------------------


def test_ignore_eos_gives_max_tokens() -> None:
    rng = np.random.default_rng(0)
    assert [OutputPolicy(True, 0, 256.0).length(n, rng) for n in (1, 7, 300)] == [1, 7, 300]


def test_eos_lengths_stay_within_min_and_max() -> None:
    policy = OutputPolicy(ignore_eos=False, min_tokens=5, eos_mean_tokens=10.0)
    specs = [RequestSpec("p q", max_tokens=20) for _ in range(60)]
    records = run(specs, [0.1 * i for i in range(60)], policy, make_engine(blocks=200)[0])
    lengths = [record.tokens_out for record in records]
    assert all(5 <= n <= 20 for n in lengths)
    assert len(set(lengths)) > 5  # a draw, not a constant
    assert all(len(record.chunk_times_ns) == record.tokens_out for record in records)


def test_eos_length_is_at_least_one_and_at_most_max_tokens() -> None:
    rng = np.random.default_rng(1)
    policy = OutputPolicy(ignore_eos=False, min_tokens=0, eos_mean_tokens=3.0)
    draws = [policy.length(4, rng) for _ in range(2000)]
    assert min(draws) == 1
    assert max(draws) == 4
    clamped = OutputPolicy(ignore_eos=False, min_tokens=50, eos_mean_tokens=3.0)
    assert {clamped.length(10, rng) for _ in range(100)} == {10}  # max_tokens wins


def test_eos_lengths_average_the_eos_mean() -> None:
    rng = np.random.default_rng(2024)
    policy = OutputPolicy(ignore_eos=False, min_tokens=0, eos_mean_tokens=40.0)
    draws = np.array([policy.length(1_000_000, rng) for _ in range(20_000)])
    # geometric, sd about 39.5: standard error 39.5 / sqrt(20_000) = 0.28; allow 3% (1.2)
    assert draws.mean() == pytest.approx(40.0, rel=0.03)


def test_eos_lengths_through_the_engine_average_the_eos_mean() -> None:
    long = ModelSpec("tiny-long", 8, 16, 2, 2, 1, 10, 4096)
    engine, _ = make_engine(blocks=40_000, model=long, max_num_seqs=64)
    policy = OutputPolicy(ignore_eos=False, min_tokens=0, eos_mean_tokens=20.0)
    specs = [RequestSpec("a b c d", max_tokens=4000) for _ in range(400)]
    records = run(specs, [0.5 * i for i in range(400)], policy, engine, seed=11)
    mean = np.mean([record.tokens_out for record in records])
    # sd about 19.5 over 400 draws: standard error ~1.0; allow 15% (3 tokens)
    assert mean == pytest.approx(20.0, rel=0.15)


# ---- prompt lengths -----------------------------------------------------------------------


def test_prompt_tokens_counts_whitespace_words() -> None:
    assert prompt_tokens("hello world") == 2
    assert prompt_tokens("  [INST]  tell me\n\ta   story [/INST] ") == 6
    assert prompt_tokens("") == 1  # never zero
    assert prompt_tokens(" \n ") == 1


def test_spec_prompt_tokens_prefers_tokens_in() -> None:
    assert spec_prompt_tokens(RequestSpec("a b c", max_tokens=5, tokens_in=42)) == 42
    assert spec_prompt_tokens(RequestSpec("a b c", max_tokens=5)) == 3


def test_spec_prompt_tokens_sums_chat_messages() -> None:
    messages = ({"role": "system", "content": "be brief"}, {"role": "user", "content": "x y z"})
    assert spec_prompt_tokens(RequestSpec("", max_tokens=5, messages=messages)) == 2 + 3
    with_count = RequestSpec("", max_tokens=5, messages=messages, tokens_in=9)
    assert spec_prompt_tokens(with_count) == 9


def test_spec_prompt_is_the_words_made_as_long_as_the_count() -> None:
    assert spec_prompt(RequestSpec("a b c", max_tokens=5)) == ("a", "b", "c")
    padded = spec_prompt(RequestSpec("a b c", max_tokens=5, tokens_in=5))
    assert (len(padded), padded[:3]) == (5, ("a", "b", "c"))
    cut = spec_prompt(RequestSpec("a b c d", max_tokens=5, tokens_in=2))
    assert (len(cut), cut[0]) == (2, "a")
    messages = ({"role": "system", "content": "be brief"}, {"role": "user", "content": "x"})
    chat = spec_prompt(RequestSpec("", max_tokens=5, messages=messages))
    assert chat == (("system", "be"), "brief", ("user", "x"))


# ---- prefix caching ---------------------------------------------------------------------------


def test_a_shared_prefix_skips_prefill_in_virtual_time() -> None:
    shared = "s1 s2 s3 s4 s5 s6 s7 s8"  # two 4-token blocks
    specs = [RequestSpec(f"{shared} a", max_tokens=1), RequestSpec(f"{shared} b c", max_tokens=1)]
    engine, cost = make_engine()
    first, second = run(specs, [0.0, 10.0], engine=engine)
    assert (first.cached_tokens, second.cached_tokens) == (0, 8)
    assert cost.shapes[1] == BatchShape(
        prefill_tokens=2, prefill_pairs=2 * 10, cached_tokens=8, prefill_seqs=1, sampled=1
    )
    assert (engine.cache_queries, engine.cache_hits) == (9 + 10, 8)


def test_without_prefix_caching_every_prompt_is_computed() -> None:
    shared = "s1 s2 s3 s4 s5 s6 s7 s8"
    specs = [RequestSpec(f"{shared} a", max_tokens=1), RequestSpec(f"{shared} b c", max_tokens=1)]
    engine, cost = make_engine(caching=False)
    records = run(specs, [0.0, 10.0], engine=engine)
    assert [record.cached_tokens for record in records] == [0, 0]
    assert (cost.shapes[1].prefill_tokens, cost.shapes[1].cached_tokens) == (10, 0)
    assert engine.cache_queries == 0


# ---- reasoning ------------------------------------------------------------------------------


def test_records_say_where_the_answer_starts() -> None:
    specs = [RequestSpec("a", max_tokens=5), RequestSpec("b", max_tokens=2)]
    answered, thinking = run(specs, [0.0, 50.0], reasoning=ReasoningRange(2, 2))
    assert (answered.reasoning_tokens, answered.tokens_out) == (2, 5)
    assert answered.t_first_answer_ns == answered.chunk_times_ns[2]
    assert answered.t_first_ns == answered.chunk_times_ns[0]
    # An output that ends while reasoning has no answer.
    assert (thinking.reasoning_tokens, thinking.t_first_answer_ns) == (2, None)


def test_without_a_reasoning_phase_the_first_token_is_the_answer() -> None:
    [record] = run([RequestSpec("a", max_tokens=3)], [0.0])
    assert record.reasoning_tokens is None
    assert record.t_first_answer_ns == record.t_first_ns


def test_reasoning_draws_leave_output_lengths_alone() -> None:
    specs = [RequestSpec("a b", max_tokens=40) for _ in range(30)]
    offsets = [0.5 * i for i in range(30)]
    eos = OutputPolicy(ignore_eos=False, min_tokens=0, eos_mean_tokens=10.0)
    plain = run(specs, offsets, eos, make_engine()[0], seed=5)
    thinking = run(specs, offsets, eos, make_engine()[0], 5, ReasoningRange(0, 30))
    again = run(specs, offsets, eos, make_engine()[0], 5, ReasoningRange(0, 30))
    assert [r.tokens_out for r in thinking] == [r.tokens_out for r in plain]
    drawn = [r.reasoning_tokens for r in thinking]
    assert drawn == [r.reasoning_tokens for r in again]  # seeded
    assert all(
        d is not None and 0 <= d <= r.tokens_out for d, r in zip(drawn, thinking, strict=True)
    )
    assert len(set(drawn)) > 5  # a draw, not a constant
