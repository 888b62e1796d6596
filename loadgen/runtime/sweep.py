"""One target's sweep: the policy picks each rate, an executor runs the step, the core sums it up.

The loop itself does no I/O: whatever is written, shown or exported is an observer's doing.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from time import perf_counter_ns
from typing import Protocol

import numpy as np
import numpy.typing as npt

from loadgen.core.events import RunObserver, StepProgress
from loadgen.core.records import RequestSpec, StepSummary
from loadgen.core.stats import summarize_step
from loadgen.core.sweep import fixed_rates
from loadgen.runtime.plan import TargetPlan
from loadgen.runtime.runner import StepResult, StopSignal

# Lead time between planning a step and its first scheduled send (ns).
_STEP_LEAD_NS = 20_000_000


class ShardError(Exception):
    """A shard of a cluster could not do its part (the message says which, and why)."""


class StepExecutor(Protocol):
    """Runs a plan's steps: here (PlannedExecutor), or on a cluster's shards."""

    async def prepare(self, step: int, rate_rps: float) -> int:
        """Plan step `step` at `rate_rps` (requests, send times); how many it will send."""
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
    ) -> StepResult:
        """Send `specs[i]` at offset `offsets_s[i]` (s); the step's records."""
        ...


class PlannedExecutor:
    """Plans each step in this process from `plan`, and has `sender` send it."""

    def __init__(self, plan: TargetPlan, sender: StepSender) -> None:
        self._plan = plan
        self._sender = sender
        self._next: tuple[Sequence[RequestSpec], npt.NDArray[np.float64]] | None = None

    async def prepare(self, step: int, rate_rps: float) -> int:
        """Draw the step's requests and send times; how many there are."""
        self._next = self._plan.step(step, rate_rps)
        return len(self._next[0])

    async def run(self, progress: StepProgress, stop: StopSignal) -> StepResult:
        """Send the prepared step; its prompts leave memory with this call."""
        if self._next is None:
            raise RuntimeError("run() before prepare()")
        specs, offsets_s = self._next
        self._next = None
        return await self._sender.run(progress, specs, offsets_s, stop)


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
) -> None:
    """Run the policy's steps until it ends or a stop is requested, adding each to `done`.

    An invalid step ends the sweep unless `past_invalid`.
    """
    policy = fixed_rates(plan.rates_rps)
    rate_rps = next(policy)
    while not stop.stop_sending.is_set():
        summary = await _one_step(plan, executor, observer, stop, len(done), rate_rps)
        done.append(summary)
        if summary.invalid is not None and not past_invalid:
            return
        try:
            rate_rps = policy.send(summary)
        except StopIteration:
            return


async def _one_step(
    plan: TargetPlan,
    executor: StepExecutor,
    observer: RunObserver,
    stop: StopSignal,
    step: int,
    rate_rps: float,
) -> StepSummary:
    """Plan, run and sum up one step; its requests and records leave memory on return."""
    num_planned = await executor.prepare(step, rate_rps)
    settle_garbage()
    trim = plan.load.trim
    progress = StepProgress(step, rate_rps, num_planned, trim, perf_counter_ns() + _STEP_LEAD_NS)
    observer.on_step_start(progress)
    result = await executor.run(progress, stop)
    summary = summarize_step(
        result.records,
        step=step,
        target_rate_rps=rate_rps,
        num_sent=len(result.records),
        trim=trim,
        slos=plan.load.slos,
        interrupted=result.interrupted,
        duration_s=result.duration_s,
        invalid=result.invalid,
        capped_sends=result.capped_sends,
    )
    observer.on_step_end(progress, summary, result.records)
    return summary
