"""Tests for loadgen.core.capacity: SLO parsing, step verdicts, the search policy, its answer.

Every expected figure is worked out by hand (or from a closed form) in a comment, never by the
code under test's own route; random samples come from seeded generators.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from loadgen.core.capacity import (
    capacity_answer,
    capacity_search,
    capacity_slo,
    judge_step,
    parse_capacity_slos,
    search_slos,
)
from loadgen.core.records import RequestRecord, SloCheck, StepSummary, StepVerdict, Verdict
from loadgen.core.stats import step_figures

NS = 1_000_000_000  # ns per s
BASE = 5_000 * NS  # an arbitrary perf_counter_ns origin; only differences matter
EMPTY = step_figures([], {})  # figures of an empty step: nothing sent, nothing measured


def rec(
    index: int,
    *,
    ttft_s: float | None = 0.1,
    e2e_s: float = 1.0,
    tokens_out: int = 10,
    answer_s: float | None = None,
    ok: bool = True,
) -> RequestRecord:
    """A request sent at BASE + index ms; `ttft_s` None: not streamed."""
    send = BASE + index * 1_000_000
    return RequestRecord(
        index=index,
        t_sched_ns=send,
        t_send_ns=send,
        slot_wait_ns=0,
        t_done_ns=send + round(e2e_s * NS),
        t_first_ns=None if ttft_s is None else send + round(ttft_s * NS),
        t_first_answer_ns=None if answer_s is None else send + round(answer_s * NS),
        tokens_out=tokens_out,
        error_kind=None if ok else "http_5xx",
    )


def ttft_records(ttfts: Sequence[float]) -> list[RequestRecord]:
    return [rec(i, ttft_s=float(t), e2e_s=float(t) + 1.0) for i, t in enumerate(ttfts)]


def exp_ttfts(n: int, seed: int = 7, mean_s: float = 0.1) -> list[float]:
    """Exponential TTFTs: true p99 = mean * ln(100) = 0.4605 s for a 0.1 s mean."""
    ttfts: list[float] = np.random.default_rng(seed).exponential(mean_s, n).tolist()
    return ttfts


def ok_and_failed(num_ok: int, num_failed: int) -> list[RequestRecord]:
    return [rec(i) for i in range(num_ok)] + [rec(num_ok + i, ok=False) for i in range(num_failed)]


def summary(
    step: int, rate: float, verdict: Verdict | None, *, interrupted: bool = False
) -> StepSummary:
    # step, rate, sent, trim, trimmed, untrimmed, client_saturated, interrupted, tokens, s
    slo = None if verdict is None else StepVerdict(verdict, ())
    return StepSummary(step, rate, 0, 0, EMPTY, EMPTY, False, interrupted, "estimate", 1.0, slo=slo)


# --- parsing --------------------------------------------------------------------------------


GOOD_SLOS = {
    # key: (field, percentile)
    "ttft_p99": ("ttft_s", 99.0), "tpot_p50": ("tpot_s", 50.0),
    "per_token_p99.9": ("per_token_latency_s", 99.9), "ttfa_mean": ("ttfa_s", None),
    "e2e_p95": ("e2e_s", 95.0), "e2e_mean": ("e2e_s", None), "error_rate": ("error_rate", None),
}  # fmt: skip


def test_parse_accepts_every_metric_kind() -> None:
    text = "ttft_p99=0.5, tpot_p50=0.05,per_token_p99.9=0.2,ttfa_mean=1,e2e_p95=9,error_rate=0.02"
    expected = {"ttft_p99": 0.5, "tpot_p50": 0.05, "per_token_p99.9": 0.2, "ttfa_mean": 1.0}
    assert parse_capacity_slos(text) == {**expected, "e2e_p95": 9.0, "error_rate": 0.02}
    assert parse_capacity_slos(" TTFT_P99 = 0.25 ") == {"ttft_p99": 0.25}


@pytest.mark.parametrize(("key", "field_and_percentile"), GOOD_SLOS.items())
def test_capacity_slo_fields(key: str, field_and_percentile: tuple[str, float | None]) -> None:
    slo = capacity_slo(key, 0.5)
    assert (slo.key, (slo.field, slo.percentile), slo.limit) == (key, field_and_percentile, 0.5)


BAD_SLOS = {
    "": "no SLO", "   ": "no SLO",
    "ttft_p99": "KEY=LIMIT", "=0.5": "KEY=LIMIT", "ttft_p99=0.5,": "KEY=LIMIT",
    "latency_p99=0.5": "unknown SLO 'latency_p99'", "ttft=0.5": "unknown SLO 'ttft'",
    "ttft_pxx=0.5": "unknown SLO", "error_rate_p99=0.5": "unknown SLO",
    "ttft_p0=0.5": "percentile", "ttft_p100=0.5": "percentile", "ttft_p150=0.5": "percentile",
    "ttft_p99=abc": "'abc' is not a number", "ttft_p99=": "is not a number",
    "ttft_p99=0.5,ttft_p99=0.6": "more than once", "ttft_p99=0.5,TTFT_P99=0.6": "more than once",
    "ttft_p99=-1": "limit", "ttft_p99=0": "limit", "ttft_p99=inf": "limit",
    "ttft_p99=nan": "limit", "ttfa_mean=-0.1": "limit",
    "error_rate=1": r"\(0, 1\)", "error_rate=1.5": r"\(0, 1\)",
    "error_rate=-0.01": r"\(0, 1\)", "error_rate=nan": r"\(0, 1\)",
}  # fmt: skip


@pytest.mark.parametrize(("text", "match"), BAD_SLOS.items())
def test_parse_rejects_bad_slos(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_capacity_slos(text)


def test_error_rate_of_zero_is_refused_as_never_provable() -> None:
    # No finite step shows that no request ever fails: Wilson's upper bound is always above 0.
    with pytest.raises(ValueError, match="small share"):
        parse_capacity_slos("error_rate=0")


def test_slos_that_bound_the_same_figure_are_refused() -> None:
    with pytest.raises(ValueError, match="same thing"):
        parse_capacity_slos("ttft_p99=1,ttft_p99.0=2")


def test_search_slos_adds_the_default_error_rate_only_when_absent() -> None:
    added = {slo.key: slo.limit for slo in search_slos({"ttft_p99": 0.5})}
    assert added == {"ttft_p99": 0.5, "error_rate": 0.01}
    kept = {slo.key: slo.limit for slo in search_slos({"error_rate": 0.05, "tpot_mean": 2.0})}
    assert kept == {"error_rate": 0.05, "tpot_mean": 2.0}
    with pytest.raises(ValueError, match="unknown SLO"):
        search_slos({"bogus_p99": 1.0})


# --- judging a step -------------------------------------------------------------------------


def judge(records: Sequence[RequestRecord], text: str, seed: int = 1, **kw: bool) -> StepVerdict:
    slos = [capacity_slo(k, v) for k, v in parse_capacity_slos(text).items()]
    return judge_step(records, slos, np.random.default_rng(seed), **kw)


def bounds(check: SloCheck) -> tuple[float, float, float]:
    """(estimate, low, high) of a check that was judged by its interval."""
    assert check.estimate is not None
    assert check.low is not None
    assert check.high is not None
    return check.estimate, check.low, check.high


def test_p99_far_below_the_limit_holds_with_a_sane_interval() -> None:
    records = ttft_records(exp_ttfts(1000))
    result = judge(records, "ttft_p99=2.0")
    (check,) = result.checks
    assert result.verdict == check.verdict == "holds"
    estimate, low, high = bounds(check)
    assert low <= estimate <= high <= 2.0
    # True p99 0.4605 s; the sample p99 of 1000 has SE ~ sqrt(.0099/1000)/f(q) = 0.031 s.
    assert estimate == pytest.approx(0.4605, abs=0.13)
    assert 0 < high - low < 0.4


def test_p99_far_above_the_limit_fails() -> None:
    result = judge(ttft_records(exp_ttfts(1000)), "ttft_p99=0.1")
    (check,) = result.checks
    assert result.verdict == check.verdict == "fails"
    estimate, low, high = bounds(check)
    assert 0.1 < low <= estimate <= high


def test_limit_at_the_sample_p99_is_undecided() -> None:
    ttfts = exp_ttfts(1000, seed=3)
    # The 990th smallest of 1000 values: the sample's p99 by order statistic.
    limit = float(sorted(ttfts)[989])
    result = judge(ttft_records(ttfts), f"ttft_p99={limit!r}")
    (check,) = result.checks
    assert result.verdict == check.verdict == "undecided"
    estimate, low, high = bounds(check)
    assert low <= min(limit, estimate) <= max(limit, estimate) < high


def test_too_few_beyond_the_percentile_is_undecided_with_a_reason() -> None:
    # p99 of 499 leaves 4.99 beyond it (< 5); of 500, exactly 5.
    few = judge(ttft_records(exp_ttfts(499)), "ttft_p99=10")
    (check,) = few.checks
    assert few.verdict == "undecided"
    assert check.why is not None
    assert "too few" in check.why
    assert (check.low, check.high) == (None, None)
    assert check.estimate is not None
    enough = judge(ttft_records(exp_ttfts(500)), "ttft_p99=10")
    assert enough.verdict == "holds"
    # p50 of 9 leaves 4.5 beyond it; of 10, 5.
    assert judge(ttft_records([0.1] * 9), "ttft_p50=1").verdict == "undecided"
    assert judge(ttft_records([0.1] * 10), "ttft_p50=1").verdict == "holds"


def test_a_latency_no_success_measured_fails() -> None:
    not_streamed = [rec(i, ttft_s=None) for i in range(200)]
    result = judge(not_streamed, "ttft_p50=1")
    assert result.verdict == "fails"
    assert result.checks[0].why is not None
    all_failed = [rec(i, ok=False) for i in range(200)]
    assert judge(all_failed, "per_token_mean=100").verdict == "fails"


def test_nothing_kept_is_undecided() -> None:
    result = judge([], "ttft_p99=1,error_rate=0.01")
    assert result.verdict == "undecided"
    assert {check.verdict for check in result.checks} == {"undecided"}


@pytest.mark.parametrize(
    ("num_ok", "num_failed", "verdict"),
    # Wilson 95% upper bound for 0 of n is z^2/(n+z^2): 3.8415/1003.8 = 0.0038 <= 1% holds;
    # 0 of 100: 3.8415/103.84 = 0.037 > 1% with the lower bound 0: undecided;
    # 50 of 1000: 5%, its lower bound ~3.8% > 1%: fails.
    [(1000, 0, "holds"), (100, 0, "undecided"), (950, 50, "fails")],
)
def test_error_rate_by_wilson(num_ok: int, num_failed: int, verdict: Verdict) -> None:
    result = judge(ok_and_failed(num_ok, num_failed), "error_rate=0.01")
    (check,) = result.checks
    assert result.verdict == check.verdict == verdict
    n = num_ok + num_failed
    assert check.estimate == pytest.approx(num_failed / n)
    if num_failed == 0:
        assert check.high == pytest.approx(3.8415 / (n + 3.8415), rel=1e-3)
    else:
        assert check.low == pytest.approx(0.0382, abs=0.001)


def test_other_latencies_are_read_from_their_columns() -> None:
    # tpot = (e2e - ttft) / (tokens - 1) = (2.1 - 0.1) / 20 = 0.1 s; per-token 2.1 / 21 = 0.1 s.
    records = [
        rec(i, ttft_s=0.1, e2e_s=2.1, tokens_out=21, answer_s=0.3 + (i % 2) * 0.2)
        for i in range(600)
    ]
    # ttfa: answers at 0.3 and 0.5 s, mean 0.4 s.
    texts = ["tpot_p50=0.11", "tpot_p50=0.09", "per_token_p99=0.11"]
    texts += ["ttfa_mean=0.41", "ttfa_mean=0.39"]
    verdicts = [judge(records, text).verdict for text in texts]
    assert verdicts == ["holds", "fails", "holds", "holds", "fails"]


def test_e2e_slos_judge_the_e2e_column() -> None:
    # e2e alternates 2.0, 2.1, 2.2 s: p95 2.2 s, mean 2.1 s.
    records = [rec(i, ttft_s=0.1, e2e_s=2.0 + (i % 3) * 0.1) for i in range(600)]
    assert judge(records, "e2e_p95=2.3").verdict == "holds"
    assert judge(records, "e2e_mean=1.9").verdict == "fails"


def test_over_saturated_forces_fails() -> None:
    records = ttft_records(exp_ttfts(1000))
    assert judge(records, "ttft_p99=2.0").verdict == "holds"
    forced = judge(records, "ttft_p99=2.0", over_saturated=True)
    assert forced.verdict == "fails"
    assert forced.checks[0].verdict == "holds"


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("ttft_p99=2.0,error_rate=0.01", "holds"),  # holds + holds
        ("ttft_p99=2.0,ttft_mean=0.01", "fails"),  # holds + fails
        ("ttft_p99=2.0,error_rate=0.001", "undecided"),  # holds + undecided (0/1000 vs 0.1%)
        ("ttft_mean=0.01,error_rate=0.001", "fails"),  # fails + undecided
    ],
)
def test_verdicts_combine(text: str, verdict: Verdict) -> None:
    result = judge(ttft_records(exp_ttfts(1000)), text)
    assert result.verdict == verdict
    assert len(result.checks) == 2


def test_same_seed_same_intervals() -> None:
    records = ttft_records(exp_ttfts(1000))
    first = judge(records, "ttft_p99=2.0,per_token_mean=5", seed=11)
    again = judge(records, "ttft_p99=2.0,per_token_mean=5", seed=11)
    other = judge(records, "ttft_p99=2.0,per_token_mean=5", seed=12)
    assert first == again
    assert [(c.low, c.high) for c in first.checks] != [(c.low, c.high) for c in other.checks]


# --- the search -----------------------------------------------------------------------------

Judge = Callable[[float, int], Verdict]
Visit = tuple[float, int, Verdict]  # rate, scale, verdict


def drive(
    judge_rate: Judge, start: float, res: float = 0.05, steps: int = 30, scale: int = 4
) -> list[Visit]:
    """Run the search policy the way the runner does, judging each order with `judge_rate`."""
    policy = capacity_search(start, res, steps, scale)
    visited: list[Visit] = []
    try:
        order = next(policy)
        while True:
            verdict = judge_rate(order.rate_rps, order.scale)
            visited.append((order.rate_rps, order.scale, verdict))
            order = policy.send(summary(len(visited) - 1, order.rate_rps, verdict))
    except StopIteration:
        return visited


def true_capacity(capacity: float) -> Judge:
    return lambda rate, _scale: "holds" if rate <= capacity else "fails"


@pytest.mark.parametrize("capacity", [0.37, 3.0, 12.5, 97.0])
@pytest.mark.parametrize("start", [0.5, 1.0, 40.0])
@pytest.mark.parametrize("resolution", [0.05, 0.2])
def test_search_brackets_the_capacity(capacity: float, start: float, resolution: float) -> None:
    visited = drive(true_capacity(capacity), start, resolution)
    assert 0 < len(visited) <= 30
    held = [rate for rate, _, verdict in visited if verdict == "holds"]
    failed = [rate for rate, _, verdict in visited if verdict == "fails"]
    low, high = max(held, default=0), min(failed, default=math.inf)
    assert low <= capacity < high
    assert high / low <= 1 + resolution
    answer = capacity_answer([summary(i, r, v) for i, (r, _, v) in enumerate(visited)], resolution)
    assert (answer.capacity_rps, answer.fails_rps, answer.converged) == (low, high, True)


def test_search_doubles_then_bisects_geometrically() -> None:
    # Capacity 5 from 1: 1, 2, 4 hold, 8 fails, then sqrt(4 * 8) = 5.657 fails,
    # sqrt(4 * 5.657) = 4.757 holds, sqrt(4.757 * 5.657) = 5.187 fails, ...
    rates = [rate for rate, _, _ in drive(true_capacity(5.0), 1.0)]
    assert rates[:4] == [1.0, 2.0, 4.0, 8.0]
    assert rates[4:7] == pytest.approx([5.6569, 4.7568, 5.1874], abs=1e-4)


def test_undecided_repeats_with_doubled_scale_then_counts_as_failing() -> None:
    always = drive(lambda rate, scale: "undecided" if rate == 8.0 else "holds", 8.0, scale=4)
    # 8 undecided at scales 1, 2, 4; then failing: halve to 4 (holds), bisect sqrt(32) = 5.66.
    assert always[:4] == [
        (8, 1, "undecided"),
        (8, 2, "undecided"),
        (8, 4, "undecided"),
        (4, 1, "holds"),
    ]
    rate, scale, verdict = always[4]
    assert rate == pytest.approx(5.6569, abs=1e-4)
    assert (scale, verdict) == (1, "holds")
    settles = drive(lambda rate, scale: "holds" if scale >= 2 else "undecided", 8.0, steps=4)
    assert [(rate, scale) for rate, scale, _ in settles] == [(8, 1), (8, 2), (16, 1), (16, 2)]
    no_rerun = drive(lambda rate, scale: "undecided", 8.0, scale=1, steps=3)
    assert [(rate, scale) for rate, scale, _ in no_rerun] == [(8, 1), (4, 1), (2, 1)]
    odd = drive(lambda rate, scale: "undecided", 8.0, scale=3, steps=3)
    assert [(rate, scale) for rate, scale, _ in odd] == [(8, 1), (8, 2), (4, 1)]


def test_search_ends_on_an_interrupted_step_or_a_missing_verdict() -> None:
    policy = capacity_search(1.0, 0.05, 30, 4)
    assert next(policy).rate_rps == 1.0
    assert policy.send(summary(0, 1.0, "holds")).rate_rps == 2.0
    with pytest.raises(StopIteration):
        policy.send(summary(1, 2.0, "holds", interrupted=True))
    unjudged = capacity_search(1.0, 0.05, 30, 4)
    next(unjudged)
    with pytest.raises(StopIteration):
        unjudged.send(summary(0, 1.0, None))


@pytest.mark.parametrize(
    ("start", "resolution"),
    [(0.0, 0.05), (-1.0, 0.05), (math.inf, 0.05), (math.nan, 0.05), (1.0, 0.0), (1.0, 1.0)],
)
def test_search_rejects_bad_arguments_at_the_call(start: float, resolution: float) -> None:
    with pytest.raises(ValueError, match=r"rate|resolution"):
        capacity_search(start, resolution, 30, 4)


def test_search_runs_at_most_max_steps() -> None:
    rates = [rate for rate, _, _ in drive(true_capacity(1e9), 1.0, steps=5)]
    assert rates == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert drive(true_capacity(1e9), 1.0, steps=1) == [(1.0, 1, "holds")]


def test_search_stops_halving_when_nothing_holds() -> None:
    # Halves a failing start at most 10 times: 64 / 2^10 = 0.0625 is the last rate.
    rates = [rate for rate, _, _ in drive(true_capacity(0.0), 64.0, steps=1000)]
    assert rates == [64.0 / 2**k for k in range(11)]


# --- the answer -----------------------------------------------------------------------------


def test_answer_judges_each_rate_by_its_last_step() -> None:
    steps = [
        summary(0, 4.0, "holds"),
        summary(1, 8.0, "fails"),
        summary(2, 5.6, "undecided"),
        summary(3, 5.6, "undecided"),
        summary(4, 5.6, "holds"),
        summary(5, 6.7, "holds", interrupted=True),  # ignored: interrupted
        summary(6, 6.7, None),  # ignored: not judged
    ]
    answer = capacity_answer(steps, 0.5)
    assert (answer.capacity_rps, answer.fails_rps, answer.steps) == (5.6, 8.0, 7)
    assert answer.converged  # 8 <= 5.6 * 1.5
    assert not capacity_answer(steps, 0.2).converged  # 8 > 5.6 * 1.2 = 6.72
    # The same rate decided the other way round: undecided last counts as failing.
    flipped = capacity_answer(
        [*steps[:2], summary(2, 5.6, "holds"), summary(3, 5.6, "undecided")], 0.5
    )
    assert (flipped.capacity_rps, flipped.fails_rps) == (4.0, 5.6)


def test_a_holding_rate_above_the_lowest_failing_is_not_the_capacity() -> None:
    steps = [summary(0, 2.0, "holds"), summary(1, 3.0, "fails"), summary(2, 4.0, "holds")]
    answer = capacity_answer(steps, 0.05)
    assert (answer.capacity_rps, answer.fails_rps, answer.converged) == (2.0, 3.0, False)


def test_answer_without_a_holding_or_failing_rate() -> None:
    none_held = capacity_answer([summary(0, 1.0, "fails"), summary(1, 0.5, "undecided")], 0.05)
    assert (none_held.capacity_rps, none_held.fails_rps, none_held.converged) == (None, 0.5, False)
    all_held = capacity_answer([summary(0, 1.0, "holds"), summary(1, 2.0, "holds")], 0.05)
    assert (all_held.capacity_rps, all_held.fails_rps, all_held.converged) == (2.0, None, False)
    empty = capacity_answer([], 0.05)
    assert (empty.capacity_rps, empty.fails_rps, empty.steps) == (None, None, 0)
