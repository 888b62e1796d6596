"""One target's sweep: the policy picks each rate, an executor runs the step, the core sums it up.

The loop itself does no I/O: whatever is written, shown or exported is an observer's doing.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Sequence
from dataclasses import dataclass, replace
from time import perf_counter_ns
from typing import Protocol

import numpy as np
import numpy.typing as npt

from loadgen.client.server_metrics import MetricsScraper, StepWatch
from loadgen.core.events import RunObserver, StepProgress
from loadgen.core.records import RequestRecord, RequestSpec, ServerFigures, StepSummary
from loadgen.core.stats import summarize_step
from loadgen.core.sweep import StepOrder
from loadgen.runtime.plan import TargetPlan
from loadgen.runtime.runner import StepResult, StopSignal
from loadgen.runtime.search import judged, sweep_policy, watched
from loadgen.workloads.sessions import Session

# Lead time between planning a step and its first scheduled send (ns).
_STEP_LEAD_NS = 20_000_000


class ShardError(Exception):
    """A shard of a cluster could not do its part (the message says which, and why)."""


class StepExecutor(Protocol):
    """Runs a plan's steps: here (PlannedExecutor), or on a cluster's shards."""

    async def prepare(self, step: int, order: StepOrder) -> int:
        """Plan step `step` as `order` says (requests, send times); how many it will send."""
        ...

    async def run(self, progress: StepProgress, stop: StopSignal) -> StepResult:
        """Run the step prepared last from `progress.t_start_ns`; its records."""
        ...


class StepSender(Protocol):
    """Sends one step's planned requests: against a server (StepRunner), or in virtual time."""

    async def run(
        self,
        progress: StepProgress,
        specs: Sequence[RequestSpec],
        offsets_s: npt.NDArray[np.float64],
        stop: StopSignal,
        max_concurrency: int | None = None,
    ) -> StepResult:
        """Send `specs[i]` at offset `offsets_s[i]` (s), at most `max_concurrency` at a time
        when given (else as the sender was set up); the step's records."""
        ...


class SessionSender(Protocol):
    """Sends one step's planned multi-turn sessions (SessionRunner)."""

    async def run(
        self,
        progress: StepProgress,
        sessions: Sequence[Session],
        offsets_s: npt.NDArray[np.float64],
        stop: StopSignal,
    ) -> StepResult:
        """Start `sessions[i]` at offset `offsets_s[i]` (s); the step's records."""
        ...


class PlannedExecutor:
    """Plans each step in this process from `plan`, and has `sender` send it (or
    `session_sender`, when the plan's steps are multi-turn sessions)."""

    def __init__(
        self, plan: TargetPlan, sender: StepSender, session_sender: SessionSender | None = None
    ) -> None:
        self._plan = plan
        self._sender = sender
        self._session_sender = session_sender
        self._next: tuple[Sequence[RequestSpec], npt.NDArray[np.float64]] | None = None
        self._next_sessions: tuple[Sequence[Session], npt.NDArray[np.float64]] | None = None
        self._synchronous = False

    async def prepare(self, step: int, order: StepOrder) -> int:
        """Draw the step's requests (or sessions) and send times; how many there are."""
        if self._plan.sessions is not None:
            if self._session_sender is None:
                raise ValueError("multi-turn sessions need a server to talk to")
            self._next_sessions = self._plan.session_step(step, order)
            return len(self._next_sessions[0])
        self._next = self._plan.step(step, order)
        self._synchronous = order.synchronous
        return len(self._next[0])

    async def run(self, progress: StepProgress, stop: StopSignal) -> StepResult:
        """Send the prepared step; its prompts leave memory with this call."""
        if self._next_sessions is not None and self._session_sender is not None:
            sessions, session_offsets_s = self._next_sessions
            self._next_sessions = None
            return await self._session_sender.run(progress, sessions, session_offsets_s, stop)
        if self._next is None:
            raise RuntimeError("run() before prepare()")
        specs, offsets_s = self._next
        self._next = None
        concurrency = 1 if self._synchronous else None
        return await self._sender.run(progress, specs, offsets_s, stop, concurrency)


def _sessions_started(records: Sequence[RequestRecord]) -> int:
    """How many sessions a step started: they start in order, each with a record."""
    return 1 + max((r.session for r in records if r.session is not None), default=-1)


def settle_garbage() -> None:
    """Collect now, between steps, and set aside what exists for the collector's later runs.

    A full collection scans every object the process holds (plots, imports, the last steps'
    summaries): tens of milliseconds that, inside a step, would be pacer lateness. Frozen
    objects are still freed when their last reference goes; `gc.unfreeze` ends the run.
    """
    gc.collect()
    gc.freeze()


async def sweep_steps(
    plan: TargetPlan,
    executor: StepExecutor,
    observer: RunObserver,
    stop: StopSignal,
    done: list[StepSummary],
    *,
    past_invalid: bool = False,
    scraper: MetricsScraper | None = None,
) -> None:
    """Run the policy's steps until it ends or a stop is requested, adding each to `done`:
    each step `plan.load.repeats` times (the policy hears of the last).

    An invalid step ends the sweep unless `past_invalid`. With `scraper`, each step's summary
    holds the server's view of it, from its metrics scraped around the step.
    """
    policy = sweep_policy(plan)
    order = next(policy)
    while not stop.stop_sending.is_set():
        step = _Step(plan, executor, observer, stop, scraper)
        for repeat in range(plan.load.repeats):
            if repeat and stop.stop_sending.is_set():
                return
            summary = await step.run(len(done), replace(order, repeat=repeat))
            done.append(summary)
            if summary.invalid is not None and not past_invalid:
                return
        try:
            order = policy.send(summary)
        except StopIteration:
            return


@dataclass(frozen=True, slots=True)
class _Step:
    """What every step of a sweep is run with."""

    plan: TargetPlan
    executor: StepExecutor
    observer: RunObserver
    stop: StopSignal
    scraper: MetricsScraper | None

    async def run(self, step: int, order: StepOrder) -> StepSummary:
        """Plan, run and sum up one step; its requests and records leave memory on return.

        The server's metrics are scraped before the first send, every few seconds while the
        step runs, and once its requests are done; failed scrapes are a warning. A step of a
        capacity search is watched for over-saturation, and judged by the search's SLOs.
        """
        executor, observer, rate_rps = self.executor, self.observer, order.rate_rps
        num_planned = await executor.prepare(step, order)
        settle_garbage()
        trim = self.plan.trim(order)
        server: ServerFigures | None = None
        async with self._watching() as watch:
            t_start_ns = perf_counter_ns() + _STEP_LEAD_NS
            sessions = self.plan.sessions is not None
            progress = StepProgress(step, rate_rps, num_planned, trim, t_start_ns, sessions)
            observer.on_step_start(progress)
            async with self._stop_for(progress) as stop:
                result = await executor.run(progress, stop)
            if watch is not None:
                server = await watch.figures(result.records)
                if (warning := watch.warning()) is not None:
                    observer.on_warning(f"step {step}: server metrics: {warning}")
        summary = summarize_step(
            result.records,
            step=step,
            target_rate_rps=rate_rps,
            num_sent=len(result.records),
            trim=trim,
            slos=self.plan.load.slos,
            # A searched step its own watch stopped was not interrupted: the run goes on.
            interrupted=result.interrupted and self.stop.stop_sending.is_set(),
            duration_s=result.duration_s,
            invalid=result.invalid,
            capped_sends=result.capped_sends,
            num_sessions=_sessions_started(result.records) if progress.sessions else None,
        )
        if server is not None:
            summary = replace(summary, server=server)
        if order.synchronous or order.repeat:
            summary = replace(summary, synchronous=order.synchronous, repeat=order.repeat)
        if self.plan.capacity is not None:
            summary = judged(
                summary, result.records, self.plan.capacity, progress, self.plan.load.seed
            )
        observer.on_step_end(progress, summary, result.records)
        return summary

    def _stop_for(
        self, progress: StepProgress
    ) -> contextlib.AbstractAsyncContextManager[StopSignal]:
        """The stop the step runs under: the run's, or a searched step's own (see `watched`)."""
        if self.plan.capacity is None:
            return contextlib.nullcontext(self.stop)
        return watched(progress, self.stop)

    def _watching(self) -> contextlib.AbstractAsyncContextManager[StepWatch | None]:
        """A watch on the server's metrics for one step (entering scrapes once), if any."""
        if self.scraper is None:
            return contextlib.nullcontext()
        return StepWatch(self.scraper)
