"""A shard: one asyncio engine that sends its share of each step as the master plans it.

Runs as `python -m loadgen.cluster.shard` under a worker's relay, frames on stdin and stdout.
Its load goes out through the same plan, StepRunner and client as a one-process run; its
records go back in batches as they end. The end of stdin (the relay gone) stops it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import os
import pickle
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from time import perf_counter_ns
from typing import Any

from loadgen.cluster.wire import Message, frame, pack_records, read_message
from loadgen.config import RunConfig, TargetConfig
from loadgen.config.service import client_token
from loadgen.core.events import RunObserver, StepProgress
from loadgen.core.records import RequestRecord, RequestSpec
from loadgen.core.shards import Shard
from loadgen.core.sweep import StepOrder
from loadgen.runtime.loop import run_async
from loadgen.runtime.plan import Offsets, TargetPlan, plan_target
from loadgen.runtime.runner import StepRunner, StopSignal
from loadgen.runtime.sweep import settle_garbage
from loadgen.runtime.targets import http_runner
from loadgen.version import __version__

# Records and sends go back at least this often (s), or when this many wait.
FLUSH_S = 0.1
FLUSH_RECORDS = 2000


def boot_id() -> str | None:
    """This host's boot id: processes that share one share CLOCK_MONOTONIC."""
    with contextlib.suppress(OSError), open("/proc/sys/kernel/random/boot_id") as file:
        return file.read().strip()
    return None


def hello() -> dict[str, Any]:
    """What a shard tells its master first; `join` proves it holds a token of a service master
    (a digest: the token itself never leaves the worker)."""
    token = client_token()
    return {"version": __version__, "host": socket.gethostname(), "pid": os.getpid(),
            "relay_pid": os.getppid(), "boot_id": boot_id(),
            "join": hashlib.sha256(token.encode()).hexdigest() if token else None}  # fmt: skip


def local_t0_ns(go: dict[str, Any]) -> int:
    """The master's start time on this process's `perf_counter_ns` clock.

    The same number on the master's host; elsewhere the wall-clock start, converted once.
    """
    if go["boot_id"] is not None and go["boot_id"] == boot_id():
        return int(go["t0_ns"])
    return perf_counter_ns() + int(go["t0_wall_ns"]) - time.time_ns()


def _error(exc: Exception) -> Message:
    """What a shard says of a failure."""
    return Message("error", {"message": f"{type(exc).__name__}: {exc}"})


class _Batcher(RunObserver):
    """Collects a running step's ended records and send latenesses for the next batch."""

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []
        self.lateness_ns: list[int] = []
        self.sent: set[int] = set()

    def on_request_sent(self, progress: StepProgress, index: int, lateness_ns: int) -> None:
        """Keep the lateness for the next batch."""
        self.lateness_ns.append(lateness_ns)

    def on_request_done(self, progress: StepProgress, record: RequestRecord) -> None:
        """Keep the record for the next batch."""
        self.records.append(record)
        self.sent.add(record.index)

    def take(self) -> tuple[list[RequestRecord], list[int]]:
        """What waits, and nothing waiting after."""
        records, lateness = self.records, self.lateness_ns
        self.records, self.lateness_ns = [], []
        return records, lateness


class ShardEngine:
    """Runs what the master asks, one message at a time; answers through `send`."""

    def __init__(self, send: Callable[[Message], Awaitable[None]]) -> None:
        self._send = send
        self._config: RunConfig | None = None
        self._target: dict[str, Any] = {}
        self._plans: dict[tuple[int, int, int], TargetPlan] = {}
        self._runner: StepRunner | None = None
        self._exit = contextlib.AsyncExitStack()
        self._batcher = _Batcher()
        self._step: tuple[int, float, list[RequestSpec], Offsets] | None = None
        self._stop = StopSignal()
        self._running: asyncio.Task[None] | None = None

    async def handle(self, message: Message) -> None:
        """Act on one message from the master."""
        handler = getattr(self, "_on_" + message.kind, None)
        if handler is None:
            await self._send(Message("error", {"message": f"unknown message {message.kind!r}"}))
            return
        try:
            await handler(message.data)
        except Exception as exc:  # anything a shard cannot do is its master's to report
            await self._send(_error(exc))

    async def close(self) -> None:
        """Stop a running step at once and let go of the target."""
        self._stop.request_stop()
        self._stop.request_stop()
        if self._running is not None:
            await asyncio.gather(self._running, return_exceptions=True)
        await self._exit.aclose()

    async def _on_setup(self, data: dict[str, Any]) -> None:
        """The run's configuration, secrets included (a worker trusts the master it joins, as
        a Locust worker runs the locustfile its master sends)."""
        self._config = pickle.loads(data["config"])

    async def _on_target(self, data: dict[str, Any]) -> None:
        """Open the target for `data["shard"]` of `data["shards"]`: its plan, a client."""
        await self._exit.aclose()
        self._plans.clear()
        self._target = data
        plan = self._plan(Shard(int(data["shard"]), int(data["shards"])))
        self._exit = contextlib.AsyncExitStack()
        _, self._runner = await self._exit.enter_async_context(
            http_runner(
                self._checked_config(),
                self._target_config(),
                plan,
                self._batcher,
                data["base_url"],
                data["model"],
            )
        )
        await self._send(Message("target_ready", {}))

    async def _on_plan(self, data: dict[str, Any]) -> None:
        shard = Shard(int(data["shard"]), int(data["shards"]))
        gc.unfreeze()  # what the last step set aside is the collector's again
        rate_rps, scale, repeat = float(data["rate_rps"]), int(data["scale"]), int(data["repeat"])
        order = StepOrder(rate_rps, scale, repeat=repeat)
        specs, offsets = self._plan(shard).step(int(data["step"]), order)
        self._step = (int(data["step"]), float(data["rate_rps"]), list(specs), offsets)
        settle_garbage()  # as a one-process step does: no full collection while sending
        await self._send(Message("ready", {"step": data["step"], "count": len(specs)}))

    async def _on_go(self, data: dict[str, Any]) -> None:
        if self._step is None or self._runner is None:
            raise RuntimeError("go before a target and a plan")
        self._stop = StopSignal()
        self._running = asyncio.create_task(self._reported(self._run_step(local_t0_ns(data))))

    async def _reported(self, step: Awaitable[None]) -> None:
        """Run `step`; tell the master if it fails, so that it does not wait for it forever."""
        try:
            await step
        except Exception as exc:  # the master marks the shard lost and the step invalid
            await self._send(_error(exc))

    async def _on_stop(self, data: dict[str, Any]) -> None:
        self._stop.request_stop()

    def _checked_config(self) -> RunConfig:
        if self._config is None:
            raise RuntimeError("no setup yet")
        return self._config

    def _target_config(self) -> TargetConfig:
        targets = self._checked_config().run_targets()
        return targets[int(self._target["index"])]

    def _plan(self, shard: Shard) -> TargetPlan:
        key = (int(self._target["index"]), shard.index, shard.count)
        if key not in self._plans:
            self._plans[key] = plan_target(self._checked_config(), self._target_config(), shard)
        return self._plans[key]

    async def _run_step(self, t0_ns: int) -> None:
        """Run the planned step from `t0_ns`, sending records as they end, then "done"."""
        assert self._step is not None
        assert self._runner is not None
        step, rate_rps, specs, offsets = self._step
        self._step = None
        self._batcher = batcher = _Batcher()
        self._runner.observer = batcher
        config = self._checked_config()
        progress = StepProgress(step, rate_rps, len(specs), config.load.trim, t0_ns)
        flusher = asyncio.create_task(self._flush_every(t0_ns))
        try:
            result = await self._runner.run(progress, specs, offsets, self._stop)
        finally:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
        records, lateness = batcher.take()
        records += [record for record in result.records if record.index not in batcher.sent]
        await self._send(
            Message(
                "done",
                {
                    "step": step,
                    "t0_ns": t0_ns,
                    "records": pack_records(records),
                    "lateness_ns": lateness,
                    "interrupted": result.interrupted,
                    "duration_s": result.duration_s,
                    "capped_sends": result.capped_sends,
                },
            )
        )

    async def _flush_every(self, t0_ns: int) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            records, lateness = self._batcher.take()
            if records or lateness:
                batch = {"t0_ns": t0_ns, "records": pack_records(records), "lateness_ns": lateness}
                await self._send(Message("records", batch))


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Say hello, then act on each message until the input ends."""

    async def send(message: Message) -> None:
        writer.write(frame(message.kind, message.data))
        await writer.drain()

    engine = ShardEngine(send)
    await send(Message("hello", hello()))
    try:
        while (message := await read_message(reader)) is not None:
            await engine.handle(message)
    finally:
        await engine.close()


async def _main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, sys.stdout
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    await serve(reader, writer)


if __name__ == "__main__":
    # Ctrl-C reaches the whole process group: the worker's relay decides, and ends this shard
    # by closing its input.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run_async(_main())
