"""`loadgen remote`: the CLI client of `loadgen serve`, as a CI job uses it (exit codes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_openai import Behaviour, FakeOpenAI, ServerThread
from tests.support.ports import free_port

TOKEN = "remote-test-token"


def loadgen(*args: str) -> list[str]:
    """The loadgen command line, in this interpreter."""
    return [sys.executable, "-m", "loadgen", *args]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    """A real `loadgen serve` on a loopback port, allowing 127.0.0.1 targets; its URL."""
    port = free_port()
    env = {**os.environ, "LOADGEN_API_TOKEN": TOKEN}
    argv = loadgen("serve", "--port", str(port), "--results", str(tmp_path / "svc"),
                   "--allowed-targets", "http://127.0.0.1")  # fmt: skip
    process = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("the service did not start")
            time.sleep(0.1)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(30)


def sweep_file(path: Path, base_url: str) -> Path:
    """A small one-step sweep of `base_url`."""
    path.write_text(
        f'[target]\nbase_url = "{base_url}"\n'
        "[load]\nrates_rps = [40]\nnum_requests = 30\ntrim = 5\n"
        '[workload]\ndataset = "synthetic"\ninput_len = 8\noutput_len = 4\n'
    )
    return path


def remote(url: str, *args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    """`loadgen remote --server URL ARGS` to its end."""
    env = {key: value for key, value in os.environ.items() if key != "LOADGEN_API_TOKEN"}
    if token is not None:
        env["LOADGEN_API_TOKEN"] = token
    argv = loadgen("remote", "--server", url, *args)
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=180, check=False)


@pytest.mark.timeout(300)
def test_submit_waits_and_exits_0_when_the_sweep_succeeds(service: str, tmp_path: Path) -> None:
    fake = FakeOpenAI(Behaviour(ttft_s=0.002, gap_s=0.001))
    with ServerThread(fake) as target:
        done = remote(service, "submit", str(sweep_file(tmp_path / "sweep.toml", target)))
    assert done.returncode == 0, done.stderr
    sweep_id = done.stdout.strip()
    assert len(fake.seen.requests) == 30
    status = remote(service, "status", sweep_id)
    assert json.loads(status.stdout)["status"] == "succeeded"
    fetched = remote(service, "fetch", sweep_id, "--out", str(tmp_path / "got"))
    assert fetched.returncode == 0, fetched.stderr
    names = {path.name for path in (tmp_path / "got").iterdir()}
    assert names == {"summary.json", "summary.csv", "requests.jsonl", "report.html"}
    assert json.loads((tmp_path / "got" / "summary.json").read_text())["steps"][0]["num_sent"] == 30


@pytest.mark.timeout(300)
def test_submit_exits_1_when_the_sweep_fails(service: str, tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"  # allowed, but nothing listens there
    done = remote(service, "submit", str(sweep_file(tmp_path / "sweep.toml", closed)))
    assert done.returncode == 1, done.stderr
    assert "failed" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_refused_submission_exits_2_with_the_service_s_reason(
    service: str, tmp_path: Path
) -> None:
    done = remote(service, "submit", str(sweep_file(tmp_path / "s.toml", "http://10.9.9.9/v1")))
    assert done.returncode == 2
    assert "target not allowed" in done.stderr
    unauthorized = remote(service, "status", "20261202-000000-00000000", token="wrong")
    assert unauthorized.returncode == 2
    assert "Unauthorized" in unauthorized.stderr


def test_an_unreachable_service_exits_1() -> None:
    done = remote(f"http://127.0.0.1:{free_port()}", "status", "20261202-000000-00000000")
    assert done.returncode == 1
    assert "cannot reach" in done.stderr
    assert "Traceback" not in done.stderr
