"""Simulator real-time ceiling: streamed tokens/s the engine loop keeps on schedule, on one core.

`loadgen sim` (A100, Llama-2-7B, vllm policy) runs in a child process pinned to one core;
`loadgen run` (the real client) runs in another child pinned to the other core and sends a
batch of requests at once (`--rate inf`), so the engine runs full batches of 256 streams. The
workload is `--dataset` (default s2l: outputs of 3 to ~1000 tokens, so streams end at different
steps; `synthetic` sends 32 -> 256 tokens, so a whole batch ends in the same step: the worst
case for the loop). For each `--time-scale` (smaller runs the modelled GPU faster):

- modelled tok/s: the same workload through the engine model in virtual time, / time scale:
  what the loop must deliver to keep up;
- achieved tok/s: output tokens / wall time as the client measured them (untrimmed);
- step lateness p50 / p99 / max: how long after each step's due end the loop woke, from the
  server's `/sim/stats`.

Run from the repository root (docs/performance.md holds the figures), about a minute:

    .venv/bin/python -m benchmarks.sim_realtime [--scales 1,0.2,0.1,0.05] [--dataset synthetic]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

import numpy as np

from loadgen.config import SimConfig, WorkloadConfig
from loadgen.runtime.workload import build_workload, token_counter, workload_rng
from loadgen.sim.settings import resolve
from loadgen.sim.virtual import OutputPolicy, simulate_requests

_SYNTHETIC_LENGTHS = ("32", "256")


@dataclass(frozen=True, slots=True)
class Row:
    """One time scale's figures (tok/s, s)."""

    time_scale: float
    modelled_tps: float
    achieved_tps: float
    steps: int
    lateness_p50_s: float
    lateness_p99_s: float
    lateness_max_s: float


def _pinned(core: int) -> list[str]:
    """A taskset prefix for `core` when there are two cores to share out, else nothing."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(core)]
    return []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("loadgen sim exited before it was ready")
        try:
            _get_json(f"{base}/v1/models")
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("loadgen sim did not become ready in 30 s")


def modelled_tps(dataset: str, requests: int, time_scale: float) -> float:
    """Output tokens/s the engine model gives this workload, in wall time at `time_scale`."""
    sim = SimConfig()
    setup = resolve(sim)
    lengths = int(_SYNTHETIC_LENGTHS[0]), int(_SYNTHETIC_LENGTHS[1])
    spec = WorkloadConfig(dataset=dataset, input_len=lengths[0], output_len=lengths[1])
    workload = build_workload(spec, "completions", token_counter(None))
    specs = workload.specs(requests, workload_rng(0, 0))
    outputs = OutputPolicy(ignore_eos=True, min_tokens=0, eos_mean_tokens=sim.eos_mean_tokens)
    records = simulate_requests(
        setup.build_engine(), specs, np.zeros(requests), outputs, np.random.default_rng(0)
    )
    tokens = sum(record.tokens_out for record in records)
    end_s = max(record.t_done_ns for record in records) / 1e9
    return tokens / (end_s * time_scale)


def measure(dataset: str, time_scale: float, requests: int) -> Row:
    """Serve at `time_scale`, send `requests` at once with the real client, read the figures."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    sim_cmd = [sys.executable, "-m", "loadgen", "sim", "--port", str(port)]
    server = subprocess.Popen(
        [*_pinned(0), *sim_cmd, "--time-scale", str(time_scale)], stderr=subprocess.DEVNULL
    )
    try:
        _wait_ready(base, server)
        with tempfile.TemporaryDirectory() as out:
            client = [*_pinned(1), sys.executable, "-m", "loadgen", "run"]
            client += ["--base-url", f"{base}/v1", "--rate", "inf", "--dataset", dataset]
            client += ["--num-requests", str(requests), "--trim", "0", "--out", out]
            client += ["--input-len", _SYNTHETIC_LENGTHS[0], "--output-len", _SYNTHETIC_LENGTHS[1]]
            client += ["--quiet", "--json"]
            summary = json.loads(subprocess.run(client, check=True, capture_output=True).stdout)
        stats = _get_json(f"{base}/sim/stats")
    finally:
        server.terminate()
        server.wait(10)
    step = summary["steps"][0]
    return Row(
        time_scale,
        modelled_tps(dataset, requests, time_scale),
        step["untrimmed"]["output_token_throughput_tps"],
        stats["steps"],
        stats["lateness_p50_s"],
        stats["lateness_p99_s"],
        stats["lateness_max_s"],
    )


def main(argv: list[str] | None = None) -> int:
    """Measure every time scale and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,0.2,0.1,0.05", help="time scales to run")
    parser.add_argument("--requests", type=int, default=1000, help="requests per run")
    parser.add_argument("--dataset", default="s2l", help="s2l, or synthetic (32 -> 256 tokens)")
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} cores; {args.requests} {args.dataset} requests sent at once")
    print("time scale | modelled tok/s | achieved tok/s | ratio | steps | lateness p50/p99/max ms")
    for scale in (float(text) for text in args.scales.split(",")):
        row = measure(args.dataset, scale, args.requests)
        print(
            f"{row.time_scale:10g} | {row.modelled_tps:14.0f} | {row.achieved_tps:14.0f} | "
            f"{row.achieved_tps / row.modelled_tps:5.2f} | {row.steps:5d} | "
            f"{row.lateness_p50_s * 1e3:.2f} / {row.lateness_p99_s * 1e3:.2f} / "
            f"{row.lateness_max_s * 1e3:.2f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
