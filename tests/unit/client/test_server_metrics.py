"""Tests for loadgen.client.server_metrics without a network: exposition text written by hand in
vLLM's shape (HELP and TYPE lines, model_name and engine labels, `_created` samples, buckets),
URLs, and a step's scrapes with a scripted scraper."""

from __future__ import annotations

import asyncio

import pytest

from loadgen.client.server_metrics import (
    MetricsScrapeError,
    MetricsScraper,
    StepWatch,
    family_names,
    metrics_url,
    parse_samples,
    same_origin,
    shown_url,
)
from loadgen.core.records import RequestRecord
from loadgen.core.server_metrics import Scrape, client_tokens, server_figures

# vLLM 0.10's page as prometheus-client writes it, cut to a few families, two engines.
VLLM_PAGE = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="llama"} 3.0
vllm:num_requests_running{engine="1",model_name="llama"} 2.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="llama"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="llama"} 0.5
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="llama"} 1234.0
vllm:prompt_tokens_total{engine="1",model_name="llama"} 766.0
# HELP vllm:prompt_tokens_created Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_created gauge
vllm:prompt_tokens_created{engine="0",model_name="llama"} 1.7563e+09
vllm:prompt_tokens_created{engine="1",model_name="llama"} 1.7563e+09
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="llama"} 4.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="llama"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="llama"} 3.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="llama"} 4.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="llama"} 4.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="llama"} 0.5
# HELP vllm:time_to_first_token_seconds_created Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds_created gauge
vllm:time_to_first_token_seconds_created{engine="0",model_name="llama"} 1.7563e+09
"""

# The same counters as an older exporter writes them: the TYPE line without `_total`, and a
# page with no TYPE lines at all (untyped samples).
TYPED_WITHOUT_SUFFIX = """\
# TYPE vllm:generation_tokens counter
vllm:generation_tokens_total{model_name="m"} 42
"""
UNTYPED = 'vllm:generation_tokens_total{model_name="m"} 42\nvllm:num_requests_waiting 7\n'


def test_parse_keeps_wanted_samples_per_label_set() -> None:
    samples = parse_samples(VLLM_PAGE)

    assert samples == {
        "vllm:num_requests_running": (3.0, 2.0),
        "vllm:kv_cache_usage_perc": (0.25, 0.5),
        "vllm:prompt_tokens_total": (1234.0, 766.0),
        "vllm:time_to_first_token_seconds_count": (4.0,),
        "vllm:time_to_first_token_seconds_sum": (0.5,),
    }  # no `_created`, no buckets, no finished_reason counter


@pytest.mark.parametrize("page", [TYPED_WITHOUT_SUFFIX, UNTYPED])
def test_parse_reads_counters_however_they_are_typed(page: str) -> None:
    assert parse_samples(page)["vllm:generation_tokens_total"] == (42.0,)


def test_parse_reads_older_vllm_names() -> None:
    page = """\
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="m"} 0.75
# TYPE vllm:gpu_prefix_cache_queries counter
vllm:gpu_prefix_cache_queries_total{model_name="m"} 100.0
# TYPE vllm:gpu_prefix_cache_hits counter
vllm:gpu_prefix_cache_hits_total{model_name="m"} 20.0
# TYPE vllm:time_per_output_token_seconds histogram
vllm:time_per_output_token_seconds_bucket{le="+Inf",model_name="m"} 9.0
vllm:time_per_output_token_seconds_count{model_name="m"} 9.0
vllm:time_per_output_token_seconds_sum{model_name="m"} 0.45
"""

    assert parse_samples(page) == {
        "vllm:gpu_cache_usage_perc": (0.75,),
        "vllm:gpu_prefix_cache_queries_total": (100.0,),
        "vllm:gpu_prefix_cache_hits_total": (20.0,),
        "vllm:time_per_output_token_seconds_count": (9.0,),
        "vllm:time_per_output_token_seconds_sum": (0.45,),
    }


def test_parsed_pages_reduce_to_known_figures() -> None:
    later = (
        VLLM_PAGE.replace("} 1234.0", "} 1334.0")
        .replace("} 766.0", "} 866.0")
        .replace(
            '_count{engine="0",model_name="llama"} 4.0', '_count{engine="0",model_name="llama"} 8'
        )
        .replace(
            '_sum{engine="0",model_name="llama"} 0.5', '_sum{engine="0",model_name="llama"} 1.5'
        )
    )
    scrapes = [Scrape(0, parse_samples(VLLM_PAGE)), Scrape(10**9, parse_samples(later))]

    figures = server_figures("u", scrapes, client_tokens([]))

    assert figures.prompt_tokens == 200  # 100 more on each engine
    assert figures.ttft_mean_s == pytest.approx(0.25, abs=1e-12)  # 1.0 s over 4 requests
    assert figures.running_max == 5.0
    assert figures.kv_cache_usage_max == 0.5


def test_a_page_that_is_not_prometheus_text_is_an_error() -> None:
    with pytest.raises(MetricsScrapeError, match="not Prometheus text"):
        family_names('{"object": "list", "data": []}')
    with pytest.raises(MetricsScrapeError, match="not Prometheus text"):
        parse_samples("vllm:num_requests_running{engine=0} x\n")


def test_family_names_strip_counter_suffixes() -> None:
    assert family_names(VLLM_PAGE)[:3] == [
        "vllm:num_requests_running",
        "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens",
    ]


# --- URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/metrics"),
        ("https://gpu.example/openai/v1", "https://gpu.example/metrics"),
        ("http://host:8000", "http://host:8000/metrics"),
    ],
)
def test_metrics_url_is_the_origin_and_metrics(base_url: str, expected: str) -> None:
    assert metrics_url(base_url) == expected


@pytest.mark.parametrize(
    ("url", "other", "same"),
    [
        ("http://Host:8000/metrics", "http://host:8000/v1", True),
        ("http://host/metrics", "http://host:80/v1", True),
        ("https://host/metrics", "https://host:443/v1", True),
        ("http://host:9090/metrics", "http://host:8000/v1", False),
        ("https://host:8000/metrics", "http://host:8000/v1", False),
        ("http://other:8000/metrics", "http://host:8000/v1", False),
    ],
)
def test_same_origin(url: str, other: str, same: bool) -> None:
    assert same_origin(url, other) is same


def test_shown_url_drops_credentials() -> None:
    assert shown_url("http://user:pw@host:9090/metrics") == "http://host:9090/metrics"
    assert shown_url("http://host:9090/metrics") == "http://host:9090/metrics"


# --- one step's scrapes ---------------------------------------------------------------------------


class ScriptedScraper(MetricsScraper):
    """Answers scrape number i with `pages[i]`: a running count, or None for a failure."""

    def __init__(self, pages: list[float | None]) -> None:
        super().__init__("http://host:1/metrics")
        self.pages = pages
        self.taken = 0

    async def scrape(self) -> Scrape:
        value = self.pages[min(self.taken, len(self.pages) - 1)]
        self.taken += 1
        if value is None:
            raise MetricsScrapeError("HTTP 503")
        return Scrape(self.taken, {"vllm:num_requests_running": (value,)})


def ok_record(index: int) -> RequestRecord:
    return RequestRecord(index, 0, 0, 0, 1, tokens_in=3, tokens_out=2, tokens_source="server")


async def test_step_watch_scrapes_at_start_between_and_end() -> None:
    scraper = ScriptedScraper([0.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 1.0])
    async with StepWatch(scraper, interval_s=0.01) as watch:
        assert scraper.taken == 1  # the start scrape, before the step's first send
        await asyncio.sleep(0.1)  # about 10 background scrapes (at least 2 asserted)
        figures = await watch.figures([ok_record(0), ok_record(1)])

    assert figures is not None
    assert figures.scrapes == scraper.taken >= 4
    assert figures.running_max == 5.0
    assert figures.client_generation_tokens == 4
    assert watch.warning() is None
    taken = scraper.taken
    await asyncio.sleep(0.05)
    assert scraper.taken == taken  # no scrape after the step


async def test_failed_scrapes_are_counted_not_raised() -> None:
    scraper = ScriptedScraper([2.0, None])
    async with StepWatch(scraper, interval_s=60.0) as watch:
        figures = await watch.figures([])

    assert figures is not None
    assert figures.scrapes == 1
    assert figures.running_max == 2.0
    assert watch.warning() == (
        "1 of 2 scrapes of http://host:1/metrics failed (last: HTTP 503); figures from the rest"
    )


async def test_no_scrape_that_worked_gives_no_figures() -> None:
    scraper = ScriptedScraper([None])
    async with StepWatch(scraper, interval_s=60.0) as watch:
        figures = await watch.figures([])

    assert figures is None
    assert watch.warning() is not None
    assert "no server figures" in (watch.warning() or "")


async def test_leaving_early_stops_the_background_scrapes() -> None:
    scraper = ScriptedScraper([1.0])

    async def failing_step() -> None:
        async with StepWatch(scraper, interval_s=0.01):
            await asyncio.sleep(0.03)
            raise RuntimeError("step failed")

    with pytest.raises(RuntimeError, match="step failed"):
        await failing_step()
    taken = scraper.taken
    await asyncio.sleep(0.05)

    assert scraper.taken == taken
