"""The service's sweeps: checked on submission, queued, run one at a time, kept on disk.

One sweep runs at a time (two would share the target and spoil both); the rest wait in a bounded
FIFO. A submission is checked against the operator's limits before it is queued, so nothing is
ever sent to a target the operator did not allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from loadgen.config import ConfigError, RunConfig, resolve
from loadgen.config.cluster import ClusterConfig
from loadgen.config.render import public_dump
from loadgen.config.sources import data_source
from loadgen.core.events import Observers, RunObserver, RunOutcome, StepProgress
from loadgen.core.records import RequestRecord, StepSummary
from loadgen.export.prometheus import PrometheusExporter
from loadgen.runtime.runner import StopSignal
from loadgen.service.security import AllowList, unknown_names
from loadgen.service.store import Status, Store, SweepState, new_sweep_id, utc_now
from loadgen.service.workers import Senders
from loadgen.workloads.scenarios import SCENARIOS

# Sends whose lateness the running sweep's progress shows the p99 of.
_RECENT_SENDS = 2000
# Workloads a submission may name: generated ones. A file path would read the service's disk.
BUILT_IN_DATASETS = frozenset({"synthetic", *SCENARIOS})


class SubmitError(Exception):
    """A request the service refuses: HTTP status, a short title, and the detail."""

    def __init__(self, status: int, title: str, detail: str, errors: list[str] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.errors = errors or []


@dataclass(frozen=True, slots=True)
class Limits:
    """What the operator allows: targets, API key variable names, and a ceiling on rates."""

    targets: AllowList
    key_names: tuple[str, ...]
    max_rate_rps: float | None


def checked_config(document: Any, limits: Limits) -> RunConfig:
    """The sweep file `document` as a RunConfig the service may run (SubmitError: 422, 403)."""
    try:
        config = resolve([data_source(document, "body")], RunConfig).config
    except ConfigError as exc:
        problems = [str(problem) for problem in exc.problems] or [str(exc)]
        raise SubmitError(422, "invalid sweep", str(exc), problems) from None
    _check_service_fields(config)
    for index, target in enumerate(config.run_targets()):
        where = f"targets[{index}]" if config.targets else "target"
        if target.base_url is not None and not limits.targets.allows(target.base_url):
            raise SubmitError(
                403, "target not allowed", f"{where}.base_url: not on the service's allow-list"
            )
    names = [target.api_key_env for target in config.run_targets()]
    refused = unknown_names(names, limits.key_names)
    if refused:
        raise SubmitError(
            403, "API key name not allowed", f"api_key_env {', '.join(refused)}: not on the list"
        )
    _check_rates(config, limits.max_rate_rps)
    return _capped(config, limits.max_rate_rps)


def _check_service_fields(config: RunConfig) -> None:
    """Refuse what would let a request read the service's files or open its ports."""
    refusals = {
        "output.out_dir": config.output.out_dir is not None,
        "metrics.port": config.metrics.port is not None,
        "metrics.pushgateway": config.metrics.pushgateway is not None,
        "load.trace": config.load.trace is not None,
        "sim.config_file": config.sim.config_file is not None,
        "workload.dataset": config.workload.dataset not in BUILT_IN_DATASETS,
        "workload.prompt_template": config.workload.prompt_template is not None,
        # Shard processes and cluster ports are the operator's (serve --processes, workers).
        "cluster": config.cluster != ClusterConfig(),
        # A search picks its own rates, past any ceiling: `loadgen capacity` runs them.
        "capacity": config.capacity.searching,
    }
    refusals |= {
        f"targets[{i}].tokenizer": target.tokenizer is not None
        and not target.tokenizer.startswith("tiktoken:")
        for i, target in enumerate(config.run_targets())
    }
    refused = [path for path, bad in refusals.items() if bad]
    if refused:
        detail = f"{', '.join(refused)}: the service sets these itself, or does not read files"
        raise SubmitError(422, "field not accepted by the service", detail, refused)


def _check_rates(config: RunConfig, ceiling_rps: float | None) -> None:
    """422 for a rate over the operator's ceiling (inf, all at once, is held to it instead)."""
    if ceiling_rps is None:
        return
    rates_rps = config.load.fixed_rates_rps
    over = [rate for rate in rates_rps if math.isfinite(rate) and rate > ceiling_rps]
    if over:
        shown = ", ".join(f"{rate:g}" for rate in over)
        raise SubmitError(
            422,
            "rate over the ceiling",
            f"load.rates_rps: {shown} req/s over the service's ceiling of {ceiling_rps:g} req/s",
            ["load.rates_rps"],
        )


def _capped(config: RunConfig, ceiling_rps: float | None) -> RunConfig:
    """`config` with request starts held to the ceiling (or to its own lower cap)."""
    if ceiling_rps is None:
        return config
    own_rps = config.load.max_start_rate_rps
    cap_rps = ceiling_rps if own_rps is None else min(own_rps, ceiling_rps)
    load = config.load.model_copy(update={"max_start_rate_rps": cap_rps})
    return config.model_copy(update={"load": load})


class _Watch(RunObserver):
    """Keeps the running sweep's progress and tells subscribers of each event."""

    def __init__(self, sweeps: Sweeps, sweep_id: str) -> None:
        self._sweeps, self._id = sweeps, sweep_id
        self.progress: StepProgress | None = None
        self._lateness_s: deque[float] = deque(maxlen=_RECENT_SENDS)

    @property
    def lateness_p99_s(self) -> float | None:
        """The pacer's lateness p99 over the step's recent sends (s)."""
        return float(np.quantile(self._lateness_s, 0.99)) if self._lateness_s else None

    def on_step_start(self, progress: StepProgress) -> None:
        """The step in progress, for GET and the event stream."""
        self.progress = progress
        self._lateness_s.clear()
        self._sweeps.publish(self._id, "step_start", {"step": progress.step})

    def on_request_sent(self, progress: StepProgress, index: int, lateness_ns: int) -> None:
        """One more send of the step, and how late it was."""
        self._lateness_s.append(lateness_ns / 1e9)

    def on_step_end(
        self, progress: StepProgress, summary: StepSummary, records: list[RequestRecord]
    ) -> None:
        """A finished step."""
        self._sweeps.publish(self._id, "step_end", {"step": summary.step})


class Sweeps:
    """Every sweep the service knows, the queue, and the one running."""

    def __init__(
        self,
        store: Store,
        limits: Limits,
        queue_size: int,
        senders: Senders,
        exporter: PrometheusExporter,
    ) -> None:
        self.store, self.limits, self.queue_size = store, limits, queue_size
        self.senders, self._exporter = senders, exporter
        self.states: dict[str, SweepState] = {}
        # Submitted configs, secrets included; on disk each sweep has its public dump only.
        self._configs: dict[str, RunConfig] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._running: tuple[str, StopSignal, _Watch] | None = None
        self._subscribers: dict[str, set[asyncio.Queue[tuple[str, dict[str, Any]]]]] = {}
        self._worker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Find the sweeps on disk (a restart fails the one it cut), queue the queued ones."""
        for state in self.store.recover():
            self.states[state.id] = state
            if state.status == "queued":
                self._queue.put_nowait(state.id)
        self._worker = asyncio.create_task(self._run_queue())

    async def close(self) -> None:
        """Stop the running sweep (its finished steps stay) and the queue."""
        if self._running is not None:
            _, stop, _ = self._running
            stop.request_stop()
            stop.request_stop()
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    def submit(self, document: Any, idempotency_key: str | None) -> tuple[SweepState, bool]:
        """Queue the sweep `document` (SubmitError when refused); the state, and whether it is
        new (a retry with the same Idempotency-Key gets the first one's state)."""
        if idempotency_key is not None:
            for state in self.states.values():
                if state.idempotency_key == idempotency_key:
                    return state, False
        config = checked_config(document, self.limits)
        if self.waiting() >= self.queue_size:
            raise SubmitError(429, "queue full", f"{self.queue_size} sweeps are waiting already")
        now = utc_now()
        state = SweepState(
            id=new_sweep_id(now),
            status="queued",
            created=now.isoformat(),
            config=public_dump(config),
            idempotency_key=idempotency_key,
        )
        self.store.save(state)
        self.states[state.id] = state
        self._configs[state.id] = config
        self._queue.put_nowait(state.id)
        return state, True

    def waiting(self) -> int:
        """How many sweeps are queued (a cancelled one no longer waits)."""
        return sum(state.status == "queued" for state in self.states.values())

    def newest_first(self) -> list[SweepState]:
        """Every sweep, the newest first (by submission time, to the microsecond)."""
        return sorted(self.states.values(), key=lambda state: state.created, reverse=True)

    def get(self, sweep_id: str) -> SweepState | None:
        """A sweep by id (None: no such sweep)."""
        return self.states.get(sweep_id)

    def progress(self, sweep_id: str) -> tuple[StepProgress, float | None] | None:
        """The running step of `sweep_id` and its lateness p99 (s), if it is the one running."""
        if self._running is None or self._running[0] != sweep_id:
            return None
        watch = self._running[2]
        return None if watch.progress is None else (watch.progress, watch.lateness_p99_s)

    def cancel(self, state: SweepState) -> None:
        """Cancel a queued sweep now, or stop a running one (it drains and keeps its steps)."""
        if state.status == "queued":
            self._finish(state, "cancelled", None)
        elif state.status == "running" and self._running is not None:
            state.status = "cancelling"
            self.store.save(state)
            self._running[1].request_stop()

    def delete(self, state: SweepState) -> None:
        """Forget a finished sweep and remove its files."""
        self.store.delete(state.id)
        del self.states[state.id]

    def publish(self, sweep_id: str, event: str, data: dict[str, Any]) -> None:
        """Tell the subscribers of `sweep_id` of an event."""
        for queue in self._subscribers.get(sweep_id, ()):
            queue.put_nowait((event, data))

    @contextlib.contextmanager
    def subscribed(self, sweep_id: str) -> Iterator[asyncio.Queue[tuple[str, dict[str, Any]]]]:
        """The events of `sweep_id`, while inside."""
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._subscribers.setdefault(sweep_id, set()).add(queue)
        try:
            yield queue
        finally:
            self._subscribers[sweep_id].discard(queue)

    async def _run_queue(self) -> None:
        while True:
            state = self.states.get(await self._queue.get())
            if state is not None and state.status == "queued":
                await self._run(state)

    async def _run(self, state: SweepState) -> None:
        """Run one sweep to its end, whatever the end."""
        config = self._configs.pop(state.id, None)
        if config is None:  # queued before a restart: what its public dump holds
            try:
                config = resolve([data_source(state.config, "saved sweep")], RunConfig).config
            except ConfigError as exc:
                why = str(exc).replace("\n", "; ")
                self._finish(state, "failed", f"cannot be run again after a restart: {why}")
                return
        output = config.output.model_copy(update={"out_dir": self.store.folder(state.id)})
        config = config.model_copy(update={"output": output})
        stop, watch = StopSignal(), _Watch(self, state.id)
        self._running = (state.id, stop, watch)
        state.status = "running"
        self.store.save(state)
        self.publish(state.id, "status", {"status": "running"})
        self._exporter.run_id = state.id
        try:
            outcome = await self.senders.run(config, Observers(self._exporter, watch), stop)
        except Exception as exc:  # any failure is the sweep's, never the service's
            self._finish(state, "failed", f"{type(exc).__name__}: {exc}")
        else:
            self._finish(state, *_ending(state, outcome))
        finally:
            self._running = None

    def _finish(self, state: SweepState, status: Status, error: str | None) -> None:
        state.status = status
        state.error = error
        state.finished = utc_now().isoformat()
        self.store.save(state)
        self.publish(state.id, "status", {"status": status, "error": error})


def _ending(state: SweepState, outcome: RunOutcome) -> tuple[Status, str | None]:
    """How a sweep that ran ended: cancelled, failed (with why), or succeeded."""
    if state.status == "cancelling":
        return "cancelled", None
    errors = [f"{target.label}: {target.error}" for target in outcome.failures]
    for target in outcome.targets:
        for step in target.steps:
            if step.invalid:
                errors.append(f"{target.label}: step {step.step} invalid: {step.invalid}")
            elif step.trimmed.num_requests and not step.trimmed.num_ok:
                kinds = ", ".join(f"{k}: {n}" for k, n in step.trimmed.errors_by_kind.items())
                errors.append(f"{target.label}: step {step.step}: every request failed ({kinds})")
    if outcome.interrupted:
        errors.append("stopped before its end")
    return ("failed", "; ".join(errors)) if errors else ("succeeded", None)
