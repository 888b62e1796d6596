"""The master's end of a cluster: its Locust relay, the workers that joined, their messages.

The relay (`loadgen.cluster.relay master`) runs Locust's MasterRunner in a process of its own;
this side speaks frames with it over a pipe. Workers say hello with their loadgen version (one
that differs is refused), get the run's configuration, and are shards from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from loadgen.cluster.wire import Message, frame, read_message
from loadgen.config import RunConfig
from loadgen.core.events import RunObserver
from loadgen.version import __version__


class ClusterError(Exception):
    """The cluster cannot run: its relay failed, or its workers did not come."""


@dataclass(slots=True)
class Worker:
    """A worker that joined: Locust's id for it, where it runs, and why it was lost, if it was."""

    id: str
    host: str
    pid: int
    relay_pid: int
    lost: str | None = None

    @property
    def name(self) -> str:
        """How messages name it."""
        return f"{self.host} (pid {self.pid})"


class Cluster:
    """A Locust master and the workers that joined it; messages for the steps wait in `inbox`."""

    def __init__(
        self,
        config: RunConfig,
        observer: RunObserver,
        admits: Callable[[str | None], bool] | None = None,
    ) -> None:
        self.config = config
        self._observer = observer
        self._admits = admits  # a service master's check of a worker's `join` proof
        self.workers: list[Worker] = []
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.port = 0
        self.web_port: int | None = None
        self._relay: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._listening: asyncio.Future[int] | None = None
        self._joined = asyncio.Event()
        self._local: list[asyncio.subprocess.Process] = []
        self._watchers: set[asyncio.Task[None]] = set()

    @property
    def live(self) -> list[Worker]:
        """The workers not lost, in the order they joined."""
        return [worker for worker in self.workers if worker.lost is None]

    def send(self, kind: str, data: Any = None, peer: str | None = None) -> None:
        """Send a message to worker `peer` (None: every worker)."""
        if self._relay is None or self._relay.stdin is None:
            raise ClusterError("the cluster's relay is not running")
        self._relay.stdin.write(frame(kind, data, peer))

    def use(self, config: RunConfig) -> None:
        """Run `config` from now on: every live worker gets it."""
        self.config = config
        for worker in self.live:
            self._set_up(worker.id)

    def _set_up(self, peer: str) -> None:
        """Give worker `peer` the run's configuration."""
        self.send("setup", {"config": pickle.dumps(self.config)}, peer)

    async def start(self, bind_host: str, bind_port: int) -> None:
        """Start the relay (and Locust's web UI, if asked); ClusterError when it cannot listen."""
        settings = self.config.cluster
        web: tuple[str, ...] = ()
        if settings.locust_web_port is not None:
            web = (settings.locust_web_host, str(settings.locust_web_port))
        self._relay = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "loadgen.cluster.relay",
            "master",
            bind_host,
            str(bind_port),
            *web,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,  # Ctrl-C is the master's to handle, not the relay's
            limit=1 << 26,
        )
        self._listening = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())
        try:
            self.port = await self._listening
        except ClusterError:
            await self.close()
            raise

    async def start_local_workers(self, count: int) -> None:
        """Start `count` workers on this host, each ending with this process."""
        for _ in range(count):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "loadgen.cluster.relay",
                "worker",
                "127.0.0.1",
                str(self.port),
                str(self.config.cluster.worker_timeout_s),
                "--die-with-parent",
                start_new_session=True,
            )
            self._local.append(process)
            self._watchers.add(asyncio.create_task(self._watch_local(process)))

    async def wait_for_workers(self, count: int, timeout_s: float) -> None:
        """Return once `count` workers joined; ClusterError after `timeout_s` (s) without."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(self.live) < count:
            ended = [
                process.returncode for process in self._local if process.returncode is not None
            ]
            if ended:
                raise ClusterError(f"a local worker ended before the run (exit code {ended[0]})")
            self._joined.clear()
            left_s = deadline - loop.time()
            if left_s <= 0:
                raise ClusterError(
                    f"{len(self.live)} of {count} workers joined within {timeout_s:g} s (the "
                    f"master listens on port {self.port}; start them with "
                    f"`loadgen worker --master-host HOST --master-port {self.port}`)"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._joined.wait(), left_s)

    async def close(self) -> None:
        """Tell every worker to quit, and end the relay and local workers."""
        relay = self._relay
        if relay is not None and relay.stdin is not None:
            relay.stdin.close()  # the relay tells the workers to quit, then ends
            with contextlib.suppress(TimeoutError, ProcessLookupError):
                await asyncio.wait_for(relay.wait(), 10)
            if relay.returncode is None:
                relay.kill()
                await relay.wait()
        for process in self._local:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 10)
            if process.returncode is None:
                process.kill()
                await process.wait()
        tasks = [*self._watchers, *([self._reader] if self._reader is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _read(self) -> None:
        """Route the relay's messages: joins and losses here, the rest to the inbox."""
        assert self._relay is not None
        assert self._relay.stdout is not None
        while (message := await read_message(self._relay.stdout)) is not None:
            if message.kind == "listening" and self._listening is not None:
                self.web_port = message.data.get("web_port")
                self._listening.set_result(int(message.data["port"]))
            elif message.kind == "cannot_listen" and self._listening is not None:
                why = f"cannot listen for workers: {message.data['reason']}"
                self._listening.set_exception(ClusterError(why))
            elif message.kind == "hello":
                self._hello(message)
            else:
                if message.kind == "lost":
                    self._lose(message.peer, message.data["reason"])
                self.inbox.put_nowait(message)
        why = "the cluster's relay ended"
        if self._listening is not None and not self._listening.done():
            self._listening.set_exception(ClusterError(f"{why} before it listened"))
        for worker in self.live:
            self._lose(worker.id, why)
            self.inbox.put_nowait(Message("lost", {"reason": why}, worker.id))

    def _hello(self, message: Message) -> None:
        """Take a worker in, or refuse it: another loadgen version, or (a service master) no
        token of the service."""
        data, peer = message.data, message.peer or ""
        why = None
        if data.get("version") != __version__:
            why = f"it runs loadgen {data.get('version')}, the master loadgen {__version__}"
        elif self._admits is not None and not self._admits(data.get("join")):
            why = "it holds none of the service's API tokens (set LOADGEN_API_TOKEN for it)"
        if why is not None:
            self.send("refused", why, peer)
            self._observer.on_warning(f"refused worker {data.get('host')}: {why}")
            return
        worker = Worker(peer, str(data["host"]), int(data["pid"]), int(data["relay_pid"]))
        self.workers.append(worker)
        self._set_up(peer)
        self._observer.on_notice(f"worker {worker.name} joined ({len(self.live)} now)")
        self._joined.set()

    def _lose(self, peer: str | None, reason: str) -> None:
        for worker in self.workers:
            if worker.id == peer and worker.lost is None:
                worker.lost = reason

    async def _watch_local(self, process: asyncio.subprocess.Process) -> None:
        """A local worker's process that ends loses its worker at once (no heartbeat wait)."""
        code = await process.wait()
        self._joined.set()  # a master waiting for its workers learns of it too
        for worker in self.live:
            if worker.relay_pid == process.pid:
                reason = f"its process ended (exit code {code})"
                self._lose(worker.id, reason)
                self.inbox.put_nowait(Message("lost", {"reason": reason}, worker.id))


@contextlib.asynccontextmanager
async def started(config: RunConfig, observer: RunObserver) -> AsyncIterator[Cluster]:
    """A master with its workers joined: `processes` local ones, or `expect_workers` from
    anywhere (ClusterError when they do not come within `worker_timeout_s`)."""
    settings = config.cluster
    cluster = Cluster(config, observer)
    local = settings.processes
    host = "127.0.0.1" if local else settings.master_bind_host
    await cluster.start(host, 0 if local else settings.master_bind_port)
    try:
        if local:
            await cluster.start_local_workers(local)
        else:
            observer.on_notice(
                f"master listening on port {cluster.port}: waiting for "
                f"{settings.expect_workers} worker(s)"
            )
        if cluster.web_port is not None:
            observer.on_notice(
                f"Locust's web UI: http://{settings.locust_web_host}:{cluster.web_port} (live "
                "counts and latencies; the results hold the exact figures)"
            )
        expected = local or settings.expect_workers
        await cluster.wait_for_workers(expected, settings.worker_timeout_s)
        yield cluster
    finally:
        await cluster.close()
