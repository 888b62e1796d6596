"""vLLM-compatible Prometheus metrics for the simulated serving engine."""

# Names, label names, HELP strings and bucket boundaries follow vLLM's V1 engine,
# vllm-project/vllm, file vllm/v1/metrics/loggers.py (class PrometheusStatLogger and
# build_1_2_5_buckets), in its v0.11/v0.12 form: the one where
# vllm:time_per_output_token_seconds is deprecated in favour of
# vllm:inter_token_latency_seconds. The v0.10 file (commit 005a810b) has the same
# names and buckets except inter-token latency. As in vLLM, counters are created
# without the suffix and prometheus_client adds `_total` when it exposes them, and
# every finished_reason child is created at start so each series is exposed from 0.
# FinishReason strings come from vllm/v1/engine/__init__.py. Newer vLLM also has
# "error" and "repetition"; the simulator only produces these three.
# vllm:prefix_cache_queries and vllm:prefix_cache_hits count prompt tokens of requests
# scheduled for the first time (PrefixCacheStats.queries and .hits; a preempted request's
# second lookup goes to its preempted_* fields, which are not exported).

from __future__ import annotations

from bisect import bisect_left

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from loadgen.core.buckets import ITL_BUCKETS_S, REQUEST_LATENCY_BUCKETS_S, TTFT_BUCKETS_S

LABELNAMES = ("model_name", "engine")
FINISHED_REASONS = ("stop", "length", "abort")


def build_1_2_5_buckets(max_value: int) -> list[int]:
    """Return 1, 2, 5, 10, 20, 50, ... up to max_value inclusive (token counts), as vLLM does."""
    buckets: list[int] = []
    exponent = 0
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if value > max_value:
                return buckets
            buckets.append(value)
        exponent += 1


class VllmMetrics:
    """vLLM's core /metrics families on an injected registry, labelled (model_name, engine)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        model_name: str,
        engine: str = "0",
        max_model_len: int = 4096,
    ) -> None:
        """Register every family on `registry`; max_model_len (tokens) sizes token buckets."""
        if max_model_len < 1:
            raise ValueError(f"max_model_len must be at least 1, got {max_model_len}")
        values = (model_name, engine)

        def gauge(name: str, doc: str) -> Gauge:
            metric = Gauge(name, doc, LABELNAMES, registry=registry, multiprocess_mode="mostrecent")
            return metric.labels(*values)

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, LABELNAMES, registry=registry).labels(*values)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            metric = Histogram(name, doc, LABELNAMES, registry=registry, buckets=buckets)
            return metric.labels(*values)

        self._running = gauge(
            "vllm:num_requests_running", "Number of requests in model execution batches."
        )
        self._waiting = gauge(
            "vllm:num_requests_waiting", "Number of requests waiting to be processed."
        )
        self._kv_usage = gauge(
            "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."
        )

        self._preemptions = counter(
            "vllm:num_preemptions", "Cumulative number of preemption from the engine."
        )
        self._prefix_cache_queries = counter(
            "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
        )
        self._prefix_cache_hits = counter(
            "vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens."
        )
        self._prompt_tokens = counter("vllm:prompt_tokens", "Number of prefill tokens processed.")
        self._generation_tokens = counter(
            "vllm:generation_tokens", "Number of generation tokens processed."
        )
        success = Counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            (*LABELNAMES, "finished_reason"),
            registry=registry,
        )
        self._success = {r: success.labels(model_name, engine, r) for r in FINISHED_REASONS}

        token_buckets = tuple(float(b) for b in build_1_2_5_buckets(max_model_len))
        self._ttft = histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            TTFT_BUCKETS_S,
        )
        self._itl = histogram(
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            ITL_BUCKETS_S,
        )
        self._e2e = histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            REQUEST_LATENCY_BUCKETS_S,
        )
        self._queue = histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            REQUEST_LATENCY_BUCKETS_S,
        )
        self._prompt_len = histogram(
            "vllm:request_prompt_tokens", "Number of prefill tokens processed.", token_buckets
        )
        self._generation_len = histogram(
            "vllm:request_generation_tokens",
            "Number of generation tokens processed.",
            token_buckets,
        )
        # Weighted observe needs prometheus_client's per-bucket (non-cumulative) storage;
        # if a future version lays it out differently, fall back to repeated observe().
        itl = self._itl
        self._itl_weighted = (
            isinstance(getattr(itl, "_upper_bounds", None), list)
            and len(getattr(itl, "_buckets", ())) == len(itl._upper_bounds)
            and hasattr(itl, "_sum")
        )

    def set_state(self, running: int, waiting: int, kv_usage: float) -> None:
        """Set running and waiting request counts and KV-cache usage (fraction 0..1)."""
        if not 0.0 <= kv_usage <= 1.0:
            raise ValueError(f"kv_usage is a fraction in [0, 1], got {kv_usage}")
        self._running.set(running)
        self._waiting.set(waiting)
        self._kv_usage.set(kv_usage)

    def count_step(self, prompt_tokens: int, generation_tokens: int, preemptions: int) -> None:
        """Add one engine step's prefill tokens, generated tokens and preemptions (counts)."""
        if prompt_tokens:
            self._prompt_tokens.inc(prompt_tokens)
        if generation_tokens:
            self._generation_tokens.inc(generation_tokens)
        if preemptions:
            self._preemptions.inc(preemptions)

    def count_prefix_cache(self, queries: int, hits: int) -> None:
        """Add prompt tokens looked up in the prefix cache, and those found there (tokens)."""
        if not 0 <= hits <= queries:
            raise ValueError(f"need 0 <= hits <= queries, got {hits}, {queries}")
        if queries:
            self._prefix_cache_queries.inc(queries)
        if hits:
            self._prefix_cache_hits.inc(hits)

    def observe_first_token(self, ttft_s: float, queue_s: float) -> None:
        """Record one request's time to first token and time spent waiting (seconds)."""
        self._ttft.observe(ttft_s)
        self._queue.observe(queue_s)

    def observe_inter_token(self, gap_s: float, count: int = 1) -> None:
        """Record `count` identical inter-token gaps of gap_s seconds, in O(1) for any count."""
        if not gap_s >= 0.0 or count < 0:  # `not >=` also rejects NaN
            raise ValueError(f"need gap_s >= 0 and count >= 0, got {gap_s}, {count}")
        if count == 1:
            self._itl.observe(gap_s)
        elif count and self._itl_weighted:
            itl = self._itl
            itl._sum.inc(gap_s * count)
            # observe() puts amount in the first bucket with amount <= bound.
            itl._buckets[bisect_left(itl._upper_bounds, gap_s)].inc(count)
        else:
            for _ in range(count):
                self._itl.observe(gap_s)

    def observe_finished(
        self, e2e_s: float, prompt_tokens: int, generation_tokens: int, finished_reason: str
    ) -> None:
        """Record a finished request: latency (seconds), token counts and finish reason."""
        success = self._success.get(finished_reason)
        if success is None:
            raise ValueError(
                f"finished_reason must be one of {FINISHED_REASONS}, got {finished_reason!r}"
            )
        success.inc()
        self._e2e.observe(e2e_s)
        self._prompt_len.observe(prompt_tokens)
        self._generation_len.observe(generation_tokens)
