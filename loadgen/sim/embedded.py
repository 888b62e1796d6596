"""The simulator served by a child process on a free loopback port, for runs given no URL.

A process of its own, so the engine's work never takes the client's core or its GIL: what a
run against it measures is the simulated server, not the client's own limits. The child is a
fresh interpreter (`python -m loadgen.sim.embedded`), not a multiprocessing spawn, so a script
that calls `loadgen.run` needs no `if __name__ == "__main__"` guard.

The parent writes the pickled setup to the child's stdin and reads one line back: `ready PORT`
or `error MESSAGE`. Closing the child's stdin (or the parent ending) stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from loadgen.sim.server import ServeOptions, SimServer, start_server
from loadgen.sim.settings import SimSetup

_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 10.0
_LENGTH = struct.Struct("!Q")
# The folder holding the loadgen package, so the child imports this same loadgen.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class SimProcessError(RuntimeError):
    """The built-in simulator's process could not start, or died; the message says why."""


class EmbeddedSim:
    """A context manager: a SimServer on `host` in a child process, stopped on exit."""

    def __init__(self, setup: SimSetup, options: ServeOptions, host: str = "127.0.0.1") -> None:
        self._payload = pickle.dumps((setup, options, host))
        self._host = host
        self._port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI base URL of the running server."""
        return f"http://{self._host}:{self._port}/v1"

    @property
    def pid(self) -> int | None:
        """The child process's id, once started."""
        return None if self._process is None else self._process.pid

    def __enter__(self) -> EmbeddedSim:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(_search_path())}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "loadgen.sim.embedded"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        stdin, stdout = self._process.stdin, self._process.stdout
        if stdin is None or stdout is None:
            raise SimProcessError("the built-in simulator has no pipes")
        with contextlib.suppress(OSError):  # it ended already: its exit code says so below
            stdin.write(_LENGTH.pack(len(self._payload)) + self._payload)
            stdin.flush()
        kind, _, value = _first_line(stdout).partition(" ")
        if kind != "ready":
            self._stop()
            why = value or f"its process ended (exit code {self._process.returncode})"
            raise SimProcessError(f"the built-in simulator failed: {why}")
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
        """Why the simulator's process ended early, or None while it runs."""
        code = None if self._process is None else self._process.poll()
        if code is None:
            return None
        return f"the built-in simulator's process ended with exit code {code}"

    def _stop(self) -> None:
        """Close the child's stdin, its signal to stop; end it by force if it does not."""
        process = self._process
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _search_path() -> list[str]:
    given = os.environ.get("PYTHONPATH", "")
    return [_PACKAGE_ROOT, *(part for part in given.split(os.pathsep) if part)]


def _first_line(stdout: IO[bytes]) -> str:
    """The child's first line ("" when it ended without one), or an error line on a timeout."""
    ready, _, _ = select.select([stdout], [], [], _START_TIMEOUT_S)
    if not ready:
        return "error it did not start in time"
    return stdout.readline().decode("utf-8", "replace").strip()


def main() -> None:
    """The child process: read the setup, serve, say where, stop when stdin closes."""
    # Ctrl-C reaches the whole process group; it is the parent's to handle, and while it drains
    # its requests in flight this server must keep answering them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin = sys.stdin.buffer
    (size,) = _LENGTH.unpack(stdin.read(_LENGTH.size))
    setup, options, host = pickle.loads(stdin.read(size))
    try:
        _run(_serve(setup, options, host))
    except Exception as exc:
        _say(f"error {type(exc).__name__}: {exc}")
        raise SystemExit(1) from None


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop where installed, else on asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


async def _serve(setup: SimSetup, options: ServeOptions, host: str) -> None:
    runner, port = await start_server(SimServer(setup, options), host, 0)
    stopped = asyncio.Event()
    # The parent closing our stdin (or ending) makes it readable at end of file.
    asyncio.get_running_loop().add_reader(sys.stdin.fileno(), stopped.set)
    _say(f"ready {port}")
    try:
        await stopped.wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    main()
