"""Tests for loadgen.sim.virtual.simulate_one_by_one: a synchronous step in virtual time.

Requests go one at a time, each as the one before it ends. On the toy engine of
test_virtual.py (every step costs exactly 1 s) token times are whole seconds written down in
advance; on the default simulated GPU the run is compared with a lone request's latency.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest

from loadgen.config import SimConfig
from loadgen.core.records import RequestRecord, RequestSpec
from loadgen.sim.engine import Engine, StepResult
from loadgen.sim.settings import resolve
from loadgen.sim.virtual import OutputPolicy, simulate_one_by_one, simulate_requests
from tests.unit.sim.test_virtual import NS, make_engine, times_s

FORCED = OutputPolicy(ignore_eos=True, min_tokens=0, eos_mean_tokens=256.0)
EOS = OutputPolicy(ignore_eos=False, min_tokens=1, eos_mean_tokens=12.0)
# Every time is a whole number of ns, rounded from seconds: a send and an end each move by at
# most 0.5 ns, so two latencies of the same work differ by at most 2 ns; 1 us is ample slack.
LATENCY_ABS_S = 1e-6


def watch(engine: Engine) -> list[int]:
    """Record, before each engine step, how many requests the engine holds (queued or running)."""
    held: list[int] = []
    step = engine.step

    def counted() -> StepResult:
        held.append(len(engine.waiting) + len(engine.running))
        return step()

    engine.step = counted  # type: ignore[method-assign]
    return held


def one_by_one(
    specs: Sequence[RequestSpec],
    engine: Engine | None = None,
    outputs: OutputPolicy = FORCED,
    seed: int = 0,
) -> list[RequestRecord]:
    return simulate_one_by_one(
        engine or make_engine()[0], specs, outputs, np.random.default_rng(seed)
    )


def e2e_s(record: RequestRecord) -> float:
    return (record.t_done_ns - record.t_send_ns) / NS


def words(count: int, tag: int) -> str:
    """A prompt of `count` words, distinct per `tag` from its first word on (no shared prefix)."""
    return " ".join([f"t{tag}"] + ["w"] * (count - 1))


# ---- the toy engine: whole seconds -----------------------------------------------------------


def test_each_request_goes_as_the_last_one_ends() -> None:
    specs = [
        RequestSpec("a b", max_tokens=3),
        RequestSpec("c", max_tokens=2),
        RequestSpec("d e f", max_tokens=4),
    ]
    engine, cost = make_engine()
    a, b, c = one_by_one(specs, engine)
    # A: sent at 0, prefill 0-1 gives its first token, decodes end at 2 and 3 s.
    assert (a.t_send_ns, times_s(a), a.t_done_ns) == (0, [1.0, 2.0, 3.0], 3 * NS)
    # B: sent as A ends (3 s); C as B ends (5 s).
    assert (b.t_send_ns, times_s(b), b.t_done_ns) == (3 * NS, [4.0, 5.0], 5 * NS)
    assert (c.t_send_ns, times_s(c), c.t_done_ns) == (5 * NS, [6.0, 7.0, 8.0, 9.0], 9 * NS)
    # Send time is schedule time, and nobody waited for a slot.
    assert all(r.t_sched_ns == r.t_send_ns and r.slot_wait_ns == 0 for r in (a, b, c))
    # Nine steps of one sequence each: never two in a batch.
    assert len(cost.shapes) == 9
    assert all(shape.seqs == 1 for shape in cost.shapes)


def test_records_are_in_send_order_with_their_own_specs() -> None:
    specs = [RequestSpec(words(n, n), max_tokens=m) for n, m in [(5, 2), (1, 4), (9, 1), (3, 3)]]
    records = one_by_one(specs)
    assert [r.index for r in records] == [0, 1, 2, 3]
    assert [r.tokens_in for r in records] == [5, 1, 9, 3]
    assert [r.tokens_out for r in records] == [2, 4, 1, 3]
    assert [r.t_send_ns for r in records] == sorted(r.t_send_ns for r in records)


def test_a_refused_request_does_not_hold_up_the_next() -> None:
    specs = [
        RequestSpec("a", max_tokens=2),
        RequestSpec("too long", max_tokens=10, tokens_in=60),  # 70 tokens > the 64 of the model
        RequestSpec("b", max_tokens=2),
    ]
    first, refused, last = one_by_one(specs)
    assert (first.t_send_ns, first.t_done_ns) == (0, 2 * NS)
    assert (refused.status, refused.error_kind) == (400, "http_4xx")
    assert refused.t_send_ns == refused.t_done_ns == 2 * NS
    # The next goes at once, when the refusal came back.
    assert (last.t_send_ns, times_s(last)) == (2 * NS, [3.0, 4.0])
    assert [r.index for r in (first, refused, last)] == [0, 1, 2]


def test_no_specs_give_no_records() -> None:
    engine, cost = make_engine()
    assert one_by_one([], engine) == []
    assert cost.shapes == []


# ---- never two at once, on a random workload -------------------------------------------------


def random_specs(seed: int, count: int) -> list[RequestSpec]:
    rng = np.random.default_rng(seed)
    return [
        RequestSpec(words(int(rng.integers(1, 20)), i), max_tokens=int(rng.integers(1, 30)))
        for i in range(count)
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_engine_never_holds_two_requests_at_once(seed: int) -> None:
    engine, cost = make_engine(blocks=60, max_num_seqs=8)
    held = watch(engine)
    specs = random_specs(seed, 40)
    records = one_by_one(specs, engine, EOS, seed=seed)
    assert len(records) == 40
    assert held
    assert max(held) == 1
    assert all(shape.seqs == 1 for shape in cost.shapes)
    for before, after in itertools.pairwise(records):
        # Each send at or after the previous end: here exactly at it (no gap, no overlap).
        assert after.t_send_ns == before.t_done_ns
    assert all(r.ok for r in records)
    assert not engine.has_work()


def test_the_same_seed_gives_the_same_records_and_another_seed_others() -> None:
    specs = random_specs(5, 30)
    first = one_by_one(specs, make_engine()[0], EOS, seed=11)
    again = one_by_one(specs, make_engine()[0], EOS, seed=11)
    other = one_by_one(specs, make_engine()[0], EOS, seed=12)
    assert first == again
    # EOS draws make the seed matter: else the equality above would say nothing.
    assert [r.tokens_out for r in first] != [r.tokens_out for r in other]


# ---- the default simulated GPU: a lone request's latency -------------------------------------


def test_mean_e2e_is_a_lone_requests_latency_on_the_default_engine() -> None:
    setup = resolve(SimConfig())
    # Distinct prompts of the same size: no prefix-cache hit makes one request cheaper.
    specs = [RequestSpec(f"#{i} alpha beta", max_tokens=64, tokens_in=128) for i in range(30)]
    outputs = FORCED
    [lone] = simulate_requests(
        setup.build_engine(), specs[:1], np.zeros(1), outputs, np.random.default_rng(0)
    )
    engine = setup.build_engine()
    held = watch(engine)
    records = simulate_one_by_one(engine, specs, outputs, np.random.default_rng(0))
    assert max(held) == 1
    assert all(r.cached_tokens == 0 for r in records)
    latencies = [e2e_s(r) for r in records]
    assert float(np.mean(latencies)) == pytest.approx(e2e_s(lone), abs=LATENCY_ABS_S)
    assert max(latencies) - min(latencies) <= LATENCY_ABS_S
    # The step takes 30 lone latencies end to end.
    assert records[-1].t_done_ns / NS == pytest.approx(30 * e2e_s(lone), abs=30 * LATENCY_ABS_S)
    # Sent all at once, the same requests share the engine and each takes longer: the check
    # above tells one at a time from all at once.
    together = simulate_requests(
        setup.build_engine(), specs, np.zeros(30), outputs, np.random.default_rng(0)
    )
    assert float(np.mean([e2e_s(r) for r in together])) > 1.5 * e2e_s(lone)
