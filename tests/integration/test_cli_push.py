"""`--pushgateway`: step metrics pushed to a real Pushgateway (Debian's prometheus-pushgateway)."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration._helpers import read_summary, run_cli
from tests.support.fake_openai import FakeOpenAI, ServerThread
from tests.support.ports import free_port

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus-pushgateway") is None,
    reason="Debian's prometheus-pushgateway is not installed",
)


@pytest.fixture
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh Pushgateway (its own persistence file) holding one metric of another job."""
    port = free_port()
    state = tmp_path_factory.mktemp("pushgateway") / "metrics.data"
    process = subprocess.Popen(
        [
            "prometheus-pushgateway",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--persistence.file={state}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                other = urllib.request.Request(
                    f"{url}/metrics/job/other", data=b"other_metric 7\n", method="PUT"
                )
                urllib.request.urlopen(other, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def pushed(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample the gateway exposes, by name."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def test_each_step_is_pushed_and_nothing_is_deleted(gateway: str, tmp_path: Path) -> None:
    with ServerThread(FakeOpenAI()) as url:
        argv = [
            "sweep", "--base-url", url, "--rates", "40,80", "--num-requests", "30", "--trim", "5",
            "--pushgateway", gateway, "--out", str(tmp_path), "--quiet",
        ]  # fmt: skip
        assert run_cli(argv) == 0
    found = pushed(gateway)
    steps = {f"{step['target_rate_rps']:g}": step for step in read_summary(tmp_path)["steps"]}
    throughput = {
        labels["rate"]: (labels["job"], labels["run_id"], value)
        for labels, value in found["loadgen_step_sequence_throughput_rps"]
    }
    assert throughput == {
        rate: ("loadgen", tmp_path.name, step["sequence_throughput_rps"])
        for rate, step in steps.items()
    }
    assert found["other_metric"][0][1] == 7  # another job's metric is still there


def test_an_unreachable_gateway_is_a_warning(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with ServerThread(FakeOpenAI()) as url:
        argv = [
            "run", "--base-url", url, "--rate", "40", "--num-requests", "20", "--trim", "2",
            "--pushgateway", closed, "--out", str(tmp_path),
        ]  # fmt: skip
        assert run_cli(argv) == 0
    err = capfd.readouterr().err
    assert "push to the Pushgateway" in err
    assert "Traceback" not in err
    assert len(read_summary(tmp_path)["steps"]) == 1
