"""Live Prometheus metrics of a run, on an injected registry (names are part of the contract).

Request metrics carry `target`, `model`, `scenario`, `rate` (the step's target req/s) and
`phase` (warmup, measure, cooldown: the trim rule, known at dispatch), never anything per
request. Histograms use vLLM's bucket bounds for the same quantity. Each finished step also
sets the `loadgen_step_*` gauges, so sweep curves can be drawn from Prometheus alone.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from loadgen.core.distributions import EXPORTED, POOLED_FIELD
from loadgen.core.events import RunObserver, StepProgress, TargetInfo
from loadgen.core.latency import itl_samples, request_latencies
from loadgen.core.records import Distribution, Phase, RequestRecord, StepSummary, record_phase
from loadgen.export.histograms import BatchHistogram
from loadgen.version import __version__

RUN_LABELS = ("target", "model", "scenario")
STEP_LABELS = (*RUN_LABELS, "rate")
REQUEST_LABELS = (*STEP_LABELS, "phase")
STATS = ("mean", "p50", "p90", "p99")
_RECENT_SENDS = 2000
_RATE_WINDOW_S = 10.0


@dataclass(frozen=True, slots=True)
class RunLabels:
    """What identifies a run in Prometheus."""

    run_id: str
    target: str
    model: str
    scenario: str


def rate_label(rate_rps: float) -> str:
    """A step's target rate as a label value: "4", "0.5", "inf"."""
    return "inf" if rate_rps == float("inf") else f"{rate_rps:g}"


class PrometheusExporter(RunObserver):
    """Turns run events into metrics on `registry`; `refresh()` updates the rolling gauges."""

    def __init__(
        self,
        registry: CollectorRegistry,
        run_id: str,
        *,
        wall_clock_s: Callable[[], float] = time.time,
        monotonic_ns: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self._wall_clock_s = wall_clock_s
        self._monotonic_ns = monotonic_ns
        self._lateness_s: deque[float] = deque(maxlen=_RECENT_SENDS)
        self._send_ns: deque[int] = deque(maxlen=_RECENT_SENDS)
        self._shard_lateness_s: dict[int, deque[float]] = {}
        self._pending: dict[Phase, list[RequestRecord]] = {
            "warmup": [],
            "measure": [],
            "cooldown": [],
        }
        self.run_id = run_id
        self._run: tuple[str, ...] | None = None
        self._step: tuple[str, ...] = ()
        self._register(registry)

    def on_target_start(self, target: TargetInfo) -> None:
        """Label what follows with the target's label, model and scenario."""
        self.start_run(RunLabels(self.run_id, target.label, target.model, target.scenario))

    def start_run(self, labels: RunLabels) -> None:
        """Label what follows with `labels`, resting the gauges of the target before, if any."""
        if self._run is not None:
            self.in_flight.labels(*self._run).set(0)
            self.achieved_rate.labels(*self._run).set(0)
        self._lateness_s.clear()
        self._shard_lateness_s.clear()
        self._send_ns.clear()
        self._run = (labels.target, labels.model, labels.scenario)
        self._step = (*self._run, "")
        self._run_info.labels(labels.run_id, *self._run, __version__).set(1)

    @property
    def _labels(self) -> tuple[str, ...]:
        if self._run is None:
            raise RuntimeError("the exporter has no target yet: call start_run first")
        return self._run

    def _register(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "loadgen_requests", "Requests ended, by status (ok or error kind).",
            (*REQUEST_LABELS, "status"), registry=registry,
        )  # fmt: skip
        self.tokens = Counter(
            "loadgen_tokens", "Tokens of successful requests, by direction (input, output).",
            (*REQUEST_LABELS, "direction"), registry=registry,
        )  # fmt: skip
        self.reasoning_tokens = Counter(
            "loadgen_reasoning_tokens",
            "Output tokens of successful requests that were reasoning (part of output tokens).",
            REQUEST_LABELS,
            registry=registry,
        )
        self.histograms = {
            spec.field: BatchHistogram(
                f"loadgen_{spec.metric}_seconds", spec.help, REQUEST_LABELS, spec.buckets
            )
            for spec in EXPORTED
        }
        for histogram in self.histograms.values():
            registry.register(histogram)
        self._register_gauges(registry)

    def _register_gauges(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, text: str, names: tuple[str, ...] = RUN_LABELS) -> Gauge:
            return Gauge(name, text, names, registry=registry)

        self.in_flight = gauge("loadgen_in_flight_requests", "Requests sent, not yet ended.")
        self.target_rate = gauge("loadgen_target_rate_rps", "The step's target rate (req/s).")
        self.achieved_rate = gauge("loadgen_achieved_rate_rps", "Send rate, last 10 s (req/s).")
        self.dispatch_lag = gauge(
            "loadgen_dispatch_lag_seconds", "p99 lateness of recent sends behind schedule (s)."
        )
        self.shard_lag = gauge(
            "loadgen_shard_dispatch_lag_seconds",
            "p99 lateness of a shard's recent sends behind schedule (s); cluster runs only.",
            (*RUN_LABELS, "shard"),
        )
        self.loop_lag = gauge("loadgen_event_loop_lag_seconds", "Event-loop wake-up delay (s).")
        self.step_start = gauge(
            "loadgen_step_start_timestamp_seconds", "When each step started (Unix s).", STEP_LABELS
        )
        self.step_end = gauge(
            "loadgen_step_end_timestamp_seconds", "When each step ended (Unix s).", STEP_LABELS
        )
        self.step_figures = {
            "sequence_throughput_rps": gauge(
                "loadgen_step_sequence_throughput_rps", "Trimmed successes/s.", STEP_LABELS
            ),
            "output_token_throughput_tps": gauge(
                "loadgen_step_output_token_throughput_tps", "Trimmed tokens/s.", STEP_LABELS
            ),
            "goodput_rps": gauge(
                "loadgen_step_goodput_rps", "Trimmed successes meeting SLOs/s.", STEP_LABELS
            ),
            "error_rate": gauge("loadgen_step_error_rate", "Failed kept requests.", STEP_LABELS),
        }
        self.step_distributions = {
            spec.field: gauge(
                f"loadgen_step_{spec.metric}_seconds",
                f"Step {spec.title} statistic (s).",
                (*STEP_LABELS, "stat"),
            )
            for spec in EXPORTED
        }
        info = ("run_id", *RUN_LABELS, "version")
        self._run_info = gauge("loadgen_run_info", "The run's identity; always 1.", info)

    def on_step_start(self, progress: StepProgress) -> None:
        """Set the step's target rate and start time."""
        self._step = (*self._labels, rate_label(progress.target_rate_rps))
        self.target_rate.labels(*self._labels).set(progress.target_rate_rps)
        self.step_start.labels(*self._step).set(self._wall_clock_s())

    def on_request_sent(self, progress: StepProgress, index: int, lateness_ns: int) -> None:
        """Count the request in flight; remember its lateness and send time."""
        self.in_flight.labels(*self._labels).set(progress.in_flight)
        self._lateness_s.append(lateness_ns / 1e9)
        self._send_ns.append(self._monotonic_ns())

    def on_request_done(self, progress: StepProgress, record: RequestRecord) -> None:
        """Count the request by status and tokens; queue it for the latency histograms."""
        phase = record_phase(record, progress.num_planned, progress.trim)
        labels = (*self._step, phase)
        self.in_flight.labels(*self._labels).set(progress.in_flight)
        self.requests.labels(*labels, record.error_kind or "ok").inc()
        if record.ok:  # tokens of successes only, as the step's throughput counts them
            if record.tokens_in:
                self.tokens.labels(*labels, "input").inc(record.tokens_in)
            if record.tokens_out:
                self.tokens.labels(*labels, "output").inc(record.tokens_out)
            if record.reasoning_tokens:
                self.reasoning_tokens.labels(*labels).inc(record.reasoning_tokens)
        self._pending[phase].append(record)
        if record.shard is not None:
            lateness_ns = record.t_send_ns - record.t_sched_ns - record.slot_wait_ns
            recent = self._shard_lateness_s.setdefault(record.shard, deque(maxlen=_RECENT_SENDS))
            recent.append(lateness_ns / 1e9)

    def _observe_pending(self) -> None:
        """Add the requests ended since the last call to the histograms, a batch per phase.

        Batched: the core's per-request definitions run once over many records, not per record.
        """
        for phase, records in self._pending.items():
            if not records:
                continue
            labels = (*self._step, phase)
            lat = request_latencies(records)
            for field, histogram in self.histograms.items():
                if field == POOLED_FIELD:
                    values = itl_samples([r for r in records if r.ok])
                else:
                    column = lat.column(field)
                    values = column[~np.isnan(column)]
                histogram.observe(labels, values)
            records.clear()

    def on_step_end(
        self, progress: StepProgress, summary: StepSummary, records: list[RequestRecord]
    ) -> None:
        """Publish the step's trimmed figures and end time."""
        self._observe_pending()
        figures = summary.trimmed
        for field, gauge in self.step_figures.items():
            value = getattr(figures, field)
            if value is not None:
                gauge.labels(*self._step).set(value)
        for field, gauge in self.step_distributions.items():
            distribution: Distribution | None = getattr(figures, field)
            if distribution is not None:
                for stat in STATS:
                    gauge.labels(*self._step, stat).set(getattr(distribution, stat))
        self.step_end.labels(*self._step).set(self._wall_clock_s())
        self.in_flight.labels(*self._labels).set(0)
        self.refresh()

    def refresh(self) -> None:
        """Update the histograms and the rolling gauges (dispatch lag p99, achieved rate)."""
        if self._run is None:
            return
        self._observe_pending()
        if self._lateness_s:
            p99 = float(np.percentile(np.fromiter(self._lateness_s, dtype=np.float64), 99))
            self.dispatch_lag.labels(*self._labels).set(p99)
        for shard, lateness_s in self._shard_lateness_s.items():
            p99 = float(np.percentile(np.fromiter(lateness_s, dtype=np.float64), 99))
            self.shard_lag.labels(*self._labels, str(shard)).set(p99)
        now_ns = self._monotonic_ns()
        window_ns = int(_RATE_WINDOW_S * 1e9)
        recent = [sent_ns for sent_ns in self._send_ns if now_ns - sent_ns <= window_ns]
        # Sends per second since the oldest recent send: right from the first seconds of a step,
        # and falling to 0 once sending stops.
        span_s = (now_ns - recent[0]) / 1e9 if recent else 0.0
        rate = (len(recent) - 1) / span_s if len(recent) > 1 and span_s > 0 else 0.0
        self.achieved_rate.labels(*self._labels).set(rate)

    def set_loop_lag(self, lag_s: float) -> None:
        """Record how late the event loop woke a timer (s)."""
        if self._run is None:
            return
        self.loop_lag.labels(*self._labels).set(lag_s)
