"""The one registry of the distributions a step reports, read by every output of a run.

Files, the exporter, the console, the report and the results reader all walk DISTRIBUTIONS;
a new distribution is a new StepFigures field, a RequestLatencies column and an entry here.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadgen.core.buckets import ITL_BUCKETS_S, REQUEST_LATENCY_BUCKETS_S, TTFT_BUCKETS_S


@dataclass(frozen=True, slots=True)
class DistributionSpec:
    """One distribution of a step.

    `field` names it in StepFigures, summary.json and RequestLatencies (seconds); `title` is
    for people; `metric` is its Prometheus stem (`loadgen_<metric>_seconds` histograms and
    `loadgen_step_<metric>_seconds` gauges), None when not exported; `buckets` are vLLM's
    bounds for the same quantity (s).
    """

    field: str
    title: str
    help: str
    metric: str | None = None
    buckets: tuple[float, ...] = ()


DISTRIBUTIONS: tuple[DistributionSpec, ...] = (
    DistributionSpec(
        "ttft_s", "TTFT", "Time to first token from send (s).", "ttft", TTFT_BUCKETS_S
    ),
    DistributionSpec(
        "ttft_sched_s", "TTFT from schedule", "Time to first token from schedule (s)."
    ),
    DistributionSpec(
        "ttfa_s",
        "TTFA",
        "Time to first answer token, after any reasoning, from send (s).",
        "ttfa",
        TTFT_BUCKETS_S,
    ),
    DistributionSpec(
        "tpot_s", "TPOT", "Time per output token after the first (s).", "tpot", ITL_BUCKETS_S
    ),
    DistributionSpec(
        "itl_s", "ITL", "Gaps between tokens, token-weighted (s).", "itl", ITL_BUCKETS_S
    ),
    DistributionSpec(
        "e2e_s", "E2E", "Send to last token (s).", "e2e_latency", REQUEST_LATENCY_BUCKETS_S
    ),
    DistributionSpec(
        "per_token_latency_s",
        "per-token latency",
        "End-to-end latency / output tokens (s).",
        "per_token_latency",
        ITL_BUCKETS_S,
    ),
    DistributionSpec(
        "queue_s", "queue", "Scheduled send to actual send (s).", "queue", REQUEST_LATENCY_BUCKETS_S
    ),
    DistributionSpec(
        "pacer_lateness_s", "pacer lateness", "Send behind schedule, less slot waits (s)."
    ),
)
DISTRIBUTION_FIELDS: tuple[str, ...] = tuple(spec.field for spec in DISTRIBUTIONS)
EXPORTED: tuple[DistributionSpec, ...] = tuple(s for s in DISTRIBUTIONS if s.metric is not None)
# Pooled over tokens rather than one value per request: computed by latency.itl_samples.
POOLED_FIELD = "itl_s"
