"""Run one step of multi-turn sessions: sessions start open-loop, turns follow their answers.

Sessions start at their scheduled times (the arrival process, in sessions per second); within
a session each turn is sent once the previous answer ended and its think time passed, so a
turn is scheduled by the session, not by the clock. Requests are numbered in send order; a
turn that fails ends its session (its history would be wrong). A stop ends every session after
the turn in flight (a turn still waiting for a concurrency slot is not sent: a cancelled
record), and the step drains as a step of single requests does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from time import perf_counter_ns

import numpy as np
import numpy.typing as npt

from loadgen.core.events import RunObserver, StepProgress
from loadgen.core.records import RequestRecord
from loadgen.runtime.pacer import Pacer
from loadgen.runtime.runner import (
    Sender,
    StepResult,
    StepRunner,
    StopSignal,
    drain,
    send_in_slot,
)
from loadgen.workloads.sessions import Session


@dataclass(slots=True)
class _SessionStep:
    """What the session starter and every session of one step share."""

    progress: StepProgress
    stop: StopSignal
    slots: asyncio.Semaphore | None
    records: list[RequestRecord] = field(default_factory=list)
    running: set[asyncio.Task[None]] = field(default_factory=set)


class SessionRunner:
    """Runs steps of sessions against one sender with one pacer, cap and observers."""

    def __init__(
        self,
        sender: Sender,
        pacer: Pacer,
        observer: RunObserver,
        *,
        max_concurrency: int | None,
        drain_timeout_s: float,
    ) -> None:
        self._sender = sender
        self._pacer = pacer
        self._observer = observer
        self._max_concurrency = max_concurrency
        self._drain_timeout_s = drain_timeout_s

    @classmethod
    def like(cls, runner: StepRunner) -> SessionRunner:
        """A session runner with `runner`'s sender, pacer, observers, cap and drain timeout."""
        return cls(
            runner.sender,
            runner.pacer,
            runner.observer,
            max_concurrency=runner.max_concurrency,
            drain_timeout_s=runner.drain_timeout_s,
        )

    async def run(
        self,
        progress: StepProgress,
        sessions: Sequence[Session],
        offsets_s: npt.NDArray[np.float64],
        stop: StopSignal,
    ) -> StepResult:
        """Start `sessions[i]` at `progress.t_start_ns + offsets_s[i]`; return when all ended."""
        slots = asyncio.Semaphore(self._max_concurrency) if self._max_concurrency else None
        step = _SessionStep(progress, stop, slots)
        starts_ns = (np.rint(offsets_s * 1e9).astype(np.int64) + progress.t_start_ns).tolist()
        starter = asyncio.create_task(self._start_all(step, sessions, starts_ns))
        stopped = asyncio.create_task(stop.stop_sending.wait())
        await asyncio.wait((starter, stopped), return_when=asyncio.FIRST_COMPLETED)
        for task in (starter, stopped):
            task.cancel()
        await asyncio.gather(starter, stopped, return_exceptions=True)
        # Sessions wait in think time as well as in requests: the step ends when they all do.
        await drain(step.running, stop, stop.stop_sending.is_set(), self._drain_timeout_s)
        failure = None if starter.cancelled() else starter.exception()
        if failure is not None:
            raise failure
        duration_s = (perf_counter_ns() - progress.t_start_ns) / 1e9
        records = sorted(step.records, key=lambda record: record.index)
        return StepResult(records, stop.stop_sending.is_set(), duration_s)

    async def _start_all(
        self, step: _SessionStep, sessions: Sequence[Session], starts_ns: list[int]
    ) -> None:
        """The pacing loop: start each session at its absolute time."""
        loop = asyncio.get_running_loop()
        for number, (session, start_ns) in enumerate(zip(sessions, starts_ns, strict=True)):
            if perf_counter_ns() < start_ns:
                await self._pacer.wait_until(start_ns)
            task = loop.create_task(self._session(step, number, session, start_ns))
            step.running.add(task)
            task.add_done_callback(step.running.discard)

    async def _session(
        self, step: _SessionStep, number: int, session: Session, start_ns: int
    ) -> None:
        """Send a session's turns in order, each after the last answer and its think time."""
        t_sched_ns = start_ns
        for turn_index in range(len(session.turns)):
            if turn_index:
                await _sleep_until(t_sched_ns)
            if step.stop.stop_sending.is_set():
                return
            record = await self._turn(step, number, session, turn_index, t_sched_ns)
            if not record.ok:
                return
            if turn_index + 1 < len(session.turns):
                think_ns = int(session.turns[turn_index + 1].think_s * 1e9)
                t_sched_ns = record.t_done_ns + think_ns

    async def _turn(
        self, step: _SessionStep, number: int, session: Session, turn_index: int, t_sched_ns: int
    ) -> RequestRecord:
        """Send one turn now (after a concurrency slot, if capped) and report its record."""
        progress, index = step.progress, step.progress.sent
        progress.sent += 1
        self._observer.on_request_sent(progress, index, perf_counter_ns() - t_sched_ns)
        spec = session.request(turn_index)
        if step.slots is None:
            record = await self._sender.send(spec, index, t_sched_ns)
        else:
            slots, stop = step.slots, step.stop
            record = await send_in_slot(self._sender, spec, index, t_sched_ns, slots, stop)
        record = replace(record, session=number, turn=turn_index + 1)
        step.records.append(record)
        progress.finish(record)
        self._observer.on_request_done(progress, record)
        return record


async def _sleep_until(deadline_ns: int) -> None:
    """Sleep until `deadline_ns` on the perf_counter clock."""
    delay_s = (deadline_ns - perf_counter_ns()) / 1e9
    if delay_s > 0:
        await asyncio.sleep(delay_s)
