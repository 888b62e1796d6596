"""The Grafana dashboards: current with their generator, naming only exported metrics, and every
panel's query answered with data by a real Prometheus scraping a real sweep (of two shards).

Prometheus and promtool come from Debian's `prometheus` package, which `./run test` installs;
without them the Prometheus tests are skipped.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from loadgen.export.prometheus import PrometheusExporter, RunLabels
from loadgen.sim.metrics import VllmMetrics
from tests.integration._helpers import read_summary
from tests.support.ports import free_port

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
NEEDS_PROMETHEUS = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("promtool") is None,
    reason="Debian's prometheus package is not installed",
)
METRIC = re.compile(r"\b(loadgen_[a-z0-9_]+|vllm:[a-z0-9_:]+)")


def generator() -> Any:
    """dashboards/generate.py as a module."""
    spec = importlib.util.spec_from_file_location("generate", DASHBOARDS / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expressions() -> list[tuple[str, str]]:
    """(dashboard file, PromQL) of every panel target and annotation of every dashboard."""
    found = []
    for name in generator().DASHBOARDS:
        board = json.loads((DASHBOARDS / name).read_text())
        for panel in board["panels"]:
            found += [(name, target["expr"]) for target in panel["targets"]]
        found += [(name, note["expr"]) for note in board["annotations"]["list"]]
    return found


def test_checked_in_dashboards_are_what_the_generator_writes() -> None:
    module = generator()
    for name, build in module.DASHBOARDS.items():
        assert (DASHBOARDS / name).read_text() == module.render(build), (
            f"{name} is stale: run `python dashboards/generate.py`"
        )


def exported_families() -> set[str]:
    """Family names loadgen's exporter and the simulator's vLLM metrics register."""
    registry = CollectorRegistry()
    PrometheusExporter(registry, RunLabels("r", "t", "m", "s"))
    VllmMetrics(registry, "m")
    return {family.name for family in registry.collect()}


def test_every_queried_metric_is_exported() -> None:
    families = exported_families()
    for name, expr in expressions():
        for metric in METRIC.findall(expr):
            base = re.sub(r"_(total|bucket|count|sum)$", "", metric)
            assert base in families, f"{name}: {metric} is exported by nothing"


@NEEDS_PROMETHEUS
def test_shipped_prometheus_config_is_valid(tmp_path: Path) -> None:
    # The token file is compose's secret, there only in the container: a stand-in here, so
    # promtool still checks that every file the config names is readable.
    token = tmp_path / "token"
    token.write_text("a-token\n")
    config = (DASHBOARDS / "prometheus.yml").read_text()
    assert "/run/secrets/loadgen_api_token" in config
    local = tmp_path / "prometheus.yml"
    local.write_text(config.replace("/run/secrets/loadgen_api_token", str(token)))
    checked = subprocess.run(
        ["promtool", "check", "config", str(local)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _query(api: str, expr: str) -> dict[str, Any]:
    url = f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def _wait_for(check: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus that scraped a two-step sweep of the simulator (its API URL), sent by
    two shards: the master's /metrics serves the whole run, shard lag included."""
    work = tmp_path_factory.mktemp("prometheus")
    sim_port, metrics_port, api_port = free_port(), free_port(), free_port()
    config = work / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\nscrape_configs:\n"
        f"  - job_name: loadgen\n    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
        f"  - job_name: sim\n    static_configs: [{{targets: ['127.0.0.1:{sim_port}']}}]\n"
    )
    loadgen = [sys.executable, "-m", "loadgen"]
    processes = [
        # Reasoning on, and chat below: the reasoning panels have data.
        subprocess.Popen([*loadgen, "sim", "--port", str(sim_port), "--time-scale", "0.5",
                          "--reasoning-tokens", "4:12"]),
        subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={work / 'data'}",
             f"--web.listen-address=127.0.0.1:{api_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
    ]  # fmt: skip
    api = f"http://127.0.0.1:{api_port}"
    try:
        _wait_for(lambda: _ready(api), "Prometheus to start")
        _wait_for(lambda: _ready(f"http://127.0.0.1:{sim_port}", "/health"), "the simulator")
        out = work / "results"
        sweep = [
            *loadgen, "sweep", "--base-url", f"http://127.0.0.1:{sim_port}/v1",
            "--rates", "20,40", "--num-requests", "120", "--trim", "10", "--dataset", "s2s",
            "--endpoint", "chat",
            "--metrics-port", str(metrics_port), "--metrics-linger", "20",
            "--out", str(out), "--quiet", "--processes", "2",
        ]  # fmt: skip
        processes.append(subprocess.Popen(sweep))

        def finished() -> bool:
            if processes[-1].poll() not in (None, 0):
                pytest.fail(f"the sweep exited with {processes[-1].returncode}")
            return _steps_done(out) == 2

        _wait_for(finished, "the sweep to finish", timeout_s=120)
        ended = "count(loadgen_step_end_timestamp_seconds)"
        _wait_for(lambda: _count(api, ended) == 2, "Prometheus to scrape both step ends")
        yield api
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(20)


def _ready(root: str, path: str = "/-/ready") -> bool:
    try:
        with urllib.request.urlopen(f"{root}{path}", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _steps_done(out: Path) -> int:
    return len(read_summary(out)["steps"]) if (out / "summary.json").exists() else 0


def _count(api: str, expr: str) -> float:
    result = _query(api, expr)["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


@NEEDS_PROMETHEUS
@pytest.mark.slow
@pytest.mark.parametrize(("dashboard", "expr"), expressions())
def test_every_panel_query_returns_data(prometheus: str, dashboard: str, expr: str) -> None:
    promql = expr.replace("$target", ".+").replace("$__rate_interval", "30s")
    answer = _query(prometheus, promql)
    assert answer["status"] == "success", answer
    assert answer["data"]["result"], f"{dashboard}: no data for {promql}"
