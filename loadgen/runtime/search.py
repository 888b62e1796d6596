"""The steps of a capacity search: watched for over-saturation, stopped early, judged by SLOs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

import numpy as np

from loadgen.config.model import CapacityConfig
from loadgen.core.capacity import capacity_search, judge_step, search_slos
from loadgen.core.events import StepProgress
from loadgen.core.records import RequestRecord, StepSummary
from loadgen.core.saturation import CHECK_S, SaturationWatch, replay_over_saturated
from loadgen.core.stats import kept_records
from loadgen.core.sweep import SweepPolicy, auto_rates, fixed_rates
from loadgen.runtime.plan import TargetPlan
from loadgen.runtime.runner import StopSignal


def sweep_policy(plan: TargetPlan) -> SweepPolicy:
    """What picks a target's rates: its fixed list, rates auto, or a capacity search."""
    capacity = plan.capacity
    if isinstance(plan.rates_rps, str):
        return auto_rates(plan.load.auto_steps)
    if capacity is None:
        return fixed_rates(plan.rates_rps)
    return capacity_search(
        capacity.start_rate_rps, capacity.resolution, capacity.max_steps, capacity.max_scale
    )


@contextlib.asynccontextmanager
async def watched(progress: StepProgress, run_stop: StopSignal) -> AsyncIterator[StopSignal]:
    """The stop a searched step runs under: the run's, and the step's own once its watch
    finds it over-saturated (then nothing more is sent and what is in flight is abandoned)."""
    step_stop = StopSignal()
    # A step of sessions counts sessions, not requests sent: it cannot tell its last send.
    planned = None if progress.sessions else progress.num_planned
    watch = progress.watch = SaturationWatch(progress.trim, planned)
    tasks = [
        asyncio.create_task(_relay(run_stop, step_stop)),
        asyncio.create_task(_poll(watch, step_stop)),
    ]
    try:
        yield step_stop
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _relay(run_stop: StopSignal, step_stop: StopSignal) -> None:
    """Pass the run's stop requests on to the step: first to stop sending, then waiting."""
    await run_stop.stop_sending.wait()
    step_stop.request_stop()
    await run_stop.stop_waiting.wait()
    step_stop.request_stop()


async def _poll(watch: SaturationWatch, step_stop: StopSignal) -> None:
    """Check the watch every CHECK_S seconds; stop the step once it is over-saturated."""
    while True:
        if watch.check():
            break
        await asyncio.sleep(CHECK_S)
    step_stop.request_stop()
    step_stop.request_stop()


def judged(
    summary: StepSummary,
    records: Sequence[RequestRecord],
    capacity: CapacityConfig,
    progress: StepProgress,
    seed: int,
) -> StepSummary:
    """`summary` with its over-saturation flag and its verdict under the search's SLOs.

    A step the live watch did not stop (in virtual time, none is) is replayed through it.
    """
    watch = progress.watch
    over = (watch is not None and watch.over) or replay_over_saturated(records, progress.trim)
    num_sessions = summary.sessions.num_started if summary.sessions is not None else None
    ordered = sorted(records, key=lambda record: record.index)
    kept = kept_records(ordered, summary.num_sent, summary.trim, num_sessions)
    rng = np.random.default_rng([seed, 3, summary.step])
    verdict = judge_step(kept, search_slos(capacity.slos), rng, over_saturated=over)
    return replace(summary, over_saturated=over, slo=verdict)
