"""Arrival schedules: send offsets (s) for one step of an open-loop load test."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt

ArrivalKind = Literal["poisson", "gamma", "constant"]
ARRIVAL_KINDS: tuple[ArrivalKind, ...] = ("poisson", "gamma", "constant")


def send_offsets_s(
    kind: ArrivalKind,
    rate_rps: float,
    num_requests: int,
    rng: np.random.Generator,
    burstiness: float = 1.0,
) -> npt.NDArray[np.float64]:
    """Absolute send offsets (s) from the step start for `num_requests` requests at `rate_rps`."""
    _check_inputs(kind, rate_rps, num_requests, burstiness)
    if math.isinf(rate_rps):
        return np.zeros(num_requests, dtype=np.float64)
    if kind == "constant":
        # Multiplying the index avoids the rounding drift a cumulative sum would build up.
        return np.arange(num_requests, dtype=np.float64) / rate_rps
    gaps = _draw_gaps_s(kind, rate_rps, num_requests - 1, rng, burstiness)
    offsets = np.zeros(num_requests, dtype=np.float64)
    np.cumsum(gaps, out=offsets[1:])
    return offsets


def send_offsets_within_s(
    kind: ArrivalKind,
    rate_rps: float,
    duration_s: float,
    rng: np.random.Generator,
    burstiness: float = 1.0,
) -> npt.NDArray[np.float64]:
    """Send offsets (s) of every request the process schedules in `[0, duration_s)`.

    The same stream as `send_offsets_s` with the same `rng`, cut at the duration: a duration
    and a count that reach the same request give the same schedule up to it.
    """
    _check_inputs(kind, rate_rps, 1, burstiness)
    if not (math.isfinite(rate_rps) and math.isfinite(duration_s) and duration_s > 0):
        raise ValueError("a step duration needs a finite rate and a finite duration > 0 s")
    expected = rate_rps * duration_s
    if kind == "constant":
        offsets = np.arange(math.ceil(expected) + 1, dtype=np.float64) / rate_rps
        return offsets[offsets < duration_s]
    # Ten standard deviations of the count beyond its mean: one draw is almost always enough.
    chunk = int(expected + 10 * math.sqrt(expected / min(burstiness, 1.0)) + 16)
    offsets = np.zeros(1, dtype=np.float64)
    while offsets[-1] < duration_s:
        gaps = _draw_gaps_s(kind, rate_rps, chunk, rng, burstiness)
        offsets = np.concatenate((offsets, offsets[-1] + np.cumsum(gaps)))
    return offsets[offsets < duration_s]


def _draw_gaps_s(
    kind: ArrivalKind,
    rate_rps: float,
    num_gaps: int,
    rng: np.random.Generator,
    burstiness: float,
) -> npt.NDArray[np.float64]:
    """Random inter-arrival gaps (s) with mean 1/`rate_rps`."""
    scale_s = _gap_scale_s(kind, rate_rps, burstiness)
    if kind == "gamma":
        return rng.gamma(shape=burstiness, scale=scale_s, size=num_gaps)
    return rng.exponential(scale=scale_s, size=num_gaps)


def _gap_scale_s(kind: str, rate_rps: float, burstiness: float) -> float:
    """Scale parameter (s) of the gap distribution; inf when it overflows."""
    # Gamma with shape b and scale 1/(rate*b) keeps the mean gap at 1/rate for every b.
    denominator = rate_rps * burstiness if kind == "gamma" else rate_rps
    return 1.0 / denominator if denominator > 0 else math.inf


def _check_inputs(kind: str, rate_rps: float, num_requests: int, burstiness: float) -> None:
    """Raise ValueError with a user-facing message when any argument is out of range."""
    if kind not in ARRIVAL_KINDS:
        expected = ", ".join(ARRIVAL_KINDS)
        raise ValueError(f"unknown arrival kind {kind!r}; expected one of: {expected}")
    # `not x > 0` also rejects NaN, which compares false with everything.
    if not rate_rps > 0:
        raise ValueError(
            f"rate must be a positive number of requests per second or inf, got {rate_rps!r}"
        )
    if num_requests < 1:
        raise ValueError(f"number of requests must be at least 1, got {num_requests!r}")
    if not (math.isfinite(burstiness) and burstiness > 0):
        raise ValueError(f"burstiness must be a finite number > 0, got {burstiness!r}")
    if not math.isfinite(_gap_scale_s(kind, rate_rps, burstiness)):
        raise ValueError(
            f"rate {rate_rps!r} req/s with burstiness {burstiness!r} is too small:"
            " the gap between requests overflows"
        )
