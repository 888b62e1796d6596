"""Wake the event loop at absolute `perf_counter_ns` deadlines, as close to them as the OS allows.

asyncio and uvloop timers have millisecond granularity (uvloop can even fire about 1.3 ms
early), so on Linux the pacer arms a kernel timerfd at the absolute deadline on
CLOCK_MONOTONIC (the clock behind `perf_counter`) and waits for it through `add_reader`.
Elsewhere it sleeps short of the deadline and yields until it passes. Either way the deadline is
re-checked after every wake-up, so a pacer never returns early.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import sys
import time
from typing import Any, Protocol

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_TIMER_ABSTIME = 1
# Sleep-based pacing stops this far short of a deadline and yields from there on.
_SLEEP_MARGIN_NS = 2_000_000


class Pacer(Protocol):
    """Waits until absolute deadlines on the `perf_counter_ns` clock."""

    async def wait_until(self, deadline_ns: int) -> None:
        """Return at or after `deadline_ns` (ns, `perf_counter_ns` clock), never before."""

    def close(self) -> None:
        """Release any OS resource the pacer holds."""


class SleepPacer:
    """Portable pacer: asyncio sleep to just short of the deadline, then yield until it passes."""

    async def wait_until(self, deadline_ns: int) -> None:
        """Return at or after `deadline_ns` (ns, `perf_counter_ns` clock)."""
        while True:
            remaining_ns = deadline_ns - time.perf_counter_ns()
            if remaining_ns <= 0:
                return
            if remaining_ns > _SLEEP_MARGIN_NS:
                await asyncio.sleep((remaining_ns - _SLEEP_MARGIN_NS) / 1e9)
            else:
                await asyncio.sleep(0)

    def close(self) -> None:
        """Nothing to release."""


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


class _LibcTimerFd:
    """timerfd through libc (Python < 3.13 has no `os.timerfd_*`)."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._create = libc.timerfd_create
        self._settime = libc.timerfd_settime
        self._settime.argtypes = (
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.c_void_p,
        )
        self._spec = _Itimerspec()

    def create(self) -> int:
        """A non-blocking timerfd on CLOCK_MONOTONIC."""
        fd = int(self._create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC))
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        return fd

    def arm_at(self, fd: int, deadline_ns: int) -> None:
        """Fire once at absolute `deadline_ns` (ns, CLOCK_MONOTONIC)."""
        self._spec.it_value.tv_sec, self._spec.it_value.tv_nsec = divmod(deadline_ns, 1_000_000_000)
        if self._settime(fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")


class _OsTimerFd:
    """timerfd through `os` (Python 3.13+)."""

    def __init__(self) -> None:
        self._os: Any = os  # typeshed for older Pythons lacks these names

    def create(self) -> int:
        """A non-blocking timerfd on CLOCK_MONOTONIC."""
        flags = self._os.TFD_NONBLOCK | self._os.TFD_CLOEXEC
        return int(self._os.timerfd_create(time.CLOCK_MONOTONIC, flags=flags))

    def arm_at(self, fd: int, deadline_ns: int) -> None:
        """Fire once at absolute `deadline_ns` (ns, CLOCK_MONOTONIC)."""
        self._os.timerfd_settime_ns(fd, flags=self._os.TFD_TIMER_ABSTIME, initial=deadline_ns)


class TimerFdPacer:
    """Linux pacer: a kernel timer armed at the absolute deadline wakes the loop via its fd."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._timer: _OsTimerFd | _LibcTimerFd = (
            _OsTimerFd() if hasattr(os, "timerfd_create") else _LibcTimerFd()
        )
        self._fd = self._timer.create()
        self._waiter: asyncio.Future[None] | None = None
        loop.add_reader(self._fd, self._on_fire)

    def _on_fire(self) -> None:
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            return
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait_until(self, deadline_ns: int) -> None:
        """Return at or after `deadline_ns` (ns, `perf_counter_ns` clock)."""
        while time.perf_counter_ns() < deadline_ns:
            self._waiter = self._loop.create_future()
            self._timer.arm_at(self._fd, deadline_ns)
            try:
                await self._waiter
            finally:
                self._waiter = None

    def close(self) -> None:
        """Stop watching and close the timerfd."""
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1


def timerfd_available() -> bool:
    """True where a timerfd on the `perf_counter` clock can be used."""
    if not sys.platform.startswith("linux"):
        return False
    info = time.get_clock_info("perf_counter")
    return "CLOCK_MONOTONIC" in info.implementation and "RAW" not in info.implementation


def make_pacer(loop: asyncio.AbstractEventLoop, *, precise: bool = True) -> Pacer:
    """The most precise pacer this platform offers (or the portable one if not `precise`)."""
    if precise and timerfd_available():
        try:
            return TimerFdPacer(loop)
        except (OSError, AttributeError):
            pass
    return SleepPacer()
