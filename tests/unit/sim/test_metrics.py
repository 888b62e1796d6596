"""Tests for loadgen.sim.metrics: vLLM's metric names, labels and buckets, read from exposition.

Every check goes through prometheus_client.generate_latest and the text parser, so it tests
what a Prometheus scrape (and a Grafana dashboard built for vLLM) would see. Expected
names, HELP strings and bucket bounds are written out literally from vLLM's
vllm-project/vllm vllm/v1/metrics/loggers.py (PrometheusStatLogger, v0.11/v0.12 form),
not recomputed with the module under test.
"""

from __future__ import annotations

import math
import re

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from loadgen.sim.metrics import VllmMetrics, build_1_2_5_buckets

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
ENGINE = "3"
INF = math.inf

# family name -> (type, HELP text), literally as in vLLM's loggers.py
FAMILIES = {
    "vllm:num_requests_running": ("gauge", "Number of requests in model execution batches."),
    "vllm:num_requests_waiting": ("gauge", "Number of requests waiting to be processed."),
    "vllm:kv_cache_usage_perc": ("gauge", "KV-cache usage. 1 means 100 percent usage."),
    "vllm:prompt_tokens": ("counter", "Number of prefill tokens processed."),
    "vllm:generation_tokens": ("counter", "Number of generation tokens processed."),
    "vllm:num_preemptions": ("counter", "Cumulative number of preemption from the engine."),
    "vllm:prefix_cache_queries": (
        "counter",
        "Prefix cache queries, in terms of number of queried tokens.",
    ),
    "vllm:prefix_cache_hits": (
        "counter",
        "Prefix cache hits, in terms of number of cached tokens.",
    ),
    "vllm:request_success": ("counter", "Count of successfully processed requests."),
    "vllm:time_to_first_token_seconds": (
        "histogram",
        "Histogram of time to first token in seconds.",
    ),
    "vllm:inter_token_latency_seconds": (
        "histogram",
        "Histogram of inter-token latency in seconds.",
    ),
    "vllm:e2e_request_latency_seconds": (
        "histogram",
        "Histogram of e2e request latency in seconds.",
    ),
    "vllm:request_queue_time_seconds": (
        "histogram",
        "Histogram of time spent in WAITING phase for request.",
    ),
    "vllm:request_prompt_tokens": ("histogram", "Number of prefill tokens processed."),
    "vllm:request_generation_tokens": ("histogram", "Number of generation tokens processed."),
}

# Bucket upper bounds, copied by hand from vllm/v1/metrics/loggers.py.
TTFT = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0]
TTFT += [7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0]
ITL = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5]
ITL += [10.0, 20.0, 40.0, 80.0]
LATENCY = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0]
LATENCY += [60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0]
TOKENS_4096 = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]  # build_1_2_5_buckets(4096)


def scrape(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def families(registry: CollectorRegistry) -> dict[str, tuple[str, str, list[Sample]]]:
    """Parses a scrape into family name -> (type, HELP, samples), minus `_created` series.

    prometheus_client adds a `<name>_created` timestamp series per counter and histogram
    child unless disabled process-wide; the text format shows it as its own gauge family.
    """
    return {
        f.name: (f.type, f.documentation, list(f.samples))
        for f in text_string_to_metric_families(scrape(registry))
        if not f.name.endswith("_created")
    }


def value(registry: CollectorRegistry, sample_name: str, **labels: str) -> float:
    """The one sample with this exact name whose labels include `labels`."""
    hits = [
        s.value
        for _, _, samples in families(registry).values()
        for s in samples
        if s.name == sample_name and labels.items() <= s.labels.items()
    ]
    assert len(hits) == 1, (sample_name, labels, hits)
    return hits[0]


def buckets(registry: CollectorRegistry, family: str) -> dict[float, float]:
    """Histogram family -> {upper bound: cumulative count}."""
    _, _, samples = families(registry)[family]
    return {float(s.labels["le"]): s.value for s in samples if s.name == f"{family}_bucket"}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> VllmMetrics:
    return VllmMetrics(registry, MODEL, engine=ENGINE)


@pytest.mark.usefixtures("metrics")
def test_every_vllm_family_is_exposed_with_type_help_and_labels(
    registry: CollectorRegistry,
) -> None:
    found = families(registry)
    assert {name: (t, doc) for name, (t, doc, _) in found.items()} == FAMILIES
    for name, (_, _, samples) in found.items():
        assert samples, name
        for s in samples:
            assert s.labels["model_name"] == MODEL, s
            assert s.labels["engine"] == ENGINE, s
            extra = set(s.labels) - {"model_name", "engine"}
            allowed = {"le"} if s.name.endswith("_bucket") else set()
            if name == "vllm:request_success":
                allowed = {"finished_reason"}
            assert extra == allowed, s


@pytest.mark.usefixtures("metrics")
def test_counter_samples_are_named_with_a_single_total_suffix(registry: CollectorRegistry) -> None:
    text = scrape(registry)
    names = set(re.findall(r"^(vllm:[a-z_]+)\{", text, flags=re.MULTILINE))
    for counter in (
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:num_preemptions_total",
        "vllm:prefix_cache_queries_total",
        "vllm:prefix_cache_hits_total",
        "vllm:request_success_total",
    ):
        assert counter in names
        assert f"{counter}_total" not in names
    assert value(registry, "vllm:prompt_tokens_total", model_name=MODEL, engine=ENGINE) == 0


@pytest.mark.usefixtures("metrics")
def test_time_bucket_bounds_are_vllms(registry: CollectorRegistry) -> None:
    assert list(buckets(registry, "vllm:time_to_first_token_seconds")) == [*TTFT, INF]
    assert list(buckets(registry, "vllm:inter_token_latency_seconds")) == [*ITL, INF]
    assert list(buckets(registry, "vllm:e2e_request_latency_seconds")) == [*LATENCY, INF]
    assert list(buckets(registry, "vllm:request_queue_time_seconds")) == [*LATENCY, INF]


@pytest.mark.usefixtures("metrics")
def test_token_bucket_bounds_default_to_max_model_len_4096(registry: CollectorRegistry) -> None:
    assert list(buckets(registry, "vllm:request_prompt_tokens")) == [*TOKENS_4096, INF]
    assert list(buckets(registry, "vllm:request_generation_tokens")) == [*TOKENS_4096, INF]


def test_token_bucket_bounds_follow_max_model_len(registry: CollectorRegistry) -> None:
    VllmMetrics(registry, MODEL, max_model_len=131072)
    expected = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000]
    expected += [50000, 100000]
    assert list(buckets(registry, "vllm:request_prompt_tokens")) == [*expected, INF]
    assert list(buckets(registry, "vllm:request_generation_tokens")) == [*expected, INF]


@pytest.mark.parametrize(
    ("max_value", "expected"),
    [
        (4096, TOKENS_4096),
        (100, [1, 2, 5, 10, 20, 50, 100]),  # vLLM's own doctest
        (1000, [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]),
        (4, [1, 2]),
        (1, [1]),
        (0, []),
        (32768, [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000]),
    ],
)
def test_build_1_2_5_buckets(max_value: int, expected: list[int]) -> None:
    assert build_1_2_5_buckets(max_value) == expected


def test_max_model_len_below_one_is_refused(registry: CollectorRegistry) -> None:
    with pytest.raises(ValueError, match="max_model_len"):
        VllmMetrics(registry, MODEL, max_model_len=0)


def test_gauges_are_set_and_overwritten(metrics: VllmMetrics, registry: CollectorRegistry) -> None:
    metrics.set_state(running=7, waiting=3, kv_usage=0.42)
    metrics.set_state(running=5, waiting=11, kv_usage=0.875)
    assert value(registry, "vllm:num_requests_running") == 5
    assert value(registry, "vllm:num_requests_waiting") == 11
    assert value(registry, "vllm:kv_cache_usage_perc") == 0.875


@pytest.mark.parametrize("bad", [87.5, -0.01, 1.01, math.nan])
def test_kv_usage_must_be_a_fraction(
    metrics: VllmMetrics, registry: CollectorRegistry, bad: float
) -> None:
    with pytest.raises(ValueError, match="fraction"):
        metrics.set_state(1, 0, bad)
    assert value(registry, "vllm:kv_cache_usage_perc") == 0


def test_counters_move_by_the_amounts_passed(
    metrics: VllmMetrics, registry: CollectorRegistry
) -> None:
    metrics.count_step(prompt_tokens=512, generation_tokens=0, preemptions=0)
    metrics.count_step(prompt_tokens=0, generation_tokens=64, preemptions=2)
    metrics.count_step(prompt_tokens=100, generation_tokens=30, preemptions=1)
    assert value(registry, "vllm:prompt_tokens_total") == 612
    assert value(registry, "vllm:generation_tokens_total") == 94
    assert value(registry, "vllm:num_preemptions_total") == 3


def test_prefix_cache_counters_move_by_the_tokens_passed(
    metrics: VllmMetrics, registry: CollectorRegistry
) -> None:
    metrics.count_prefix_cache(queries=100, hits=64)
    metrics.count_prefix_cache(queries=30, hits=0)
    metrics.count_prefix_cache(queries=0, hits=0)
    assert value(registry, "vllm:prefix_cache_queries_total") == 130
    assert value(registry, "vllm:prefix_cache_hits_total") == 64


@pytest.mark.parametrize(("queries", "hits"), [(10, 11), (-1, 0), (5, -1)])
def test_prefix_cache_hits_cannot_exceed_queries(
    metrics: VllmMetrics, registry: CollectorRegistry, queries: int, hits: int
) -> None:
    with pytest.raises(ValueError, match="hits"):
        metrics.count_prefix_cache(queries, hits)
    assert value(registry, "vllm:prefix_cache_queries_total") == 0


def test_request_success_counts_per_finished_reason(
    metrics: VllmMetrics, registry: CollectorRegistry
) -> None:
    for reason in ("stop", "stop", "length", "stop"):
        metrics.observe_finished(1.0, 10, 10, reason)
    got = {
        r: value(registry, "vllm:request_success_total", finished_reason=r)
        for r in ("stop", "length", "abort")
    }
    assert got == {"stop": 3, "length": 1, "abort": 0}  # abort is exposed before it happens


def test_unknown_finished_reason_is_refused_and_records_nothing(
    metrics: VllmMetrics, registry: CollectorRegistry
) -> None:
    with pytest.raises(ValueError, match="finished_reason"):
        metrics.observe_finished(1.0, 10, 10, "eos")
    assert value(registry, "vllm:e2e_request_latency_seconds_count") == 0
    assert value(registry, "vllm:request_prompt_tokens_count") == 0


def test_first_token_observes_ttft_and_queue_time(
    metrics: VllmMetrics, registry: CollectorRegistry
) -> None:
    metrics.observe_first_token(ttft_s=0.03, queue_s=0.2)
    metrics.observe_first_token(ttft_s=3.0, queue_s=1.0)
    assert value(registry, "vllm:time_to_first_token_seconds_count") == 2
    assert value(registry, "vllm:time_to_first_token_seconds_sum") == pytest.approx(3.03)
    ttft = buckets(registry, "vllm:time_to_first_token_seconds")
    assert (ttft[0.02], ttft[0.04], ttft[2.5], ttft[5.0], ttft[INF]) == (0, 1, 1, 2, 2)
    queue = buckets(registry, "vllm:request_queue_time_seconds")
    assert (queue[0.3], queue[0.8], queue[1.0]) == (1, 1, 2)  # le bounds are inclusive
    assert value(registry, "vllm:request_queue_time_seconds_sum") == pytest.approx(1.2)


def test_finished_request_observes_latency_and_token_counts(
    metrics: VllmMetrics, registry: CollectorRegistry
) -> None:
    metrics.observe_finished(
        e2e_s=12.0, prompt_tokens=1500, generation_tokens=300, finished_reason="length"
    )
    e2e = buckets(registry, "vllm:e2e_request_latency_seconds")
    assert (e2e[10.0], e2e[15.0]) == (0, 1)
    assert value(registry, "vllm:e2e_request_latency_seconds_sum") == 12.0
    prompt = buckets(registry, "vllm:request_prompt_tokens")
    assert (prompt[1000], prompt[2000]) == (0, 1)
    assert value(registry, "vllm:request_prompt_tokens_sum") == 1500
    generation = buckets(registry, "vllm:request_generation_tokens")
    assert (generation[200], generation[500]) == (0, 1)
    assert value(registry, "vllm:request_generation_tokens_count") == 1
    assert value(registry, "vllm:request_generation_tokens_sum") == 300


def test_inter_token_count_adds_identical_gaps(
    metrics: VllmMetrics, registry: CollectorRegistry
) -> None:
    metrics.observe_inter_token(0.02, count=1000)
    metrics.observe_inter_token(0.3)  # on a bound: counted in le="0.3"
    metrics.observe_inter_token(0.025, count=5)  # on a bound, weighted
    metrics.observe_inter_token(0.5, count=0)  # nothing
    itl = buckets(registry, "vllm:inter_token_latency_seconds")
    assert (itl[0.01], itl[0.025], itl[0.2], itl[0.3], itl[INF]) == (0, 1005, 1005, 1006, 1006)
    assert value(registry, "vllm:inter_token_latency_seconds_count") == 1006
    assert value(registry, "vllm:inter_token_latency_seconds_sum") == pytest.approx(20.425)


def test_weighted_inter_token_matches_repeated_observe() -> None:
    """count=n must expose exactly what n single observations expose."""
    weighted, repeated = CollectorRegistry(), CollectorRegistry()
    a, b = VllmMetrics(weighted, MODEL), VllmMetrics(repeated, MODEL)
    for gap, n in [(0.0, 3), (0.01, 7), (0.0125, 250), (0.075, 2), (80.0, 4), (1e6, 3)]:
        a.observe_inter_token(gap, count=n)
        for _ in range(n):
            b.observe_inter_token(gap)
    family = "vllm:inter_token_latency_seconds"
    assert buckets(weighted, family) == buckets(repeated, family)
    assert buckets(weighted, family)[INF] == 269
    for suffix in ("_count", "_sum"):
        assert value(weighted, family + suffix) == pytest.approx(value(repeated, family + suffix))


@pytest.mark.parametrize(("gap", "count"), [(-0.001, 1), (math.nan, 10), (0.01, -1)])
def test_inter_token_rejects_bad_input(
    metrics: VllmMetrics, registry: CollectorRegistry, gap: float, count: int
) -> None:
    with pytest.raises(ValueError, match="gap_s"):
        metrics.observe_inter_token(gap, count)
    assert value(registry, "vllm:inter_token_latency_seconds_count") == 0


def test_metrics_live_only_on_the_injected_registry() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    VllmMetrics(first, "a")
    VllmMetrics(second, "b", engine="1")  # same names, no clash: nothing is global
    assert value(second, "vllm:num_requests_running", model_name="b", engine="1") == 0
    assert (
        REGISTRY.get_sample_value("vllm:num_requests_running", {"model_name": "a", "engine": "0"})
        is None
    )
