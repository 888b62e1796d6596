"""Memory of long runs: peak RSS of one huge step, and RSS over a 10-minute soak.

Two measurements, each of a `loadgen` child process whose resident memory (VmRSS, read from
/proc every second) is sampled from outside:

- `step`: one step of `--requests` (1,000,000) s2s requests through `loadgen simulate` (virtual
  time, results written), against the same command with 1000 requests: peak RSS of each, and
  the difference per extra request (bytes per request a step holds while it runs).
- `soak`: `loadgen sweep` against `loadgen sim` (another process, time scale 0.1 so it has room
  for the rate) at `--rate` (300) req/s for `--minutes` (10) steps of 60 s each (`--duration
  60`): RSS after the first minute, its largest value after that, and at the end. Records of a
  finished step leave memory, so RSS should stay flat after the first step.

Run from the repository root (docs/performance.md holds the figures):

    .venv/bin/python -m benchmarks.memory step [--requests 1000000]
    .venv/bin/python -m benchmarks.memory soak [--minutes 10 --rate 300]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

_LOADGEN = [sys.executable, "-m", "loadgen"]


@dataclass
class RssTrace:
    """VmRSS samples (bytes) of one process, with the seconds since it started."""

    samples: list[tuple[float, int]] = field(default_factory=list)

    @property
    def peak(self) -> int:
        """The largest sample (bytes)."""
        return max((rss for _, rss in self.samples), default=0)

    def after(self, start_s: float) -> list[int]:
        """The samples from `start_s` on (bytes)."""
        return [rss for t, rss in self.samples if t >= start_s]


def _rss_bytes(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


def traced(argv: list[str], period_s: float = 1.0) -> tuple[int, RssTrace]:
    """Run `argv`, sampling its RSS every `period_s`; its exit code and the samples."""
    trace = RssTrace()
    start = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(period_s):
            rss = _rss_bytes(process.pid)
            if rss is not None:
                trace.samples.append((time.monotonic() - start, rss))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = process.wait()
    done.set()
    sampler.join()
    return code, trace


def _mib(value: float) -> str:
    return f"{value / 2**20:.0f} MiB"


def step(requests: int) -> None:
    """Peak RSS of one step of `requests` s2s requests in virtual time, and per request."""
    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        for count in (1000, requests):
            argv = [
                *_LOADGEN, "simulate", "--dataset", "s2s", "--rates", "60", "--quiet",
                "--num-requests", str(count), "--trim", "100", "--out", f"{tmp}/{count}",
            ]  # fmt: skip
            started = time.monotonic()
            code, trace = traced(argv, period_s=0.2)
            if code != 0:
                raise SystemExit(f"loadgen simulate exited {code}")
            rows = Path(f"{tmp}/{count}/requests.jsonl").stat().st_size
            print(
                f"{count:>9} requests: peak RSS {_mib(trace.peak)}, "
                f"{time.monotonic() - started:.0f} s, requests.jsonl {_mib(rows)}"
            )
            peaks[count] = trace.peak
    extra = (peaks[requests] - peaks[1000]) / (requests - 1000)
    print(f"per extra request: {extra:.0f} bytes of peak RSS")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def soak(minutes: int, rate_rps: float) -> None:
    """RSS of a sweep of `minutes` 60-second steps at `rate_rps` against `loadgen sim`."""
    port = _free_port()
    sim = subprocess.Popen(
        [*_LOADGEN, "sim", "--port", str(port), "--time-scale", "0.1"],
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port)
        with tempfile.TemporaryDirectory() as tmp:
            argv = [
                *_LOADGEN, "sweep", "--base-url", f"http://127.0.0.1:{port}/v1",
                "--rates", ",".join([f"{rate_rps:g}"] * minutes), "--duration", "60",
                "--dataset", "s2s", "--quiet", "--out", tmp,
            ]  # fmt: skip
            code, trace = traced(argv)
            if code != 0:
                raise SystemExit(f"loadgen sweep exited {code}")
            with Path(tmp, "requests.jsonl").open("rb") as rows:
                sent = sum(1 for _ in rows)
    finally:
        sim.terminate()
        sim.wait(10)
    settled = trace.after(60.0)
    first = settled[0] if settled else 0
    print(f"{minutes} steps of 60 s at {rate_rps:g} req/s: {sent} requests sent")
    print(f"peak RSS {_mib(trace.peak)}; after the first minute: {_mib(first)}")
    end = settled[-1] if settled else 0
    largest, smallest = max(settled, default=0), min(settled, default=0)
    print(
        f"from then on: largest {_mib(largest)}, smallest {_mib(smallest)}, at the end {_mib(end)}"
    )
    for minute in range(1, minutes + 1):
        window = [rss for t, rss in trace.samples if minute * 60 - 60 <= t < minute * 60]
        if window:
            print(f"  minute {minute:>2}: largest {_mib(max(window))}")


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit("loadgen sim did not start in 30 s")


def main() -> None:
    """Parse the command line and run one measurement."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    step_parser = commands.add_parser("step", help="one huge step through simulate")
    step_parser.add_argument("--requests", type=int, default=1_000_000)
    soak_parser = commands.add_parser("soak", help="a real-time soak against loadgen sim")
    soak_parser.add_argument("--minutes", type=int, default=10)
    soak_parser.add_argument("--rate", type=float, default=300.0)
    args = parser.parse_args()
    if not sys.platform.startswith("linux") or not os.path.exists("/proc/self/status"):
        raise SystemExit("this benchmark reads /proc: Linux only")
    if args.command == "step":
        step(args.requests)
    else:
        soak(args.minutes, args.rate)


if __name__ == "__main__":
    main()
