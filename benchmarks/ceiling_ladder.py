"""The ceiling search: run a step (a rung), judge it, climb a ladder of rates, then bisect.

A step is on schedule when, over its trimmed requests, pacer lateness (t_send - t_sched) has
p99 under 5 ms and the realised send-gap CV is within 0.95-1.05 (Poisson gaps have CV 1), and
every request (trimmed or not) completed: no error, t_first and t_last set, every token.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter_ns

import numpy as np
import numpy.typing as npt

from benchmarks.ceiling_clients import StepFn, StepPlan, Usage, metered
from loadgen.core.arrivals import send_offsets_s
from loadgen.core.records import RequestRecord, StepSummary
from loadgen.core.stats import summarize_step

_STEP_LEAD_NS = 20_000_000  # first scheduled send this long after a step is built


@dataclass(frozen=True, slots=True)
class Criteria:
    """What "on schedule" means for a step (lateness in ms, CV of the send gaps)."""

    max_lateness_p99_ms: float = 5.0
    min_cv: float = 0.95
    max_cv: float = 1.05


@dataclass(frozen=True, slots=True)
class StepSettings:
    """Every step: `requests` seeded Poisson arrivals, `trim` at each end, judged by
    `criteria`; a failed step is run again up to `retries` times (shared machines)."""

    requests: int
    trim: int
    seed: int
    retries: int
    criteria: Criteria = field(default_factory=Criteria)


@dataclass(frozen=True, slots=True)
class Rung:
    """The figures of one step of one client, and whether it met the criteria."""

    client: str
    target_rps: float
    tokens: int
    requests: int
    trim: int
    attempt: int
    achieved_rps: float
    send_gap_cv: float
    lateness_p50_ms: float
    lateness_p99_ms: float
    lateness_max_ms: float
    completed: int
    token_throughput_tps: float
    client_cpu: float
    server_cpu: float
    preemptions: int
    passed: bool
    failures: tuple[str, ...]
    errors: dict[str, int]


@dataclass(frozen=True, slots=True)
class Bench:
    """Everything a ladder needs besides the client: step settings, the server process to
    meter, and what to do with each finished rung (print it)."""

    settings: StepSettings
    server_pid: int
    on_rung: Callable[[Rung], None]


def schedule_cv(offsets_s: npt.NDArray[np.float64], trim: int) -> float:
    """CV of the scheduled gaps over the trimmed requests (what a perfect client realises)."""
    gaps = np.diff(offsets_s[trim : len(offsets_s) - trim])
    return float(gaps.std() / gaps.mean())


def step_offsets_s(settings: StepSettings, rate_rps: float) -> npt.NDArray[np.float64]:
    """The seeded Poisson send offsets (s) of a step at `rate_rps` (req/s)."""
    rng = np.random.default_rng(settings.seed)
    return send_offsets_s("poisson", rate_rps, settings.requests, rng)


def completed(records: Sequence[RequestRecord], tokens: int) -> int:
    """Requests that ended without error, with first and last token times and every token."""
    return sum(
        r.ok and r.t_first_ns is not None and r.t_last_ns is not None and r.tokens_out == tokens
        for r in records
    )


def judge(summary: StepSummary, done: int, criteria: Criteria) -> tuple[str, ...]:
    """The criteria a step failed (empty when it was on schedule and complete)."""
    figures = summary.trimmed
    failures = []
    lateness = figures.pacer_lateness_s
    if lateness is None or lateness.p99 * 1e3 >= criteria.max_lateness_p99_ms:
        failures.append("late")
    cv = figures.send_gap_cv
    if cv is None or not criteria.min_cv <= cv <= criteria.max_cv:
        failures.append("cv")
    if done != summary.num_sent:
        failures.append("incomplete")
    return tuple(failures)


async def run_rung(
    step: StepFn, client: str, bench: Bench, rate_rps: float, tokens: int, attempt: int
) -> Rung:
    """Run one step of Poisson arrivals at `rate_rps` (req/s) and judge it."""
    settings = bench.settings
    offsets_s = step_offsets_s(settings, rate_rps)
    gc.collect()  # start every step from the same heap, not with a predecessor's garbage
    async with metered(bench.server_pid) as usage:
        t_start_ns = perf_counter_ns() + _STEP_LEAD_NS
        records = await step(StepPlan(rate_rps, tokens, settings.trim, offsets_s, t_start_ns))
    summary = summarize_step(
        records,
        step=0,
        target_rate_rps=rate_rps,
        num_sent=len(records),
        trim=settings.trim,
        slos={},
        interrupted=False,
        duration_s=usage[0].wall_s,
    )
    done = completed(records, tokens)
    failures = judge(summary, done, settings.criteria)
    return _rung(client, tokens, attempt, summary, done, usage[0], failures)


def _rung(
    client: str,
    tokens: int,
    attempt: int,
    summary: StepSummary,
    done: int,
    usage: Usage,
    failures: tuple[str, ...],
) -> Rung:
    """The Rung of a judged step (lateness in ms, NaN when nothing was sent)."""
    figures = summary.trimmed
    lateness = figures.pacer_lateness_s
    nan = float("nan")
    return Rung(
        client=client,
        target_rps=summary.target_rate_rps,
        tokens=tokens,
        requests=summary.num_sent,
        trim=summary.trim,
        attempt=attempt,
        achieved_rps=figures.achieved_rate_rps or 0.0,
        send_gap_cv=figures.send_gap_cv or 0.0,
        lateness_p50_ms=lateness.p50 * 1e3 if lateness else nan,
        lateness_p99_ms=lateness.p99 * 1e3 if lateness else nan,
        lateness_max_ms=lateness.max * 1e3 if lateness else nan,
        completed=done,
        token_throughput_tps=figures.output_token_throughput_tps,
        client_cpu=usage.client_cpu,
        server_cpu=usage.server_cpu,
        preemptions=usage.preemptions,
        passed=not failures,
        failures=failures,
        errors=dict(summary.untrimmed.errors_by_kind),
    )


async def run_with_retries(
    step: StepFn, client: str, bench: Bench, rate_rps: float, tokens: int
) -> list[Rung]:
    """Run a rung; a failed one is run again up to `retries` times (shared machines)."""
    rungs: list[Rung] = []
    for attempt in range(1, bench.settings.retries + 2):
        rung = await run_rung(step, client, bench, rate_rps, tokens, attempt)
        bench.on_rung(rung)
        rungs.append(rung)
        if rung.passed:
            break
    return rungs


@dataclass(frozen=True, slots=True)
class Ladder:
    """Rates (req/s) to climb (stop at the first failure), then bisect to `resolution` req/s."""

    rates: tuple[float, ...]
    resolution: float
    tokens: int


def next_probe(low: float, high: float, resolution: float) -> float | None:
    """The rate to try between a passing `low` and a failing `high`, None when resolved."""
    if high - low <= resolution:
        return None
    half = max(resolution, round((high - low) / 2 / resolution) * resolution)
    return low + half if low + half < high else None


@dataclass(slots=True)
class _Bracket:
    """One client's search state: highest passing and lowest failing rate so far."""

    best: float | None = None
    failed: float | None = None

    def update(self, rate: float, passed: bool) -> None:
        if passed:
            self.best = rate
        else:
            self.failed = rate

    def probe(self, resolution: float) -> float | None:
        """The next bisection rate, None when resolved (or nothing to bisect)."""
        if self.best is None or self.failed is None:
            return None
        return next_probe(self.best, self.failed, resolution)


async def climb(steps: dict[str, StepFn], bench: Bench, ladder: Ladder) -> list[Rung]:
    """Every rung run, clients interleaved at each rate so they share the machine's moods.

    A client leaves the ladder at its first failing rate; then each bisects between its last
    pass and that failure. A client's ceiling is its highest passing target rate.
    """
    rungs: list[Rung] = []
    brackets = {client: _Bracket() for client in steps}

    async def run(client: str, rate: float) -> None:
        tried = await run_with_retries(steps[client], client, bench, rate, ladder.tokens)
        rungs.extend(tried)
        brackets[client].update(rate, tried[-1].passed)

    for rate in ladder.rates:
        climbing = [client for client, bracket in brackets.items() if bracket.failed is None]
        if not climbing:
            break
        for client in climbing:
            await run(client, rate)
    while probes := {
        client: probe
        for client, bracket in brackets.items()
        if (probe := bracket.probe(ladder.resolution)) is not None
    }:
        for client, probe in probes.items():
            await run(client, probe)
    return rungs


def ceiling(rungs: Sequence[Rung], client: str) -> float | None:
    """The highest passing target rate (req/s) of `client`, None when no rung passed."""
    rates = [r.target_rps for r in rungs if r.client == client and r.passed]
    return max(rates, default=None)


def never_failed(rungs: Sequence[Rung], client: str) -> bool:
    """True when every rate tried for `client` passed: its ceiling is only a lower bound."""
    mine = [r for r in rungs if r.client == client]
    passed = {r.target_rps for r in mine if r.passed}
    return all(r.target_rps in passed for r in mine)
