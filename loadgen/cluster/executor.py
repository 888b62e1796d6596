"""A target's steps on a cluster's shards: plan on each, start all at one time, merge the records.

Each shard plans its own share (core.shards) and says how many requests it will send; the master
then sets one start time, late enough for every shard to hear of it. Records stream back as
they end and feed the live metrics; at the end they are merged into one send order and summed
up by the same code as a one-process step. A shard lost mid-step leaves `lost` records for what
it had been due to send until then, and makes the step invalid.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from loadgen.cluster.master import Cluster, Worker
from loadgen.cluster.shard import boot_id
from loadgen.cluster.wire import Message, unpack_records
from loadgen.core.events import RunObserver, StepProgress
from loadgen.core.records import RequestRecord
from loadgen.core.shards import Shard, lost_records, merge_records, shard_index
from loadgen.core.sweep import StepOrder
from loadgen.runtime.plan import TargetPlan
from loadgen.runtime.runner import StepResult, StopSignal
from loadgen.runtime.sweep import ShardError, StepExecutor
from loadgen.runtime.targets import OpenTarget

# Between the master's "go" and the first send: time for it to reach every shard (ns).
START_LEAD_NS = 250_000_000


@dataclass(slots=True)
class _ShardStep:
    """One shard's part of the step in progress."""

    worker: Worker
    shard: Shard
    count: int = 0
    records: list[RequestRecord] = field(default_factory=list)
    done: bool = False
    lost_at_ns: int | None = None
    duration_s: float = 0.0
    capped_sends: int = 0

    @property
    def over(self) -> bool:
        """It has nothing more to say."""
        return self.done or self.lost_at_ns is not None


class ClusterExecutor:
    """Runs one target's steps on the shards it was opened on (StepExecutor)."""

    def __init__(
        self,
        cluster: Cluster,
        plan: TargetPlan,
        observer: RunObserver,
        workers: list[Worker],
        ui_name: str,
    ) -> None:
        self._cluster = cluster
        self._ui_name = ui_name
        self._plan = plan
        self._observer = observer
        self._workers = workers
        self._parts: list[_ShardStep] = []
        self._order = StepOrder(0.0)

    async def prepare(self, step: int, order: StepOrder) -> int:
        """Have every live shard plan its share; the step's total count."""
        rate_rps, scale = order.rate_rps, order.scale
        if order.synchronous:
            raise ShardError("a synchronous step is sent from one process, not a cluster")
        workers = [worker for worker in self._workers if worker.lost is None]
        lost = [worker for worker in self._workers if worker.lost is not None]
        if not workers:
            raise ShardError("no worker is left to send the load")
        if lost and self._cluster.config.cluster.on_worker_loss == "stop":
            raise ShardError(f"worker {lost[0].name} was lost: {lost[0].lost}")
        self._order = order
        self._parts = [_ShardStep(w, Shard(i, len(workers))) for i, w in enumerate(workers)]
        for part in self._parts:
            plan = {"step": step, "rate_rps": rate_rps, "scale": scale, "repeat": order.repeat,
                    "shard": part.shard.index, "shards": part.shard.count}  # fmt: skip
            self._cluster.send("plan", plan, part.worker.id)
        answers = await answers_of(self._cluster, [part.worker for part in self._parts], "ready")
        for part in self._parts:
            part.count = int(answers[part.worker.id]["count"])
        return sum(part.count for part in self._parts)

    async def run(self, progress: StepProgress, stop: StopSignal) -> StepResult:
        """Start every shard at one time, gather their records until all are done or lost."""
        t0_ns = max(progress.t_start_ns, perf_counter_ns() + START_LEAD_NS)
        progress.t_start_ns = t0_ns
        go = {"t0_ns": t0_ns, "t0_wall_ns": time.time_ns() + t0_ns - perf_counter_ns(),
              "boot_id": boot_id()}  # fmt: skip
        for part in self._parts:
            self._cluster.send("go", go, part.worker.id)
        relay_stops = asyncio.create_task(self._relay_stops(stop))
        try:
            invalid = await self._gather(progress, t0_ns)
        finally:
            relay_stops.cancel()
            await asyncio.gather(relay_stops, return_exceptions=True)
        records = [record for part in self._parts for record in part.records]
        records += self._lost_records(t0_ns)
        durations_s = [part.duration_s for part in self._parts]
        if invalid:  # a lost shard never said how long it sent
            durations_s.append((perf_counter_ns() - t0_ns) / 1e9)
        interrupted = stop.stop_sending.is_set()
        capped = sum(part.capped_sends for part in self._parts)
        return StepResult(merge_records(records), interrupted, max(durations_s), invalid, capped)

    async def _gather(self, progress: StepProgress, t0_ns: int) -> str | None:
        """Take the shards' messages until each is done or lost; why the step is invalid."""
        parts = {part.worker.id: part for part in self._parts}
        invalid = None
        while not all(part.over for part in self._parts):
            message = await self._cluster.inbox.get()
            part = parts.get(message.peer or "")
            if part is None or part.over:
                continue
            if message.kind in ("records", "done"):
                self._take(part, message.data, progress, t0_ns)
                part.done = message.kind == "done"
                if part.done:
                    part.duration_s = float(message.data["duration_s"])
                    part.capped_sends = int(message.data["capped_sends"])
                continue
            part.lost_at_ns = perf_counter_ns()
            part.worker.lost = part.worker.lost or _why(message)  # an error loses it too
            invalid = invalid or (
                f"worker {part.worker.name} (shard {part.shard.index}) was lost mid-step: "
                f"{part.worker.lost}"
            )
            self._observer.on_warning(invalid)
            if self._cluster.config.cluster.on_worker_loss == "stop":
                self._tell_live("stop")
        return invalid

    def _take(
        self, part: _ShardStep, data: dict[str, Any], progress: StepProgress, t0_ns: int
    ) -> None:
        """A batch of a shard's records and send latenesses, told to the observers."""
        records = unpack_records(data["records"], part.shard, t0_ns - int(data["t0_ns"]))
        part.records += records
        for lateness_ns in data["lateness_ns"]:
            progress.sent += 1
            self._observer.on_request_sent(progress, -1, int(lateness_ns))
        for record in records:
            progress.finish(record)
            self._observer.on_request_done(progress, record)
        if self._cluster.web_port is not None:
            self._cluster.send("ui", ui_rows(records, self._ui_name))

    def _lost_records(self, t0_ns: int) -> list[RequestRecord]:
        """`lost` records of each lost shard: what it was due to send before it was lost."""
        lost = []
        for part in self._parts:
            if part.lost_at_ns is None:
                continue
            offsets_s = self._plan.offsets_s(
                self._order.rate_rps, part.shard, self._order.scale, self._order.repeat
            )
            offsets_s = offsets_s[: part.count]
            t_sched_ns = (np.rint(offsets_s * 1e9).astype(np.int64) + t0_ns).tolist()
            told = {record.index for record in part.records}
            due = [
                local
                for local, t_ns in enumerate(t_sched_ns)
                if t_ns <= part.lost_at_ns and shard_index(local, part.shard) not in told
            ]
            lost += lost_records(
                [t_sched_ns[local] for local in due],
                [shard_index(local, part.shard) for local in due],
                part.shard.index,
                part.lost_at_ns,
                f"worker {part.worker.name} was lost: {part.worker.lost}",
            )
        return lost

    async def _relay_stops(self, stop: StopSignal) -> None:
        """Pass the run's stop requests on: the first stops the sending, the second the waiting."""
        await stop.stop_sending.wait()
        self._tell_live("stop")
        await stop.stop_waiting.wait()
        self._tell_live("stop")

    def _tell_live(self, kind: str) -> None:
        for part in self._parts:
            if not part.over:
                self._cluster.send(kind, {}, part.worker.id)


async def answers_of(cluster: Cluster, workers: list[Worker], kind: str) -> dict[str, Any]:
    """Each worker's answer of `kind`, by worker id; ShardError for the first that errs or is
    lost instead."""
    pending = {worker.id: worker for worker in workers}
    answers: dict[str, Any] = {}
    while pending:
        message = await cluster.inbox.get()
        if message.peer not in pending:
            continue  # a late word from a worker this question did not ask
        worker = pending.pop(message.peer)
        if message.kind != kind:
            raise ShardError(f"worker {worker.name}: {_why(message)}")
        answers[worker.id] = message.data
    return answers


def ui_rows(records: list[RequestRecord], name: str) -> list[list[Any]]:
    """Locust request events of `records`: the end-to-end time under `name`, and the time to
    first token under "NAME TTFT" (ms, tokens out, error)."""
    rows: list[list[Any]] = []
    for record in records:
        error = None if record.ok else f"{record.error_kind}: {record.error}"
        e2e_ms = (record.t_done_ns - record.t_send_ns) / 1e6
        rows.append([name, e2e_ms, record.tokens_out, error])
        if record.t_first_ns is not None:
            rows.append([f"{name} TTFT", (record.t_first_ns - record.t_send_ns) / 1e6, 0, None])
    return rows


def _warn_if_unreachable(
    base_url: str | None, workers: list[Worker], observer: RunObserver
) -> None:
    """Warn when the target is this host's loopback (the embedded simulator, say) and workers on
    other hosts would send to their own."""
    if base_url is None or urlsplit(base_url).hostname not in ("127.0.0.1", "localhost", "::1"):
        return
    here = socket.gethostname()
    far = [worker.name for worker in workers if worker.host != here]
    if far:
        observer.on_warning(
            f"{base_url} is this host's loopback: workers {', '.join(far)} on other hosts will "
            "send to their own (give a --base-url they can reach)"
        )


def _why(message: Message) -> str:
    """What a shard's error or loss message says."""
    if isinstance(message.data, dict):
        return str(message.data.get("message") or message.data.get("reason") or message.kind)
    return message.kind


class ClusterDistributor:
    """Runs a run's targets on a cluster (runtime.run.Distributor)."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    @contextlib.asynccontextmanager
    async def executor(
        self, index: int, opened: OpenTarget, plan: TargetPlan, observer: RunObserver
    ) -> AsyncIterator[StepExecutor]:
        """Open target `index` on every live worker, then run its steps there."""
        workers = self._cluster.live
        if not workers:
            raise ShardError("no worker is left to send the load")
        _warn_if_unreachable(opened.base_url, workers, observer)
        for i, worker in enumerate(workers):
            target = {"index": index, "base_url": opened.base_url, "model": opened.model,
                      "shard": i, "shards": len(workers)}  # fmt: skip
            self._cluster.send("target", target, worker.id)
        await answers_of(self._cluster, workers, "target_ready")
        endpoint = self._cluster.config.run_targets()[index].endpoint
        name = f"{opened.label}: {endpoint}"
        yield ClusterExecutor(self._cluster, plan, observer, workers, name)
