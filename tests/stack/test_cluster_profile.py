"""`--profile cluster --scale loadgen-worker=2`: the service splits sweeps among worker containers.

The sweeps are submitted as README "Scaling out" shows (`loadgen remote submit`), with no boot
sweep (`LOADGEN_BOOT_SWEEP=`), so the first sweep starts with both workers joined.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.stack._stack import FIGURES, Stack, wait_for

WORKERS = 2
# The bounds of tests/integration/test_cluster.py: KS of the merged send gaps against
# Exp(rate), and the variance / mean of sends per 100 ms window of a Poisson stream.
KS_ALPHA = 0.01
DISPERSION_BAND = (0.8, 1.25)
SWEEP = """
[workload]
dataset = "s2s"

[load]
rates_rps = [{rates}]
num_requests = {num_requests}
trim = 50
seed = 2

[target]
base_url = "http://sim:8002/v1"
"""


def test_cluster_profile_sends_one_stream_from_two_worker_containers(
    stack: Stack, tmp_path: Path
) -> None:
    stack.set(LOADGEN_BOOT_SWEEP="", CLUSTER_WORKERS=str(WORKERS))
    stack.profiles.append("cluster")
    started = time.monotonic()
    stack.compose(
        "up", "--detach", "--wait", "--scale", f"loadgen-worker={WORKERS}",
        "sim", "loadgen", "loadgen-worker", timeout_s=420,
    )  # fmt: skip
    FIGURES["cluster profile up --wait (s)"] = f"{time.monotonic() - started:.1f}"
    wait_for(lambda: len(_live_workers(stack)) == WORKERS, 60, f"{WORKERS} workers joined")

    merged = tmp_path / "merged.toml"
    merged.write_text(SWEEP.format(rates="20, 40", num_requests=600))
    started = time.monotonic()
    done = stack.remote("submit", str(merged), timeout_s=300)
    FIGURES["cluster sweep, 2 steps (s)"] = f"{time.monotonic() - started:.1f}"
    assert done.returncode == 0, done.stdout + done.stderr
    for step in _steps_of_latest(stack):
        assert [shard["shard"] for shard in step["shards"]] == list(range(WORKERS)), step
        assert sum(shard["num_sent"] for shard in step["shards"]) == step["num_kept"]
        assert step["invalid"] is None
        assert step["send_gap_ks_pvalue"] > KS_ALPHA, step
        low, high = DISPERSION_BAND
        assert low <= step["send_count_dispersion"] <= high, step

    _a_worker_stopped_mid_step_makes_the_step_invalid(stack, tmp_path)


def _a_worker_stopped_mid_step_makes_the_step_invalid(stack: Stack, tmp_path: Path) -> None:
    """`docker stop` of one worker container while a step runs: the step is invalid."""
    long = tmp_path / "long.toml"
    long.write_text(SWEEP.format(rates="20", num_requests=1200))
    queued = stack.remote("submit", "--no-wait", str(long))
    assert queued.returncode == 0, queued.stdout + queued.stderr
    sweep_id = _latest(stack)["id"]

    def under_way() -> bool:
        progress = stack.api("GET", f"/v1/sweeps/{sweep_id}").get("progress")
        return progress is not None and progress["sent"] >= 200

    wait_for(under_way, 60, "the long step under way")
    container = stack.compose("ps", "--quiet", "loadgen-worker").stdout
    stack.engine.docker("stop", "--time", "5", container.split()[0])

    def finished() -> dict[str, Any] | None:
        sweep: dict[str, Any] = stack.api("GET", f"/v1/sweeps/{sweep_id}")
        return sweep if sweep["status"] in ("succeeded", "failed", "cancelled") else None

    sweep = wait_for(finished, 120, "the sweep to end")
    assert sweep["status"] == "failed", sweep
    (step,) = sweep["steps"]
    assert step["invalid"] is not None
    assert "lost" in step["invalid"]


def _live_workers(stack: Stack) -> list[dict[str, Any]]:
    return [w for w in stack.api("GET", "/v1/workers")["workers"] if w["lost"] is None]


def _latest(stack: Stack) -> dict[str, Any]:
    newest: dict[str, Any] = stack.api("GET", "/v1/sweeps")["sweeps"][0]
    return newest


def _steps_of_latest(stack: Stack) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = stack.api("GET", f"/v1/sweeps/{_latest(stack)['id']}")["steps"]
    return steps
