"""Tests for loadgen.core.bootstrap: coverage on samples whose true answer is known, and
published values of the Wilson and Student t intervals.

Coverage tolerance: over 400 seeded trials the share of 95% intervals that cover the truth has
a binomial standard deviation of sqrt(0.95 * 0.05 / 400) = 1.1 percentage points, so 93-97% is
+-1.8 of them. A 90% interval (coverage ~90%) or a 99% one (~99%) passed off as 95% fails it.
The difference of two bootstrapped medians is slightly conservative (95.9% over 2000 trials of
the test's setup), so its band reaches 98%: still short of what a 99% interval would give.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from loadgen.core.bootstrap import (
    Interval,
    bootstrap_interval,
    difference_interval,
    mean_interval,
    mean_of_rows,
    percentile_of,
    wilson_interval,
)

TRIALS = 400
RESAMPLES = 1000
SAMPLE_SIZE = 800
# The standard normal's 90th percentile: lognormal(0, 1) has its p90 at exp(Z90).
Z90 = 1.2815515655446004


def coverage(draw: Callable[[np.random.Generator], bool], seed: int) -> float:
    """The share of `TRIALS` seeded trials for which `draw` says its interval covered the truth."""
    rng = np.random.default_rng(seed)
    return sum(draw(rng) for _ in range(TRIALS)) / TRIALS


@pytest.mark.slow
@pytest.mark.parametrize(("q", "true_value"), [(50.0, 1.0), (90.0, math.exp(Z90))])
def test_percentile_interval_covers_the_true_quantile_95_percent_of_the_time(
    q: float, true_value: float
) -> None:
    # lognormal(0, 1): median exp(0) = 1, p90 exp(1.2816) = 3.602 (the normal's quantiles).
    def draw(rng: np.random.Generator) -> bool:
        sample = rng.lognormal(0.0, 1.0, SAMPLE_SIZE)
        interval = bootstrap_interval(sample, percentile_of(q), rng, resamples=RESAMPLES)
        return interval.contains(true_value)

    assert 0.93 <= coverage(draw, seed=20240617) <= 0.97


@pytest.mark.slow
def test_difference_interval_covers_a_known_shift_95_percent_of_the_time() -> None:
    # The new sample is the base's distribution moved up by 0.5 s: medians differ by 0.5 s.
    shift_s = 0.5

    def draw(rng: np.random.Generator) -> bool:
        base = rng.lognormal(0.0, 1.0, SAMPLE_SIZE // 2)
        new = rng.lognormal(0.0, 1.0, SAMPLE_SIZE // 2) + shift_s
        interval = difference_interval(base, new, percentile_of(50), rng, resamples=RESAMPLES)
        return interval.contains(shift_s)

    assert 0.93 <= coverage(draw, seed=7) <= 0.98


def test_difference_of_one_sample_with_itself_is_centred_on_zero() -> None:
    sample = np.random.default_rng(3).exponential(1.0, 500)
    interval = difference_interval(
        sample, sample, percentile_of(50), np.random.default_rng(4), resamples=RESAMPLES
    )
    assert interval.estimate == 0.0
    assert interval.low < 0 < interval.high


def test_estimate_is_the_statistic_of_the_sample_itself() -> None:
    rng = np.random.default_rng(0)
    # [1, 2, 3, 4, 10]: median 3, mean 4, linear p75 4 (position 3 of 0..4).
    values = [10.0, 1.0, 3.0, 2.0, 4.0]
    assert bootstrap_interval(values, percentile_of(50), rng).estimate == 3.0
    assert bootstrap_interval(values, mean_of_rows, rng).estimate == 4.0
    assert bootstrap_interval(values, percentile_of(75), rng).estimate == 4.0
    # new - base: medians 3 and 5.
    diff = difference_interval(values, [5.0, 5.0, 5.0], percentile_of(50), rng)
    assert diff.estimate == 2.0


def test_a_constant_sample_has_no_width_and_intervals_hold_their_estimate() -> None:
    rng = np.random.default_rng(1)
    assert bootstrap_interval([2.5] * 50, percentile_of(99), rng) == Interval(2.5, 2.5, 2.5)
    interval = bootstrap_interval(rng.normal(0, 1, 200), mean_of_rows, rng)
    assert interval.low <= interval.estimate <= interval.high


def test_same_seed_same_interval_and_a_higher_confidence_is_wider() -> None:
    sample = np.random.default_rng(5).lognormal(0, 1, 300)

    def interval(confidence: float) -> Interval:
        rng = np.random.default_rng(11)
        return bootstrap_interval(sample, percentile_of(90), rng, confidence=confidence)

    assert interval(0.95) == interval(0.95)
    narrow, wide = interval(0.5), interval(0.99)
    assert wide.low < narrow.low
    assert narrow.high < wide.high


@pytest.mark.parametrize("values", [[], np.array([])])
def test_no_values_is_a_value_error(values: list[float]) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="no values"):
        bootstrap_interval(values, mean_of_rows, rng)
    with pytest.raises(ValueError, match="no values"):
        difference_interval([1.0], values, mean_of_rows, rng)
    with pytest.raises(ValueError, match="no values"):
        mean_interval(values)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, -0.1])
def test_confidence_outside_0_1_is_a_value_error(confidence: float) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_interval([1.0, 2.0], mean_of_rows, rng, confidence=confidence)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence=confidence)


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, method 3
# (Wilson score without continuity correction); 0/10 and 5/10 worked out by hand with z = 1.96.
@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 10, 0.0, 0.2775),
     (5, 10, 0.2366, 0.7634)],
)  # fmt: skip
def test_wilson_interval_matches_published_values(
    successes: int, trials: int, low: float, high: float
) -> None:
    interval = wilson_interval(successes, trials)
    assert interval.estimate == successes / trials
    assert interval.low == pytest.approx(low, abs=5e-5)
    assert interval.high == pytest.approx(high, abs=5e-5)


def test_wilson_interval_stays_within_0_and_1() -> None:
    for trials in (1, 2, 7, 50):
        for successes in (0, trials):
            interval = wilson_interval(successes, trials)
            assert 0.0 <= interval.low <= interval.estimate <= interval.high <= 1.0


@pytest.mark.parametrize(("successes", "trials"), [(0, 0), (3, 2), (-1, 5), (1, -4)])
def test_wilson_interval_refuses_impossible_counts(successes: int, trials: int) -> None:
    with pytest.raises(ValueError, match="proportion"):
        wilson_interval(successes, trials)


def test_mean_interval_matches_a_hand_worked_student_t_interval() -> None:
    # [1..5]: mean 3, s = sqrt(2.5) = 1.5811, t(0.975, 4) = 2.776: half 2.776 * 1.5811 / sqrt(5)
    # = 1.9629.
    interval = mean_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert interval.estimate == 3.0
    assert interval.low == pytest.approx(3.0 - 1.9629, abs=1e-3)
    assert interval.high == pytest.approx(3.0 + 1.9629, abs=1e-3)


def test_mean_interval_of_one_value_has_no_width() -> None:
    assert mean_interval([4.2]) == Interval(4.2, 4.2, 4.2)


def test_mean_interval_covers_a_normal_mean_95_percent_of_the_time() -> None:
    # Sample sizes on both sides of the table's end (30 degrees of freedom), true mean 10.
    for size in (8, 60):
        rng = np.random.default_rng(size)
        hits = sum(mean_interval(rng.normal(10.0, 3.0, size)).contains(10.0) for _ in range(TRIALS))
        assert 0.93 <= hits / TRIALS <= 0.97, size
