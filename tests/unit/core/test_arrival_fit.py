"""Tests for loadgen.core.arrival_fit: the KS test of send gaps and the dispersion of counts.

Sends are drawn from seeded generators; tolerances are stated where a statistic varies.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from loadgen.core.arrival_fit import count_dispersion, gap_ks, kolmogorov_pvalue
from loadgen.core.arrivals import send_offsets_s
from loadgen.core.latency import FloatArray, IntArray

NS = 1_000_000_000


def sends_ns(offsets_s: FloatArray) -> IntArray:
    return np.rint(offsets_s * NS).astype(np.int64)


def poisson(rate: float, count: int, seed: int) -> IntArray:
    return sends_ns(send_offsets_s("poisson", rate, count, np.random.default_rng(seed)))


# Quantiles of Kolmogorov's distribution from the published tables: P(K > x).
@pytest.mark.parametrize(
    ("x", "pvalue"), [(0.8276, 0.50), (1.2238, 0.10), (1.3581, 0.05), (1.6276, 0.01)]
)
def test_the_pvalue_follows_kolmogorovs_table(x: float, pvalue: float) -> None:
    n = 10**8  # so large that Stephens' small-sample correction does not matter
    statistic = x / (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n))
    assert kolmogorov_pvalue(statistic, n) == pytest.approx(pvalue, abs=0.001)


def test_the_pvalue_runs_from_one_to_zero() -> None:
    values = [kolmogorov_pvalue(d, 100) for d in (0.0, 0.05, 0.1, 0.2, 0.3)]
    assert values[0] == 1.0
    assert values == sorted(values, reverse=True)
    assert values[-1] < 1e-6


def test_poisson_sends_pass_against_their_own_rate() -> None:
    result = gap_ks(poisson(100.0, 5000, seed=3), 100.0)
    assert result is not None
    statistic, pvalue = result
    # Seeded: for a true Poisson stream p is uniform on [0, 1]; this draw is well inside.
    assert pvalue > 0.05
    assert statistic < 1.36 / math.sqrt(4999)


def test_poisson_sends_fail_against_another_rate() -> None:
    result = gap_ks(poisson(100.0, 5000, seed=3), 150.0)
    assert result is not None
    assert result[1] < 1e-9


def test_evenly_spaced_sends_are_not_poisson() -> None:
    even = sends_ns(np.arange(2000) / 100.0)
    result = gap_ks(even, 100.0)
    assert result is not None
    # Every gap is 10 ms: the exponential CDF there is 1 - e^-1 = 0.632, the sample's 1.
    assert result[0] == pytest.approx(1 - math.exp(-1.0), abs=1e-6)
    assert count_dispersion(even) == pytest.approx(0.0, abs=0.01)


def test_no_test_without_a_finite_rate_or_enough_sends() -> None:
    sends = poisson(100.0, 100, seed=1)
    assert gap_ks(sends, math.inf) is None
    assert gap_ks(sends[:2], 100.0) is None
    assert count_dispersion(sends[:1]) is None
    assert count_dispersion(sends_ns(np.array([0.0, 0.5]))) is None  # 5 windows: too few


@pytest.mark.parametrize("shards", [1, 2, 4])
def test_independent_shards_merge_into_poisson(shards: int) -> None:
    # W streams at rate / W from independent seeds: their superposition is Poisson at rate.
    rate, total = 400.0, 20_000
    streams = [poisson(rate / shards, total // shards, seed=100 + i) for i in range(shards)]
    merged = np.sort(np.concatenate(streams))
    span = min(int(stream.max()) for stream in streams)
    merged = merged[merged <= span]  # where every shard was still sending
    dispersion = count_dispersion(merged)
    assert dispersion is not None
    # About 500 windows of mean 40: the sample index of dispersion is within 1 +- 0.13
    # (two standard errors); the bound is the 0.8-1.25.
    assert 0.8 <= dispersion <= 1.25
    result = gap_ks(merged, rate)
    assert result is not None
    assert result[1] > 0.01


def test_shards_in_lock_step_come_in_bursts() -> None:
    # The peers' mistake: every shard seeded alike, so all send at the same instants.
    rate, shards = 400.0, 4
    one = poisson(rate / shards, 5000, seed=7)
    merged = np.sort(np.concatenate([one + i * 1000 for i in range(shards)]))  # 1 us apart
    dispersion = count_dispersion(merged)
    assert dispersion is not None
    assert dispersion > 3.0  # about W: every count is a multiple of the burst size
    result = gap_ks(merged, rate)
    assert result is not None
    assert result[1] < 1e-9
