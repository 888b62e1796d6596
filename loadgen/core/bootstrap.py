"""Confidence intervals of step figures: seeded bootstrap over requests, Wilson, Student t.

A percentile bootstrap resamples the kept requests with replacement `resamples` times and takes
the statistic of each resample; the interval is the middle `confidence` share of those.
Everything here is pure: the caller passes the seeded `numpy.random.Generator`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
# A statistic of each row of a (resamples, n) array: one value per row.
RowStatistic = Callable[[FloatArray], FloatArray]

CONFIDENCE = 0.95
RESAMPLES = 2000
# Resampled rows are drawn in chunks of about this many values, to bound memory.
_CHUNK_VALUES = 4_000_000
# Two-sided 97.5% Student t quantiles by degrees of freedom (1..30); the normal's beyond.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip
_Z975 = 1.959964


@dataclass(frozen=True, slots=True)
class Interval:
    """An estimate and its confidence interval `[low, high]`, in the estimate's units."""

    estimate: float
    low: float
    high: float

    def contains(self, value: float) -> bool:
        """True when `value` lies in the interval (ends included)."""
        return self.low <= value <= self.high


def percentile_of(q: float) -> RowStatistic:
    """The statistic "the q-th percentile (0-100, linear) of each row"."""

    def statistic(rows: FloatArray) -> FloatArray:
        return np.asarray(np.percentile(rows, q, axis=-1), dtype=np.float64)

    return statistic


def mean_of_rows(rows: FloatArray) -> FloatArray:
    """The statistic "the mean of each row"."""
    return np.asarray(rows.mean(axis=-1), dtype=np.float64)


def bootstrap_interval(
    values: npt.ArrayLike,
    statistic: RowStatistic,
    rng: np.random.Generator,
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
) -> Interval:
    """`statistic` of `values` and its percentile-bootstrap interval (ValueError when empty)."""
    sample = _sample(values)
    estimate = float(statistic(sample[np.newaxis, :])[0])
    replicates = _replicates(sample, statistic, rng, resamples)
    return percentile_interval(estimate, replicates, confidence)


def difference_interval(
    base: npt.ArrayLike,
    new: npt.ArrayLike,
    statistic: RowStatistic,
    rng: np.random.Generator,
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
) -> Interval:
    """`statistic(new) - statistic(base)` and its interval, each sample resampled on its own."""
    base_sample, new_sample = _sample(base), _sample(new)
    estimate = float(
        statistic(new_sample[np.newaxis, :])[0] - statistic(base_sample[np.newaxis, :])[0]
    )
    replicates = _replicates(new_sample, statistic, rng, resamples) - _replicates(
        base_sample, statistic, rng, resamples
    )
    return percentile_interval(estimate, replicates, confidence)


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> Interval:
    """A proportion `successes / trials` and its Wilson score interval (ValueError for none)."""
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(
            f"a proportion needs 0 <= successes <= trials > 0, got {successes}/{trials}"
        )
    z = _normal_quantile(confidence)
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials))
    half /= 1 + z * z / trials
    # At 0 or all successes an end is exactly 0 or 1; float error would leave it a hair off.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Interval(share, low, high)


def mean_interval(values: npt.ArrayLike) -> Interval:
    """The mean of `values` and its two-sided 95% Student t interval (one value: no width)."""
    sample = _sample(values)
    mean = float(sample.mean())
    if sample.size == 1:
        return Interval(mean, mean, mean)
    dof = sample.size - 1
    t = _T975[dof - 1] if dof <= len(_T975) else _t975_expansion(dof)
    half = t * float(sample.std(ddof=1)) / math.sqrt(sample.size)
    return Interval(mean, mean - half, mean + half)


def _t975_expansion(dof: int) -> float:
    """Student's t 97.5% quantile beyond the table, by the Cornish-Fisher expansion in 1/dof
    (within 1e-5 of the exact value from 30 degrees of freedom on)."""
    z = _Z975
    terms = (
        (z**3 + z) / 4,
        (5 * z**5 + 16 * z**3 + 3 * z) / 96,
        (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
    )
    return z + sum(term / float(dof) ** (power + 1) for power, term in enumerate(terms))


def _sample(values: npt.ArrayLike) -> FloatArray:
    sample = np.asarray(values, dtype=np.float64).ravel()
    if sample.size == 0:
        raise ValueError("no values to estimate from")
    return sample


def _replicates(
    sample: FloatArray, statistic: RowStatistic, rng: np.random.Generator, resamples: int
) -> FloatArray:
    """`statistic` of `resamples` resamples of `sample` (with replacement, same size)."""
    n = sample.size
    rows_per_chunk = max(1, _CHUNK_VALUES // n)
    out = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, rows_per_chunk):
        rows = min(rows_per_chunk, resamples - start)
        picks = rng.integers(0, n, size=(rows, n))
        out[start : start + rows] = statistic(sample[picks])
    return out


def percentile_interval(estimate: float, replicates: FloatArray, confidence: float) -> Interval:
    """`estimate` with the middle `confidence` share of its bootstrap `replicates`."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(replicates, (tail, 100 - tail))
    return Interval(estimate, float(low), float(high))


def _normal_quantile(confidence: float) -> float:
    """The standard normal quantile of a two-sided `confidence` interval."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    return NormalDist().inv_cdf((1 + confidence) / 2)
