"""Compare two runs step by step: each headline figure's change, its 95% interval and a verdict.

Steps match when their target and target rate (req/s; inf matches inf) are equal. For every
matched pair, each figure gets `new - base`, a bootstrap interval of that difference over the
two steps' kept requests, and a verdict:
- latencies (TTFT, TPOT, E2E, per-token latency at p50 and p99, s) are worse when the interval
  lies wholly above 0 and the estimate rose by more than `threshold` of the base value, better
  when the interval lies wholly below 0 and it fell by more than `threshold`;
- throughputs (sequence req/s, output tok/s) are the mirror image: higher is better;
- the error rate (share of kept requests that failed) is worse when its interval lies wholly
  above 0 and it rose by more than `ERROR_RATE_MARGIN` (1 percentage point) in absolute terms
  (a relative change means nothing when the base had no error), better symmetrically;
- anything else is "no significant change".
Latency percentiles and the error rate resample each side's kept requests on its own.
Throughputs use a Poisson bootstrap: each kept success weighs Poisson(1) in each replicate and
the step's window (s) stays fixed, since resampling a fixed count would give no width at all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from loadgen.core.bootstrap import (
    CONFIDENCE,
    RESAMPLES,
    Interval,
    difference_interval,
    mean_of_rows,
    percentile_interval,
    percentile_of,
)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Verdict = Literal["better", "worse", "no significant change", "not measured"]

THRESHOLD = 0.05
# An error rate must move by more than this share of kept requests to count (1 percentage point).
ERROR_RATE_MARGIN = 0.01
LATENCY_COLUMNS = ("ttft_s", "tpot_s", "e2e_s", "per_token_latency_s")
PERCENTILES = (50, 99)
THROUGHPUTS = ("sequence_throughput_rps", "output_token_throughput_tps")
ERROR_RATE = "error_rate"
# Poisson weights are drawn in chunks of about this many values, to bound memory.
_CHUNK_VALUES = 4_000_000


class CompareError(ValueError):
    """Two runs that cannot be compared (no step matches)."""


@dataclass(frozen=True, slots=True)
class StepSample:
    """The kept requests of one step, as arrays.

    `ok` has one value per kept request; `tokens_out` and each `latencies_s` column (s, NaN
    where not measured) one per kept success; `window_s` is the step's throughput window (s,
    None without a kept success). `target` is the name steps are matched by, with the rate (and
    whether the step was synchronous: its rate is inf too).
    """

    target: str
    step: int
    target_rate_rps: float
    ok: BoolArray
    window_s: float | None
    tokens_out: FloatArray
    latencies_s: Mapping[str, FloatArray]
    synchronous: bool = False


@dataclass(frozen=True, slots=True)
class FigureComparison:
    """One figure of a matched pair of steps: both values, `new - base` with its interval, the
    relative change of the estimate (inf when the base is 0) and the verdict. Units: the name's."""

    name: str
    higher_is_better: bool
    base: float | None
    new: float | None
    difference: Interval | None
    relative_change: float | None
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class StepKey:
    """Which step: its target, number and target rate (req/s)."""

    target: str
    step: int
    target_rate_rps: float


@dataclass(frozen=True, slots=True)
class StepComparison:
    """Every figure of one matched pair of steps."""

    target: str
    target_rate_rps: float
    base_step: int
    new_step: int
    figures: tuple[FigureComparison, ...]


@dataclass(frozen=True, slots=True)
class Comparison:
    """Every matched pair of steps, the steps that matched none, and the rule's parameters."""

    threshold: float
    confidence: float
    seed: int
    steps: tuple[StepComparison, ...]
    unmatched_base: tuple[StepKey, ...]
    unmatched_new: tuple[StepKey, ...]

    @property
    def worse(self) -> bool:
        """True when any figure of any step is significantly worse beyond the threshold."""
        return any(f.verdict == "worse" for step in self.steps for f in step.figures)


def figure_names() -> tuple[str, ...]:
    """The compared figures in order, e.g. "ttft_p99_s" for the p99 of TTFT (s)."""
    latencies = tuple(latency_name(column, q) for column in LATENCY_COLUMNS for q in PERCENTILES)
    return (*THROUGHPUTS, *latencies, ERROR_RATE)


def latency_name(column: str, percentile: int) -> str:
    """The figure name of a latency column's percentile: ("ttft_s", 99) -> "ttft_p99_s"."""
    return f"{column.removesuffix('_s')}_p{percentile}_s"


def parse_threshold(text: str) -> float:
    """A share given as "5%" or "0.05" (ValueError unless finite, >= 0, and a plain share < 1)."""
    raw = text.strip()
    percent = raw.endswith("%")
    try:
        value = float(raw.removesuffix("%").strip())
    except ValueError:
        raise ValueError(f"threshold {text!r} is not a share; give it as 5% or 0.05") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"threshold {text!r} must be a finite share >= 0, as 5% or 0.05")
    if percent:
        return value / 100
    if value >= 1:
        raise ValueError(f"threshold {text!r} is ambiguous; give it as {raw}% or as a share < 1")
    return value


def verdict(
    difference: Interval, change: float, margin: float, *, higher_is_better: bool
) -> Verdict:
    """The verdict on `difference` (new - base) whose `change` must pass `margin` to count."""
    if difference.low > 0 and change > margin:
        return "better" if higher_is_better else "worse"
    if difference.high < 0 and change < -margin:
        return "worse" if higher_is_better else "better"
    return "no significant change"


def relative_change(base: float, new: float) -> float:
    """`(new - base) / |base|`; 0 when both are 0, and +-inf from a base of 0."""
    if base == 0:
        return 0.0 if new == 0 else math.copysign(math.inf, new)
    return (new - base) / abs(base)


def match_steps(
    base: Sequence[StepSample], new: Sequence[StepSample]
) -> tuple[list[tuple[StepSample, StepSample]], list[StepSample], list[StepSample]]:
    """Pairs of steps with equal target and target rate (in run order), and the unmatched."""
    pending: dict[tuple[str, float, bool], list[StepSample]] = {}
    for sample in new:
        pending.setdefault(_match_key(sample), []).append(sample)
    pairs: list[tuple[StepSample, StepSample]] = []
    unmatched_base: list[StepSample] = []
    for sample in base:
        queue = pending.get(_match_key(sample))
        if queue:
            pairs.append((sample, queue.pop(0)))
        else:
            unmatched_base.append(sample)
    paired = {id(pair[1]) for pair in pairs}
    return pairs, unmatched_base, [sample for sample in new if id(sample) not in paired]


def compare_steps(
    base: Sequence[StepSample],
    new: Sequence[StepSample],
    *,
    threshold: float = THRESHOLD,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
) -> Comparison:
    """Match the steps of two runs and compare each pair (CompareError when none matches)."""
    if threshold < 0:
        raise ValueError(f"threshold must be a share >= 0, got {threshold}")
    pairs, unmatched_base, unmatched_new = match_steps(base, new)
    if not pairs:
        raise CompareError(
            f"no step matches (same target and target rate): the base has {_keys_text(base)}, "
            f"the new run {_keys_text(new)}"
        )
    steps = tuple(
        compare_step(
            b, n, threshold=threshold, seed=seed, confidence=confidence, resamples=resamples
        )
        for b, n in pairs
    )
    unmatched = tuple(_key(s) for s in unmatched_base), tuple(_key(s) for s in unmatched_new)
    return Comparison(threshold, confidence, seed, steps, *unmatched)


def compare_step(
    base: StepSample,
    new: StepSample,
    *,
    threshold: float = THRESHOLD,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
) -> StepComparison:
    """Every figure of one pair of steps; each figure draws from its own seeded generator."""

    def rng(figure: int) -> np.random.Generator:
        return np.random.default_rng([seed, base.step, figure])

    figures = [
        _throughput(base, new, name, rng(i), threshold, confidence, resamples)
        for i, name in enumerate(THROUGHPUTS)
    ]
    for column in LATENCY_COLUMNS:
        for q in PERCENTILES:
            figures.append(
                _latency(base, new, column, q, rng(len(figures)), threshold, confidence, resamples)
            )
    figures.append(_error_rate(base, new, rng(len(figures)), confidence, resamples))
    return StepComparison(new.target, base.target_rate_rps, base.step, new.step, tuple(figures))


def _latency(
    base: StepSample,
    new: StepSample,
    column: str,
    q: int,
    rng: np.random.Generator,
    threshold: float,
    confidence: float,
    resamples: int,
) -> FigureComparison:
    """The `q`-th percentile (s) of a latency column over both steps' measured kept successes."""
    name = latency_name(column, q)
    base_s, new_s = _measured(base, column), _measured(new, column)
    if base_s.size == 0 or new_s.size == 0:
        return FigureComparison(name, False, None, None, None, None, "not measured")
    difference = difference_interval(
        base_s, new_s, percentile_of(q), rng, confidence=confidence, resamples=resamples
    )
    base_value = float(np.percentile(base_s, q))
    new_value = float(np.percentile(new_s, q))
    change = relative_change(base_value, new_value)
    call = verdict(difference, change, threshold, higher_is_better=False)
    return FigureComparison(name, False, base_value, new_value, difference, change, call)


def _measured(sample: StepSample, column: str) -> FloatArray:
    values = np.asarray(sample.latencies_s[column], dtype=np.float64)
    return values[~np.isnan(values)]


def _error_rate(
    base: StepSample, new: StepSample, rng: np.random.Generator, confidence: float, resamples: int
) -> FigureComparison:
    """The share of kept requests that failed; its margin is absolute, not relative."""
    if base.ok.size == 0 or new.ok.size == 0:
        return FigureComparison(ERROR_RATE, False, None, None, None, None, "not measured")
    base_failed = (~base.ok).astype(np.float64)
    new_failed = (~new.ok).astype(np.float64)
    difference = difference_interval(
        base_failed, new_failed, mean_of_rows, rng, confidence=confidence, resamples=resamples
    )
    base_rate, new_rate = float(base_failed.mean()), float(new_failed.mean())
    call = verdict(difference, new_rate - base_rate, ERROR_RATE_MARGIN, higher_is_better=False)
    change = relative_change(base_rate, new_rate)
    return FigureComparison(ERROR_RATE, False, base_rate, new_rate, difference, change, call)


def _throughput(
    base: StepSample,
    new: StepSample,
    name: str,
    rng: np.random.Generator,
    threshold: float,
    confidence: float,
    resamples: int,
) -> FigureComparison:
    """Sequence (req/s) or output token (tok/s) throughput, by the Poisson bootstrap."""
    base_counts, new_counts = _counts(base, name), _counts(new, name)
    base_value = _rate(float(base_counts.sum()), base.window_s)
    new_value = _rate(float(new_counts.sum()), new.window_s)
    replicates = _poisson_rates(new_counts, new.window_s, rng, resamples) - _poisson_rates(
        base_counts, base.window_s, rng, resamples
    )
    difference = percentile_interval(new_value - base_value, replicates, confidence)
    change = relative_change(base_value, new_value)
    call = verdict(difference, change, threshold, higher_is_better=True)
    return FigureComparison(name, True, base_value, new_value, difference, change, call)


def _counts(sample: StepSample, name: str) -> FloatArray:
    """What each kept success adds to the throughput `name`: one request, or its tokens."""
    if name == "sequence_throughput_rps":
        return np.ones(int(sample.ok.sum()), dtype=np.float64)
    return np.asarray(sample.tokens_out, dtype=np.float64)


def _rate(count: float, window_s: float | None) -> float:
    """`count` per second of the window; 0.0 when there is no (or an empty) window."""
    return count / window_s if window_s is not None and window_s > 0 else 0.0


def _poisson_rates(
    counts: FloatArray, window_s: float | None, rng: np.random.Generator, resamples: int
) -> FloatArray:
    """`resamples` replicates of `sum(w * counts) / window_s`, each w drawn from Poisson(1)."""
    out = np.zeros(resamples, dtype=np.float64)
    if counts.size == 0 or window_s is None or window_s <= 0:
        return out
    rows_per_chunk = max(1, _CHUNK_VALUES // counts.size)
    for start in range(0, resamples, rows_per_chunk):
        rows = min(rows_per_chunk, resamples - start)
        weights = rng.poisson(1.0, size=(rows, counts.size))
        out[start : start + rows] = weights @ counts / window_s
    return out


def _match_key(sample: StepSample) -> tuple[str, float, bool]:
    """What pairs steps of the two runs: target, target rate, synchronous or not."""
    return sample.target, sample.target_rate_rps, sample.synchronous


def _key(sample: StepSample) -> StepKey:
    return StepKey(sample.target, sample.step, sample.target_rate_rps)


def _keys_text(samples: Sequence[StepSample]) -> str:
    """The steps' targets and rates for an error message, e.g. "10, 40 req/s"."""
    by_target: dict[str, list[str]] = {}
    for sample in samples:
        rate = "inf" if math.isinf(sample.target_rate_rps) else f"{sample.target_rate_rps:g}"
        by_target.setdefault(sample.target, []).append(rate)
    parts = [
        f"{target + ': ' if target else ''}{', '.join(rates)} req/s"
        for target, rates in by_target.items()
    ]
    return "; ".join(parts) or "no step"
