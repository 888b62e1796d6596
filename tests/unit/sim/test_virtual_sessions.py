"""Tests for loadgen.sim.virtual_sessions: multi-turn sessions through the engine in virtual time.

The tiny engine of test_virtual.py (every step costs exactly 1 s, 4-token KV blocks, a
64-token context) makes every token time a number worked out by hand: a prompt's prefill is
one step and emits the first token, each decode step one more.
"""

from __future__ import annotations

import numpy as np

from loadgen.core.records import RequestRecord
from loadgen.sim.engine import Engine
from loadgen.sim.virtual import OutputPolicy
from loadgen.sim.virtual_sessions import simulate_sessions
from loadgen.workloads.sessions import Session, Turn
from tests.unit.sim.test_virtual import NS, make_engine, times_s

EXACT = OutputPolicy(ignore_eos=True, min_tokens=0, eos_mean_tokens=256.0)


def turn(n: int, think_s: float = 0.0, max_tokens: int = 2) -> Turn:
    """A turn of 4 user words whose kept answer is 2 words (neither the engine's own words)."""
    return Turn(
        user=f"q{n}a q{n}b q{n}c q{n}d",
        max_tokens=max_tokens,
        answer=f"r{n}a r{n}b",
        think_s=think_s,
        user_tokens=4,
        answer_tokens=2,
    )


def run(
    sessions: list[Session],
    starts: list[float],
    *,
    engine: Engine | None = None,
    outputs: OutputPolicy = EXACT,
    seed: int = 0,
) -> list[RequestRecord]:
    return simulate_sessions(
        engine or make_engine()[0],
        sessions,
        np.array(starts, dtype=np.float64),
        outputs,
        np.random.default_rng(seed),
    )


THREE_TURNS = Session((turn(1), turn(2, think_s=0.5), turn(3, think_s=2.0)))


def test_each_turn_arrives_when_the_last_answer_ended_plus_its_think_time() -> None:
    first, second, third = run([THREE_TURNS], [0.0])
    # turn 1: prefill 0-1, decode 1-2; turn 2 at 2 + 0.5: prefill to 3.5, decode to 4.5;
    # turn 3 at 4.5 + 2: prefill to 7.5, decode to 8.5
    assert [times_s(r) for r in (first, second, third)] == [[1.0, 2.0], [3.5, 4.5], [7.5, 8.5]]
    assert abs(second.t_send_ns - first.t_last_ns - 0.5 * NS) <= 1
    assert abs(third.t_send_ns - second.t_last_ns - 2.0 * NS) <= 1
    for record in (first, second, third):
        assert record.t_sched_ns == record.t_send_ns
        assert record.slot_wait_ns == 0
        assert (record.status, record.ok, record.tokens_out) == (200, True, 2)
    assert [(r.index, r.session, r.turn) for r in (first, second, third)] == [
        (0, 0, 1),
        (1, 0, 2),
        (2, 0, 3),
    ]


def test_later_turns_resend_the_history_and_hit_the_prefix_cache() -> None:
    records = run([THREE_TURNS], [0.0])
    # turn 2: 4 + 2 + 4 words; turn 3: 4 + 2 + 4 + 2 + 4
    assert [r.tokens_in for r in records] == [4, 10, 16]
    # Turn 1 cached its one full prompt block (its first user message); turn 2 its first two
    # (user 1, answer 1 and half of user 2); the engine's own answers are other words.
    assert [r.cached_tokens for r in records] == [0, 4, 8]


def test_without_prefix_caching_nothing_is_cached() -> None:
    engine, _ = make_engine(caching=False)
    records = run([THREE_TURNS], [0.0], engine=engine)
    assert [r.tokens_in for r in records] == [4, 10, 16]
    assert [r.cached_tokens for r in records] == [0, 0, 0]


def test_a_refused_turn_ends_its_session() -> None:
    # turn 2 asks for 60 tokens after a 10-token prompt: 70 > the tiny model's 64
    session = Session((turn(1), turn(2, think_s=1.0, max_tokens=60), turn(3)))
    first, refused = run([session], [0.0])
    assert first.ok
    assert (refused.error_kind, refused.status, refused.turn) == ("http_4xx", 400, 2)
    assert refused.error is not None
    assert "maximum context length is 64" in refused.error
    # sent at 2 s (turn 1's last token) + 1 s of thinking; it ends where it was sent
    assert refused.t_send_ns == refused.t_done_ns == 3 * NS


def test_index_is_arrival_order_across_sessions() -> None:
    a = Session((turn(1), turn(2, think_s=1.0)))
    b = Session((turn(3), turn(4, think_s=0.25)))
    records = run([a, b], [0.0, 0.5])
    # A1 prefills 0-1; B1 arrives mid-step and prefills 1-2; both decode 2-3 and end at 3 s.
    # B2 arrives at 3.25, A2 at 4.0: B's second turn is sent before A's.
    assert [(r.index, r.session, r.turn) for r in records] == [
        (0, 0, 1),
        (1, 1, 1),
        (2, 1, 2),
        (3, 0, 2),
    ]
    assert [r.t_send_ns for r in records] == [0, NS // 2, 3 * NS + NS // 4, 4 * NS]


def test_turns_arriving_together_go_in_session_start_order() -> None:
    a = Session((turn(1), turn(2)))
    b = Session((turn(3), turn(4)))
    records = run([a, b], [0.0, 0.0])
    # both prefill 0-1, decode 1-2, and both second turns arrive at 2 s
    assert [(r.index, r.session, r.turn) for r in records] == [
        (0, 0, 1),
        (1, 1, 1),
        (2, 0, 2),
        (3, 1, 2),
    ]
    assert [r.t_send_ns for r in records] == [0, 0, 2 * NS, 2 * NS]


def test_the_same_seed_gives_the_same_records() -> None:
    eos = OutputPolicy(ignore_eos=False, min_tokens=1, eos_mean_tokens=4.0)
    sessions = [
        Session(tuple(turn(3 * s + k, think_s=0.5, max_tokens=10) for k in range(3)))
        for s in range(6)
    ]
    starts = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    one = run(sessions, starts, outputs=eos, seed=7)
    again = run(sessions, starts, outputs=eos, seed=7)
    other = run(sessions, starts, outputs=eos, seed=8)
    assert len(one) == 18
    assert one == again
    assert [r.tokens_out for r in one] != [r.tokens_out for r in other]
