"""One sweeper that ends streams gone quiet, instead of a timer re-armed on every read."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from time import perf_counter_ns
from typing import Any, Protocol


class Watched(Protocol):
    """A request in flight: when it last read data (ns), and whether it was found idle."""

    last_read_ns: int
    idle_expired: bool


class IdleWatchdog:
    """Cancels each watched request whose last read is more than `idle_s` ago.

    aiohttp's `sock_read` timeout cancels and re-arms a timer on every read, which costs a few
    microseconds per read; here a read only stores its time, and one task sweeps every
    `idle_s / 10` (between 10 ms and 1 s), so a stall ends within 10% of the limit.
    """

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self._idle_ns = int(idle_s * 1e9)
        self._period_s = min(max(idle_s / 10, 0.01), 1.0)
        self._watched: dict[asyncio.Task[Any], Watched] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sweeping (inside a running event loop)."""
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def stop(self) -> None:
        """Stop sweeping."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    @contextlib.contextmanager
    def watching(self, watched: Watched) -> Iterator[None]:
        """Watch the current task while inside; an idle stall cancels it."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("IdleWatchdog.watching needs a running task")
        self._watched[task] = watched
        try:
            yield
        finally:
            self._watched.pop(task, None)

    def sweep(self, now_ns: int) -> None:
        """Cancel every watched task idle for longer than the limit at `now_ns`."""
        for task, watched in list(self._watched.items()):
            if not watched.idle_expired and now_ns - watched.last_read_ns > self._idle_ns:
                watched.idle_expired = True
                task.cancel()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._period_s)
            self.sweep(perf_counter_ns())
