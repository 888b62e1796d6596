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

from loadgen import __version__
from loadgen.core.buckets import ITL_BUCKETS_S, REQUEST_LATENCY_BUCKETS_S, TTFT_BUCKETS_S
from loadgen.core.records import Distribution, RequestRecord, StepSummary, phase_of
from loadgen.core.stats import itl_samples
from loadgen.export.histograms import BatchHistogram
from loadgen.runtime.events import RunObserver, StepProgress

RUN_LABELS = ("target", "model", "scenario")
STEP_LABELS = (*RUN_LABELS, "rate")
REQUEST_LABELS = (*STEP_LABELS, "phase")
STATS = ("mean", "p50", "p90", "p99")
# Step distributions exported as loadgen_step_<name>_seconds{stat}, from StepFigures fields.
STEP_DISTRIBUTIONS = {
    "ttft": "ttft_s",
    "tpot": "tpot_s",
    "itl": "itl_s",
    "e2e_latency": "e2e_s",
    "per_token_latency": "per_token_latency_s",
    "queue": "queue_s",
}
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
        labels: RunLabels,
        *,
        wall_clock_s: Callable[[], float] = time.time,
        monotonic_ns: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self._wall_clock_s = wall_clock_s
        self._monotonic_ns = monotonic_ns
        self._lateness_s: deque[float] = deque(maxlen=_RECENT_SENDS)
        self._send_ns: deque[int] = deque(maxlen=_RECENT_SENDS)
        self._register(registry)
        self._label(labels)

    def start_run(self, labels: RunLabels) -> None:
        """Label what follows with `labels` (the next target of a run on the same registry)."""
        self.in_flight.labels(*self._run).set(0)
        self.achieved_rate.labels(*self._run).set(0)
        self._lateness_s.clear()
        self._send_ns.clear()
        self._label(labels)

    def _label(self, labels: RunLabels) -> None:
        self._run = (labels.target, labels.model, labels.scenario)
        self._step: tuple[str, ...] = (*self._run, "")
        self._run_info.labels(labels.run_id, *self._run, __version__).set(1)

    def _register(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "loadgen_requests", "Requests ended, by status (ok or error kind).",
            (*REQUEST_LABELS, "status"), registry=registry,
        )  # fmt: skip
        self.tokens = Counter(
            "loadgen_tokens", "Tokens of successful requests, by direction (input, output).",
            (*REQUEST_LABELS, "direction"), registry=registry,
        )  # fmt: skip
        self.histograms = {
            name: BatchHistogram(f"loadgen_{name}_seconds", text, REQUEST_LABELS, buckets)
            for name, text, buckets in (
                ("ttft", "Time to first token from send (s).", TTFT_BUCKETS_S),
                ("tpot", "Time per output token after the first (s).", ITL_BUCKETS_S),
                ("itl", "Gaps between tokens, token-weighted (s).", ITL_BUCKETS_S),
                ("e2e_latency", "Send to last token (s).", REQUEST_LATENCY_BUCKETS_S),
                ("per_token_latency", "End-to-end latency / output tokens (s).", ITL_BUCKETS_S),
                ("queue", "Scheduled send to actual send (s).", REQUEST_LATENCY_BUCKETS_S),
            )
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
            name: gauge(
                f"loadgen_step_{name}_seconds",
                f"Step {name} statistic (s).",
                (*STEP_LABELS, "stat"),
            )
            for name in STEP_DISTRIBUTIONS
        }
        info = ("run_id", *RUN_LABELS, "version")
        self._run_info = gauge("loadgen_run_info", "The run's identity; always 1.", info)

    def on_step_start(self, progress: StepProgress) -> None:
        """Set the step's target rate and start time."""
        self._step = (*self._run, rate_label(progress.target_rate_rps))
        self.target_rate.labels(*self._run).set(progress.target_rate_rps)
        self.step_start.labels(*self._step).set(self._wall_clock_s())

    def on_request_sent(self, progress: StepProgress, index: int, lateness_ns: int) -> None:
        """Count the request in flight; remember its lateness and send time."""
        self.in_flight.labels(*self._run).set(progress.in_flight)
        self._lateness_s.append(lateness_ns / 1e9)
        self._send_ns.append(self._monotonic_ns())

    def on_request_done(self, progress: StepProgress, record: RequestRecord) -> None:
        """Count the request by status and tokens; add its latencies to the histograms."""
        phase = phase_of(record.index, progress.num_planned, progress.trim)
        labels = (*self._step, phase)
        self.in_flight.labels(*self._run).set(progress.in_flight)
        self.requests.labels(*labels, record.error_kind or "ok").inc()
        if record.ok:  # tokens of successes only, as the step's throughput counts them
            if record.tokens_in:
                self.tokens.labels(*labels, "input").inc(record.tokens_in)
            if record.tokens_out:
                self.tokens.labels(*labels, "output").inc(record.tokens_out)
            self._observe_latencies(labels, record)
        self.histograms["queue"].observe(labels, [(record.t_send_ns - record.t_sched_ns) / 1e9])

    def _observe_latencies(self, labels: tuple[str, ...], record: RequestRecord) -> None:
        # As the step statistics: a success with no token chunk ends when its response does.
        end_ns = record.t_done_ns if record.t_last_ns is None else record.t_last_ns
        e2e_s = (end_ns - record.t_send_ns) / 1e9
        self.histograms["e2e_latency"].observe(labels, [e2e_s])
        if record.tokens_out >= 1:
            self.histograms["per_token_latency"].observe(labels, [e2e_s / record.tokens_out])
        if record.t_first_ns is None:
            return
        ttft_s = (record.t_first_ns - record.t_send_ns) / 1e9
        self.histograms["ttft"].observe(labels, [ttft_s])
        if record.tokens_out > 1:
            self.histograms["tpot"].observe(labels, [(e2e_s - ttft_s) / (record.tokens_out - 1)])
        self.histograms["itl"].observe(labels, itl_samples([record]))

    def on_step_end(
        self, progress: StepProgress, summary: StepSummary, records: list[RequestRecord]
    ) -> None:
        """Publish the step's trimmed figures and end time."""
        figures = summary.trimmed
        for field, gauge in self.step_figures.items():
            value = getattr(figures, field)
            if value is not None:
                gauge.labels(*self._step).set(value)
        for name, field in STEP_DISTRIBUTIONS.items():
            distribution: Distribution | None = getattr(figures, field)
            if distribution is not None:
                for stat in STATS:
                    gauge = self.step_distributions[name]
                    gauge.labels(*self._step, stat).set(getattr(distribution, stat))
        self.step_end.labels(*self._step).set(self._wall_clock_s())
        self.in_flight.labels(*self._run).set(0)
        self.refresh()

    def refresh(self) -> None:
        """Update the rolling gauges: dispatch lag p99 and achieved rate over recent sends."""
        if self._lateness_s:
            p99 = float(np.percentile(np.fromiter(self._lateness_s, dtype=np.float64), 99))
            self.dispatch_lag.labels(*self._run).set(p99)
        now_ns = self._monotonic_ns()
        window_ns = int(_RATE_WINDOW_S * 1e9)
        recent = [sent_ns for sent_ns in self._send_ns if now_ns - sent_ns <= window_ns]
        # Sends per second since the oldest recent send: right from the first seconds of a step,
        # and falling to 0 once sending stops.
        span_s = (now_ns - recent[0]) / 1e9 if recent else 0.0
        rate = (len(recent) - 1) / span_s if len(recent) > 1 and span_s > 0 else 0.0
        self.achieved_rate.labels(*self._run).set(rate)

    def set_loop_lag(self, lag_s: float) -> None:
        """Record how late the event loop woke a timer (s)."""
        self.loop_lag.labels(*self._run).set(lag_s)
