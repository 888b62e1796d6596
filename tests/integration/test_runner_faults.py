"""StepRunner driving the real OpenAIClient against a real server that fails in every way.

The point is accounting: every request the runner sends ends as exactly one record with its
send index, whether it succeeded, failed, or was still in flight when the step was stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from time import perf_counter_ns

import numpy as np
import pytest

from loadgen.client.openai import OpenAIClient, Timeouts
from loadgen.client.protocol import RequestOptions
from loadgen.core.events import RunObserver, StepProgress
from loadgen.core.records import ErrorKind, RequestRecord, RequestSpec
from loadgen.runtime.pacer import make_pacer
from loadgen.runtime.runner import StepResult, StepRunner, StopSignal
from tests.support.fake_openai import Behaviour, FakeOpenAI, Fault, Incoming, serve

TIMEOUTS = Timeouts(connect_s=5, ttft_s=0.3, idle_s=0.3, total_s=30)
# Send index % 8 -> the fault the server injects and the error kind the record must carry.
FAULTS: list[tuple[Fault | None, ErrorKind | None]] = [
    (None, None),
    ("http_500", "http_5xx"),
    ("http_400", "http_4xx"),
    ("reset", "disconnect"),
    ("malformed", "bad_stream"),
    ("error_event", "bad_stream"),
    ("stall_first", "timeout"),
    ("plain_text", "bad_stream"),
]


class Counting(RunObserver):
    """Counts the runner's events."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.done: list[int] = []

    def on_request_sent(self, progress: StepProgress, index: int, lateness_ns: int) -> None:
        self.sent.append(index)

    def on_request_done(self, progress: StepProgress, record: RequestRecord) -> None:
        self.done.append(record.index)


def specs(count: int) -> list[RequestSpec]:
    """Requests tagged "#i" so the server knows each one's send index."""
    return [RequestSpec(f"#{i} some prompt", 4) for i in range(count)]


@asynccontextmanager
async def step_runner(
    fake: FakeOpenAI, observer: RunObserver, drain_timeout_s: float = 30.0
) -> AsyncIterator[StepRunner]:
    async with serve(fake) as url:
        client = OpenAIClient(url, RequestOptions(model="fake-model"), timeouts=TIMEOUTS)
        async with client:
            pacer = make_pacer(asyncio.get_running_loop())
            try:
                yield StepRunner(
                    client, pacer, observer, max_concurrency=None, drain_timeout_s=drain_timeout_s
                )
            finally:
                pacer.close()


async def run_step(
    runner: StepRunner, count: int, rate_rps: float, stop: StopSignal
) -> tuple[StepResult, StepProgress]:
    progress = StepProgress(0, rate_rps, count, 2, perf_counter_ns() + 5_000_000)
    offsets = np.arange(count, dtype=np.float64) / rate_rps
    return await runner.run(progress, specs(count), offsets, stop), progress


def assert_one_record_per_index(records: list[RequestRecord], count: int) -> None:
    assert [r.index for r in records] == list(range(count))


async def test_every_fault_is_one_record_and_none_is_lost() -> None:
    def script(incoming: Incoming) -> Behaviour:
        assert incoming.tag is not None
        fault = FAULTS[incoming.tag % len(FAULTS)][0]
        return Behaviour(gap_s=0.002, fault=fault, fault_after_chunks=1, stall_s=2.0)

    fake = FakeOpenAI(script=script)
    observer = Counting()
    count = 24
    async with step_runner(fake, observer) as runner:
        result, progress = await run_step(runner, count, 200.0, StopSignal())

    assert not result.interrupted
    assert_one_record_per_index(result.records, count)
    for record in result.records:
        assert record.error_kind == FAULTS[record.index % len(FAULTS)][1], (record.index, record)
    # The server saw each request once.
    assert sorted(-1 if tag is None else tag for tag in fake.seen.tags) == list(range(count))
    assert sorted(observer.sent) == sorted(observer.done) == list(range(count))
    assert (progress.sent, progress.done) == (count, count)
    assert progress.errors == count - count // len(FAULTS)


async def test_stop_then_abandon_turns_in_flight_requests_into_cancelled_records() -> None:
    # Every request stalls for 20 s: none can finish before the step is abandoned.
    fake = FakeOpenAI(Behaviour(fault="stall_mid", fault_after_chunks=1, stall_s=20.0))
    stop = StopSignal()
    async with step_runner(fake, RunObserver()) as runner:
        step = asyncio.create_task(run_step(runner, 1000, 50.0, stop))
        await fake.wait_for_requests(5)
        stop.request_stop()  # stop sending, start draining
        await asyncio.sleep(0.1)
        stop.request_stop()  # abandon what is in flight
        result, progress = await asyncio.wait_for(step, timeout=10)

    assert result.interrupted
    sent = progress.sent
    assert 5 <= sent < 1000
    assert_one_record_per_index(result.records, sent)
    assert {r.error_kind for r in result.records} == {"cancelled"}
    # Those that got a first token before the stall keep it.
    assert all(r.t_first_ns is not None for r in result.records if r.index < 4)
    assert len(fake.seen.requests) <= sent


async def test_stop_drains_within_the_drain_timeout() -> None:
    # Requests take 0.2 s (stall after the first token); the drain waits at most 0.5 s.
    fake = FakeOpenAI(Behaviour(fault="stall_mid", fault_after_chunks=1, stall_s=0.2))
    stop = StopSignal()
    async with step_runner(fake, RunObserver(), drain_timeout_s=0.5) as runner:
        step = asyncio.create_task(run_step(runner, 1000, 50.0, stop))
        await fake.wait_for_requests(5)
        stop.request_stop()
        result, progress = await asyncio.wait_for(step, timeout=10)

    assert result.interrupted
    assert_one_record_per_index(result.records, progress.sent)
    # In flight at the stop, each had ~0.2 s left: all finish inside the 0.5 s drain.
    assert all(r.ok for r in result.records), [r.error for r in result.records if not r.ok]
    assert len(fake.seen.requests) == progress.sent


class BrokenObserver(RunObserver):
    """An observer with a bug: it raises on the 4th send."""

    def on_request_sent(self, progress: StepProgress, index: int, lateness_ns: int) -> None:
        if index == 3:
            raise RuntimeError("observer bug")


async def test_a_broken_pacing_loop_fails_the_step_instead_of_cutting_it_short() -> None:
    # Before the fix, the step returned 4 records, not interrupted, as if it had been whole.
    fake = FakeOpenAI(Behaviour(gap_s=0.01))
    async with step_runner(fake, BrokenObserver()) as runner:
        with pytest.raises(RuntimeError, match="observer bug"):
            await run_step(runner, 10, 200.0, StopSignal())

    # The requests already sent were waited for, not left running.
    assert len(fake.seen.requests) == 4
    assert fake.seen.finished == 4
