"""Tests for loadgen.client.idle: the sweeper that ends quiet streams."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from time import perf_counter_ns

import pytest

from loadgen.client.idle import IdleWatchdog

S = 1_000_000_000


@dataclass
class Activity:
    last_read_ns: int
    idle_expired: bool = False


async def test_sweep_cancels_only_tasks_idle_longer_than_the_limit() -> None:
    watchdog = IdleWatchdog(idle_s=2.0)
    quiet, busy = Activity(last_read_ns=0), Activity(last_read_ns=0)
    started = asyncio.Event()

    async def request(activity: Activity) -> str:
        with watchdog.watching(activity):
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                return "cancelled"
        return "finished"

    quiet_task = asyncio.create_task(request(quiet))
    busy_task = asyncio.create_task(request(busy))
    await started.wait()
    await asyncio.sleep(0)
    busy.last_read_ns = 9 * S
    watchdog.sweep(now_ns=10 * S)  # quiet: 10 s since its last read > 2 s; busy: 1 s
    assert quiet.idle_expired
    assert not busy.idle_expired
    assert await quiet_task == "cancelled"
    assert not busy_task.done()
    watchdog.sweep(now_ns=11 * S)  # exactly 2 s: not more than the limit
    assert not busy.idle_expired
    busy_task.cancel()
    assert await busy_task == "cancelled"


async def test_a_finished_request_is_no_longer_watched() -> None:
    watchdog = IdleWatchdog(idle_s=1.0)
    activity = Activity(last_read_ns=0)
    with watchdog.watching(activity):
        pass
    watchdog.sweep(now_ns=100 * S)
    assert not activity.idle_expired


async def test_the_sweeper_ends_a_stalled_task_on_its_own() -> None:
    watchdog = IdleWatchdog(idle_s=0.05)
    watchdog.start()
    activity = Activity(last_read_ns=perf_counter_ns())

    async def stalled() -> None:
        with watchdog.watching(activity):
            await asyncio.sleep(30)

    task = asyncio.create_task(stalled())
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=10)  # bound only against a hang; ends in ~0.05 s
    assert activity.idle_expired
    await watchdog.stop()


def test_watching_needs_a_task() -> None:
    watchdog = IdleWatchdog(idle_s=1.0)
    with pytest.raises(RuntimeError, match="running"), watchdog.watching(Activity(0)):
        pass
