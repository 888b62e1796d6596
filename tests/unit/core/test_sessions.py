"""Tests for loadgen.core.sessions and session steps of loadgen.core.stats.summarize_step.

Five sessions of hand-built records; every expected figure is worked out in a comment.
"""

from __future__ import annotations

import pytest

from loadgen.core.records import ErrorKind, RequestRecord, SessionFigures, StepSummary
from loadgen.core.sessions import kept_sessions, session_figures
from loadgen.core.stats import distribution, summarize_step

MS = 1_000_000  # ns per ms
BASE = 5_000_000_000_000  # an arbitrary perf_counter_ns origin; only differences matter


def ns(ms: int) -> int:
    return BASE + ms * MS


def turn(
    index: int,
    session: int,
    number: int,
    send_ms: int,
    *,
    first_ms: int | None = None,
    last_ms: int | None = None,
    tokens_in: int | None = None,
    cached: int | None = None,
    error: ErrorKind | None = None,
    done_ms: int | None = None,
) -> RequestRecord:
    """Turn `number` (from 1) of session `session`, sent at `send_ms` (ms after BASE)."""
    if done_ms is None:
        done_ms = last_ms if last_ms is not None else send_ms
    return RequestRecord(
        index=index,
        t_sched_ns=ns(send_ms),
        t_send_ns=ns(send_ms),
        slot_wait_ns=0,
        t_done_ns=ns(done_ms),
        t_first_ns=None if first_ms is None else ns(first_ms),
        t_last_ns=None if last_ms is None else ns(last_ms),
        tokens_in=tokens_in,
        tokens_out=0 if error else 10,
        tokens_source="server",
        error_kind=error,
        cached_tokens=cached,
        session=session,
        turn=number,
    )


# Indices follow send order (the step's send index):
#   s0t1 0 ms, s1t1 100, s2t1 250, s3t1 600, s4t1 700, s0t2 1000, s1t2 1300, s2t2 1400 (fails),
#   s3t2 1900, s1t3 2500.
RECORDS = (
    # session 0: two turns (trimmed away)
    turn(0, 0, 1, 0, first_ms=50, last_ms=200, tokens_in=90),
    turn(5, 0, 2, 1000, first_ms=1020, last_ms=1100, tokens_in=210),
    # session 1: three turns
    turn(1, 1, 1, 100, first_ms=130, last_ms=300, tokens_in=100),
    turn(6, 1, 2, 1300, first_ms=1320, last_ms=1500, tokens_in=260, cached=200),
    turn(9, 1, 3, 2500, first_ms=2510, last_ms=2800, tokens_in=400, cached=320),
    # session 2: its second turn fails (a broken session)
    turn(2, 2, 1, 250, first_ms=290, last_ms=400, tokens_in=120, cached=0),
    turn(7, 2, 2, 1400, tokens_in=300, cached=300, error="http_5xx", done_ms=1450),
    # session 3: two turns
    turn(3, 3, 1, 600, first_ms=660, last_ms=900, tokens_in=80),
    turn(8, 3, 2, 1900, first_ms=1930, last_ms=2100, tokens_in=240, cached=180),
    # session 4: one turn (trimmed away)
    turn(4, 4, 1, 700, first_ms=720, last_ms=800, tokens_in=70),
)


def where(records: list[RequestRecord]) -> set[tuple[int | None, int | None]]:
    return {(r.session, r.turn) for r in records}


# kept_sessions


def test_kept_sessions_trim_by_session_start_order() -> None:
    kept = kept_sessions(RECORDS, 5, 1)
    # Sessions [1, 4): 1, 2 and 3, with every turn: 3 + 2 + 2 = 7 records.
    assert len(kept) == 7
    assert where(kept) == {(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (3, 1), (3, 2)}
    # In the order given.
    assert [r.index for r in kept] == [1, 6, 9, 2, 7, 3, 8]


def test_kept_sessions_without_trim_keep_all_and_skip_sessionless_records() -> None:
    plain = RequestRecord(
        index=10, t_sched_ns=ns(0), t_send_ns=ns(0), slot_wait_ns=0, t_done_ns=ns(5)
    )
    kept = kept_sessions([*RECORDS, plain], 5, 0)
    assert len(kept) == 10
    assert plain not in kept


def test_kept_sessions_trim_two_of_five_keeps_the_middle_one() -> None:
    assert where(kept_sessions(RECORDS, 5, 2)) == {(2, 1), (2, 2)}


# session_figures


@pytest.fixture
def figures() -> SessionFigures:
    return session_figures(kept_sessions(RECORDS, 5, 1), 5, distribution)


def test_session_counts(figures: SessionFigures) -> None:
    assert figures.num_started == 5
    assert figures.num_sessions == 3
    assert figures.num_broken == 1  # session 2


def test_session_rate_from_first_turn_sends(figures: SessionFigures) -> None:
    # Kept starts at 100, 250 and 600 ms: 2 gaps over 0.5 s = 4 sessions/s.
    assert figures.session_rate_sps == pytest.approx(4.0)


def test_turns_ok_per_session(figures: SessionFigures) -> None:
    # Session 1: 3 ok, session 2: 1 ok, session 3: 2 ok.
    assert figures.turns_ok is not None
    assert figures.turns_ok.count == 3
    assert figures.turns_ok.mean == pytest.approx(2.0)
    assert figures.turns_ok.min == 1
    assert figures.turns_ok.max == 3


def test_session_durations(figures: SessionFigures) -> None:
    # Session 1: 2800 - 100 = 2.7 s; session 2: its last success ends at 400, 400 - 250
    # = 0.15 s (the failed turn does not count); session 3: 2100 - 600 = 1.5 s.
    # Mean (2.7 + 0.15 + 1.5) / 3 = 1.45 s.
    d = figures.duration_s
    assert d is not None
    assert d.count == 3
    assert d.mean == pytest.approx(1.45)
    assert d.max == pytest.approx(2.7)
    assert d.min == pytest.approx(0.15)
    assert d.p50 == pytest.approx(1.5)


def test_per_turn_request_counts(figures: SessionFigures) -> None:
    assert [t.turn for t in figures.turns] == [1, 2, 3]
    assert [t.num_requests for t in figures.turns] == [3, 3, 1]
    assert [t.num_ok for t in figures.turns] == [3, 2, 1]


def test_per_turn_tokens_in_means_over_successes(figures: SessionFigures) -> None:
    first, second, third = figures.turns
    assert first.tokens_in_mean == pytest.approx(100.0)  # (100 + 120 + 80) / 3
    assert second.tokens_in_mean == pytest.approx(250.0)  # (260 + 240) / 2; the failure's 300 out
    assert third.tokens_in_mean == pytest.approx(400.0)


def test_per_turn_cached_share(figures: SessionFigures) -> None:
    first, second, third = figures.turns
    # Turn 1: only session 2 said (0 of 120): 0.0, not None.
    assert first.cached_share == pytest.approx(0.0)
    assert first.cached_share is not None
    # Turn 2: (200 + 180) / (260 + 240) = 380 / 500 = 0.76; the failure's 300/300 is out.
    assert second.cached_share == pytest.approx(0.76)
    assert third.cached_share == pytest.approx(0.8)  # 320 / 400


def test_per_turn_latencies(figures: SessionFigures) -> None:
    first, second, third = figures.turns
    # Turn 1 TTFTs: 30, 40, 60 ms -> p50 40 ms, mean 130/3 ms, max 60 ms.
    assert first.ttft_s is not None
    assert first.ttft_s.count == 3
    assert first.ttft_s.p50 == pytest.approx(0.040)
    assert first.ttft_s.mean == pytest.approx(0.130 / 3)
    assert first.ttft_s.max == pytest.approx(0.060)
    # Turn 2 TTFTs of the two successes: 20 and 30 ms -> p50 (linear) 25 ms.
    assert second.ttft_s is not None
    assert second.ttft_s.count == 2
    assert second.ttft_s.p50 == pytest.approx(0.025)
    # Turn 2 E2E: 1500 - 1300 = 200 ms and 2100 - 1900 = 200 ms.
    assert second.e2e_s is not None
    assert second.e2e_s.mean == pytest.approx(0.200)
    # Turn 3: TTFT 10 ms, E2E 300 ms.
    assert third.ttft_s is not None
    assert third.e2e_s is not None
    assert third.ttft_s.p50 == pytest.approx(0.010)
    assert third.e2e_s.max == pytest.approx(0.300)


def test_session_figures_do_not_depend_on_record_order(figures: SessionFigures) -> None:
    reversed_kept = list(reversed(kept_sessions(RECORDS, 5, 1)))
    assert session_figures(reversed_kept, 5, distribution) == figures


def test_no_kept_sessions() -> None:
    empty = session_figures([], 4, distribution)
    assert empty.num_started == 4
    assert empty.num_sessions == 0
    assert empty.num_broken == 0
    assert empty.session_rate_sps is None
    assert empty.turns_ok is None
    assert empty.duration_s is None
    assert empty.turns == ()


def test_one_session_whose_first_turn_fails() -> None:
    failed = [turn(0, 0, 1, 0, error="timeout", done_ms=3000, tokens_in=50)]
    figures = session_figures(failed, 1, distribution)
    assert figures.num_sessions == 1
    assert figures.num_broken == 1
    assert figures.session_rate_sps is None  # one start: no rate
    assert figures.turns_ok is not None
    assert figures.turns_ok.max == 0
    assert figures.duration_s is None  # no successful turn: no duration
    (only,) = figures.turns
    assert (only.num_requests, only.num_ok) == (1, 0)
    assert only.tokens_in_mean is None
    assert only.cached_share is None
    assert only.ttft_s is None


# summarize_step with sessions


def summary(num_sessions: int | None) -> StepSummary:
    return summarize_step(
        RECORDS,
        step=0,
        target_rate_rps=4.0,
        num_sent=10,
        trim=1,
        slos={},
        interrupted=False,
        duration_s=3.0,
        num_sessions=num_sessions,
    )


def test_session_step_trims_by_session() -> None:
    result = summary(5)
    # Kept: the 7 turns of sessions 1-3, one of them failed.
    assert result.trimmed.num_requests == 7
    assert result.trimmed.num_ok == 6
    assert result.trimmed.num_errors == 1
    # Window: first kept send 100 ms to the last kept success's end 2800 ms = 2.7 s.
    assert result.trimmed.window_s == pytest.approx(2.7)
    assert result.untrimmed.num_requests == 10
    assert result.untrimmed.num_ok == 9


def test_session_step_has_no_send_gap_test() -> None:
    result = summary(5)
    assert result.trimmed.send_gap_ks is None
    assert result.trimmed.send_gap_ks_pvalue is None
    assert result.untrimmed.send_gap_ks is None
    assert result.untrimmed.send_gap_ks_pvalue is None


def test_session_step_fills_sessions() -> None:
    sessions = summary(5).sessions
    assert sessions is not None
    assert sessions.num_started == 5
    assert sessions.num_sessions == 3
    assert sessions.num_broken == 1
    assert sessions.session_rate_sps == pytest.approx(4.0)
    assert [t.num_requests for t in sessions.turns] == [3, 3, 1]


def test_plain_step_trims_by_send_index_and_has_no_sessions() -> None:
    result = summary(None)
    # Send indices [1, 9): 8 records (drops s0t1 and s1t3, keeps s4t1 and s0t2).
    assert result.trimmed.num_requests == 8
    # First kept send 100 ms; last kept success's end 2100 ms (s3t2): 2.0 s.
    assert result.trimmed.window_s == pytest.approx(2.0)
    assert result.sessions is None
    # A Poisson step tests its send gaps: 7 gaps among 8 kept sends.
    assert result.trimmed.send_gap_ks is not None
