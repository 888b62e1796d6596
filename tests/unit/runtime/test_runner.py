"""Tests for loadgen.runtime.runner with an in-process fake sender and the sleep pacer.

Timing assertions are one-sided ("not before its schedule") or carry wide slack; the
scenarios that depend on order are driven by hooks in the fake sender, not by sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter_ns

import numpy as np

from loadgen.core.events import RunObserver, StepProgress
from loadgen.core.records import RequestRecord, RequestSpec
from loadgen.runtime.pacer import SleepPacer
from loadgen.runtime.runner import StepResult, StepRunner, StopSignal

MS = 1_000_000  # ns per ms
HANG_S = 3600.0  # a request that never ends on its own within a test


@dataclass
class Call:
    """One call of FakeSender.send, as the sender saw it."""

    index: int
    prompt: str
    t_sched_ns: int
    t_call_ns: int
    slot_wait_ns: int


@dataclass
class FakeSender:
    """Sleeps a scripted time per request and returns its record, like the real client.

    Indices in `fail` end as HTTP 500s. When cancelled it returns a "cancelled" record (the
    real client catches CancelledError the same way). `on_call(index)` runs as a call starts.
    """

    duration_s: Callable[[int], float]
    fail: frozenset[int] = frozenset()
    on_call: Callable[[int], None] | None = None
    calls: list[Call] = field(default_factory=list)
    active: int = 0
    max_active: int = 0

    async def send(
        self, spec: RequestSpec, index: int, t_sched_ns: int, slot_wait_ns: int = 0
    ) -> RequestRecord:
        t_send_ns = perf_counter_ns()
        self.calls.append(Call(index, spec.prompt, t_sched_ns, t_send_ns, slot_wait_ns))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        if self.on_call is not None:
            self.on_call(index)
        try:
            await asyncio.sleep(self.duration_s(index))
        except asyncio.CancelledError:
            now_ns = perf_counter_ns()
            return RequestRecord(
                index=index,
                t_sched_ns=t_sched_ns,
                t_send_ns=t_send_ns,
                slot_wait_ns=slot_wait_ns,
                t_done_ns=now_ns,
                error_kind="cancelled",
                error="stopped before the response ended",
            )
        finally:
            self.active -= 1
        now_ns = perf_counter_ns()
        failed = index in self.fail
        return RequestRecord(
            index=index,
            t_sched_ns=t_sched_ns,
            t_send_ns=t_send_ns,
            slot_wait_ns=slot_wait_ns,
            t_done_ns=now_ns,
            t_first_ns=None if failed else now_ns,
            t_last_ns=None if failed else now_ns,
            tokens_out=0 if failed else 1,
            error_kind="http_5xx" if failed else None,
            status=500 if failed else 200,
        )


def fixed(seconds: float) -> Callable[[int], float]:
    """Every request takes `seconds`."""
    return lambda index: seconds


class Recorder(RunObserver):
    """Records every request event with the counters it saw."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, int, int, int]] = []

    def on_request_sent(self, progress: StepProgress, index: int, lateness_ns: int) -> None:
        self.events.append(("sent", index, progress.sent, progress.done, progress.in_flight))

    def on_request_done(self, progress: StepProgress, record: RequestRecord) -> None:
        self.events.append(("done", record.index, progress.sent, progress.done, progress.in_flight))


def specs(count: int) -> list[RequestSpec]:
    return [RequestSpec(prompt=f"prompt {i}", max_tokens=4) for i in range(count)]


def new_progress(count: int) -> StepProgress:
    """A step whose schedule starts 5 ms from now."""
    return StepProgress(
        step=0,
        target_rate_rps=1.0,
        num_planned=count,
        trim=0,
        t_start_ns=perf_counter_ns() + 5 * MS,
    )


async def run_step(
    sender: FakeSender,
    offsets_ms: Sequence[float],
    *,
    observer: RunObserver | None = None,
    stop: StopSignal | None = None,
    max_concurrency: int | None = None,
    drain_timeout_s: float = 30.0,
    max_start_rate_rps: float | None = None,
) -> tuple[StepResult, StepProgress]:
    """Run one step of len(offsets_ms) requests at the given offsets (ms from the origin)."""
    runner = StepRunner(
        sender,
        SleepPacer(),
        observer or RunObserver(),
        max_concurrency=max_concurrency,
        drain_timeout_s=drain_timeout_s,
        max_start_rate_rps=max_start_rate_rps,
    )
    progress = new_progress(len(offsets_ms))
    offsets_s = np.asarray(offsets_ms, dtype=np.float64) / 1e3
    result = await runner.run(progress, specs(len(offsets_ms)), offsets_s, stop or StopSignal())
    return result, progress


async def test_every_spec_sent_once_in_order_at_its_schedule() -> None:
    # Later requests finish first (index i takes 20 - i ms), so completion order is reversed.
    sender = FakeSender(lambda index: (20 - index) / 1e3)
    offsets_ms = [2 * i for i in range(20)]
    result, progress = await run_step(sender, offsets_ms)

    assert [call.index for call in sender.calls] == list(range(20))
    assert [call.prompt for call in sender.calls] == [f"prompt {i}" for i in range(20)]
    assert [call.t_sched_ns - progress.t_start_ns for call in sender.calls] == [
        i * 2 * MS for i in range(20)
    ]
    assert [record.index for record in result.records] == list(range(20))
    assert all(record.ok for record in result.records)
    assert result.interrupted is False


async def test_sends_are_never_before_their_schedule() -> None:
    rng = np.random.default_rng(3)
    offsets_ms = np.sort(rng.uniform(0, 60, size=40))
    sender = FakeSender(fixed(0.001))
    await run_step(sender, offsets_ms.tolist())
    early = [c.index for c in sender.calls if c.t_call_ns < c.t_sched_ns]
    assert early == []
    assert len(sender.calls) == 40


async def test_no_cap_means_no_slot_wait() -> None:
    sender = FakeSender(fixed(0.01))
    result, _ = await run_step(sender, [0, 0, 0, 0])
    assert [call.slot_wait_ns for call in sender.calls] == [0, 0, 0, 0]
    assert [record.slot_wait_ns for record in result.records] == [0, 0, 0, 0]


async def test_open_loop_slow_sender_does_not_delay_later_sends() -> None:
    sender = FakeSender(fixed(0.5))
    offsets_ms = [50 * i for i in range(10)]  # the last is sent at 0.45 s, before any ends
    result, _ = await run_step(sender, offsets_ms)

    lags_s = [(call.t_call_ns - call.t_sched_ns) / 1e9 for call in sender.calls]
    assert all(lag < 0.1 for lag in lags_s), lags_s
    assert sender.max_active == 10  # all ten in flight together
    assert all(record.ok for record in result.records)


async def test_max_concurrency_caps_sends_and_reports_slot_wait() -> None:
    sender = FakeSender(fixed(0.05))
    result, _ = await run_step(sender, [0] * 6, max_concurrency=2)

    assert sender.max_active == 2
    assert sorted(call.index for call in sender.calls) == list(range(6))
    waits = {call.index: call.slot_wait_ns for call in sender.calls}
    # Pairs run back to back: 2 and 3 wait for one 50 ms send, 4 and 5 for two.
    assert waits[2] >= 40 * MS
    assert waits[3] >= 40 * MS
    assert waits[4] >= 90 * MS
    assert waits[5] >= 90 * MS
    for call in sender.calls:
        # The slot wait is part of the time between schedule and send.
        assert call.t_call_ns - call.t_sched_ns >= call.slot_wait_ns
    assert [record.slot_wait_ns for record in result.records] == [waits[i] for i in range(6)]


async def test_stop_during_dispatch_stops_sending_and_drains() -> None:
    stop = StopSignal()

    def stop_at_third(index: int) -> None:
        if index == 2:
            stop.request_stop()

    sender = FakeSender(fixed(0.15), on_call=stop_at_third)
    offsets_ms = [100 * i for i in range(10)]
    result, progress = await run_step(sender, offsets_ms, stop=stop)

    assert [call.index for call in sender.calls] == [0, 1, 2]
    assert [record.index for record in result.records] == [0, 1, 2]
    assert all(record.ok for record in result.records)  # in-flight ones finished
    assert result.interrupted is True
    assert (progress.sent, progress.done, progress.in_flight) == (3, 3, 0)


async def test_second_stop_abandons_a_hanging_request() -> None:
    stop = StopSignal()
    loop = asyncio.get_running_loop()

    def stop_twice(index: int) -> None:
        if index == 1:
            stop.request_stop()
            loop.call_later(0.05, stop.request_stop)

    sender = FakeSender(lambda index: HANG_S if index == 0 else 0.001, on_call=stop_twice)
    t0 = perf_counter_ns()
    result, progress = await run_step(sender, [0, 10, 10_000], stop=stop, drain_timeout_s=HANG_S)
    elapsed_s = (perf_counter_ns() - t0) / 1e9

    assert elapsed_s < 10  # ended by the second stop, not by the drain timeout
    assert [record.index for record in result.records] == [0, 1]
    assert result.records[0].error_kind == "cancelled"
    assert result.records[1].ok
    assert result.interrupted is True
    assert stop.stop_waiting.is_set()
    assert (progress.sent, progress.done, progress.errors, progress.in_flight) == (2, 2, 1, 0)


async def test_drain_timeout_bounds_the_wait_after_one_stop() -> None:
    stop = StopSignal()

    def stop_once(index: int) -> None:
        if index == 1:
            stop.request_stop()

    sender = FakeSender(lambda index: HANG_S if index == 0 else 0.001, on_call=stop_once)
    result, _ = await run_step(sender, [0, 10, 10_000], stop=stop, drain_timeout_s=0.1)

    assert [record.error_kind for record in result.records] == ["cancelled", None]
    assert result.interrupted is True
    assert not stop.stop_waiting.is_set()


async def test_observer_sees_every_request_and_counters_add_up() -> None:
    recorder = Recorder()
    sender = FakeSender(lambda index: (index % 4) / 1e3, fail=frozenset({3, 7}))
    result, progress = await run_step(sender, list(range(12)), observer=recorder)

    sent = [event for event in recorder.events if event[0] == "sent"]
    done = [event for event in recorder.events if event[0] == "done"]
    assert [event[1] for event in sent] == list(range(12))
    assert sorted(event[1] for event in done) == list(range(12))
    # The sent counter already counts the request it announces.
    assert [event[2] for event in sent] == list(range(1, 13))
    # Each request is announced before it is reported done.
    position = {(kind, index): i for i, (kind, index, *_) in enumerate(recorder.events)}
    assert all(position[("sent", i)] < position[("done", i)] for i in range(12))
    # Done counts 1, 2, 3, ... in completion order; nothing is ever done before it was sent.
    assert [event[3] for event in done] == list(range(1, 13))
    assert all(event[4] >= 0 for event in recorder.events)

    assert (progress.sent, progress.done, progress.errors, progress.in_flight) == (12, 12, 2, 0)
    assert [record.error_kind for record in result.records if not record.ok] == [
        "http_5xx",
        "http_5xx",
    ]


async def test_stop_also_stops_requests_waiting_for_a_slot() -> None:
    stop = StopSignal()

    def stop_at_first(index: int) -> None:
        if index == 0:
            stop.request_stop()

    sender = FakeSender(fixed(0.05), on_call=stop_at_first)
    result, _ = await run_step(sender, [0, 0, 0, 0], stop=stop, max_concurrency=1)

    assert [call.index for call in sender.calls] == [0]
    assert [record.ok for record in result.records] == [True, False, False, False]


async def test_a_start_rate_cap_holds_a_burst_to_its_rate_and_counts_what_it_held() -> None:
    # 25 requests due at once, capped at 10 starts a second: 10 start now, then 10 a second
    # later, then 5 (asyncio-throttle's sliding window of one second).
    sender = FakeSender(fixed(0.001))
    result, _ = await run_step(sender, [0.0] * 25, max_start_rate_rps=10)

    assert [record.index for record in result.records] == list(range(25))
    assert result.capped_sends == 15
    starts_s = sorted((call.t_call_ns - sender.calls[0].t_call_ns) / 1e9 for call in sender.calls)
    # No window of one second holds more than 10 starts (a 5 ms allowance for the clocks).
    for first, eleventh in zip(starts_s, starts_s[10:], strict=False):
        assert eleventh - first >= 1.0 - 0.005
    assert starts_s[9] < 0.5  # the first ten were not held


async def test_a_cap_above_the_schedule_bends_nothing() -> None:
    sender = FakeSender(fixed(0.001))
    result, _ = await run_step(sender, [i * 100.0 for i in range(5)], max_start_rate_rps=50)
    assert result.capped_sends == 0
