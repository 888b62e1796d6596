"""The server's view of each step, scraped from its /metrics over loopback HTTP.

A FakeOpenAI app also serves a vLLM-style page (tests/support/fake_metrics.py) whose counters
move by known amounts per request served; the built-in simulator serves vLLM's metrics and
reports usage, so its counts must equal the client's exactly.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import loadgen
from loadgen.client.server_metrics import MetricsScrapeError, MetricsScraper
from loadgen.core.events import RunObserver
from loadgen.core.records import ServerFigures, StepSummary
from tests.integration._helpers import read_summary, run_cli, write_tagged_dataset
from tests.support import fake_metrics
from tests.support.fake_metrics import FakeMetrics
from tests.support.fake_openai import (
    Behaviour,
    FakeOpenAI,
    ServerThread,
    closed_port_url,
    serve,
)

NUM_REQUESTS = 12
MAX_TOKENS = 4
PROMPT_WORDS = 4  # "#i alpha beta gamma"
# Requests stay in flight 0.3 s, while the step's scrapes come every 0.05 s.
SLOW = Behaviour(ttft_s=0.3, gap_s=0.002)
FAST_SCRAPES = ("loadgen.client.server_metrics.SCRAPE_INTERVAL_S", 0.05)


class Heard(RunObserver):
    """Notices and warnings of a run."""

    def __init__(self) -> None:
        self.notices: list[str] = []
        self.warnings: list[str] = []

    def on_notice(self, message: str) -> None:
        self.notices.append(message)

    def on_warning(self, message: str) -> None:
        self.warnings.append(message)


def run_steps(
    tmp_path: Path, heard: RunObserver, target: dict[str, Any], **load: Any
) -> list[StepSummary]:
    """One step of NUM_REQUESTS tagged requests through the public API; its summaries."""
    dataset = write_tagged_dataset(tmp_path / "data.jsonl", NUM_REQUESTS, MAX_TOKENS)
    config = loadgen.RunConfig.model_validate(
        {
            "target": target,
            "load": {"rates_rps": [60], "num_requests": NUM_REQUESTS, "trim": 2} | load,
            "workload": {"dataset": str(dataset)},
        }
    )
    outcome = loadgen.run(config, heard)
    (done,) = outcome.targets
    assert done.error is None, done.error
    return list(done.steps)


def server_of(step: StepSummary) -> ServerFigures:
    assert step.server is not None
    return step.server


def cli_args(url: str, tmp_path: Path, *more: str) -> list[str]:
    dataset = write_tagged_dataset(tmp_path / "data.jsonl", NUM_REQUESTS, MAX_TOKENS)
    return [
        "run", "--base-url", url, "--rate", "60", "--num-requests", str(NUM_REQUESTS),
        "--trim", "2", "--dataset", str(dataset), "--out", str(tmp_path / "out"), *more,
    ]  # fmt: skip


def test_step_holds_the_servers_counts_gauges_and_means(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(*FAST_SCRAPES)
    fake = FakeOpenAI(SLOW)
    metrics = FakeMetrics(fake)
    heard = Heard()
    with ServerThread(fake) as url:
        (step,) = run_steps(tmp_path, heard, {"base_url": url})

    server = server_of(step)
    origin = url.removesuffix("/v1")
    assert server.url == f"{origin}/metrics"
    assert f"server metrics: scraping {origin}/metrics around each step" in heard.notices
    assert heard.warnings == []
    # one probe, then every scrape of the step
    assert server.scrapes == len(metrics.seen.gets) - 1 >= 4
    # counters moved by known amounts over 12 requests (from 10 000, not 0)
    assert server.prompt_tokens == server.client_prompt_tokens == NUM_REQUESTS * PROMPT_WORDS
    assert server.generation_tokens == server.client_generation_tokens == NUM_REQUESTS * MAX_TOKENS
    assert server.tokens_mismatch is None
    assert server.prefix_cache_queries == 48
    assert server.prefix_cache_hits == 24  # 2 a request
    assert server.prefix_cache_hit_rate == 0.5
    assert server.preemptions == 3  # requests 0, 5 and 10
    # gauges: the fake's in-flight requests, 2 waiting on each of 2 engines, usage 0.25 / 0.5
    assert server.running_max is not None
    assert 1 <= server.running_max <= NUM_REQUESTS
    assert server.waiting_max == server.waiting_mean == 4.0
    assert server.kv_cache_usage_max == 0.5
    # every request observed 0.05 s TTFT, 0.2 s E2E; 3 gaps of 0.01 s under the old ITL name
    assert server.ttft_mean_s == pytest.approx(fake_metrics.TTFT_S, abs=1e-9)
    assert server.e2e_mean_s == pytest.approx(fake_metrics.E2E_S, abs=1e-9)
    assert server.itl_mean_s == pytest.approx(fake_metrics.ITL_S, abs=1e-9)


def test_token_counts_that_disagree_are_flagged(tmp_path: Path) -> None:
    fake = FakeOpenAI(Behaviour(gap_s=0.002))
    FakeMetrics(fake, extra_generation=1)
    with ServerThread(fake) as url:
        (step,) = run_steps(tmp_path, Heard(), {"base_url": url})

    assert step.tokens_source == "server"
    assert server_of(step).tokens_mismatch == "mismatch: generation tokens: server 60, client 48"


def test_a_scrape_failing_mid_step_leaves_figures_and_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(*FAST_SCRAPES)
    fake = FakeOpenAI(SLOW)
    metrics = FakeMetrics(fake, fail=lambda number: number == 2)  # 0: probe, 1: step start
    heard = Heard()
    with ServerThread(fake) as url:
        (step,) = run_steps(tmp_path, heard, {"base_url": url})

    server = server_of(step)
    assert server.scrapes == len(metrics.seen.gets) - 2
    assert server.generation_tokens == NUM_REQUESTS * MAX_TOKENS
    (warning,) = heard.warnings
    assert warning.startswith("step 0: server metrics: 1 of ")
    assert "HTTP 500" in warning
    assert warning.endswith("figures from the rest")


@pytest.mark.slow
def test_simulator_counts_equal_the_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("loadgen.client.server_metrics.SCRAPE_INTERVAL_S", 0.5)
    config = loadgen.RunConfig.model_validate(
        {
            "load": {"rates_rps": [20], "num_requests": 60, "trim": 10},
            "workload": {"dataset": "s2s"},
        }
    )  # 3 s of sending to the built-in simulator over loopback HTTP, in real time

    outcome = loadgen.run(config, Heard())

    (step,) = outcome.targets[0].steps
    server = server_of(step)
    assert step.tokens_source == "server"
    assert server.scrapes >= 5
    assert server.generation_tokens == server.client_generation_tokens
    assert server.prompt_tokens == server.client_prompt_tokens
    assert (server.client_generation_tokens or 0) > 0
    assert server.tokens_mismatch is None
    assert (server.running_max or 0) > 0  # some 7 requests in flight at 20 req/s
    assert (server.kv_cache_usage_max or 0) > 0
    assert server.waiting_max is not None
    assert server.preemptions == 0
    # the server's interval lies inside the client's for every request: means no larger
    client = step.untrimmed
    assert client.ttft_s is not None
    assert client.e2e_s is not None
    assert 0 < (server.ttft_mean_s or 0) <= client.ttft_s.mean
    assert 0 < (server.e2e_mean_s or 0) <= client.e2e_s.mean


def test_off_scrapes_nothing(tmp_path: Path) -> None:
    fake = FakeOpenAI(Behaviour(gap_s=0.002))
    metrics = FakeMetrics(fake)
    with ServerThread(fake) as url:
        code = run_cli(cli_args(url, tmp_path, "--server-metrics", "off", "--quiet"))
        (step,) = run_steps(tmp_path, Heard(), {"base_url": url, "server_metrics": "off"})

    assert code == 0
    assert metrics.seen.gets == []
    assert step.server is None


def test_auto_without_metrics_goes_on_without_server_figures(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    fake = FakeOpenAI(Behaviour(gap_s=0.002))  # no /metrics: 404
    heard = Heard()
    with ServerThread(fake) as url:
        code = run_cli(cli_args(url, tmp_path))
        _, err = capfd.readouterr()
        (step,) = run_steps(tmp_path, heard, {"base_url": url})

    assert code == 0, err
    assert "Traceback" not in err
    assert len(read_summary(tmp_path / "out")["steps"]) == 1
    assert step.server is None
    origin = url.removesuffix("/v1")
    assert heard.notices == [
        f"no server metrics at {origin}/metrics (HTTP 404); going on without them"
    ]
    assert heard.warnings == []


@pytest.mark.parametrize("page", ["closed port", "not vllm"])
def test_a_given_url_without_vllm_metrics_is_a_clear_error(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], page: str
) -> None:
    fake = FakeOpenAI(Behaviour(gap_s=0.002))
    FakeMetrics(fake, vllm=False)
    with ServerThread(fake) as url:
        given = (
            closed_port_url().replace("/v1", "/metrics")
            if page == "closed port"
            else url.replace("/v1", "/metrics")
        )
        code = run_cli(cli_args(url, tmp_path, "--server-metrics", given))
    _, err = capfd.readouterr()

    assert code == 1
    assert "Traceback" not in err
    flat = " ".join(err.split())
    assert f"server metrics at {given}:" in flat
    if page == "not vllm":
        assert "no vLLM metrics (vllm:*) there" in flat
    assert fake.seen.requests == []  # nothing was sent


def test_credentials_go_only_to_the_targets_origin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, header = "sk-" + secrets.token_hex(16), "hdr-" + secrets.token_hex(16)
    monkeypatch.setenv("FAKE_METRICS_KEY", key)
    target_fake, other_fake = FakeOpenAI(Behaviour(gap_s=0.002)), FakeOpenAI()
    own, other = FakeMetrics(target_fake), FakeMetrics(other_fake)
    secret = {"api_key_env": "FAKE_METRICS_KEY", "headers": {"X-Api-Key": header}}
    with ServerThread(target_fake) as url, ServerThread(other_fake) as other_url:
        run_steps(tmp_path, Heard(), {"base_url": url, **secret})
        given = other_url.replace("/v1", "/metrics")
        run_steps(tmp_path, Heard(), {"base_url": url, "server_metrics": given, **secret})

    assert own.seen.gets
    assert all(get.get("Authorization") == f"Bearer {key}" for get in own.seen.gets)
    assert all(get.get("X-Api-Key") == header for get in own.seen.gets)
    assert other.seen.gets
    for get in other.seen.gets:
        assert key not in str(get)
        assert header not in str(get)


async def test_scraper_follows_no_redirect_and_gives_up_on_a_slow_page() -> None:
    fake = FakeOpenAI()

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/metrics")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="vllm:num_requests_running 1\n")

    FakeMetrics(fake)
    fake.app.router.add_get("/moved", moved)
    fake.app.router.add_get("/slow", slow)
    async with serve(fake) as url:
        origin = url.removesuffix("/v1")
        async with MetricsScraper(f"{origin}/moved") as scraper:
            with pytest.raises(MetricsScrapeError, match=r"^HTTP 302$"):
                await scraper.scrape()
        async with MetricsScraper(f"{origin}/slow", timeout_s=0.2) as scraper:
            with pytest.raises(MetricsScrapeError, match=r"no answer in 0\.2 s"):
                await scraper.scrape()
        async with MetricsScraper(f"{origin}/metrics") as scraper:
            assert await scraper.probe()
            scrape = await scraper.scrape()
    assert scrape.samples["vllm:num_requests_waiting"] == (2.0, 2.0)


def test_cli_writes_the_servers_view_to_summary_json(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    fake = FakeOpenAI(Behaviour(gap_s=0.002))
    FakeMetrics(fake, extra_generation=1)
    with ServerThread(fake) as url:
        code = run_cli(cli_args(url, tmp_path))
    _, err = capfd.readouterr()

    assert code == 0, err
    (step,) = read_summary(tmp_path / "out")["steps"]
    server = step["server"]
    assert server["url"] == url.replace("/v1", "/metrics")
    assert server["prompt_tokens"] == server["client_prompt_tokens"] == 48
    assert server["generation_tokens"] == 60
    assert server["client_generation_tokens"] == 48
    assert server["tokens_mismatch"] == "mismatch: generation tokens: server 60, client 48"
    assert server["prefix_cache_hit_rate"] == 0.5
    assert server["preemptions"] == 3
