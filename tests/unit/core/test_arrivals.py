"""Tests for loadgen.core.arrivals: send offsets for poisson, gamma and constant schedules."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from loadgen.core.arrivals import (
    ARRIVAL_KINDS,
    ArrivalKind,
    send_offsets_s,
    send_offsets_within_s,
)


def _gaps(offsets: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Inter-arrival gaps (s) of a send schedule."""
    return np.diff(offsets)


def _cv(gaps: npt.NDArray[np.float64]) -> float:
    """Coefficient of variation (std / mean) of a sample."""
    return float(np.std(gaps) / np.mean(gaps))


def _ks_statistic_exponential(sample: npt.NDArray[np.float64], rate: float) -> float:
    """Kolmogorov-Smirnov distance between a sample's ECDF and the Exp(rate) CDF."""
    x = np.sort(sample)
    n = x.size
    expected_cdf = 1.0 - np.exp(-rate * x)
    ecdf_above = np.arange(1, n + 1) / n
    ecdf_below = np.arange(0, n) / n
    return float(max(np.max(ecdf_above - expected_cdf), np.max(expected_cdf - ecdf_below)))


def test_poisson_gaps_are_exponential_with_mean_one_over_rate() -> None:
    rate, n = 50.0, 20_000
    gaps = _gaps(send_offsets_s("poisson", rate, n, np.random.default_rng(20240501)))
    # Relative standard error of the mean of n exponential gaps is 1/sqrt(n) ~ 0.7%: 3% is ~4 SE.
    assert np.mean(gaps) == pytest.approx(1.0 / rate, rel=0.03)
    # Exponential kurtosis is 9, so the SE of the sample std is ~sqrt(8/n)/2 ~ 1%: 0.03 is ~3 SE.
    assert _cv(gaps) == pytest.approx(1.0, abs=0.03)
    # 1.63/sqrt(n) is the asymptotic 1% critical value of the KS statistic (fully specified CDF).
    assert _ks_statistic_exponential(gaps, rate) < 1.63 / math.sqrt(gaps.size)


@pytest.mark.parametrize("burstiness", [0.25, 4.0])
def test_gamma_gaps_keep_the_mean_and_scale_the_cv(burstiness: float) -> None:
    rate, n = 20.0, 100_000
    gaps = _gaps(send_offsets_s("gamma", rate, n, np.random.default_rng(7), burstiness))
    # SE of the mean is CV/sqrt(n) <= 2/316 ~ 0.6% of the mean: 3% is ~5 SE.
    assert np.mean(gaps) == pytest.approx(1.0 / rate, rel=0.03)
    # Gamma(0.25) has excess kurtosis 24, so the sample std's relative SE is
    # ~sqrt(26/n)/2 ~ 0.8% (smaller for shape 4): 5% is > 6 SE.
    assert _cv(gaps) == pytest.approx(1.0 / math.sqrt(burstiness), rel=0.05)


def test_gamma_with_burstiness_one_is_exponential() -> None:
    rate = 50.0
    gaps = _gaps(send_offsets_s("gamma", rate, 20_000, np.random.default_rng(11), 1.0))
    # Gamma(1, 1/rate) is Exp(rate); 1.63/sqrt(n) is the 1% KS critical value.
    assert _ks_statistic_exponential(gaps, rate) < 1.63 / math.sqrt(gaps.size)


def test_constant_gaps_are_exactly_one_over_rate() -> None:
    offsets = send_offsets_s("constant", 8.0, 1_000, np.random.default_rng(3))
    # Only float rounding separates the gaps from 0.125 s; allclose's defaults absorb it.
    assert np.allclose(_gaps(offsets), 0.125)
    assert offsets[-1] == pytest.approx(999 * 0.125)


@pytest.mark.parametrize("kind", ARRIVAL_KINDS)
def test_infinite_rate_sends_everything_at_zero(kind: ArrivalKind) -> None:
    offsets = send_offsets_s(kind, math.inf, 500, np.random.default_rng(5), burstiness=0.5)
    assert offsets.dtype == np.float64
    assert offsets.shape == (500,)
    assert np.all(offsets == 0.0)


@pytest.mark.parametrize("kind", ARRIVAL_KINDS)
@pytest.mark.parametrize("n", [1, 2, 1_000])
def test_offsets_start_at_zero_and_never_decrease(kind: ArrivalKind, n: int) -> None:
    offsets = send_offsets_s(kind, 10.0, n, np.random.default_rng(9), burstiness=0.5)
    assert offsets.dtype == np.float64
    assert offsets.shape == (n,)
    assert offsets[0] == 0.0
    assert np.all(np.diff(offsets) >= 0.0)


@pytest.mark.parametrize("kind", ["poisson", "gamma"])
def test_same_seed_repeats_and_other_seed_differs(kind: ArrivalKind) -> None:
    first = send_offsets_s(kind, 10.0, 100, np.random.default_rng(1234), 0.5)
    again = send_offsets_s(kind, 10.0, 100, np.random.default_rng(1234), 0.5)
    other = send_offsets_s(kind, 10.0, 100, np.random.default_rng(4321), 0.5)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate_rps": 0.0}, "rate"),
        ({"rate_rps": -1.0}, "rate"),
        ({"rate_rps": math.nan}, "rate"),
        ({"rate_rps": -math.inf}, "rate"),
        ({"rate_rps": 5e-324}, "too small"),
        ({"num_requests": 0}, "number of requests"),
        ({"num_requests": -3}, "number of requests"),
        ({"burstiness": 0.0}, "burstiness"),
        ({"burstiness": -1.0}, "burstiness"),
        ({"burstiness": math.nan}, "burstiness"),
        ({"burstiness": math.inf}, "burstiness"),
        ({"kind": "uniform"}, "unknown arrival kind"),
    ],
)
def test_bad_input_raises_value_error(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"kind": "poisson", "rate_rps": 10.0, "num_requests": 10}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        send_offsets_s(rng=np.random.default_rng(0), **args)


def test_bad_burstiness_is_rejected_for_every_kind() -> None:
    for kind in ARRIVAL_KINDS:
        with pytest.raises(ValueError, match="burstiness"):
            send_offsets_s(kind, 10.0, 10, np.random.default_rng(0), burstiness=0.0)


@pytest.mark.parametrize("kind", ARRIVAL_KINDS)
def test_a_duration_cuts_the_same_stream_a_count_draws(kind: ArrivalKind) -> None:
    within = send_offsets_within_s(kind, 200.0, 30.0, np.random.default_rng(5), 0.5)
    counted = send_offsets_s(kind, 200.0, within.size + 1, np.random.default_rng(5), 0.5)
    assert within.size > 0
    assert np.array_equal(within, counted[:-1])
    assert within[-1] < 30.0 <= counted[-1]  # the next request would be due at 30 s or later


def test_a_duration_of_constant_sends_is_exact() -> None:
    offsets = send_offsets_within_s("constant", 4.0, 2.0, np.random.default_rng(0))
    assert offsets.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]


def test_a_very_bursty_duration_is_still_the_counted_stream() -> None:
    # Gamma with shape 0.05 has gaps of CV 4.5: counts stray far from rate x duration.
    offsets = send_offsets_within_s("gamma", 1000.0, 5.0, np.random.default_rng(1), 0.05)
    assert np.all(np.diff(offsets) >= 0)
    assert offsets[-1] < 5.0
    counted = send_offsets_s("gamma", 1000.0, offsets.size, np.random.default_rng(1), 0.05)
    assert np.array_equal(offsets, counted)


@pytest.mark.parametrize(
    ("rate", "duration", "message"),
    [(math.inf, 5.0, "finite rate"), (10.0, 0.0, "duration > 0"), (10.0, math.inf, "finite")],
)
def test_a_duration_needs_a_finite_rate_and_time(
    rate: float, duration: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        send_offsets_within_s("poisson", rate, duration, np.random.default_rng(0))
