"""vLLM's histogram bucket bounds (s), shared by the simulator's metrics and loadgen's own.

They follow vLLM's V1 engine, vllm/v1/metrics/loggers.py (v0.11/v0.12), so client-side and
server-side histograms of the same quantity can be compared bucket by bucket.
"""

from __future__ import annotations

# fmt: off
TTFT_BUCKETS_S = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)
"""vllm:time_to_first_token_seconds upper bounds (seconds)."""

ITL_BUCKETS_S = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
    0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)
"""vllm:inter_token_latency_seconds upper bounds (seconds)."""

REQUEST_LATENCY_BUCKETS_S = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0,
    30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)
"""vllm:e2e_request_latency_seconds and vllm:request_queue_time_seconds bounds (seconds)."""
# fmt: on
