"""The simulator served from a background thread on a free loopback port, for runs with no URL."""

from __future__ import annotations

import asyncio
import sys
import threading
from types import TracebackType

from loadgen.sim.server import ServeOptions, SimServer, start_server
from loadgen.sim.settings import SimSetup

_START_TIMEOUT_S = 30.0
# The client and the simulator share the GIL: a 0.5 ms switch interval (Python's default is
# 5 ms) keeps the simulator's bursts of work from holding the client's sends back.
_SWITCH_INTERVAL_S = 0.0005


class EmbeddedSim:
    """A context manager: a SimServer on 127.0.0.1 in its own thread and event loop."""

    def __init__(self, setup: SimSetup, options: ServeOptions, host: str = "127.0.0.1") -> None:
        self.server = SimServer(setup, options)
        self._host = host
        self._ready = threading.Event()
        self._port = 0
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, name="loadgen-sim", daemon=True)
        self._switch_interval_s = sys.getswitchinterval()

    @property
    def base_url(self) -> str:
        """The OpenAI base URL of the running server."""
        return f"http://{self._host}:{self._port}/v1"

    def __enter__(self) -> EmbeddedSim:
        sys.setswitchinterval(_SWITCH_INTERVAL_S)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S):
            raise RuntimeError("the built-in simulator did not start")
        if self._failure is not None:
            raise self._failure
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(_START_TIMEOUT_S)
        sys.setswitchinterval(self._switch_interval_s)

    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the starting thread
            self._failure = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        runner, self._port = await start_server(self.server, self._host, 0)
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            await runner.cleanup()
