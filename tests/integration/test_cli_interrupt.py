"""SIGINT to a running `python -m loadgen sweep`: it stops, and every sent request is written.

loadgen runs in a subprocess (signals go to a process), the fake server in a thread of the test
process. The signal is sent once the server has seen requests, not after a fixed sleep, so a slow
interpreter start on a loaded machine cannot turn this into an interrupt before the first step.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.integration._helpers import read_jsonl, read_summary
from tests.support.fake_openai import Behaviour, FakeOpenAI, ServerThread

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0  # upper bound on interpreter start-up and on exit; never reached when it works


def start_sweep(url: str, out: Path, *extra: str) -> subprocess.Popen[str]:
    """A long sweep (2000 requests at 20/s per step) that only an interrupt can end in time."""
    argv = [sys.executable, "-m", "loadgen", "sweep", "--base-url", url]
    argv += ["--rates", "20,40", "--num-requests", "2000", "--trim", "10", "--output-len", "10"]
    argv += ["--out", str(out), *extra]
    return subprocess.Popen(
        argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_requests(fake: FakeOpenAI, proc: subprocess.Popen[str], count: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while len(fake.seen.requests) < count:
        if proc.poll() is not None:
            raise AssertionError(f"loadgen exited early: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("loadgen sent nothing within the wait")
        time.sleep(0.02)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"loadgen did not exit after the interrupt: {err}") from None
    return proc.returncode, out, err


def test_sigint_drains_and_writes_the_interrupted_step(tmp_path: Path) -> None:
    # Each request streams 10 chunks 20 ms apart (~0.2 s): several are in flight at the signal,
    # and all of them finish inside the drain timeout.
    fake = FakeOpenAI(Behaviour(gap_s=0.020))
    with ServerThread(fake) as url:
        proc = start_sweep(url, tmp_path, "--drain-timeout", "20")
        wait_for_requests(fake, proc, 10)
        proc.send_signal(signal.SIGINT)
        code, _, err = finish(proc)

    assert code == 130, err  # stopped: results are valid but partial, and the status says so
    assert "Traceback" not in err
    steps = read_summary(tmp_path)["steps"]
    assert len(steps) == 1  # the second rate never started
    step = steps[0]
    assert step["interrupted"] is True
    sent = step["num_sent"]
    assert 10 <= sent < 2000
    rows = read_jsonl(tmp_path / "requests.jsonl")
    assert [row["index"] for row in rows] == list(range(sent))
    # Drained: the in-flight requests ended normally, and the server saw each exactly once.
    assert all(row["ok"] for row in rows), [row["error"] for row in rows if not row["ok"]]
    assert len(fake.seen.requests) == sent
    assert step["untrimmed"]["num_ok"] == sent
    assert fake.seen.in_flight == 0


def test_second_sigint_abandons_in_flight_requests_as_cancelled(tmp_path: Path) -> None:
    # Every stream stalls for 60 s after its first token: only abandoning can end the step.
    fake = FakeOpenAI(Behaviour(fault="stall_mid", fault_after_chunks=1, stall_s=60.0))
    with ServerThread(fake) as url:
        proc = start_sweep(url, tmp_path)
        wait_for_requests(fake, proc, 5)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)  # the first stop is taken; the stalled requests keep it draining
        proc.send_signal(signal.SIGINT)
        code, _, err = finish(proc)

    assert code == 130, err  # stopped: results are valid but partial, and the status says so
    assert "Traceback" not in err
    steps = read_summary(tmp_path)["steps"]
    assert len(steps) == 1
    assert steps[0]["interrupted"] is True
    sent = steps[0]["num_sent"]
    rows = read_jsonl(tmp_path / "requests.jsonl")
    assert [row["index"] for row in rows] == list(range(sent))
    assert Counter(row["error_kind"] for row in rows) == {"cancelled": sent}
    # A request sent just before the first signal may not have reached the server yet.
    assert sent - 1 <= len(fake.seen.requests) <= sent
    assert steps[0]["untrimmed"]["errors_by_kind"] == {"cancelled": sent}
