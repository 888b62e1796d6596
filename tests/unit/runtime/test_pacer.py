"""Tests for loadgen.runtime.pacer on asyncio's and uvloop's event loops.

The one promise tested is "never early": after every wait the clock reads at or after the
deadline. How late a pacer wakes depends on the machine, so nothing here bounds it.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import numpy as np
import pytest
import uvloop

from loadgen.runtime.pacer import (
    Pacer,
    SleepPacer,
    TimerFdPacer,
    make_pacer,
    timerfd_available,
)

MS = 1_000_000  # ns per ms

RunIn = Callable[[Callable[[], Coroutine[Any, Any, None]]], None]
PacerFactory = Callable[[asyncio.AbstractEventLoop], Pacer]

needs_timerfd = pytest.mark.skipif(not timerfd_available(), reason="no timerfd on this platform")


@pytest.fixture(params=["asyncio", "uvloop"])
def run_in(request: pytest.FixtureRequest) -> RunIn:
    """Runs a coroutine function to completion on a fresh loop of the parametrised kind."""
    factory = asyncio.new_event_loop if request.param == "asyncio" else uvloop.new_event_loop

    def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main())

    return run


@pytest.fixture(
    params=[
        pytest.param(lambda loop: SleepPacer(), id="sleep"),
        pytest.param(TimerFdPacer, id="timerfd", marks=needs_timerfd),
    ]
)
def make(request: pytest.FixtureRequest) -> PacerFactory:
    """Builds the parametrised pacer kind on a running loop."""
    factory: PacerFactory = request.param
    return factory


def test_never_returns_before_a_random_deadline(run_in: RunIn, make: PacerFactory) -> None:
    rng = np.random.default_rng(20240611)
    # Offsets straddle the sleep pacer's 2 ms margin, so both its branches run.
    offsets_ns = rng.integers(-1 * MS, 6 * MS, size=150).tolist()
    early: list[tuple[int, int]] = []

    async def main() -> None:
        pacer = make(asyncio.get_running_loop())
        try:
            for offset_ns in offsets_ns:
                deadline_ns = perf_counter_ns() + offset_ns
                await pacer.wait_until(deadline_ns)
                now_ns = perf_counter_ns()
                if now_ns < deadline_ns:
                    early.append((deadline_ns, now_ns))
        finally:
            pacer.close()

    run_in(main)
    assert early == []


def test_never_returns_before_an_absolute_schedule(run_in: RunIn, make: PacerFactory) -> None:
    """Deadlines as the runner uses them: a fixed origin plus increasing offsets."""
    rng = np.random.default_rng(7)
    gaps_ns = rng.exponential(1.5 * MS, size=150).astype(np.int64)
    early: list[int] = []

    async def main() -> None:
        pacer = make(asyncio.get_running_loop())
        deadlines_ns = (perf_counter_ns() + 2 * MS + np.cumsum(gaps_ns)).tolist()
        try:
            for index, deadline_ns in enumerate(deadlines_ns):
                await pacer.wait_until(deadline_ns)
                if perf_counter_ns() < deadline_ns:
                    early.append(index)
        finally:
            pacer.close()

    run_in(main)
    assert early == []


@pytest.mark.parametrize("ago_ns", [0, 1, 5 * MS, 10**12])
def test_past_deadline_returns_without_suspending(
    run_in: RunIn, make: PacerFactory, ago_ns: int
) -> None:
    async def main() -> None:
        pacer = make(asyncio.get_running_loop())
        try:
            waiting = pacer.wait_until(perf_counter_ns() - ago_ns)
            # A coroutine that finishes on its first step never yielded to the loop.
            with pytest.raises(StopIteration):
                waiting.send(None)
        finally:
            pacer.close()

    run_in(main)


def test_cancelled_wait_leaves_pacer_usable(run_in: RunIn, make: PacerFactory) -> None:
    async def main() -> None:
        pacer = make(asyncio.get_running_loop())
        try:
            far = asyncio.create_task(pacer.wait_until(perf_counter_ns() + 60 * 10**9))
            await asyncio.sleep(0.01)
            far.cancel()
            with pytest.raises(asyncio.CancelledError):
                await far
            deadline_ns = perf_counter_ns() + 3 * MS
            await pacer.wait_until(deadline_ns)
            assert perf_counter_ns() >= deadline_ns
        finally:
            pacer.close()

    run_in(main)


def test_make_pacer_not_precise_is_sleep_pacer(run_in: RunIn) -> None:
    async def main() -> None:
        pacer = make_pacer(asyncio.get_running_loop(), precise=False)
        try:
            assert isinstance(pacer, SleepPacer)
        finally:
            pacer.close()

    run_in(main)


@needs_timerfd
def test_make_pacer_precise_is_timerfd_pacer_where_available(run_in: RunIn) -> None:
    async def main() -> None:
        pacer = make_pacer(asyncio.get_running_loop())
        try:
            assert isinstance(pacer, TimerFdPacer)
        finally:
            pacer.close()

    run_in(main)


def _timerfds() -> set[int]:
    """The open file descriptors of this process that are timerfds."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(Path("/proc/self/fd") / name)
        except FileNotFoundError:  # e.g. the descriptor listdir itself used
            continue
        if "timerfd" in target:
            found.add(int(name))
    return found


def _is_closed(fd: int) -> bool:
    """True when `fd` is not an open descriptor (os.fstat fails with EBADF)."""
    try:
        os.fstat(fd)
    except OSError as exc:
        return exc.errno == errno.EBADF
    return False


@needs_timerfd
def test_timerfd_pacer_close_closes_its_fd_once(run_in: RunIn) -> None:
    async def main() -> None:
        before = _timerfds()
        pacer = TimerFdPacer(asyncio.get_running_loop())
        new = _timerfds() - before
        assert len(new) == 1
        (fd,) = new
        assert not _is_closed(fd)

        pacer.close()
        assert _is_closed(fd)
        pacer.close()  # idempotent: no error
        assert _is_closed(fd)
        assert _timerfds() == before

    run_in(main)
