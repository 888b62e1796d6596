"""Capacity under SLOs: judge a step against them, search rates for the highest that holds (pure).

An SLO is a percentile (or mean) of a per-request latency, or the error rate, with a limit:
`ttft_p99=0.5` says the step's p99 TTFT over its kept successes is at most 0.5 s. A step's
figure gets a seeded bootstrap 95% interval over its kept requests (Wilson's for the error
rate): the SLO holds when the whole interval is within the limit, fails when the whole interval
is beyond it, and is undecided otherwise. A percentile with fewer than `MIN_TAIL` kept
successes beyond it (a mean with fewer than `MIN_MEAN_SAMPLES`) cannot be judged by a
bootstrap, and is undecided too.

The search brackets the capacity by doubling (or halving) from a start rate, then bisects the
bracket geometrically until its ends are within the resolution. An undecided rate is run again
with twice the requests, up to `max_scale` times them; still undecided, it counts as failing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from loadgen.core.bootstrap import bootstrap_interval, mean_of_rows, percentile_of, wilson_interval
from loadgen.core.latency import request_latencies
from loadgen.core.records import RequestRecord, SloCheck, StepSummary, StepVerdict, Verdict
from loadgen.core.stats import key_values
from loadgen.core.sweep import StepOrder, SweepPolicy

# Per-request latencies an SLO can bound, by the name used in SLO keys.
SLO_METRICS = {
    "ttft": "ttft_s",
    "ttfa": "ttfa_s",
    "tpot": "tpot_s",
    "e2e": "e2e_s",
    "per_token": "per_token_latency_s",
}
ERROR_RATE = "error_rate"
# A search with no error-rate SLO still asks that at most this share of requests fail.
DEFAULT_ERROR_RATE = 0.01
MIN_TAIL = 5
MIN_MEAN_SAMPLES = 10
# The search halves a failing start rate at most this many times before giving up.
_MAX_HALVINGS = 10
_KEY = re.compile(r"(?P<metric>[a-z0-9_]+?)_(?:p(?P<q>\d+(?:\.\d+)?)|(?P<mean>mean))")


@dataclass(frozen=True, slots=True)
class CapacitySlo:
    """One SLO: `field` is a latency column (s) or "error_rate"; `percentile` 0-100, None for
    the mean (and for the error rate); `limit` in the figure's units."""

    key: str
    field: str
    percentile: float | None
    limit: float


@dataclass(frozen=True, slots=True)
class CapacityAnswer:
    """What a search found: the highest rate that held (req/s) and the lowest that did not.

    `capacity_rps` is None when no rate held, `fails_rps` None when no rate failed; `converged`
    when both are known and within `resolution` (a share) of each other.
    """

    capacity_rps: float | None
    fails_rps: float | None
    resolution: float
    converged: bool
    steps: int


def parse_capacity_slos(text: str) -> dict[str, float]:
    """`"ttft_p99=0.5,error_rate=0.01"` as {key: limit}; ValueError naming a bad item."""
    if not text.strip():
        raise ValueError("no SLO given: expected KEY=LIMIT pairs such as ttft_p99=0.5")
    slos: dict[str, float] = {}
    for key, raw in key_values(text, "LIMIT"):
        try:
            limit = float(raw)
        except ValueError:
            raise ValueError(f"SLO {key!r}: {raw.strip()!r} is not a number") from None
        slos[key] = limit
        slo = capacity_slo(key, limit)
        same = [k for k in slos if k != key and _meaning(capacity_slo(k, slos[k])) == _meaning(slo)]
        if same:
            raise ValueError(f"SLOs {same[0]!r} and {key!r} say the same thing")
    return slos


def _meaning(slo: CapacitySlo) -> tuple[str, float | None]:
    """What an SLO bounds: `ttft_p99` and `ttft_p99.0` bound the same figure."""
    return slo.field, slo.percentile


def capacity_slo(key: str, limit: float) -> CapacitySlo:
    """The SLO `key` (`ttft_p99`, `e2e_mean`, `error_rate`) at `limit`; ValueError if unknown."""
    if key == ERROR_RATE:
        if not 0 < limit < 1:
            raise ValueError(
                f"SLO {key!r}: a share of requests in (0, 1), got {limit!r} (no finite step "
                "can show that no request ever fails: use a small share such as 0.001)"
            )
        return CapacitySlo(key, ERROR_RATE, None, limit)
    match = _KEY.fullmatch(key)
    if match is None or match["metric"] not in SLO_METRICS:
        known = ", ".join(f"{name}_pNN" for name in SLO_METRICS)
        raise ValueError(f"unknown SLO {key!r}: expected {known}, NAME_mean or {ERROR_RATE}")
    percentile = None if match["mean"] else float(match["q"])
    if percentile is not None and not 0 < percentile < 100:
        raise ValueError(f"SLO {key!r}: the percentile must lie between 0 and 100")
    if not (math.isfinite(limit) and limit > 0):
        raise ValueError(f"SLO {key!r}: the limit must be a finite number of seconds > 0")
    return CapacitySlo(key, SLO_METRICS[match["metric"]], percentile, limit)


def search_slos(slos: Mapping[str, float]) -> tuple[CapacitySlo, ...]:
    """The SLOs a search judges by: those given, and the default error rate if none was."""
    given = dict(slos)
    given.setdefault(ERROR_RATE, DEFAULT_ERROR_RATE)
    return tuple(capacity_slo(key, limit) for key, limit in given.items())


def judge_step(
    kept: Sequence[RequestRecord],
    slos: Sequence[CapacitySlo],
    rng: np.random.Generator,
    *,
    over_saturated: bool = False,
) -> StepVerdict:
    """The verdict of a step on its `kept` requests under `slos` (bootstrap drawn from `rng`)."""
    checks = tuple(_check(kept, slo, rng) for slo in slos)
    verdicts = {check.verdict for check in checks}
    verdict: Verdict = "holds"
    if over_saturated or "fails" in verdicts:
        verdict = "fails"
    elif "undecided" in verdicts:
        verdict = "undecided"
    return StepVerdict(verdict, checks)


def _check(kept: Sequence[RequestRecord], slo: CapacitySlo, rng: np.random.Generator) -> SloCheck:
    """One SLO judged on the kept requests."""
    if not kept:
        return SloCheck(slo.key, slo.limit, None, None, None, "undecided", "no request kept")
    if slo.field == ERROR_RATE:
        failed = sum(not record.ok for record in kept)
        interval = wilson_interval(failed, len(kept))
        check = _judged(slo, interval.estimate, interval.low, interval.high)
        if check.verdict == "undecided":
            why = f"{failed} of {len(kept)} failed: too few requests to tell from {slo.limit:.2%}"
            check = replace(check, why=why)
        return check
    column = request_latencies(kept).column(slo.field)
    values = column[~np.isnan(column)]
    if values.size == 0:
        return SloCheck(slo.key, slo.limit, None, None, None, "fails", "no request measured it")
    if slo.percentile is None and values.size < MIN_MEAN_SAMPLES:
        why = f"{values.size} measured: too few for a mean"
        return SloCheck(slo.key, slo.limit, float(values.mean()), None, None, "undecided", why)
    if slo.percentile is not None and values.size * (1 - slo.percentile / 100) < MIN_TAIL:
        why = f"{values.size} measured: too few beyond p{slo.percentile:g} to judge"
        estimate = float(np.percentile(values, slo.percentile))
        return SloCheck(slo.key, slo.limit, estimate, None, None, "undecided", why)
    statistic = mean_of_rows if slo.percentile is None else percentile_of(slo.percentile)
    interval = bootstrap_interval(values, statistic, rng)
    return _judged(slo, interval.estimate, interval.low, interval.high)


def _judged(slo: CapacitySlo, estimate: float, low: float, high: float) -> SloCheck:
    verdict: Verdict = "undecided"
    if high <= slo.limit:
        verdict = "holds"
    elif low > slo.limit:
        verdict = "fails"
    return SloCheck(slo.key, slo.limit, estimate, low, high, verdict)


def capacity_search(
    start_rps: float, resolution: float, max_steps: int, max_scale: int
) -> SweepPolicy:
    """The search policy: rates from `start_rps` (req/s) until the bracket is within
    `resolution` (a share, e.g. 0.05) or `max_steps` steps ran; undecided steps rerun longer."""
    if not (math.isfinite(start_rps) and start_rps > 0):
        raise ValueError(f"a capacity search starts at a finite rate > 0, got {start_rps!r}")
    if not 0 < resolution < 1:
        raise ValueError(f"resolution must be a share in (0, 1), got {resolution!r}")
    return _search(start_rps, resolution, max_steps, max_scale)


def _search(start_rps: float, resolution: float, max_steps: int, max_scale: int) -> SweepPolicy:
    """Bracket, then bisect; each step's summary (with its verdict) decides the next rate."""
    holds_rps: float | None = None
    fails_rps: float | None = None
    rate_rps, scale = start_rps, 1
    for _ in range(max_steps):
        summary = yield StepOrder(rate_rps, scale)
        if summary.interrupted or summary.slo is None:
            return
        verdict = summary.slo.verdict
        if verdict == "undecided" and scale * 2 <= max_scale:
            scale *= 2
            continue
        scale = 1
        if verdict == "holds":
            holds_rps = max(holds_rps or rate_rps, rate_rps)
        else:
            fails_rps = min(fails_rps or rate_rps, rate_rps)
        next_rps = _next_rate(holds_rps, fails_rps, resolution, start_rps)
        if next_rps is None:
            return
        rate_rps = next_rps


def _next_rate(
    holds_rps: float | None, fails_rps: float | None, resolution: float, start_rps: float
) -> float | None:
    """Double while nothing failed, halve while nothing held, then bisect; None when done."""
    if fails_rps is None and holds_rps is not None:
        return holds_rps * 2
    if holds_rps is None and fails_rps is not None:
        halved = fails_rps / 2
        return halved if halved >= start_rps / 2**_MAX_HALVINGS else None
    if holds_rps is None or fails_rps is None or fails_rps <= holds_rps * (1 + resolution):
        return None
    return math.sqrt(holds_rps * fails_rps)


def capacity_answer(steps: Sequence[StepSummary], resolution: float) -> CapacityAnswer:
    """The capacity `steps` show: each rate judged by its last step, undecided as failing."""
    last: dict[float, Verdict] = {}
    for step in steps:
        if step.slo is not None and not step.interrupted:
            last[step.target_rate_rps] = step.slo.verdict
    failing = [rate for rate, verdict in last.items() if verdict != "holds"]
    fails_rps = min(failing, default=None)
    holding = [
        rate
        for rate, verdict in last.items()
        if verdict == "holds" and (fails_rps is None or rate < fails_rps)
    ]
    capacity_rps = max(holding, default=None)
    converged = (
        capacity_rps is not None
        and fails_rps is not None
        and fails_rps <= capacity_rps * (1 + resolution)
    )
    return CapacityAnswer(capacity_rps, fails_rps, resolution, converged, len(steps))
