"""`--metrics-port`: live Prometheus metrics of a sweep, scraped from a real loadgen process.

loadgen runs as a subprocess against the fake server; the test scrapes /metrics while the
run lingers after its last step, and checks the counters against requests.jsonl and the step
gauges against summary.json. `promtool check metrics` (Debian's prometheus package, which
`./run test` installs) lints the exposition.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration._helpers import read_jsonl, read_summary, scrape_when_written
from tests.support.fake_openai import Behaviour, FakeOpenAI, ServerThread
from tests.support.ports import free_port

RATES = ("20", "40")
NUM_REQUESTS = 30
TRIM = 5


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The exposition text after a two-step sweep, and the sweep's results folder."""
    out = tmp_path_factory.mktemp("metrics-run")
    port = free_port()
    fake = FakeOpenAI(Behaviour(ttft_s=0.01, gap_s=0.002))
    with ServerThread(fake) as url:
        argv = [
            sys.executable, "-m", "loadgen", "sweep", "--base-url", url, "--rates", ",".join(RATES),
            "--num-requests", str(NUM_REQUESTS), "--trim", str(TRIM), "--output-len", "8",
            "--dataset", "s2s", "--metrics-port", str(port), "--metrics-linger", "5",
            "--out", str(out), "--quiet",
        ]  # fmt: skip
        process = subprocess.Popen(argv)
        try:
            text = scrape_when_written(port, [out], len(RATES), process, timeout_s=60)
        finally:
            process.terminate()
            process.wait(10)
    return text, out


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample called `name`, with its labels."""
    return [
        (dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def test_request_counters_match_the_requests_written(scraped: tuple[str, Path]) -> None:
    text, out = scraped
    rows = read_jsonl(out / "requests.jsonl")
    counted = Counter[tuple[str, str, str]]()
    for labels, value in samples(text, "loadgen_requests_total"):
        assert labels["target"].startswith("fake-model @ 127.0.0.1:")
        assert labels["model"] == "fake-model"
        assert labels["scenario"] == "s2s"
        counted[labels["rate"], labels["phase"], labels["status"]] += int(value)
    expected = Counter(
        (f"{row['target_rate_rps']:g}", row["phase"], "ok" if row["ok"] else row["error_kind"])
        for row in rows
    )
    assert counted == expected
    assert counted[RATES[0], "warmup", "ok"] == TRIM
    output = sum(
        v for labels, v in samples(text, "loadgen_tokens_total") if labels["direction"] == "output"
    )
    assert output == sum(row["tokens_out"] for row in rows)


def test_histograms_count_every_request(scraped: tuple[str, Path]) -> None:
    text, out = scraped
    for name in ("loadgen_ttft_seconds_count", "loadgen_e2e_latency_seconds_count"):
        assert sum(value for _, value in samples(text, name)) == len(RATES) * NUM_REQUESTS
    # One token per chunk from the fake: a stream of n tokens has n - 1 gaps.
    gaps = sum(row["tokens_out"] - 1 for row in read_jsonl(out / "requests.jsonl"))
    assert sum(value for _, value in samples(text, "loadgen_itl_seconds_count")) == gaps


def test_step_gauges_match_summary_json(scraped: tuple[str, Path]) -> None:
    text, out = scraped
    steps = {f"{step['target_rate_rps']:g}": step for step in read_summary(out)["steps"]}
    throughput = {
        labels["rate"]: value
        for labels, value in samples(text, "loadgen_step_sequence_throughput_rps")
    }
    assert throughput == {rate: step["sequence_throughput_rps"] for rate, step in steps.items()}
    ttft_p99 = {
        labels["rate"]: value
        for labels, value in samples(text, "loadgen_step_ttft_seconds")
        if labels["stat"] == "p99"
    }
    assert ttft_p99 == {rate: step["ttft_s"]["p99"] for rate, step in steps.items()}
    starts = dict(samples(text, "loadgen_step_start_timestamp_seconds")[0][0])
    assert starts["rate"] in steps
    ((info, one),) = samples(text, "loadgen_run_info")
    assert one == 1
    assert info["run_id"] == out.name


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_exposition(scraped: tuple[str, Path]) -> None:
    text, _ = scraped
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_stop_while_lingering_ends_the_run_at_once(tmp_path: Path) -> None:
    """SIGTERM (docker stop) during the linger ends it: the linger is for scrapes, not a wait."""
    import signal

    port = free_port()
    fake = FakeOpenAI(Behaviour(ttft_s=0.001, gap_s=0.001))
    with ServerThread(fake) as url:
        argv = [
            sys.executable, "-m", "loadgen", "sweep", "--base-url", url, "--rates", "50",
            "--num-requests", "20", "--trim", "2", "--metrics-port", str(port),
            "--metrics-linger", "600", "--out", str(tmp_path), "--quiet",
        ]  # fmt: skip
        process = subprocess.Popen(argv)
        try:
            scrape_when_written(port, [tmp_path], 1, process, timeout_s=60)
            process.send_signal(signal.SIGTERM)
            # Ten minutes of linger left; a prompt end is what the test checks, not a speed.
            assert process.wait(60) == 0
        finally:
            process.kill()
