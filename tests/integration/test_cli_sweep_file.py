"""`loadgen sweep --config FILE`: several endpoints compared by one command.

Two fake servers and one closed port are the targets of a sweep file. The run sweeps each
reachable one in turn with the same load and its own request options, reports the unreachable
one and exits 1, serves one `/metrics` labelled by target throughout, and never writes or
prints the API key; `loadgen report` of the run's folder covers every target. A SIGINT during
the first target ends the whole run.
"""

from __future__ import annotations

import re
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration._helpers import read_jsonl, read_summary, run_cli, scrape_when_written
from tests.support.fake_openai import Behaviour, FakeOpenAI, ServerThread, closed_port_url
from tests.support.ports import free_port

KEY_ENV = "SWEEP_FILE_TEST_KEY"
NUM_REQUESTS = 24
TRIM = 4


def write_sweep_file(path: Path, targets: list[tuple[str, str, str]]) -> Path:
    """A TOML sweep file: two steps of s2s, and (name, base URL, extra TOML lines) targets."""
    lines = [
        "[workload]",
        'dataset = "s2s"',
        "output_len = 6",
        "[load]",
        "rates_rps = [40, 80]",
        f"num_requests = {NUM_REQUESTS}",
        f"trim = {TRIM}",
        "[target]",
        'headers = { X-Common = "common" }',
    ]
    for name, url, extra in targets:
        lines += ["", "[[targets]]", f'name = "{name}"', f'base_url = "{url}"', extra]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_targets_are_swept_in_turn_with_their_own_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    key = "sk-" + secrets.token_hex(16)
    monkeypatch.setenv(KEY_ENV, key)
    plain = FakeOpenAI(Behaviour(gap_s=0.001), models=("plain-model",))
    chat = FakeOpenAI(Behaviour(gap_s=0.001), models=("chat-model",))
    with ServerThread(plain) as plain_url, ServerThread(chat) as chat_url:
        config = write_sweep_file(
            tmp_path / "sweep.toml",
            [
                ("plain", plain_url, ""),
                ("down", closed_port_url(), ""),
                ("chat", chat_url, f'endpoint = "chat"\napi_key_env = "{KEY_ENV}"\n'
                 'headers = { X-Own = "own" }'),
            ],
        )  # fmt: skip
        out = tmp_path / "out"
        code = run_cli(["sweep", "--config", str(config), "--out", str(out), "--json"])
    captured = capfd.readouterr()
    assert code == 1, captured.err  # one target could not be swept
    assert "target down: cannot reach" in " ".join(captured.err.split())
    assert key not in captured.out + captured.err

    assert sorted(path.name for path in out.iterdir()) == ["chat", "plain", "sweep.png"]
    printed = orjson.loads(captured.out)["targets"]
    assert sorted(printed) == ["chat", "plain"]
    for name, fake, endpoint in (("plain", plain, "completions"), ("chat", chat, "chat")):
        summary = read_summary(out / name)
        # What --json printed is the summary, less where its rows end in requests.jsonl.
        assert printed[name] == {k: v for k, v in summary.items() if k != "requests_bytes"}
        assert [step["target_rate_rps"] for step in summary["steps"]] == [40, 80]
        assert summary["target"]["name"] == name
        assert summary["target"]["base_url"].endswith("/v1")
        (own,) = [t for t in summary["config"]["targets"] if t["name"] == name]
        assert own.get("endpoint", summary["config"]["target"]["endpoint"]) == endpoint
        assert len(read_jsonl(out / name / "requests.jsonl")) == 2 * NUM_REQUESTS
        # Every request went to this target's server, on its endpoint.
        assert len(fake.seen.requests) == 2 * NUM_REQUESTS
        assert {incoming.endpoint for incoming in fake.seen.requests} == {endpoint}
        assert (out / name / "summary.json").read_text().count(key) == 0

    # The run's folder stands for its targets in `loadgen report`, each under its name, the
    # second compared with the first (the same load against two endpoints).
    assert run_cli(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert re.findall(r"<h2>([^<]*)</h2>", page) == ["Sweep", "Comparison", "chat", "plain"]

    chat_headers = chat.seen.requests[0].headers
    assert chat_headers["Authorization"] == f"Bearer {key}"
    assert (chat_headers["X-Common"], chat_headers["X-Own"]) == ("common", "own")
    plain_headers = plain.seen.requests[0].headers
    assert plain_headers["X-Common"] == "common"
    assert "Authorization" not in plain_headers
    assert "X-Own" not in plain_headers


def test_one_metrics_endpoint_labels_each_target(tmp_path: Path) -> None:
    port = free_port()
    with ServerThread(FakeOpenAI()) as url_a, ServerThread(FakeOpenAI()) as url_b:
        config = write_sweep_file(tmp_path / "sweep.toml", [("a", url_a, ""), ("b", url_b, "")])
        out = tmp_path / "out"
        argv = [
            sys.executable, "-m", "loadgen", "sweep", "--config", str(config), "--out", str(out),
            "--metrics-port", str(port), "--metrics-linger", "5", "--quiet",
        ]  # fmt: skip
        process = subprocess.Popen(argv)
        try:
            text = scrape_when_written(port, [out / "a", out / "b"], 2, process, timeout_s=90)
        finally:
            process.terminate()
            process.wait(10)
    counted = Counter[tuple[str, str]]()
    run_ids = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "loadgen_requests_total":
                counted[(sample.labels["target"], sample.labels["rate"])] += int(sample.value)
            if sample.name == "loadgen_run_info":
                run_ids.add((sample.labels["run_id"], sample.labels["target"]))
    assert counted == {(t, r): NUM_REQUESTS for t in ("a", "b") for r in ("40", "80")}
    assert run_ids == {("out", "a"), ("out", "b")}


def test_interrupt_during_the_first_target_ends_the_run(tmp_path: Path) -> None:
    slow = FakeOpenAI(Behaviour(ttft_s=0.05, gap_s=0.02))
    with ServerThread(slow) as url_a, ServerThread(FakeOpenAI()) as url_b:
        config = write_sweep_file(tmp_path / "sweep.toml", [("a", url_a, ""), ("b", url_b, "")])
        out = tmp_path / "out"
        argv = [
            sys.executable, "-m", "loadgen", "sweep", "--config", str(config), "--out", str(out),
            "--rates", "4", "--num-requests", "400", "--quiet",
        ]  # fmt: skip
        process = subprocess.Popen(argv, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while len(slow.seen.requests) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err.decode()
    assert not (out / "b").exists()
    summary = read_summary(out / "a")
    assert summary["steps"][0]["interrupted"] is True
    assert len(read_jsonl(out / "a" / "requests.jsonl")) >= 5


def test_a_missing_api_key_fails_before_any_target_is_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    fake = FakeOpenAI()
    with ServerThread(fake) as url:
        config = write_sweep_file(
            tmp_path / "sweep.toml",
            [("first", url, ""), ("second", url, f'api_key_env = "{KEY_ENV}"')],
        )
        code = run_cli(["sweep", "--config", str(config), "--out", str(tmp_path / "out")])
    err = " ".join(capfd.readouterr().err.split())
    assert code == 2
    assert f"target second: api_key_env {KEY_ENV}: that variable is not set" in err
    assert fake.seen.requests == []
    assert "Traceback" not in err
