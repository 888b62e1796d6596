"""Tests for loadgen.core.compare: known shifts on seeded synthetic steps, the verdict rule,
the Poisson throughput interval, the error-rate margin and step matching."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest

from loadgen.core.bootstrap import Interval
from loadgen.core.compare import (
    LATENCY_COLUMNS,
    CompareError,
    Comparison,
    FigureComparison,
    StepComparison,
    StepKey,
    StepSample,
    compare_step,
    compare_steps,
    figure_names,
    match_steps,
    parse_threshold,
    verdict,
)

RESAMPLES = 1000
N = 600
WINDOW_S = 60.0
LATENCY_NAMES = [name for name in figure_names() if name.endswith("_s")]


def step(
    latency_s: np.ndarray,
    *,
    failures: int = 0,
    target: str = "",
    index: int = 0,
    rate_rps: float = 10.0,
    window_s: float = WINDOW_S,
    tokens_out: float = 20.0,
) -> StepSample:
    """A step whose kept successes all have latency `latency_s` (s) in every column, each
    `tokens_out` tokens long, plus `failures` failed kept requests."""
    values = np.asarray(latency_s, dtype=np.float64)
    ok = np.concatenate([np.ones(values.size, dtype=np.bool_), np.zeros(failures, np.bool_)])
    return StepSample(
        target=target,
        step=index,
        target_rate_rps=rate_rps,
        ok=ok,
        window_s=window_s,
        tokens_out=np.full(values.size, tokens_out),
        latencies_s={column: values for column in LATENCY_COLUMNS},
    )


def lognormal(seed: int, size: int = N, sigma: float = 0.4, scale: float = 1.0) -> np.ndarray:
    """`size` seeded lognormal latencies (s), median `scale` s."""
    return scale * np.random.default_rng(seed).lognormal(0.0, sigma, size)


def shifted(seed: int, scale: float) -> StepSample:
    """A step of 2000 lognormal(0, 0.25) latencies times `scale`, over 200 s (10 req/s)."""
    return step(lognormal(seed, size=2000, sigma=0.25, scale=scale), window_s=200.0)


def by_name(figures: Sequence[FigureComparison]) -> dict[str, FigureComparison]:
    return {figure.name: figure for figure in figures}


def compare_one(
    base: StepSample, new: StepSample, threshold: float = 0.05
) -> dict[str, FigureComparison]:
    return by_name(compare_step(base, new, threshold=threshold, resamples=RESAMPLES).figures)


def test_a_20_percent_slower_server_is_worse_on_every_latency_figure() -> None:
    # Independent draws: the new run's latencies come from the base's distribution times 1.2.
    figures = compare_one(shifted(1, 1.0), shifted(2, 1.2))

    for name in LATENCY_NAMES:
        figure = figures[name]
        assert figure.verdict == "worse", figure
        assert figure.difference is not None
        assert figure.difference.low > 0, figure
        # The estimate is near +20%: the p99 of 2000 lognormal(0, 0.25) values has a relative
        # standard error of 2.1% (p(1-p)/n over the density squared), a difference of two 3%.
        assert figure.relative_change == pytest.approx(0.2, abs=0.1), figure
    # Same window, same successes and tokens: the throughputs did not move.
    for name in ("sequence_throughput_rps", "output_token_throughput_tps", "error_rate"):
        assert figures[name].verdict == "no significant change", figures[name]


def test_a_20_percent_faster_server_is_better() -> None:
    figures = compare_one(shifted(1, 1.2), shifted(2, 1.0))
    assert all(figures[name].verdict == "better" for name in LATENCY_NAMES), figures


def test_identical_steps_have_no_significant_change_and_intervals_around_zero() -> None:
    sample = step(lognormal(3), failures=12)
    comparison = compare_steps([sample], [sample], resamples=RESAMPLES)

    (only,) = comparison.steps
    assert [figure.name for figure in only.figures] == list(figure_names())
    for figure in only.figures:
        assert figure.verdict == "no significant change", figure
        assert figure.base == figure.new
        assert figure.relative_change == 0.0
        assert figure.difference is not None
        assert figure.difference.estimate == 0.0
        assert figure.difference.contains(0.0), figure
    assert not comparison.worse


def test_throughput_interval_has_the_width_of_two_poisson_counts() -> None:
    # 600 successes in 60 s on both sides: 10 req/s, and a difference of two independent
    # Poisson(600) counts over 60 s has a standard deviation of sqrt(1200) / 60 = 0.577 req/s,
    # so a 95% interval of about +-1.96 * 0.577 = +-1.13 req/s (the normal approximation is
    # good to a few percent at these counts; 10% is allowed).
    sample = step(lognormal(4))
    figures = compare_one(sample, sample)
    figure = figures["sequence_throughput_rps"]
    assert figure.base == figure.new == pytest.approx(10.0)
    assert figure.difference is not None
    assert -figure.difference.low == pytest.approx(1.13, rel=0.1)
    assert figure.difference.high == pytest.approx(1.13, rel=0.1)
    # 20 tokens per success: 200 tok/s, and the interval scales by the same 20.
    tokens = figures["output_token_throughput_tps"]
    assert tokens.base == pytest.approx(200.0)
    assert tokens.difference is not None
    assert tokens.difference.high == pytest.approx(20 * 1.13, rel=0.1)


@pytest.mark.parametrize(("new_successes", "expected"), [(720, "better"), (480, "worse")])
def test_throughput_higher_is_better(new_successes: int, expected: str) -> None:
    # 600 vs 720 (or 480) successes in the same 60 s: +-20% is about 3.5 standard deviations.
    base, new = step(lognormal(5)), step(lognormal(6, size=new_successes))
    figures = compare_one(base, new)
    for name in ("sequence_throughput_rps", "output_token_throughput_tps"):
        assert figures[name].verdict == expected, figures[name]
        assert figures[name].higher_is_better
    assert figures["sequence_throughput_rps"].new == pytest.approx(new_successes / WINDOW_S)


def test_a_significant_change_below_the_threshold_is_no_significant_change() -> None:
    # A narrow distribution (sigma 0.02) makes a 3% shift many standard errors wide.
    base, new = step(lognormal(7, sigma=0.02)), step(lognormal(8, sigma=0.02, scale=1.03))
    at_5 = compare_one(base, new, threshold=0.05)
    at_1 = compare_one(base, new, threshold=0.01)
    for name in LATENCY_NAMES:
        difference = at_5[name].difference
        assert difference is not None
        assert difference.low > 0, at_5[name]  # significant ...
        assert at_5[name].verdict == "no significant change"  # ... but under 5%
        assert at_1[name].verdict == "worse"


@pytest.mark.parametrize(
    ("base_failures", "new_failures", "expected"),
    [
        (0, 5, "no significant change"),  # 0.8 pp more: significant (below), but under 1 pp
        (0, 40, "worse"),  # 0% -> 6.3%
        (40, 0, "better"),
        (12, 12, "no significant change"),
    ],
)
def test_error_rate_needs_a_significant_rise_of_more_than_one_percentage_point(
    base_failures: int, new_failures: int, expected: str
) -> None:
    base = step(lognormal(9), failures=base_failures)
    new = step(lognormal(9), failures=new_failures)
    figure = compare_one(base, new)["error_rate"]
    assert figure.verdict == expected, figure
    assert figure.new == pytest.approx(new_failures / (N + new_failures))


def test_a_small_significant_rise_of_the_error_rate_is_under_the_margin() -> None:
    # 5 failures in 605: a resample has none with chance (1 - 5/605)^605 = e^-5 = 0.7% < 2.5%,
    # so the interval lies above 0; the rise, 0.83 percentage points, is under the 1 point margin.
    figure = compare_one(step(lognormal(9)), step(lognormal(9), failures=5))["error_rate"]
    assert figure.difference is not None
    assert figure.difference.low > 0
    assert figure.verdict == "no significant change"


def test_error_rate_from_zero_has_an_infinite_relative_change() -> None:
    figure = compare_one(step(lognormal(9)), step(lognormal(9), failures=40))["error_rate"]
    assert figure.base == 0.0
    assert figure.relative_change == math.inf
    assert figure.difference is not None
    assert figure.difference.low > 0


def test_a_latency_one_side_did_not_measure_is_not_measured() -> None:
    base = step(lognormal(10))
    unmeasured = {**base.latencies_s, "tpot_s": np.full(N, np.nan)}
    new = replace(base, latencies_s=unmeasured)
    figures = compare_one(base, new)
    for name in ("tpot_p50_s", "tpot_p99_s"):
        assert figures[name].verdict == "not measured"
        assert figures[name].new is None
        assert figures[name].difference is None
    assert figures["ttft_p50_s"].verdict == "no significant change"


def test_steps_match_by_target_and_rate_and_the_rest_is_listed() -> None:
    latencies = lognormal(11, size=50)
    base = [step(latencies, index=i, rate_rps=r) for i, r in enumerate((10.0, 20.0, math.inf))]
    new = [step(latencies, index=i, rate_rps=r) for i, r in enumerate((20.0, math.inf, 40.0))]
    new.append(step(latencies, index=3, rate_rps=10.0, target="other"))

    pairs, only_base, only_new = match_steps(base, new)
    assert [(b.step, n.step) for b, n in pairs] == [(1, 0), (2, 1)]
    assert [s.step for s in only_base] == [0]
    assert [s.step for s in only_new] == [2, 3]

    comparison = compare_steps(base, new, resamples=200)
    assert [s.target_rate_rps for s in comparison.steps] == [20.0, math.inf]
    assert comparison.unmatched_base == (StepKey("", 0, 10.0),)
    assert comparison.unmatched_new == (StepKey("", 2, 40.0), StepKey("other", 3, 10.0))


def test_repeated_rates_pair_in_run_order() -> None:
    latencies = lognormal(12, size=50)
    base = [step(latencies, index=i, rate_rps=5.0) for i in range(2)]
    new = [step(latencies, index=i, rate_rps=5.0) for i in range(3)]
    pairs, only_base, only_new = match_steps(base, new)
    assert [(b.step, n.step) for b, n in pairs] == [(0, 0), (1, 1)]
    assert only_base == []
    assert [s.step for s in only_new] == [2]


def test_no_matching_step_is_a_compare_error_naming_both_sides() -> None:
    latencies = lognormal(13, size=50)
    base = [step(latencies, rate_rps=10.0), step(latencies, index=1, rate_rps=math.inf)]
    new = [step(latencies, rate_rps=15.0)]
    with pytest.raises(CompareError, match=r"base has 10, inf req/s.*new run 15 req/s"):
        compare_steps(base, new)


def test_same_seed_same_intervals_other_seed_other_intervals() -> None:
    base, new = step(lognormal(14)), step(lognormal(15))

    def intervals(seed: int) -> list[Interval | None]:
        comparison = compare_steps([base], [new], seed=seed, resamples=300)
        return [figure.difference for figure in comparison.steps[0].figures]

    assert intervals(0) == intervals(0)
    assert intervals(0) != intervals(1)


def test_worse_is_any_figure_worse() -> None:
    fine = FigureComparison("ttft_p50_s", False, 1.0, 1.0, Interval(0, -1, 1), 0.0,
                            "no significant change")  # fmt: skip
    bad = FigureComparison("e2e_p99_s", False, 1.0, 2.0, Interval(1, 0.5, 1.5), 1.0, "worse")
    good = FigureComparison("e2e_p50_s", False, 2.0, 1.0, Interval(-1, -1.5, -0.5), -0.5, "better")

    def comparison(*figures: FigureComparison) -> Comparison:
        steps = (StepComparison("", 1.0, 0, 0, figures),)
        return Comparison(0.05, 0.95, 0, steps, (), ())

    assert comparison(fine, good, bad).worse
    assert not comparison(fine, good).worse


@pytest.mark.parametrize(
    ("low", "high", "change", "higher_is_better", "expected"),
    [
        (0.1, 0.3, 0.2, False, "worse"),
        (0.1, 0.3, 0.2, True, "better"),
        (-0.3, -0.1, -0.2, False, "better"),
        (-0.3, -0.1, -0.2, True, "worse"),
        (-0.1, 0.3, 0.2, False, "no significant change"),  # the interval holds 0
        (0.0, 0.3, 0.2, False, "no significant change"),  # an end on 0 is not wholly above it
        (0.1, 0.3, 0.05, False, "no significant change"),  # exactly the threshold is not past it
        (0.1, 0.3, 0.04, False, "no significant change"),
    ],
)
def test_verdict_rule(
    low: float, high: float, change: float, higher_is_better: bool, expected: str
) -> None:
    interval = Interval((low + high) / 2, low, high)
    assert verdict(interval, change, 0.05, higher_is_better=higher_is_better) == expected


@pytest.mark.parametrize(
    ("text", "share"),
    [("5%", 0.05), ("0.05", 0.05), (" 2.5 % ", 0.025), ("0", 0.0), ("0%", 0.0), ("150%", 1.5)],
)
def test_parse_threshold(text: str, share: float) -> None:
    assert parse_threshold(text) == pytest.approx(share)


@pytest.mark.parametrize(
    ("text", "needle"),
    [("abc", "not a share"), ("", "not a share"), ("-5%", ">= 0"), ("nan", "finite"),
     ("inf%", "finite"), ("5", "ambiguous"), ("1", "ambiguous")],
)  # fmt: skip
def test_bad_threshold_is_a_value_error(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_threshold(text)
