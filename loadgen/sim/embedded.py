"""The simulator served by a child process on a free loopback port, for runs given no URL.

A process of its own, so the engine's work never takes the client's core or its GIL: what a
run against it measures is the simulated server, not the client's own limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
from collections.abc import Coroutine
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

from loadgen.sim.server import ServeOptions, SimServer, start_server
from loadgen.sim.settings import SimSetup

_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 10.0


class SimProcessError(RuntimeError):
    """The built-in simulator's process could not start, or died; the message says why."""


class EmbeddedSim:
    """A context manager: a SimServer on `host` in a spawned child process, stopped on exit."""

    def __init__(self, setup: SimSetup, options: ServeOptions, host: str = "127.0.0.1") -> None:
        self._setup = setup
        self._options = options
        self._host = host
        self._port = 0
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=serve_child,
            args=(setup, options, host, child_conn),
            name="loadgen-sim",
            daemon=True,
        )
        self._child_conn = child_conn

    @property
    def base_url(self) -> str:
        """The OpenAI base URL of the running server."""
        return f"http://{self._host}:{self._port}/v1"

    def __enter__(self) -> EmbeddedSim:
        self._process.start()
        self._child_conn.close()
        try:
            ready = self._conn.poll(_START_TIMEOUT_S)
            kind, value = self._conn.recv() if ready else ("error", "it did not start in time")
        except (EOFError, OSError):
            kind, value = "error", f"its process ended (exit code {self._process.exitcode})"
        if kind != "ready":
            self._stop()
            raise SimProcessError(f"the built-in simulator failed: {value}")
        self._port = int(value)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop()

    def failure(self) -> str | None:
        """Why the simulator's process ended early, or None while it runs (or after a stop)."""
        code = self._process.exitcode
        if code is None or code == 0:
            return None
        return f"the built-in simulator's process ended with exit code {code}"

    def _stop(self) -> None:
        """Ask the child to stop; end it by force if it does not."""
        with contextlib.suppress(BrokenPipeError, OSError):
            self._conn.send(("stop", None))
        self._process.join(_STOP_TIMEOUT_S)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()


def serve_child(setup: SimSetup, options: ServeOptions, host: str, conn: Connection) -> None:
    """The child process: serve until the parent says stop or goes away; report start errors."""
    # Ctrl-C reaches the whole process group; it is the parent's to handle, and while it drains
    # its requests in flight this server must keep answering them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _run(_serve(setup, options, host, conn))
    except Exception as exc:
        with contextlib.suppress(BrokenPipeError, OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from None


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop where installed, else on asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


async def _serve(setup: SimSetup, options: ServeOptions, host: str, conn: Connection) -> None:
    runner, port = await start_server(SimServer(setup, options), host, 0)
    stopped = asyncio.Event()
    # A message from the parent, or its end of the pipe closing, makes the pipe readable.
    asyncio.get_running_loop().add_reader(conn.fileno(), stopped.set)
    conn.send(("ready", port))
    try:
        await stopped.wait()
    finally:
        await runner.cleanup()
