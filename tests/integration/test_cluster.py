"""One load from many processes on loopback: `sweep --processes N`, `master` and `worker`.

Real processes throughout: the CLI in a subprocess, its Locust relays, its engine shards, and a
real aiohttp server (tests/support/fake_openai.py) that counts what arrives.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson
import pytest

from tests.integration._helpers import read_jsonl, read_summary
from tests.support.fake_openai import Behaviour, FakeOpenAI, ServerThread
from tests.support.ports import free_port

# Tolerances of the merged stream: a KS test at 1 % and the dispersion band.
KS_ALPHA = 0.01
DISPERSION_BAND = (0.8, 1.25)
RATE_RPS = 50.0
NUM_REQUESTS = 1000
TRIM = 100


def loadgen(*args: str) -> list[str]:
    """The loadgen command line, in this interpreter."""
    return [sys.executable, "-m", "loadgen", *args]


def sweep_args(url: str, out: Path, *more: str) -> list[str]:
    """A one-step sweep of small synthetic requests at RATE_RPS against `url`."""
    return [
        "sweep", "--base-url", url, "--rates", f"{RATE_RPS:g}",
        "--num-requests", str(NUM_REQUESTS), "--trim", str(TRIM), "--dataset", "synthetic",
        "--input-len", "8", "--output-len", "4", "--seed", "3", "--out", str(out), "--quiet",
        *more,
    ]  # fmt: skip


def run(argv: Sequence[str], timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    """`argv` to its end, its output as text."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)


def children(pid: int) -> list[int]:
    """Every process below `pid`, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [child for child, ppid in parents.items() if ppid == parent]
        found += kids
        frontier += kids
    return found


def cmdline(pid: int) -> str:
    """A process's command line ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def wait_for(condition: object, timeout_s: float, what: str) -> None:
    """Poll `condition()` until true; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def fast() -> Iterator[tuple[FakeOpenAI, str]]:
    """A server that answers at once."""
    fake = FakeOpenAI(Behaviour(ttft_s=0.002, gap_s=0.001))
    with ServerThread(fake) as url:
        yield fake, url


@pytest.mark.timeout(300)
@pytest.mark.parametrize("processes", [2, 4])
def test_shards_send_one_poisson_stream_merged_and_trimmed_as_one(
    fast: tuple[FakeOpenAI, str], tmp_path: Path, processes: int
) -> None:
    fake, url = fast
    done = run(loadgen(*sweep_args(url, tmp_path / "out", "--processes", str(processes))))
    assert done.returncode == 0, done.stderr

    step = read_summary(tmp_path / "out")["steps"][0]
    rows = read_jsonl(tmp_path / "out" / "requests.jsonl")
    # Every request accounted for: one row each, as many as the server saw, none repeated.
    assert step["num_sent"] == NUM_REQUESTS == len(rows) == len(fake.seen.requests)
    assert sorted(row["index"] for row in rows) == list(range(NUM_REQUESTS))
    prompts = [incoming.body["prompt"] for incoming in fake.seen.requests]
    assert len(set(prompts)) == NUM_REQUESTS
    # One send order, by schedule, trimmed over the merged run.
    by_index = sorted(rows, key=lambda row: row["index"])
    scheduled = [row["t_sched_s"] for row in by_index]
    assert scheduled == sorted(scheduled)
    phases = [row["phase"] for row in by_index]
    assert (
        phases == ["warmup"] * TRIM + ["measure"] * (NUM_REQUESTS - 2 * TRIM) + ["cooldown"] * TRIM
    )
    assert step["num_kept"] == step["num_ok"] == NUM_REQUESTS - 2 * TRIM
    # The superposition is one Poisson stream: gaps pass KS, counts are not over-dispersed.
    assert step["send_gap_ks_pvalue"] > KS_ALPHA
    low, high = DISPERSION_BAND
    assert low <= step["send_count_dispersion"] <= high
    shards = step["shards"]
    assert [shard["shard"] for shard in shards] == list(range(processes))
    assert sum(shard["num_sent"] for shard in shards) == step["num_kept"]
    for shard in shards:
        assert shard["achieved_rate_rps"] == pytest.approx(RATE_RPS / processes, rel=0.35)


@pytest.mark.timeout(300)
def test_results_have_the_shape_of_a_one_process_run(
    fast: tuple[FakeOpenAI, str], tmp_path: Path
) -> None:
    _, url = fast
    one = run(loadgen(*sweep_args(url, tmp_path / "one")))
    two = run(loadgen(*sweep_args(url, tmp_path / "two", "--processes", "2")))
    assert one.returncode == two.returncode == 0, one.stderr + two.stderr
    files = {path.name for path in (tmp_path / "one").iterdir()}
    assert {path.name for path in (tmp_path / "two").iterdir()} == files
    single, merged = read_summary(tmp_path / "one"), read_summary(tmp_path / "two")
    assert single.keys() == merged.keys()
    assert single["steps"][0].keys() == merged["steps"][0].keys()
    assert single["steps"][0]["shards"] == []
    assert read_jsonl(tmp_path / "one" / "requests.jsonl")[0].keys() == (
        read_jsonl(tmp_path / "two" / "requests.jsonl")[0].keys()
    )
    headers = [
        next(csv.reader((tmp_path / name / "summary.csv").open())) for name in ("one", "two")
    ]
    assert headers[0] == headers[1]


def _start(argv: Sequence[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _workers(master: subprocess.Popen[str]) -> list[int]:
    return [pid for pid in children(master.pid) if "relay worker" in cmdline(pid)]


@pytest.mark.timeout(300)
def test_a_worker_killed_mid_step_leaves_lost_records_and_an_invalid_step(
    tmp_path: Path,
) -> None:
    # Each request streams for about a second: a worker killed mid-step has many in flight.
    fake = FakeOpenAI(Behaviour(ttft_s=0.01, gap_s=0.25))
    with ServerThread(fake) as url:
        master = _start(loadgen(*sweep_args(url, tmp_path / "out", "--processes", "2")))
        wait_for(lambda: len(fake.seen.requests) >= 200, 120, "the step to be under way")
        victim = _workers(master)[0]
        os.kill(victim, signal.SIGKILL)
        _, stderr = master.communicate(timeout=120)
        received = len(fake.seen.requests)
    assert master.returncode == 1, stderr
    assert "lost" in stderr
    assert "Traceback" not in stderr
    step = read_summary(tmp_path / "out")["steps"][0]
    assert step["invalid"] is not None
    assert "lost" in step["invalid"]
    rows = read_jsonl(tmp_path / "out" / "requests.jsonl")
    lost = [row for row in rows if row["error_kind"] == "lost"]
    assert lost
    # Whatever reached the server has a row: answered, or lost with its worker.
    assert len(rows) >= received
    assert sorted(row["index"] for row in rows) == list(range(len(rows)))


@pytest.mark.timeout(300)
def test_ctrl_c_on_the_master_stops_every_shard_and_writes_what_it_measured(
    tmp_path: Path,
) -> None:
    fake = FakeOpenAI(Behaviour(ttft_s=0.01, gap_s=0.05))
    with ServerThread(fake) as url:
        master = _start(loadgen(*sweep_args(url, tmp_path / "out", "--processes", "2")))
        wait_for(lambda: len(fake.seen.requests) >= 150, 120, "the step to be under way")
        below = children(master.pid)
        master.send_signal(signal.SIGINT)
        _, stderr = master.communicate(timeout=120)
        received = len(fake.seen.requests)
    assert master.returncode == 130, stderr
    assert "Traceback" not in stderr
    step = read_summary(tmp_path / "out")["steps"][0]
    assert step["interrupted"] is True
    assert received < NUM_REQUESTS
    assert len(read_jsonl(tmp_path / "out" / "requests.jsonl")) == step["num_sent"] >= received
    wait_for(lambda: not any(cmdline(pid) for pid in below), 20, "every child to end")


@pytest.mark.timeout(300)
def test_a_master_and_workers_started_apart_run_the_sweep(
    fast: tuple[FakeOpenAI, str], tmp_path: Path
) -> None:
    fake, url = fast
    port = free_port()
    args = sweep_args(url, tmp_path / "out")
    args[0] = "master"
    master = _start(
        loadgen(
            *args,
            "--expect-workers",
            "2",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(port),
            "--worker-timeout",
            "60",
        )
    )
    workers = [
        _start(loadgen("worker", "--master-host", "127.0.0.1", "--master-port", str(port)))
        for _ in range(2)
    ]
    _, stderr = master.communicate(timeout=240)
    assert master.returncode == 0, stderr
    for worker in workers:
        assert worker.wait(timeout=60) == 0, worker.communicate()[1]
    step = read_summary(tmp_path / "out")["steps"][0]
    assert step["num_sent"] == NUM_REQUESTS == len(fake.seen.requests)
    assert len(step["shards"]) == 2


@pytest.mark.timeout(120)
def test_a_worker_of_another_version_is_refused(tmp_path: Path) -> None:
    import loadgen as package_module

    package = Path(package_module.__file__).parent
    other = tmp_path / "other"
    shutil.copytree(package, other / "loadgen", ignore=shutil.ignore_patterns("__pycache__"))
    (other / "loadgen" / "version.py").write_text('__version__ = "0.0.1-other"\n')
    port = free_port()
    master_args = ["master", "--rates", "10", "--expect-workers", "1", "--master-bind-host",
                   "127.0.0.1", "--master-bind-port", str(port), "--worker-timeout", "15",
                   "--out", str(tmp_path / "out")]  # fmt: skip
    master = _start(loadgen(*master_args))
    env = {**os.environ, "PYTHONPATH": str(other)}
    worker = subprocess.run(
        loadgen("worker", "--master-port", str(port)),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
        cwd=other,
    )
    assert worker.returncode == 2, worker.stderr
    assert "0.0.1-other" in worker.stderr
    _, stderr = master.communicate(timeout=60)
    assert master.returncode == 1
    assert "refused worker" in stderr
    assert "0 of 1 workers joined" in stderr


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--processes", "0"], 2, "--processes"),
        (["--processes", "4", "--num-requests", "3", "--trim", "1"], 2, "at least 4"),
        (["--processes", "4", "--duration", "2", "--rates", "1", "--trim", "0"], 2, "is 2 req/s"),
    ],
)
def test_bad_splits_are_one_line_errors_before_anything_starts(
    tmp_path: Path, args: list[str], code: int, says: str
) -> None:
    argv = ["sweep", "--rates", "10", "--out", str(tmp_path / "out"), *args]
    done = run(loadgen(*argv), timeout_s=60)
    assert done.returncode == code, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_master_without_workers_gives_up_after_its_timeout(tmp_path: Path) -> None:
    argv = ["master", "--rates", "10", "--expect-workers", "2", "--master-bind-host",
            "127.0.0.1", "--master-bind-port", "0", "--worker-timeout", "2",
            "--out", str(tmp_path / "out")]  # fmt: skip
    done = run(loadgen(*argv), timeout_s=60)
    assert done.returncode == 1, done.stderr
    assert "0 of 2 workers joined within 2 s" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_worker_that_cannot_reach_its_master_says_so() -> None:
    port = free_port()
    argv = ["worker", "--master-port", str(port), "--worker-timeout", "2"]
    done = run(loadgen(*argv), timeout_s=60)
    assert done.returncode == 1, done.stderr
    assert f"cannot reach a master at 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.timeout(300)
def test_locust_web_ui_shows_live_requests_and_cannot_start_load(
    fast: tuple[FakeOpenAI, str], tmp_path: Path
) -> None:
    import re
    import urllib.error
    import urllib.request

    _, url = fast
    args = sweep_args(url, tmp_path / "out", "--processes", "2", "--locust-web-port", "0")
    args.remove("--quiet")
    master = _start(loadgen(*args))
    assert master.stderr is not None
    web = None
    for line in master.stderr:
        if found := re.search(r"web UI: (http://[\d.]+:\d+)", line):
            web = found.group(1)
            break
    assert web is not None

    def stats() -> dict[str, object]:
        with urllib.request.urlopen(f"{web}/stats/requests", timeout=5) as response:
            return dict(orjson.loads(response.read()))

    def counted() -> bool:
        total = [row for row in stats()["stats"] if row["name"] == "Aggregated"]  # type: ignore[union-attr]
        return bool(total) and total[0]["num_requests"] > 0

    wait_for(counted, 120, "Locust's web UI to count requests")
    names = {row["name"] for row in stats()["stats"]}  # type: ignore[union-attr]
    assert any(name.endswith("completions TTFT") for name in names), names
    start = urllib.request.Request(f"{web}/swarm", data=b"user_count=1", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(start, timeout=5)
    assert refused.value.code == 409
    master.communicate(timeout=240)
    assert master.returncode == 0


@pytest.mark.timeout(300)
def test_on_worker_loss_continue_goes_on_over_the_workers_left(tmp_path: Path) -> None:
    fake = FakeOpenAI(Behaviour(ttft_s=0.01, gap_s=0.25))
    args = sweep_args("URL", tmp_path / "out", "--processes", "2", "--on-worker-loss", "continue")
    args[args.index("--rates") + 1] = f"{RATE_RPS:g},{RATE_RPS / 2:g}"
    with ServerThread(fake) as url:
        args[args.index("URL")] = url
        master = _start(loadgen(*args))
        wait_for(lambda: len(fake.seen.requests) >= 200, 120, "the first step to be under way")
        os.kill(_workers(master)[0], signal.SIGKILL)
        _, stderr = master.communicate(timeout=240)
    assert master.returncode == 1, stderr
    first, second = read_summary(tmp_path / "out")["steps"]
    assert first["invalid"] is not None
    assert second["invalid"] is None
    assert second["num_sent"] == NUM_REQUESTS
    assert [shard["shard"] for shard in second["shards"]] == [0]


@pytest.mark.timeout(300)
def test_ctrl_c_on_a_worker_leaves_the_master_which_marks_the_step_invalid(
    tmp_path: Path,
) -> None:
    fake = FakeOpenAI(Behaviour(ttft_s=0.01, gap_s=0.05))
    port = free_port()
    with ServerThread(fake) as url:
        args = sweep_args(url, tmp_path / "out")
        args[0] = "master"
        master = _start(
            loadgen(
                *args,
                "--expect-workers",
                "1",
                "--master-bind-host",
                "127.0.0.1",
                "--master-bind-port",
                str(port),
            )
        )
        worker = subprocess.Popen(
            loadgen("worker", "--master-port", str(port)),
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own group, as a terminal's Ctrl-C reaches it
        )
        wait_for(lambda: len(fake.seen.requests) >= 100, 120, "the step to be under way")
        os.killpg(worker.pid, signal.SIGINT)
        _, worker_err = worker.communicate(timeout=60)
        _, master_err = master.communicate(timeout=120)
    assert worker.returncode == 130, worker_err
    assert worker_err == "loadgen worker: interrupted; leaving the master\n"
    assert master.returncode == 1, master_err
    step = read_summary(tmp_path / "out")["steps"][0]
    assert "lost mid-step" in step["invalid"]
