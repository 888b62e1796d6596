"""`docker compose -f docker/compose.yaml up -d`: the simulator, the loadgen service, Prometheus.

Grafana has no offline image here, so the stack runs without it (its provisioning is checked
statically in tests/integration/test_dashboards.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.stack._stack import FIGURES, Stack, health, wait_for

SERVICES = ("sim", "loadgen", "prometheus")
LOADGEN_UID = "10001"
# A short sweep, submitted as README "Running the stack" shows, once the boot sweep is seen
# running: two steps of 200 requests, so its step metrics exist within a minute.
SHORT_SWEEP = """
[workload]
dataset = "s2s"

[load]
rates_rps = [10, 20]
num_requests = 200
trim = 25
seed = 1

[target]
base_url = "http://sim:8002/v1"
"""


def test_default_profile_runs_sweeps_scraped_by_prometheus(stack: Stack, tmp_path: Path) -> None:
    started = time.monotonic()
    stack.compose("up", "--detach", "--wait", *SERVICES, timeout_s=420)
    FIGURES["default profile up --wait (s)"] = f"{time.monotonic() - started:.1f}"
    assert health(stack, "sim") == "healthy"
    assert health(stack, "loadgen") == "healthy"

    # The boot sweep (docker/sweeps/sim.toml) is queued at start and sends to the simulator
    # across the compose network.
    boot = _the_boot_sweep_running(stack)
    assert boot["config"]["target"]["base_url"] == "http://sim:8002/v1"
    stack.api("POST", f"/v1/sweeps/{boot['id']}/cancel")

    sweep_file = tmp_path / "short.toml"
    sweep_file.write_text(SHORT_SWEEP)
    started = time.monotonic()
    submitted = stack.remote("submit", str(sweep_file), timeout_s=300)
    FIGURES["short sweep through the published API (s)"] = f"{time.monotonic() - started:.1f}"
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    sweeps = stack.api("GET", "/v1/sweeps")["sweeps"]
    short = next(sweep for sweep in sweeps if sweep["id"] != boot["id"])
    assert short["status"] == "succeeded"
    steps = stack.api("GET", f"/v1/sweeps/{short['id']}")["steps"]
    assert [step["target_rate_rps"] for step in steps] == [10, 20]

    _prometheus_scrapes_loadgen_and_the_simulator(stack)
    _results_are_written_by_the_non_root_user(stack, short["id"])

    stack.compose("down", "--volumes", "--timeout", "10")
    assert stack.leftovers() == []


def _the_boot_sweep_running(stack: Stack) -> dict[str, Any]:
    """The boot sweep once it has had answers from the simulator."""

    def running_with_answers() -> dict[str, Any] | None:
        (sweep,) = stack.api("GET", "/v1/sweeps")["sweeps"]
        document: dict[str, Any] = stack.api("GET", f"/v1/sweeps/{sweep['id']}")
        progress = document.get("progress")
        done = isinstance(progress, dict) and progress["done"] >= 3
        return document if document["status"] == "running" and done else None

    return wait_for(running_with_answers, 60, "the boot sweep running, with 3 answers")


def _prometheus_scrapes_loadgen_and_the_simulator(stack: Stack) -> None:
    """Prometheus, in its container, reaches both by their service names (with the token)."""

    def jobs_up() -> dict[str, str] | None:
        up = {row["metric"]["job"]: row["value"][1] for row in stack.query("up")}
        wanted = ("loadgen-service", "sim")
        return up if all(up.get(job) == "1" for job in wanted) else None

    up = wait_for(jobs_up, 60, "Prometheus scraping loadgen-service and sim")
    # Targets of profiles not started are down, not missing.
    assert up.get("vllm") == "0"

    def throughput() -> dict[float, float] | None:
        rows = stack.query("loadgen_step_sequence_throughput_rps")
        by_rate = {float(row["metric"]["rate"]): float(row["value"][1]) for row in rows}
        return by_rate if {10.0, 20.0} <= set(by_rate) else None

    # Each step's figures are scraped once its step has ended (every 5 s).
    by_rate = wait_for(throughput, 30, "both steps' loadgen_step_sequence_throughput_rps")
    # The simulator keeps up with 10 and 20 req/s: the achieved rate is near the offered one.
    for rate_rps in (10.0, 20.0):
        assert 0.8 * rate_rps < by_rate[rate_rps] < 1.2 * rate_rps, by_rate


def _results_are_written_by_the_non_root_user(stack: Stack, sweep_id: str) -> None:
    """The results volume holds the sweep's files, owned by the image's user (uid 10001)."""
    assert stack.exec("loadgen", "id", "-u").strip() == LOADGEN_UID
    listing = stack.exec("loadgen", "find", f"/results/service/{sweep_id}", "-printf", "%U %p\n")
    owners = {path: uid for uid, path in (line.split(" ", 1) for line in listing.splitlines())}
    folder = f"/results/service/{sweep_id}"
    for name in ("sweep.json", "summary.json", "requests.jsonl"):
        assert owners[f"{folder}/{name}"] == LOADGEN_UID, owners
    summary = json.loads(stack.exec("loadgen", "cat", f"{folder}/summary.json"))
    assert len(summary["steps"]) == 2
