"""Run one open-loop step: dispatch every request at its scheduled time, wait for all to end."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from asyncio_throttle.throttler import Throttler

from loadgen.core.events import RunObserver, StepProgress
from loadgen.core.records import RequestRecord, RequestSpec
from loadgen.runtime.pacer import Pacer

_STOPPED_IN_SLOT_QUEUE = "stopped while waiting for a concurrency slot"
# A start the cap let through at once takes no time; one it held slept at least its 10 ms retry.
# Half of that tells them apart even when a busy event loop delays an unheld start by a few ms.
_HELD_NS = 5_000_000


class Sender(Protocol):
    """Anything that sends one request and returns its record (the OpenAI client, a fake)."""

    async def send(
        self, spec: RequestSpec, index: int, t_sched_ns: int, slot_wait_ns: int = 0
    ) -> RequestRecord:
        """Send `spec` now; return its record, never raise for server faults."""
        ...


@dataclass(frozen=True, slots=True)
class StepResult:
    """The records of one step (in send order), whether it was stopped early, and why its
    figures cannot be trusted, if they cannot."""

    records: list[RequestRecord]
    interrupted: bool
    duration_s: float
    invalid: str | None = None
    capped_sends: int = 0


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
        max_concurrency: int | None,
        drain_timeout_s: float,
        max_start_rate_rps: float | None = None,
    ) -> None:
        self.sender = sender
        self.pacer = pacer
        self.observer = observer
        self.max_concurrency = max_concurrency
        self.drain_timeout_s = drain_timeout_s
        self._max_start_rate_rps = max_start_rate_rps

    async def run(
        self,
        progress: StepProgress,
        specs: Sequence[RequestSpec],
        offsets_s: npt.NDArray[np.float64],
        stop: StopSignal,
        max_concurrency: int | None = None,
    ) -> StepResult:
        """Send `specs[i]` at `progress.t_start_ns + offsets_s[i]`; return when every one ended.

        At most `max_concurrency` (else the runner's own cap, if any) are in flight at once. A
        finished request leaves only its record: no task of it is kept until the step ends.
        """
        cap = max_concurrency or self.max_concurrency
        slots = asyncio.Semaphore(cap) if cap else None
        records: list[RequestRecord | None] = [None] * len(specs)
        in_flight: set[asyncio.Task[None]] = set()
        deadlines_ns: list[int] = (
            np.rint(offsets_s * 1e9).astype(np.int64) + progress.t_start_ns
        ).tolist()
        sending = _Sending(progress, specs, deadlines_ns, slots, records, in_flight, stop)
        if self._max_start_rate_rps is not None:
            sending.throttler = start_throttler(self._max_start_rate_rps)
        dispatcher = asyncio.create_task(self._dispatch(sending))
        stop_task = asyncio.create_task(stop.stop_sending.wait())
        await asyncio.wait((dispatcher, stop_task), return_when=asyncio.FIRST_COMPLETED)
        interrupted = stop.stop_sending.is_set()
        for task in (dispatcher, stop_task):
            task.cancel()
        await asyncio.gather(dispatcher, stop_task, return_exceptions=True)
        await drain(in_flight, stop, interrupted, self.drain_timeout_s)
        failure = None if dispatcher.cancelled() else dispatcher.exception()
        if failure is not None:
            # The pacing loop broke (pacer, observer): a step cut short must not pass as whole.
            raise failure
        duration_s = (perf_counter_ns() - progress.t_start_ns) / 1e9
        sent = [
            _unsent_record(index, deadlines_ns[index], "stopped before it was sent")
            if record is None
            else record
            for index, record in enumerate(records[: progress.sent])
        ]
        return StepResult(
            sent, stop.stop_sending.is_set(), duration_s, capped_sends=sending.capped_sends
        )

    async def _dispatch(self, sending: _Sending) -> None:
        """The pacing loop: wait for each absolute deadline, then start that request."""
        loop = asyncio.get_running_loop()
        progress = sending.progress
        for index, deadline_ns in enumerate(sending.deadlines_ns):
            if perf_counter_ns() < deadline_ns:
                await self.pacer.wait_until(deadline_ns)
            if sending.throttler is not None:
                await _start_under_cap(sending.throttler, sending, deadline_ns)
            lateness_ns = perf_counter_ns() - deadline_ns
            task = loop.create_task(self._one(sending, index, deadline_ns))
            sending.in_flight.add(task)
            progress.sent += 1
            self.observer.on_request_sent(progress, index, lateness_ns)

    async def _one(self, sending: _Sending, index: int, t_sched_ns: int) -> None:
        """Send one request (after a concurrency slot, if capped) and report its record.

        The task leaves the in-flight set itself when it ends, with no callback: only its
        record stays.
        """
        spec = sending.specs[index]
        try:
            if sending.slots is None:
                record = await self.sender.send(spec, index, t_sched_ns)
            else:
                slots, stop = sending.slots, sending.stop
                record = await send_in_slot(self.sender, spec, index, t_sched_ns, slots, stop)
        finally:
            sending.in_flight.discard(asyncio.current_task())
        sending.records[index] = record
        progress = sending.progress
        progress.finish(record)
        self.observer.on_request_done(progress, record)


@dataclass(slots=True)
class _Sending:
    """What the pacing loop and each request of one step share."""

    progress: StepProgress
    specs: Sequence[RequestSpec]
    deadlines_ns: list[int]
    slots: asyncio.Semaphore | None
    records: list[RequestRecord | None]
    in_flight: set[asyncio.Task[None]]
    stop: StopSignal
    throttler: Throttler | None = None
    held_until_ns: int = 0
    capped_sends: int = 0


async def send_in_slot(
    sender: Sender,
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
        return await sender.send(spec, index, t_sched_ns, perf_counter_ns() - t_wait_ns)
    finally:
        slots.release()


async def drain(
    in_flight: set[asyncio.Task[None]], stop: StopSignal, interrupted: bool, drain_timeout_s: float
) -> None:
    """Wait for in-flight tasks; when stopping, for at most `drain_timeout_s` (s)."""
    if not in_flight:
        return
    all_done = asyncio.ensure_future(asyncio.wait(set(in_flight)))
    give_up = asyncio.create_task(stop.stop_waiting.wait())
    waits: set[asyncio.Future[Any]] = {all_done, give_up}
    timeout = drain_timeout_s if interrupted else None
    if not interrupted:
        # A stop that arrives while draining still bounds the wait.
        waits.add(asyncio.create_task(_after_stop(stop, drain_timeout_s)))
    await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waits:
        waiter.cancel()
    left = set(in_flight)
    for task in left:
        task.cancel()  # the rest end as "cancelled" records, or are filled in as unsent
    await asyncio.gather(*left, return_exceptions=True)


def start_throttler(max_start_rate_rps: float) -> Throttler:
    """asyncio-throttle's limiter of `max_start_rate_rps` starts a second (a fractional rate:
    N starts in N / rate seconds)."""
    starts = max(1, int(max_start_rate_rps))
    return Throttler(rate_limit=starts, period=starts / max_start_rate_rps)


async def _start_under_cap(throttler: Throttler, sending: _Sending, deadline_ns: int) -> None:
    """Wait until the start-rate cap lets the next request start; count it as capped when it
    was due before the cap last let a held request go (it queued behind the cap)."""
    before_ns = perf_counter_ns()
    await throttler.acquire()  # type: ignore[no-untyped-call]
    if perf_counter_ns() - before_ns >= _HELD_NS:
        sending.held_until_ns = perf_counter_ns()
    if deadline_ns < sending.held_until_ns:
        sending.capped_sends += 1


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


async def _after_stop(stop: StopSignal, drain_timeout_s: float) -> None:
    """Finish `drain_timeout_s` after a stop is requested."""
    await stop.stop_sending.wait()
    await asyncio.sleep(drain_timeout_s)
