"""Run one open-loop step: dispatch every request at its scheduled time, wait for all to end."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from loadgen.core.records import RequestRecord, RequestSpec
from loadgen.runtime.events import RunObserver, StepProgress
from loadgen.runtime.pacer import Pacer

_STOPPED_IN_SLOT_QUEUE = "stopped while waiting for a concurrency slot"


class Sender(Protocol):
    """Anything that sends one request and returns its record (the OpenAI client, a fake)."""

    async def send(
        self, spec: RequestSpec, index: int, t_sched_ns: int, slot_wait_ns: int = 0
    ) -> RequestRecord:
        """Send `spec` now; return its record, never raise for server faults."""
        ...


@dataclass(frozen=True, slots=True)
class StepResult:
    """The records of one step (in send order) and whether it was stopped early."""

    records: list[RequestRecord]
    interrupted: bool
    duration_s: float


class StopSignal:
    """Asks a running step to stop: first to stop sending, then to stop waiting."""

    def __init__(self) -> None:
        self.stop_sending = asyncio.Event()
        self.stop_waiting = asyncio.Event()

    def request_stop(self) -> None:
        """First call: stop sending and drain. Second call: abandon in-flight requests."""
        if self.stop_sending.is_set():
            self.stop_waiting.set()
        self.stop_sending.set()


class StepRunner:
    """Runs steps against one sender with one pacer, optional concurrency cap and observers."""

    def __init__(
        self,
        sender: Sender,
        pacer: Pacer,
        observer: RunObserver,
        *,
        max_concurrency: int | None = None,
        drain_timeout_s: float = 30.0,
    ) -> None:
        self._sender = sender
        self._pacer = pacer
        self.observer = observer
        self._max_concurrency = max_concurrency
        self._drain_timeout_s = drain_timeout_s

    async def run(
        self,
        progress: StepProgress,
        specs: Sequence[RequestSpec],
        offsets_s: npt.NDArray[np.float64],
        stop: StopSignal,
    ) -> StepResult:
        """Send `specs[i]` at `progress.t_start_ns + offsets_s[i]`; return when every one ended."""
        slots = asyncio.Semaphore(self._max_concurrency) if self._max_concurrency else None
        tasks: list[asyncio.Task[RequestRecord]] = []
        deadlines_ns: list[int] = (
            np.rint(offsets_s * 1e9).astype(np.int64) + progress.t_start_ns
        ).tolist()
        dispatcher = asyncio.create_task(
            self._dispatch(progress, specs, deadlines_ns, slots, tasks, stop)
        )
        stop_task = asyncio.create_task(stop.stop_sending.wait())
        await asyncio.wait((dispatcher, stop_task), return_when=asyncio.FIRST_COMPLETED)
        interrupted = stop.stop_sending.is_set()
        for task in (dispatcher, stop_task):
            task.cancel()
        await asyncio.gather(dispatcher, stop_task, return_exceptions=True)
        records = await self._drain(tasks, deadlines_ns, stop, interrupted)
        failure = None if dispatcher.cancelled() else dispatcher.exception()
        if failure is not None:
            # The pacing loop broke (pacer, observer): a step cut short must not pass as whole.
            raise failure
        duration_s = (perf_counter_ns() - progress.t_start_ns) / 1e9
        return StepResult(records, stop.stop_sending.is_set(), duration_s)

    async def _dispatch(
        self,
        progress: StepProgress,
        specs: Sequence[RequestSpec],
        deadlines_ns: list[int],
        slots: asyncio.Semaphore | None,
        tasks: list[asyncio.Task[RequestRecord]],
        stop: StopSignal,
    ) -> None:
        """The pacing loop: wait for each absolute deadline, then start that request."""
        loop = asyncio.get_running_loop()
        for index, deadline_ns in enumerate(deadlines_ns):
            if perf_counter_ns() < deadline_ns:
                await self._pacer.wait_until(deadline_ns)
            lateness_ns = perf_counter_ns() - deadline_ns
            request = self._one(progress, specs[index], index, deadline_ns, slots, stop)
            tasks.append(loop.create_task(request))
            progress.sent += 1
            self.observer.on_request_sent(progress, index, lateness_ns)

    async def _one(
        self,
        progress: StepProgress,
        spec: RequestSpec,
        index: int,
        t_sched_ns: int,
        slots: asyncio.Semaphore | None,
        stop: StopSignal,
    ) -> RequestRecord:
        """Send one request (after a concurrency slot, if capped) and report its record."""
        if slots is None:
            record = await self._sender.send(spec, index, t_sched_ns)
        else:
            record = await self._send_in_slot(spec, index, t_sched_ns, slots, stop)
        progress.done += 1
        if not record.ok:
            progress.errors += 1
        self.observer.on_request_done(progress, record)
        return record

    async def _send_in_slot(
        self,
        spec: RequestSpec,
        index: int,
        t_sched_ns: int,
        slots: asyncio.Semaphore,
        stop: StopSignal,
    ) -> RequestRecord:
        """Wait for a concurrency slot, then send; a stop while waiting means never sending."""
        t_wait_ns = perf_counter_ns()
        try:
            await slots.acquire()
        except asyncio.CancelledError:
            return _unsent_record(index, t_sched_ns, _STOPPED_IN_SLOT_QUEUE)
        try:
            if stop.stop_sending.is_set():
                return _unsent_record(index, t_sched_ns, _STOPPED_IN_SLOT_QUEUE)
            return await self._sender.send(spec, index, t_sched_ns, perf_counter_ns() - t_wait_ns)
        finally:
            slots.release()

    async def _drain(
        self,
        tasks: list[asyncio.Task[RequestRecord]],
        deadlines_ns: list[int],
        stop: StopSignal,
        interrupted: bool,
    ) -> list[RequestRecord]:
        """Wait for in-flight requests; when stopping, for at most the drain timeout."""
        if not tasks:
            return []
        all_done = asyncio.ensure_future(asyncio.wait(tasks))
        give_up = asyncio.create_task(stop.stop_waiting.wait())
        waits: set[asyncio.Future[Any]] = {all_done, give_up}
        timeout = self._drain_timeout_s if interrupted else None
        if not interrupted:
            # A stop that arrives while draining still bounds the wait.
            waits.add(asyncio.create_task(_after_stop(stop, self._drain_timeout_s)))
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waits:
            waiter.cancel()
        for task in tasks:
            task.cancel()  # no-op for finished ones; the rest end as "cancelled" records
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return [
            _as_record(result, index, deadlines_ns[index]) for index, result in enumerate(results)
        ]


def _unsent_record(index: int, t_sched_ns: int, reason: str) -> RequestRecord:
    """A "cancelled" record for a dispatched request that a stop kept from being sent.

    Its whole wait counts as intentional (slot wait), so it adds nothing to pacer lateness.
    """
    now_ns = perf_counter_ns()
    return RequestRecord(
        index=index,
        t_sched_ns=t_sched_ns,
        t_send_ns=now_ns,
        slot_wait_ns=now_ns - t_sched_ns,
        t_done_ns=now_ns,
        error_kind="cancelled",
        error=reason,
    )


def _as_record(result: RequestRecord | BaseException, index: int, t_sched_ns: int) -> RequestRecord:
    """A task's record; a task cancelled before it could start becomes a "cancelled" record."""
    if isinstance(result, RequestRecord):
        return result
    if isinstance(result, asyncio.CancelledError):
        return _unsent_record(index, t_sched_ns, "stopped before it was sent")
    raise result


async def _after_stop(stop: StopSignal, drain_timeout_s: float) -> None:
    """Finish `drain_timeout_s` after a stop is requested."""
    await stop.stop_sending.wait()
    await asyncio.sleep(drain_timeout_s)
