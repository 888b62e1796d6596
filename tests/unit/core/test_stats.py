"""Tests for loadgen.core.stats; every expected figure is worked out by hand in a comment."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest

from loadgen.core.arrivals import send_offsets_s
from loadgen.core.records import ErrorKind, RequestRecord, StepFigures, TokensSource
from loadgen.core.stats import distribution, parse_slos, step_figures, summarize_step

MS = 1_000_000  # ns per ms
BASE = 7_000_000_000_000  # an arbitrary perf_counter_ns origin; only differences matter


def ns(ms: int) -> int:
    """A clock reading `ms` milliseconds after BASE."""
    return BASE + ms * MS


def rec(
    index: int,
    send_ms: int,
    *,
    sched_ms: int | None = None,
    slot_wait_ms: int = 0,
    first_ms: int | None = None,
    last_ms: int | None = None,
    done_ms: int | None = None,
    tokens_out: int = 0,
    tokens_in: int | None = None,
    chunks_ms: Sequence[int] = (),
    chunk_tokens: Sequence[int] | None = None,
    error: ErrorKind | None = None,
    source: TokensSource = "server",
) -> RequestRecord:
    """A record with times in ms after BASE; done defaults to the last event."""
    if done_ms is None:
        done_ms = next(t for t in (last_ms, first_ms, send_ms) if t is not None)
    return RequestRecord(
        index=index,
        t_sched_ns=ns(send_ms if sched_ms is None else sched_ms),
        t_send_ns=ns(send_ms),
        slot_wait_ns=slot_wait_ms * MS,
        t_done_ns=ns(done_ms),
        t_first_ns=None if first_ms is None else ns(first_ms),
        t_last_ns=None if last_ms is None else ns(last_ms),
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        tokens_source=source,
        chunk_times_ns=tuple(ns(t) for t in chunks_ms),
        chunk_tokens=None if chunk_tokens is None else tuple(chunk_tokens),
        error_kind=error,
    )


def stream(
    index: int,
    send_ms: int,
    chunks_ms: Sequence[int],
    tokens_out: int,
    *,
    chunk_tokens: Sequence[int] | None = None,
    error: ErrorKind | None = None,
    source: TokensSource = "server",
) -> RequestRecord:
    """A streamed record whose first/last token times are its first/last chunk."""
    return rec(
        index,
        send_ms,
        first_ms=chunks_ms[0],
        last_ms=chunks_ms[-1],
        tokens_out=tokens_out,
        chunks_ms=chunks_ms,
        chunk_tokens=chunk_tokens,
        error=error,
        source=source,
    )


# --- parse_slos -------------------------------------------------------------------------------


def test_parse_slos_reads_pairs_in_seconds() -> None:
    assert parse_slos("ttft=0.5,tpot=0.05,e2e=10") == {"ttft": 0.5, "tpot": 0.05, "e2e": 10.0}


def test_parse_slos_tolerates_spaces() -> None:
    assert parse_slos(" ttft = 0.5 , per_token=0.02 ") == {"ttft": 0.5, "per_token": 0.02}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("foo=1", "unknown SLO key 'foo'"),
        ("ttft=abc", "not a number"),
        ("ttft=", "not a number"),
        ("ttft=0", "> 0"),
        ("ttft=-1", "> 0"),
        ("ttft=nan", "finite"),
        ("ttft=inf", "finite"),
        ("ttft=0.5,ttft=0.6", "more than once"),
        ("ttft", "KEY=SECONDS"),
        ("ttft=0.5,", "KEY=SECONDS"),
        ("=0.5", "KEY=SECONDS"),
    ],
)
def test_parse_slos_rejects_bad_input(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_slos(text)


# --- distribution -----------------------------------------------------------------------------


def test_distribution_of_one_to_hundred() -> None:
    d = distribution(list(range(1, 101)))
    assert d is not None
    assert d.count == 100
    assert d.mean == pytest.approx(50.5)  # 5050 / 100
    # population std of 1..n is sqrt((n^2 - 1) / 12) = sqrt(9999 / 12) = sqrt(833.25)
    assert d.std == pytest.approx(28.866070047722118)
    assert (d.min, d.max) == (1.0, 100.0)
    # linear percentile at position (n - 1) * q: 49.5 -> 50.5, 89.1 -> 90.1, 94.05 -> 95.05,
    # 98.01 -> 99.01 (the value at position p is p + 1)
    assert d.p50 == pytest.approx(50.5)
    assert d.p90 == pytest.approx(90.1)
    assert d.p95 == pytest.approx(95.05)
    assert d.p99 == pytest.approx(99.01)


def test_distribution_of_nothing_is_none() -> None:
    assert distribution([]) is None


def test_distribution_of_one_value() -> None:
    d = distribution([2.0])
    assert d is not None
    assert (d.count, d.mean, d.std, d.min, d.p50, d.p99, d.max) == (1, 2.0, 0.0, 2.0, 2.0, 2.0, 2.0)


# --- trimming ---------------------------------------------------------------------------------


def test_trim_keeps_send_indices_trim_to_n_minus_trim() -> None:
    # index i: sent at 100*i ms, e2e 10*i ms; shuffled on purpose
    order = [4, 0, 6, 2, 5, 1, 3]
    records = [rec(i, 100 * i, last_ms=100 * i + 10 * i, tokens_out=1, tokens_in=1) for i in order]
    s = summarize_step(
        records,
        step=1,
        target_rate_rps=10.0,
        num_sent=7,
        trim=2,
        slos={},
        interrupted=False,
        duration_s=1.0,
    )
    assert s.trimmed.num_requests == 3  # indices 2, 3, 4
    assert s.untrimmed.num_requests == 7
    e2e = s.trimmed.e2e_s
    assert e2e is not None
    assert (e2e.min, e2e.max) == pytest.approx((0.02, 0.04))  # 10*2, 10*4 ms
    # sends at 200, 300, 400 ms: (3 - 1) / 0.2 s
    assert s.trimmed.achieved_rate_rps == pytest.approx(10.0)
    # window: last token of index 4 at 440 ms - send of index 2 at 200 ms
    assert s.trimmed.window_s == pytest.approx(0.24)
    # untrimmed: last token of index 6 at 660 ms - send of index 0 at 0 ms
    assert s.untrimmed.window_s == pytest.approx(0.66)
    assert (s.step, s.num_sent, s.trim, s.duration_s) == (1, 7, 2, 1.0)


def test_trim_is_by_send_index_not_completion() -> None:
    # index 0 finishes last, index 2 finishes first; trim=1 of 3 keeps index 1 only
    records = [
        rec(0, 0, last_ms=900, tokens_out=1),
        rec(1, 100, last_ms=500, tokens_out=1),
        rec(2, 200, last_ms=250, tokens_out=1),
    ]
    s = summarize_step(
        records,
        step=0,
        target_rate_rps=10.0,
        num_sent=3,
        trim=1,
        slos={},
        interrupted=False,
        duration_s=1.0,
    )
    assert s.trimmed.num_requests == 1
    assert s.trimmed.window_s == pytest.approx(0.4)  # 500 - 100 ms


def test_trim_zero_keeps_everything() -> None:
    records = [rec(i, 100 * i, last_ms=100 * i + 50, tokens_out=1) for i in range(3)]
    s = summarize_step(
        records,
        step=0,
        target_rate_rps=10.0,
        num_sent=3,
        trim=0,
        slos={},
        interrupted=False,
        duration_s=1.0,
    )
    assert s.trimmed == s.untrimmed


def test_negative_trim_is_an_error() -> None:
    with pytest.raises(ValueError, match="trim must be >= 0"):
        summarize_step(
            [],
            step=0,
            target_rate_rps=1.0,
            num_sent=0,
            trim=-1,
            slos={},
            interrupted=False,
            duration_s=0.0,
        )


def test_interrupted_step_shorter_than_two_trims_has_empty_trimmed_figures() -> None:
    records = [rec(i, 100 * i, last_ms=100 * i + 50, tokens_out=2) for i in range(3)]
    s = summarize_step(
        records,
        step=0,
        target_rate_rps=10.0,
        num_sent=3,
        trim=2,  # keep [2, 1): nothing
        slos={"e2e": 1.0},
        interrupted=True,
        duration_s=0.3,
    )
    assert s.interrupted
    assert s.trimmed.num_requests == 0
    assert s.trimmed.window_s is None
    assert s.trimmed.sequence_throughput_rps == 0.0
    assert s.trimmed.goodput_rps == 0.0
    assert s.trimmed.e2e_s is None
    assert s.untrimmed.num_requests == 3
    assert s.untrimmed.num_ok == 3
    assert not s.client_saturated


# --- window and throughputs -------------------------------------------------------------------


def test_window_and_throughputs() -> None:
    records = [
        rec(0, 0, done_ms=50, error="http_5xx"),  # earliest send: opens the window
        rec(1, 500, last_ms=1500, tokens_out=10, tokens_in=100),
        rec(2, 1000, last_ms=4000, tokens_out=30, tokens_in=200),
    ]
    f = step_figures(records, {})
    assert f.window_s == pytest.approx(4.0)  # last token 4000 ms - first send 0 ms
    assert f.sequence_throughput_rps == pytest.approx(0.5)  # 2 successes / 4 s
    assert f.output_token_throughput_tps == pytest.approx(10.0)  # (10 + 30) / 4 s
    assert f.total_token_throughput_tps == pytest.approx(85.0)  # (40 + 100 + 200) / 4 s
    assert f.goodput_rps is None  # no SLOs configured


def test_total_token_throughput_unknown_when_a_success_lacks_tokens_in() -> None:
    records = [
        rec(0, 0, last_ms=1000, tokens_out=10, tokens_in=100),
        rec(1, 0, last_ms=1000, tokens_out=10, tokens_in=None),
    ]
    f = step_figures(records, {})
    assert f.total_token_throughput_tps is None
    assert f.output_token_throughput_tps == pytest.approx(20.0)  # 20 tokens / 1 s


def test_window_uses_done_time_of_a_success_without_tokens() -> None:
    records = [rec(0, 0, done_ms=2000, tokens_out=0, tokens_in=3)]
    f = step_figures(records, {})
    assert f.window_s == pytest.approx(2.0)
    assert f.sequence_throughput_rps == pytest.approx(0.5)  # 1 / 2 s
    assert f.total_token_throughput_tps == pytest.approx(1.5)  # (0 + 3) / 2 s


# --- send figures -----------------------------------------------------------------------------


def test_achieved_rate_and_send_gap_cv() -> None:
    # sends at 0, 100, 300, 600 ms (given shuffled): gaps 100, 200, 300 ms
    records = [
        rec(i, t, done_ms=t + 1, error="timeout") for i, t in [(2, 300), (0, 0), (3, 600), (1, 100)]
    ]
    f = step_figures(records, {})
    assert f.achieved_rate_rps == pytest.approx(5.0)  # (4 - 1) / 0.6 s
    # gap mean 200 ms, population std sqrt((100^2 + 0 + 100^2) / 3) ms; cv = sqrt(1/6)
    assert f.send_gap_cv == pytest.approx(0.408248290463863)


def test_send_figures_need_enough_requests() -> None:
    one = step_figures([rec(0, 0, last_ms=10, tokens_out=1)], {})
    assert one.achieved_rate_rps is None
    assert one.send_gap_cv is None
    two = step_figures(
        [rec(0, 0, last_ms=10, tokens_out=1), rec(1, 250, last_ms=260, tokens_out=1)], {}
    )
    assert two.achieved_rate_rps == pytest.approx(4.0)  # 1 / 0.25 s
    assert two.send_gap_cv is None  # one gap only


def test_send_figures_undefined_for_simultaneous_sends() -> None:
    records = [rec(i, 100, last_ms=200, tokens_out=1) for i in range(3)]
    f = step_figures(records, {})
    assert f.achieved_rate_rps is None  # span 0
    assert f.send_gap_cv is None  # mean gap 0


# --- latencies --------------------------------------------------------------------------------


def test_streamed_latencies() -> None:
    r = stream(0, 0, [300, 800, 1300], tokens_out=5)
    f = step_figures([r], {})
    assert f.ttft_s is not None
    assert f.ttft_s.p50 == pytest.approx(0.3)
    assert f.e2e_s is not None
    assert f.e2e_s.p50 == pytest.approx(1.3)
    assert f.tpot_s is not None
    assert f.tpot_s.p50 == pytest.approx(0.25)  # (1.3 - 0.3) / (5 - 1)
    assert f.per_token_latency_s is not None
    assert f.per_token_latency_s.p50 == pytest.approx(0.26)  # 1.3 / 5


def test_latencies_are_measured_from_send_not_schedule() -> None:
    r = rec(0, 100, sched_ms=40, first_ms=300, last_ms=500, tokens_out=3)
    f = step_figures([r], {})
    assert f.ttft_s is not None
    assert f.ttft_s.p50 == pytest.approx(0.2)  # 300 - 100 ms
    assert f.e2e_s is not None
    assert f.e2e_s.p50 == pytest.approx(0.4)  # 500 - 100 ms
    assert f.queue_s is not None
    assert f.queue_s.p50 == pytest.approx(0.06)  # 100 - 40 ms
    assert f.ttft_sched_s is not None
    assert f.ttft_sched_s.p50 == pytest.approx(0.26)  # 300 - 40 ms: free of coordinated omission


def test_single_token_stream_has_no_tpot() -> None:
    f = step_figures([stream(0, 0, [300], tokens_out=1)], {})
    assert f.tpot_s is None
    assert f.itl_s is None  # one chunk: no gap
    assert f.ttft_s is not None
    assert f.ttft_s.p50 == pytest.approx(0.3)
    assert f.per_token_latency_s is not None
    assert f.per_token_latency_s.p50 == pytest.approx(0.3)  # 0.3 / 1


def test_non_streamed_request_has_e2e_only() -> None:
    r = rec(0, 0, done_ms=2000, tokens_out=4)
    f = step_figures([r], {})
    assert f.ttft_s is None
    assert f.ttft_sched_s is None
    assert f.tpot_s is None
    assert f.itl_s is None
    assert f.e2e_s is not None
    assert f.e2e_s.p50 == pytest.approx(2.0)
    assert f.per_token_latency_s is not None
    assert f.per_token_latency_s.p50 == pytest.approx(0.5)  # 2.0 / 4


def test_latencies_come_from_successes_only() -> None:
    records = [
        stream(0, 0, [100, 200], tokens_out=2),
        stream(1, 0, [900, 5000], tokens_out=2, error="disconnect"),
    ]
    f = step_figures(records, {})
    assert f.e2e_s is not None
    assert f.e2e_s.count == 1
    assert f.ttft_s is not None
    assert f.ttft_s.max == pytest.approx(0.1)
    assert f.itl_s is not None
    assert f.itl_s.count == 1  # the failed stream's gap is not pooled
    assert f.queue_s is not None
    assert f.queue_s.count == 2  # both were sent


# --- inter-token latency ----------------------------------------------------------------------


def test_itl_with_known_chunk_tokens_is_token_weighted_and_per_request() -> None:
    records = [
        # gaps of chunks 1..3: 50 ms / 1, 100 ms / 2 (x2), 150 ms / 5 (x5); chunk 0 has no gap
        stream(0, 0, [100, 150, 250, 400], tokens_out=11, chunk_tokens=[3, 1, 2, 5]),
        # one gap of 100 ms / 1; the 600 ms between the two streams is no gap
        stream(1, 900, [1000, 1100], tokens_out=2, chunk_tokens=[1, 1]),
    ]
    itl = step_figures(records, {}).itl_s
    assert itl is not None
    assert itl.count == 9  # 1 + 2 + 5 + 1
    assert itl.min == pytest.approx(0.03)
    assert itl.max == pytest.approx(0.1)
    # samples 0.05, 0.05, 0.05, 0.03 x5, 0.1: sum 0.15 + 0.15 + 0.1 = 0.4
    assert itl.mean == pytest.approx(0.4 / 9)
    # sorted: 0.03 x5, 0.05 x3, 0.1; position 8 * 0.5 = 4 -> 0.03
    assert itl.p50 == pytest.approx(0.03)


def test_itl_even_split_estimate_gives_remainder_to_earlier_chunks() -> None:
    # 5 tokens over 3 chunks -> k = 2, 2, 1; gaps: chunk 1 400 ms / 2 (x2), chunk 2 300 ms / 1
    itl = step_figures([stream(0, 0, [100, 500, 800], tokens_out=5)], {}).itl_s
    assert itl is not None
    assert itl.count == 3
    assert (itl.min, itl.max) == pytest.approx((0.2, 0.3))
    assert itl.mean == pytest.approx(0.7 / 3)  # (0.2 + 0.2 + 0.3) / 3


def test_itl_even_split_with_more_tokens() -> None:
    # 7 tokens over 3 chunks -> k = 3, 2, 2; gaps: 400 ms / 2 (x2), 300 ms / 2 (x2)
    itl = step_figures([stream(0, 0, [100, 500, 800], tokens_out=7)], {}).itl_s
    assert itl is not None
    assert itl.count == 4
    assert (itl.min, itl.max) == pytest.approx((0.15, 0.2))
    assert itl.mean == pytest.approx(0.175)  # (0.2 + 0.2 + 0.15 + 0.15) / 4


def test_itl_one_token_per_chunk_when_tokens_do_not_exceed_chunks() -> None:
    # 2 tokens over 3 chunks: k = 1 each; gaps 400 ms and 300 ms
    itl = step_figures([stream(0, 0, [100, 500, 800], tokens_out=2)], {}).itl_s
    assert itl is not None
    assert itl.count == 2
    assert itl.mean == pytest.approx(0.35)


def test_itl_mixes_known_and_estimated_streams() -> None:
    records = [
        stream(0, 0, [100, 500, 800], tokens_out=5),  # estimate: 0.2, 0.2, 0.3
        stream(1, 0, [100, 200], tokens_out=5, chunk_tokens=[1, 4]),  # 100 ms / 4 (x4)
    ]
    itl = step_figures(records, {}).itl_s
    assert itl is not None
    assert itl.count == 7
    assert itl.min == pytest.approx(0.025)
    assert itl.mean == pytest.approx(0.8 / 7)  # (0.7 + 4 * 0.025) / 7


def test_chunk_tokens_must_match_chunk_times() -> None:
    r = stream(0, 0, [100, 200], tokens_out=3, chunk_tokens=[1, 1, 1])
    with pytest.raises(ValueError, match="chunk_tokens has 3 entries"):
        step_figures([r], {})


# --- goodput ----------------------------------------------------------------------------------


def goodput_records() -> list[RequestRecord]:
    """Five successes and one error, all sent at 0 ms; the window is 2.0 s (D ends last)."""
    return [
        # A: ttft 0.1, e2e 1.1, tpot 1.0 / 10 = 0.1, per-token 1.1 / 11 = 0.1
        rec(0, 0, first_ms=100, last_ms=1100, tokens_out=11),
        # B: ttft 0.6, e2e 1.6, tpot 0.1, per-token 1.6 / 11 = 0.145
        rec(1, 0, first_ms=600, last_ms=1600, tokens_out=11),
        # C: single token: ttft 0.3, e2e 0.3, no tpot, per-token 0.3
        rec(2, 0, first_ms=300, last_ms=300, tokens_out=1),
        # D: not streamed, 4 tokens: no ttft, no tpot, e2e 2.0, per-token 0.5
        rec(3, 0, done_ms=2000, tokens_out=4),
        # E: no tokens: no ttft, no tpot, e2e 0.4, no per-token
        rec(4, 0, done_ms=400, tokens_out=0),
        # F: failed: never good
        rec(5, 0, done_ms=50, error="http_4xx"),
    ]


@pytest.mark.parametrize(
    ("slos", "expected_rps"),
    [
        ({"ttft": 0.5}, 1.0),  # A, C meet; D, E have no ttft -> 2 / 2 s
        ({"tpot": 0.15}, 2.0),  # A, B meet; C, E have <= 1 token; D unmeasured fails -> 4 / 2 s
        ({"e2e": 1.5}, 1.5),  # A, C, E -> 3 / 2 s
        ({"e2e": 1.1}, 1.5),  # the limit is inclusive: A (1.1), C, E -> 3 / 2 s
        ({"per_token": 0.2}, 1.0),  # A, B; E has no per-token -> 2 / 2 s
        ({"ttft": 0.5, "e2e": 1.5}, 1.0),  # A, C -> 2 / 2 s
        ({"ttft": 0.5, "per_token": 0.2}, 0.5),  # A -> 1 / 2 s
        ({"tpot": 0.01}, 1.0),  # only C and E (no inter-token time) -> 2 / 2 s
    ],
)
def test_goodput(slos: dict[str, float], expected_rps: float) -> None:
    f = step_figures(goodput_records(), slos)
    assert f.window_s == pytest.approx(2.0)
    assert f.goodput_rps == pytest.approx(expected_rps)


def test_goodput_is_none_without_slos_and_zero_without_successes() -> None:
    assert step_figures(goodput_records(), {}).goodput_rps is None
    failed = [rec(0, 0, done_ms=10, error="connect")]
    assert step_figures(failed, {"e2e": 1.0}).goodput_rps == 0.0


def test_unknown_slo_key_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown SLO key 'itl'"):
        step_figures(goodput_records(), {"itl": 0.1})


# --- errors -----------------------------------------------------------------------------------


def test_errors_by_kind_and_error_rate() -> None:
    records = [
        rec(0, 0, done_ms=10, error="timeout"),
        rec(1, 10, done_ms=20, error="http_5xx"),
        rec(2, 20, last_ms=30, tokens_out=1),
        rec(3, 30, done_ms=40, error="timeout"),
        rec(4, 40, done_ms=50, error="connect"),
    ]
    f = step_figures(records, {})
    assert (f.num_requests, f.num_ok, f.num_errors) == (5, 1, 4)
    assert f.errors_by_kind == {"connect": 1, "http_5xx": 1, "timeout": 2}
    assert list(f.errors_by_kind) == ["connect", "http_5xx", "timeout"]
    assert f.error_rate == pytest.approx(0.8)  # 4 / 5


def test_all_error_step() -> None:
    records = [
        rec(i, 100 * i, sched_ms=100 * i - 5, done_ms=100 * i + 50, error="timeout")
        for i in range(3)
    ]
    f = step_figures(records, {"ttft": 1.0})
    assert f.window_s is None
    assert f.sequence_throughput_rps == 0.0
    assert f.output_token_throughput_tps == 0.0
    assert f.total_token_throughput_tps == 0.0
    assert f.goodput_rps == 0.0
    assert f.error_rate == 1.0
    assert (f.ttft_s, f.tpot_s, f.itl_s, f.e2e_s, f.per_token_latency_s) == (None,) * 5
    assert f.queue_s is not None
    assert f.queue_s.count == 3  # failed requests were still sent
    assert f.queue_s.mean == pytest.approx(0.005)
    assert f.achieved_rate_rps == pytest.approx(10.0)  # (3 - 1) / 0.2 s


def test_empty_step() -> None:
    f = step_figures([], {})
    assert f == StepFigures(
        num_requests=0,
        num_ok=0,
        num_errors=0,
        errors_by_kind={},
        error_rate=None,
        window_s=None,
        sequence_throughput_rps=0.0,
        output_token_throughput_tps=0.0,
        total_token_throughput_tps=0.0,
        reasoning_tokens_mean=None,
        answer_tokens_mean=None,
        goodput_rps=None,
        achieved_rate_rps=None,
        send_gap_cv=None,
        send_gap_ks=None,
        send_gap_ks_pvalue=None,
        send_count_dispersion=None,
        ttft_s=None,
        ttft_sched_s=None,
        ttfa_s=None,
        tpot_s=None,
        itl_s=None,
        e2e_s=None,
        per_token_latency_s=None,
        queue_s=None,
        pacer_lateness_s=None,
    )
    s = summarize_step(
        [],
        step=0,
        target_rate_rps=1.0,
        num_sent=0,
        trim=0,
        slos={},
        interrupted=False,
        duration_s=0.0,
    )
    assert s.trimmed == f
    assert s.tokens_source == "estimate"
    assert not s.client_saturated


# --- pacer lateness and saturation ------------------------------------------------------------


def test_slot_wait_is_not_pacer_lateness() -> None:
    # scheduled at 0, sent at 50 ms after waiting 45 ms for a concurrency slot
    f = step_figures([rec(0, 50, sched_ms=0, slot_wait_ms=45, last_ms=60, tokens_out=1)], {})
    assert f.queue_s is not None
    assert f.queue_s.p50 == pytest.approx(0.05)  # 50 - 0 ms
    assert f.pacer_lateness_s is not None
    assert f.pacer_lateness_s.p50 == pytest.approx(0.005)  # 50 ms queue - 45 ms slot wait


def late_records(lateness_ms: Sequence[int], *, slot_wait_ms: int = 0) -> list[RequestRecord]:
    """Requests 100 ms apart, each sent `lateness + slot_wait` ms after its schedule."""
    return [
        rec(
            i,
            100 * i + late + slot_wait_ms,
            sched_ms=100 * i,
            slot_wait_ms=slot_wait_ms,
            done_ms=100 * i + 90,
            tokens_out=1,
            last_ms=100 * i + 90,
        )
        for i, late in enumerate(lateness_ms)
    ]


def test_client_saturated_when_lateness_p99_exceeds_threshold() -> None:
    # lateness 0 and 20 ms: p99 = 0 + 0.99 * 20 = 19.8 ms > 10 ms
    s = summarize_step(
        late_records([0, 20]),
        step=0,
        target_rate_rps=10.0,
        num_sent=2,
        trim=0,
        slos={},
        interrupted=False,
        duration_s=0.2,
    )
    assert s.trimmed.pacer_lateness_s is not None
    assert s.trimmed.pacer_lateness_s.p99 == pytest.approx(0.0198)
    assert s.client_saturated


def test_not_saturated_below_threshold() -> None:
    # lateness 0 and 5 ms: p99 = 4.95 ms <= 10 ms
    s = summarize_step(
        late_records([0, 5]),
        step=0,
        target_rate_rps=10.0,
        num_sent=2,
        trim=0,
        slos={},
        interrupted=False,
        duration_s=0.2,
    )
    assert not s.client_saturated


def test_saturation_threshold_is_configurable() -> None:
    # same 4.95 ms p99, now against 1 ms
    s = summarize_step(
        late_records([0, 5]),
        step=0,
        target_rate_rps=10.0,
        num_sent=2,
        trim=0,
        slos={},
        interrupted=False,
        duration_s=0.2,
        saturation_lateness_s=0.001,
    )
    assert s.client_saturated


def test_never_saturated_in_batch_mode() -> None:
    s = summarize_step(
        late_records([0, 500]),
        step=0,
        target_rate_rps=math.inf,
        num_sent=2,
        trim=0,
        slos={},
        interrupted=False,
        duration_s=0.2,
    )
    assert not s.client_saturated


def test_slot_wait_does_not_make_a_client_saturated() -> None:
    # queue 45 and 50 ms, of which 45 ms is slot wait: lateness 0 and 5 ms
    s = summarize_step(
        late_records([0, 5], slot_wait_ms=45),
        step=0,
        target_rate_rps=10.0,
        num_sent=2,
        trim=0,
        slos={},
        interrupted=False,
        duration_s=0.2,
    )
    assert s.trimmed.queue_s is not None
    assert s.trimmed.queue_s.p99 > 0.010  # 45 + 0.99 * 5 = 49.95 ms
    assert not s.client_saturated


def test_saturation_looks_at_trimmed_requests_only() -> None:
    # index 0 (warm-up) is 900 ms late; the kept index 1 is on time
    s = summarize_step(
        late_records([900, 0, 0]),
        step=0,
        target_rate_rps=10.0,
        num_sent=3,
        trim=1,
        slos={},
        interrupted=False,
        duration_s=0.3,
    )
    assert not s.client_saturated
    assert s.untrimmed.pacer_lateness_s is not None
    assert s.untrimmed.pacer_lateness_s.max == pytest.approx(0.9)


# --- tokens source ----------------------------------------------------------------------------


def sourced(index: int, source: TokensSource, error: ErrorKind | None = None) -> RequestRecord:
    """A short request whose token counts came from `source`."""
    return rec(index, 10 * index, last_ms=10 * index + 5, tokens_out=1, source=source, error=error)


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        # kept (indices 1..2) successes: server, tokenizer -> tokenizer
        (
            [
                sourced(0, "estimate"),
                sourced(1, "server"),
                sourced(2, "tokenizer"),
                sourced(3, "estimate"),
            ],
            "tokenizer",
        ),
        # the kept error's estimate does not count
        (
            [
                sourced(0, "server"),
                sourced(1, "server"),
                sourced(2, "estimate", "timeout"),
                sourced(3, "server"),
            ],
            "server",
        ),
        # kept successes: estimate wins over server
        (
            [
                sourced(0, "server"),
                sourced(1, "estimate"),
                sourced(2, "server"),
                sourced(3, "server"),
            ],
            "estimate",
        ),
        # no kept success: least exact among all records (server, tokenizer, server, server)
        (
            [
                sourced(0, "server"),
                sourced(1, "tokenizer", "timeout"),
                sourced(2, "server", "connect"),
                sourced(3, "server"),
            ],
            "tokenizer",
        ),
    ],
)
def test_tokens_source_is_least_exact(records: list[RequestRecord], expected: TokensSource) -> None:
    s = summarize_step(
        records,
        step=0,
        target_rate_rps=10.0,
        num_sent=4,
        trim=1,
        slos={},
        interrupted=False,
        duration_s=0.1,
    )
    assert s.tokens_source == expected


# --- scale ------------------------------------------------------------------------------------


def test_hundred_thousand_requests_of_fifty_chunks() -> None:
    n, chunks = 100_000, 50
    offsets = [10 * j for j in range(chunks)]  # chunk j arrives 10*j ms after send
    records = []
    for i in range(n):
        times = tuple(ns(i + t) for t in offsets)
        even = i % 2 == 0
        records.append(
            RequestRecord(
                index=i,
                t_sched_ns=ns(i),
                t_send_ns=ns(i),
                slot_wait_ns=0,
                t_done_ns=times[-1],
                t_first_ns=times[0],
                t_last_ns=times[-1],
                tokens_in=10,
                # even: 99 tokens estimated over 50 chunks -> k = 2 (chunks 0..48), 1 (chunk 49)
                # odd: 50 chunks of 1 known token
                tokens_out=99 if even else 50,
                chunk_times_ns=times,
                chunk_tokens=None if even else (1,) * chunks,
            )
        )
    itl = step_figures(records, {}).itl_s
    assert itl is not None
    # even: chunks 1..48 give 2 samples of 5 ms, chunk 49 one of 10 ms: 97 samples, 490 ms
    # odd: 49 samples of 10 ms, 490 ms; 50_000 * (97 + 49) = 7_300_000 samples
    assert itl.count == 7_300_000
    assert itl.mean == pytest.approx(0.49 / 73)  # 100_000 * 0.49 s / 7_300_000
    assert itl.min == pytest.approx(0.005)
    assert itl.max == pytest.approx(0.01)
    # sorted: 50_000 * 96 = 4_800_000 samples of 5 ms, then 2_500_000 of 10 ms;
    # median position 3_649_999.5 < 4_800_000, p99 position 7_226_999.01 > 4_800_000
    assert itl.p50 == pytest.approx(0.005)
    assert itl.p99 == pytest.approx(0.01)


def test_a_step_reports_how_poisson_its_sends_were() -> None:
    sends = np.rint(send_offsets_s("poisson", 50.0, 600, np.random.default_rng(11)) * 1e9).astype(
        np.int64
    )
    records = [
        RequestRecord(
            index=i, t_sched_ns=int(t), t_send_ns=int(t), slot_wait_ns=0, t_done_ns=int(t) + 1000
        )
        for i, t in enumerate(sends)
    ]
    finite = summarize_step(
        records, step=0, target_rate_rps=50.0, num_sent=600, trim=50,
        slos={}, interrupted=False, duration_s=12.0,
    )  # fmt: skip
    assert finite.trimmed.send_gap_ks is not None
    assert finite.trimmed.send_gap_ks_pvalue is not None
    assert finite.trimmed.send_gap_ks_pvalue > 0.01  # seeded Poisson sends at the tested rate
    assert finite.trimmed.send_count_dispersion is not None
    assert 0.6 <= finite.trimmed.send_count_dispersion <= 1.4  # ~100 windows of mean 5
    batch = summarize_step(
        records, step=0, target_rate_rps=math.inf, num_sent=600, trim=50,
        slos={}, interrupted=False, duration_s=12.0,
    )  # fmt: skip
    assert (batch.trimmed.send_gap_ks, batch.trimmed.send_gap_ks_pvalue) == (None, None)


def test_time_to_first_answer_and_reasoning_answer_token_means() -> None:
    thinking = replace(
        rec(0, 0, first_ms=100, last_ms=600, tokens_out=50),
        t_first_answer_ns=ns(300),
        reasoning_tokens=20,
    )
    plain = replace(rec(1, 10, first_ms=60, last_ms=200, tokens_out=10), t_first_answer_ns=ns(60))
    only_thinking = replace(
        rec(2, 20, first_ms=70, last_ms=400, tokens_out=8), reasoning_tokens=8
    )  # the output ended before any answer: no TTFA
    failed = replace(rec(3, 30, error="http_5xx"), reasoning_tokens=99)
    f = step_figures([thinking, plain, only_thinking, failed], {})
    # TTFA from send: 300 - 0 and 60 - 10 ms; TTFT counts reasoning: 100, 50, 50 ms.
    assert f.ttfa_s is not None
    assert f.ttfa_s.count == 2
    assert (f.ttfa_s.min, f.ttfa_s.max) == (pytest.approx(0.050), pytest.approx(0.300))
    assert f.ttft_s is not None
    assert f.ttft_s.max == pytest.approx(0.100)
    # Reasoning per success: 20, 0 (none reported), 8 -> mean 28/3; answers 30, 10, 0 -> 40/3.
    # The failure's 99 is not a success's.
    assert f.reasoning_tokens_mean == pytest.approx(28 / 3)
    assert f.answer_tokens_mean == pytest.approx(40 / 3)


def test_no_reasoning_reported_leaves_the_reasoning_means_out() -> None:
    f = step_figures([rec(0, 0, first_ms=10, last_ms=20, tokens_out=3)], {})
    assert f.reasoning_tokens_mean is None
    assert f.answer_tokens_mean is None
