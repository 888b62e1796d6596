"""How Poisson a step's sends really were: a KS test of the gaps, and the dispersion of counts.

Pure (numpy): actual send times in, statistics out. A step's sends should follow its arrival
process; these show when they do not: a client too slow to keep the schedule, or several
senders stepping in lock step (whose sum passes a test of the gaps but comes in bursts).
"""

from __future__ import annotations

import math

import numpy as np

from loadgen.core.latency import NS_PER_S, IntArray

DISPERSION_WINDOW_S = 0.1
# Fewer windows than this say nothing about dispersion.
_MIN_WINDOWS = 10
_SERIES_TERMS = 100


def gap_ks(send_ns: IntArray, rate_rps: float) -> tuple[float, float] | None:
    """Kolmogorov-Smirnov statistic and p-value of the gaps between sends against Exp(rate).

    The gaps are between successive sends in time order (s); None without a finite rate or
    with fewer than two gaps.
    """
    if not (math.isfinite(rate_rps) and rate_rps > 0) or send_ns.size < 3:
        return None
    gaps_s = np.sort(np.diff(np.sort(send_ns)) / NS_PER_S)
    n = gaps_s.size
    expected = -np.expm1(-rate_rps * gaps_s)  # the exponential CDF at each gap
    above = np.arange(1, n + 1) / n - expected
    below = expected - np.arange(n) / n
    statistic = float(max(above.max(), below.max()))
    return statistic, kolmogorov_pvalue(statistic, n)


def kolmogorov_pvalue(statistic: float, n: int) -> float:
    """P(D >= statistic) for a sample of n, by Kolmogorov's limit with Stephens' correction."""
    x = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * statistic
    if x <= 0:
        return 1.0
    k = np.arange(1, _SERIES_TERMS + 1, dtype=np.float64)
    if x < 1.0:
        # The alternating series converges slowly here; this form converges fast.
        terms = np.exp(-((2 * k - 1) ** 2) * math.pi**2 / (8 * x * x))
        cdf = math.sqrt(2 * math.pi) / x * float(terms.sum())
        return min(max(1.0 - cdf, 0.0), 1.0)
    signs = np.where(k % 2 == 1, 1.0, -1.0)
    total = 2.0 * float((signs * np.exp(-2.0 * k * k * x * x)).sum())
    return min(max(total, 0.0), 1.0)


def count_dispersion(send_ns: IntArray, window_s: float = DISPERSION_WINDOW_S) -> float | None:
    """Variance over mean of the number of sends in successive windows of `window_s` (s).

    1 for a Poisson process at any rate; near 0 for evenly spaced sends; about W for W senders
    that send at the same instants. Over the whole windows between the first and last send;
    None with fewer than ten.
    """
    if send_ns.size < 2:
        return None
    window_ns = round(window_s * NS_PER_S)
    start = int(send_ns.min())
    windows = (int(send_ns.max()) - start) // window_ns
    if windows < _MIN_WINDOWS:
        return None
    slots = (send_ns - start) // window_ns
    counts = np.bincount(slots[slots < windows], minlength=windows)
    mean = float(counts.mean())
    return float(counts.var()) / mean if mean > 0 else None
