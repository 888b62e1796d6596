"""`loadgen serve` as the cluster's master, and its /metrics (real service, workers, target).

Workers join the service with one of its tokens and send every sweep while they are joined;
without workers, `--processes` shards on the service's host send it.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_openai import Behaviour, FakeOpenAI, ServerThread
from tests.support.ports import free_port
from tests.support.service import Service, running

TOKEN = "service-token-of-the-workers-test"
FINISHED = {"succeeded", "failed", "cancelled"}


@pytest.fixture
def target() -> Iterator[tuple[FakeOpenAI, str]]:
    """A fast fake OpenAI server."""
    fake = FakeOpenAI(Behaviour(ttft_s=0.002, gap_s=0.001), models=("m-w",))
    with ServerThread(fake) as url:
        yield fake, url


def small_sweep(url: str, num: int = 40) -> dict[str, Any]:
    """Two steps of small synthetic requests."""
    return {
        "target": {"base_url": url, "model": "m-w"},
        "load": {"rates_rps": [40, 80], "num_requests": num, "trim": 5},
        "workload": {"dataset": "synthetic", "input_len": 16, "output_len": 8},
    }


def service(tmp_path: Path, *args: str) -> Service:
    """A service with TOKEN that may send to loopback."""
    return Service(
        results=tmp_path / "results",
        logs=tmp_path / "logs",
        args=("--allowed-targets", "http://127.0.0.1", *args),
        env={"LOADGEN_API_TOKEN": TOKEN},
        token=TOKEN,
    )


def worker(port: int, token: str | None) -> subprocess.Popen[str]:
    """`loadgen worker` joining the service's workers port, with `token` or none."""
    env = {key: value for key, value in os.environ.items() if key != "LOADGEN_API_TOKEN"}
    if token is not None:
        env["LOADGEN_API_TOKEN"] = token
    argv = [sys.executable, "-m", "loadgen", "worker", "--master-port", str(port),
            "--worker-timeout", "30"]  # fmt: skip
    return subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)


def live_workers(svc: Service) -> list[dict[str, Any]]:
    """GET /v1/workers: the live ones."""
    workers: list[dict[str, Any]] = svc.call("GET", "/v1/workers").json()["workers"]
    return [joined for joined in workers if joined["lost"] is None]


def wait_until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.timeout(180)
def test_workers_with_a_token_join_and_send_the_sweeps_others_are_refused(
    tmp_path: Path, target: tuple[FakeOpenAI, str]
) -> None:
    fake, url = target
    port = free_port()
    svc = service(tmp_path, "--workers-port", str(port), "--workers-host", "127.0.0.1")
    joined: list[subprocess.Popen[str]] = []
    try:
        for _ in running(svc):
            assert live_workers(svc) == []
            joined = [worker(port, TOKEN), worker(port, TOKEN)]
            wait_until(lambda: len(live_workers(svc)) == 2, 60, "two workers to join")

            stranger = worker(port, "not-a-token-of-the-service")
            _, stderr = stranger.communicate(timeout=60)
            assert stranger.returncode == 2, stderr
            assert "API tokens" in stderr
            assert TOKEN not in stderr
            anonymous = worker(port, None)
            anonymous.communicate(timeout=60)
            assert anonymous.returncode == 2
            assert len(live_workers(svc)) == 2

            done = svc.wait(svc.submit(small_sweep(url)), FINISHED, timeout_s=120)
            assert done["status"] == "succeeded", done
            for step in done["steps"]:
                assert step["num_sent"] == 40
                assert sorted(shard["shard"] for shard in step["shards"]) == [0, 1]
            assert len(fake.seen.requests) == 80
            assert "refused worker" in svc.stderr
    finally:
        for process in joined:
            process.wait(60)  # the service tells its workers to quit when it stops
    assert all(process.returncode == 0 for process in joined)


@pytest.mark.timeout(180)
def test_without_workers_processes_on_the_service_host_send_it(
    tmp_path: Path, target: tuple[FakeOpenAI, str]
) -> None:
    fake, url = target
    svc = service(tmp_path, "--processes", "2")
    for _ in running(svc):
        done = svc.wait(svc.submit(small_sweep(url)), FINISHED, timeout_s=120)
        assert done["status"] == "succeeded", done
        assert [len(step["shards"]) for step in done["steps"]] == [2, 2]
        assert svc.call("GET", "/v1/workers").json() == {"workers": []}
    assert len(fake.seen.requests) == 80


def total(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (there must be one)."""
    found = []
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and all(f'{key}="{value}"' in match[1] for key, value in labels.items()):
            found.append(float(match[2]))
    assert found, (name, labels)
    return sum(found)


@pytest.mark.timeout(120)
def test_metrics_count_every_request_of_each_sweep_behind_the_token(
    tmp_path: Path, target: tuple[FakeOpenAI, str]
) -> None:
    _, url = target
    svc = service(tmp_path)
    for _ in running(svc):
        assert svc.call("GET", "/metrics", token=None).status == 401
        assert svc.call("GET", "/metrics", token="wrong").status == 401
        first = svc.wait(svc.submit(small_sweep(url, 30)), FINISHED)["id"]
        second = svc.wait(svc.submit(small_sweep(url, 20)), FINISHED)["id"]
        reply = svc.call("GET", "/metrics")
        assert reply.status == 200
        assert reply.content_type == "text/plain"
        text = reply.body.decode()
    # Counters go on across sweeps (one series per target), each sweep names its run.
    # (by phase: warm-up, measured, cool-down)
    assert total(text, "loadgen_requests_total", status="ok") == 2 * 30 + 2 * 20
    assert total(text, "loadgen_run_info", run_id=first) == 1
    assert total(text, "loadgen_run_info", run_id=second) == 1


def test_a_taken_workers_port_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = [sys.executable, "-m", "loadgen", "serve", "--port", "0", "--results",
                str(tmp_path / "results"), "--workers-port", str(port), "--workers-host",
                "127.0.0.1"]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert f"workers port {port}" in done.stderr
    assert "Address already in use" in done.stderr
    assert "Traceback" not in done.stderr
