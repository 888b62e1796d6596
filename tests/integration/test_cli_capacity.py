"""`loadgen capacity` end to end: the capacity it finds against a truth it did not compute.

Two truths. The simulated engine's is a dense fixed-rate sweep of the same workload (rates
`GRID` apart, same seed): the highest rate whose reported step figure is within the limit,
below the lowest whose figure is not. A search's step is judged by a bootstrap interval over its
own kept requests, in steps of its own (other arrivals, other step seeds), so the sweep's figures
are an independent measurement of the same curve. The test servers' truth is their design: a
fake server that serves at most `STREAMS` streams at once, each taking `STREAM_S`, has a
capacity of exactly STREAMS / STREAM_S requests a second. The error-rate SLO is searched
against such a server that refuses (429) what it cannot serve: in virtual time the simulator
refuses only requests that can never fit, at every rate alike, so no rate separates the two.

Virtual time is deterministic (seeded); the real-time tests state their timing tolerances. No
test asserts on wall-clock time.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration._helpers import read_summary, run_cli
from tests.support.fake_openai import Behaviour, FakeOpenAI, ServerThread
from tests.support.sim_process import sim_process

LOADGEN = (sys.executable, "-m", "loadgen")
# Small requests keep a virtual step near a second; one seed for the sweeps and the searches.
WORKLOAD = ("--input-len", "128", "--output-len", "32", "--seed", "7")
VIRTUAL_STEP = ("--num-requests", "600", "--trim", "100")  # 400 kept: 20 beyond a p95
RESOLUTION = 0.05
# Neighbouring rates of a dense sweep are this share apart.
GRID = 0.025
# The summary.json figure each SLO metric bounds.
FIELDS = {"ttft": "ttft_s", "tpot": "tpot_s", "e2e": "e2e_s", "per_token": "per_token_latency_s"}


def geometric(low: float, high: float) -> tuple[float, ...]:
    """Rates from `low` up to `high` (req/s), each GRID above the one before."""
    count = math.floor(math.log(high / low) / math.log1p(GRID)) + 1
    return tuple(round(low * (1 + GRID) ** i, 3) for i in range(count))


# With 128-token prompts and 32-token outputs the simulated A100 saturates near 40 req/s. Under
# it, TPOT, E2E and per-token latency grow steadily with the batch (about 2% a 1% rise in rate
# near 33 req/s), while TTFT stays nearly flat up to the knee at ~38 req/s (about 3% a 1% rise
# from there). Past ~42 req/s the queue grows: a 600-request step is too short to show it in
# its figures, longer reruns do, so no crossing is put there. One sweep for each region.
GRIDS = {"middle": geometric(30.0, 37.0), "knee": geometric(37.0, 42.0)}


@dataclass(frozen=True)
class SloCase:
    """One SLO searched for alone, and the dense sweep that holds its crossing."""

    key: str
    limit: float
    grid: str

    @property
    def figure(self) -> tuple[str, str]:
        """The step figure it bounds: (field, statistic), e.g. ("tpot_s", "p95")."""
        metric, _, stat = self.key.rpartition("_")
        return FIELDS[metric], stat


# Limits whose crossings lie inside their grid (the tests check that they do).
SLO_CASES = (
    SloCase("ttft_p95", 0.075, "knee"),
    SloCase("tpot_p95", 0.045, "middle"),
    SloCase("e2e_p90", 1.35, "middle"),
    SloCase("per_token_p90", 0.042, "middle"),
    SloCase("tpot_mean", 0.033, "middle"),
)


def env() -> dict[str, str]:
    """This environment less any LOADGEN_* setting of the caller's shell."""
    return {name: value for name, value in os.environ.items() if not name.startswith("LOADGEN_")}


@dataclass(frozen=True)
class Ran:
    """A finished `loadgen` process: its exit status, stderr and summary.json (if written)."""

    code: int
    err: str
    summary: dict[str, Any] | None


def loadgen(out: Path, *argv: str) -> Ran:
    """`loadgen ARGV --out OUT --quiet` in a process of its own."""
    done = subprocess.run(
        [*LOADGEN, *argv, "--quiet", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env(),
        timeout=240,
        check=False,
    )
    summary = read_summary(out) if (out / "summary.json").exists() else None
    return Ran(done.returncode, done.stderr, summary)


def crossing(summary: dict[str, Any], case: SloCase) -> tuple[float, float]:
    """The dense sweep's truth for `case`: (highest rate within the limit below the lowest
    beyond it, that lowest rate beyond it), read from the step figures."""
    field, stat = case.figure
    figures = sorted((step["target_rate_rps"], step[field][stat]) for step in summary["steps"])
    beyond = [rate for rate, value in figures if value > case.limit]
    assert beyond, f"{case.key}: every rate of the sweep held: {figures}"
    failed = min(beyond)
    within = [rate for rate, value in figures if value <= case.limit and rate < failed]
    assert within, f"{case.key}: no rate of the sweep held: {figures}"
    return max(within), failed


def steps_text(summary: dict[str, Any]) -> str:
    """A search's steps, for assertion messages."""
    rows = []
    for step in summary["steps"]:
        checks = [
            f"{check['key']}={check['estimate']}[{check['low']},{check['high']}]:{check['verdict']}"
            for check in step["slo"]["checks"]
        ]
        over = " over-saturated" if step["over_saturated"] else ""
        rows.append(
            f"{step['target_rate_rps']:.3f} sent {step['num_sent']}: "
            f"{step['slo']['verdict']}{over} {' '.join(checks)}"
        )
    return "\n".join(rows)


@pytest.fixture(scope="module")
def virtual(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ran]:
    """The dense sweeps (by grid name) and the searches (by SLO key), two processes at a time."""
    work = tmp_path_factory.mktemp("capacity-virtual")
    jobs: dict[str, tuple[str, ...]] = {}
    for name, rates in GRIDS.items():
        rates_text = ",".join(f"{rate:g}" for rate in rates)
        jobs[name] = ("simulate", *WORKLOAD, *VIRTUAL_STEP, "--rates", rates_text)
    for case in SLO_CASES:
        jobs[case.key] = (
            "capacity", "--simulate", *WORKLOAD, *VIRTUAL_STEP, "--slo", f"{case.key}={case.limit}",
            "--start-rate", "20", "--resolution", f"{RESOLUTION:g}",
        )  # fmt: skip
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(loadgen, work / name, *argv) for name, argv in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.slow
@pytest.mark.parametrize("case", SLO_CASES, ids=lambda case: case.key)
def test_a_virtual_search_finds_the_capacity_of_a_dense_sweep(
    virtual: dict[str, Ran], case: SloCase
) -> None:
    sweep = virtual[case.grid]
    assert sweep.code == 0, sweep.err
    assert sweep.summary is not None
    held, failed = crossing(sweep.summary, case)
    search = virtual[case.key]
    assert search.code == 0, search.err
    assert search.summary is not None
    answer = search.summary["capacity"]
    trail = steps_text(search.summary)
    assert answer["converged"] is True, trail
    assert answer["resolution"] == RESOLUTION
    assert answer["steps"] == len(search.summary["steps"])
    # Every step was judged by the SLO given and the error rate implied (1%).
    for step in search.summary["steps"]:
        limits = {check["key"]: check["limit"] for check in step["slo"]["checks"]}
        assert limits == {case.key: case.limit, "error_rate": 0.01}, limits
    capacity, fails = answer["capacity_rps"], answer["fails_rps"]
    assert capacity < fails <= capacity * (1 + RESOLUTION) * (1 + 1e-9), answer
    # The true crossing x lies in (held, failed]. A search bracketing it within the resolution
    # has x / (1 + resolution) <= capacity <= x; one grid step either side is the sampling noise
    # of two independent measurements of a curve that rises about 2% a 1% step in rate.
    low = held / ((1 + RESOLUTION) * (1 + GRID))
    high = failed * (1 + GRID)
    assert low <= capacity <= high, (
        f"{case.key}<={case.limit}: the search found {capacity:.3f} req/s (fails at "
        f"{fails:.3f}); the dense sweep held at {held:g} and failed at {failed:g}, so "
        f"[{low:.3f}, {high:.3f}] was expected\n{trail}"
    )


# Real time against the simulator -----------------------------------------------------------


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`loadgen sim` in a process of its own, at the GPU's own pace; its base URL (with /v1)."""
    log = tmp_path_factory.mktemp("capacity-sim") / "sim.log"
    with sim_process(1.0, log, env()) as url:
        yield url


REAL_RESOLUTION = 0.10
# The real-time engine is the virtual one paced by the wall clock: the same curve, plus the
# client's and the server's scheduling delays on each token (a millisecond or two in 45).
REAL_NOISE = 0.05


@pytest.mark.slow
def test_a_real_time_search_of_the_simulator_finds_the_virtual_sweeps_capacity(
    virtual: dict[str, Ran], simulator: str, tmp_path: Path
) -> None:
    # A crossing near 35.5 req/s, clear of the rates a search from 20 req/s tries (33.6, 36.7),
    # spares it a longer rerun of an undecided step.
    case = SloCase("tpot_p95", 0.05, "middle")
    sweep = virtual[case.grid]
    assert sweep.summary is not None, sweep.err
    held, failed = crossing(sweep.summary, case)
    # 160 kept requests a step: 8 beyond the p95; an explicit 5% error-rate SLO, since no
    # failure in 160 still leaves a Wilson interval reaching past the implied 1%.
    code = run_cli(
        [
            "capacity", "--base-url", simulator, *WORKLOAD, "--num-requests", "240",
            "--trim", "40", "--slo", f"{case.key}={case.limit},error_rate=0.05",
            "--start-rate", "20", "--resolution", f"{REAL_RESOLUTION:g}",
            "--quiet", "--out", str(tmp_path),
        ]
    )  # fmt: skip
    summary = read_summary(tmp_path)
    answer = summary["capacity"]
    trail = steps_text(summary)
    assert code == 0, trail
    assert answer["converged"] is True, trail
    capacity = answer["capacity_rps"]
    low = held / ((1 + REAL_RESOLUTION) * (1 + GRID) * (1 + REAL_NOISE))
    high = failed * (1 + GRID) * (1 + REAL_NOISE)
    assert low <= capacity <= high, (
        f"real time found {capacity:.3f} req/s; the virtual sweep held at {held:g} and failed "
        f"at {failed:g}: [{low:.3f}, {high:.3f}] expected\n{trail}"
    )


# A server of known capacity ----------------------------------------------------------------

STREAMS = 20
STREAM_S = 0.2
KNOWN_RPS = STREAMS / STREAM_S  # 100 req/s
# Constant arrivals: under KNOWN_RPS at most ceil(rate * STREAM_S) <= STREAMS streams are ever
# open, so no request waits (or is refused); above it the backlog grows by rate - KNOWN_RPS
# every second. Poisson arrivals would blur the knee: a 600-request step of M/D/20 has a p90
# wait of 0.05-0.3 s anywhere from 0.85 to 1.1 of capacity.
KNOWN = (
    "--arrival", "constant", "--output-len", "1", "--input-len", "16", "--seed", "3",
    "--resolution", f"{RESOLUTION:g}",
)  # fmt: skip
# The server runs on a thread of this process, beside the load generator: its sleeps end late
# by its share of the loop and the GIL, which lowers the capacity it really has by that much.
JITTER = 0.03


@pytest.fixture(scope="module")
def queued(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any]]:
    """A search under a TTFT SLO of a server that queues streams beyond STREAMS (FIFO)."""
    out = tmp_path_factory.mktemp("capacity-queued")
    fake = FakeOpenAI(Behaviour(ttft_s=STREAM_S), max_streams=STREAMS)
    with ServerThread(fake) as url:
        code = run_cli(
            [
                "capacity", "--base-url", url, *KNOWN, "--num-requests", "600", "--trim",
                "100", "--slo", f"ttft_p90={STREAM_S + 0.05}", "--start-rate", "60",
                "--quiet", "--out", str(out),
            ]
        )  # fmt: skip
    assert fake.seen.max_in_flight > STREAMS  # requests did queue
    return code, read_summary(out)


@pytest.mark.slow
def test_a_search_finds_the_capacity_of_a_server_that_queues(
    queued: tuple[int, dict[str, Any]],
) -> None:
    code, summary = queued
    answer = summary["capacity"]
    trail = steps_text(summary)
    assert code == 0, trail
    assert answer["converged"] is True, trail
    # Under capacity every TTFT is STREAM_S plus overheads: the SLO (STREAM_S + 50 ms) holds.
    # Over it by a share e, a request sent t s into the step waits e * t (the backlog grows by
    # e * KNOWN_RPS a second): the p90 of the kept requests (sent ~4.6 s in) passes 50 ms from
    # e = 1.1% on, and the watch stops a step far over it.
    capacity = answer["capacity_rps"]
    low = KNOWN_RPS / ((1 + RESOLUTION) * (1 + JITTER))
    high = KNOWN_RPS * 1.011 * (1 + JITTER)
    assert low <= capacity <= high, f"{capacity:.3f} req/s, not {KNOWN_RPS:g}\n{trail}"


@pytest.mark.slow
def test_an_over_saturated_real_time_step_is_stopped_early_and_fails(
    queued: tuple[int, dict[str, Any]],
) -> None:
    code, summary = queued
    steps = summary["steps"]
    # The search doubles 60 to 120 req/s: 20% beyond capacity, the queue grows 20 a second.
    first_over = next(step for step in steps if step["target_rate_rps"] > 1.15 * KNOWN_RPS)
    assert first_over["over_saturated"] is True, steps_text(summary)
    assert first_over["num_sent"] < 600, first_over["num_sent"]
    assert first_over["slo"]["verdict"] == "fails"
    # A step the watch did not flag ran to its end; the search went on and converged.
    assert all(step["num_sent"] >= 600 for step in steps if not step["over_saturated"])
    assert code == 0
    assert summary["capacity"]["converged"] is True


@pytest.mark.slow
def test_a_search_by_error_rate_finds_the_capacity_of_a_server_that_refuses(
    tmp_path: Path,
) -> None:
    # Beyond STREAMS open streams the server answers 429 at once (the module says why the
    # error rate is not searched in virtual time).
    fake = FakeOpenAI(Behaviour(ttft_s=STREAM_S), max_streams=STREAMS, refuse_beyond=True)
    with ServerThread(fake) as url:
        code = run_cli(
            [
                "capacity", "--base-url", url, *KNOWN, "--num-requests", "300", "--trim",
                "50", "--slo", "error_rate=0.02", "--start-rate", "60", "--max-scale", "2",
                "--quiet", "--out", str(tmp_path),
            ]
        )  # fmt: skip
    summary = read_summary(tmp_path)
    answer = summary["capacity"]
    trail = steps_text(summary)
    assert code == 0, trail
    assert answer["converged"] is True, trail
    assert any(step["num_errors"] > 0 for step in summary["steps"]), trail
    # Under capacity nothing is refused (200 kept, none failed: Wilson's 95% bound is 1.9%);
    # over it by a share e, e / (1 + e) of the requests are, and the bound passes 2% at once.
    capacity = answer["capacity_rps"]
    low = KNOWN_RPS / ((1 + RESOLUTION) * (1 + JITTER))
    high = KNOWN_RPS * (1 + JITTER)
    assert low <= capacity <= high, f"{capacity:.3f} req/s, not {KNOWN_RPS:g}\n{trail}"


# What a search refuses, and a search that finds nothing -------------------------------------


def one_line_error(err: str) -> str:
    """The single error line on stderr (asserted: one line, no traceback)."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error" in lines[0].lower(), err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ((), "--slo"),
        (("--slo", "ttft_p100=0.5"), "ttft_p100"),
        (("--slo", "foo_p99=0.5"), "foo_p99"),
        (("--slo", "ttft_p99=0.5", "--resolution", "0"), "--resolution"),
        (("--slo", "ttft_p99=0.5", "--resolution", "150%"), "--resolution"),
        (("--slo", "ttft_p99=0.5", "--rates", "1,2"), "--rates"),
        (("--slo", "ttft_p99=0.5", "--base-url", "http://127.0.0.1:9/v1"), "--base-url"),
    ],
    ids=["no-slo", "p100", "unknown-metric", "resolution-0", "resolution-150", "rates", "url"],
)
def test_bad_input_exits_2_with_one_line(
    argv: Sequence[str], needle: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code = run_cli(["capacity", "--simulate", *argv, "--quiet", "--out", str(tmp_path)])
    line = one_line_error(capfd.readouterr().err)
    assert code == 2, line
    assert needle in line, line
    assert not (tmp_path / "summary.json").exists()


def test_a_sweep_file_with_a_capacity_table_is_sent_to_loadgen_capacity(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "search.toml"
    config.write_text('[capacity]\nslos = { ttft_p99 = 0.5 }\nresolution = "10%"\n')
    code = run_cli(["sweep", "--config", str(config), "--quiet", "--out", str(tmp_path / "o")])
    line = one_line_error(capfd.readouterr().err)
    assert code == 2, line
    assert "loadgen capacity" in line, line
    assert not (tmp_path / "o").exists()


def test_a_search_where_no_rate_holds_exits_1(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # A median TTFT of a microsecond: no rate, however low, meets it.
    code = run_cli(
        [
            "capacity", "--simulate", *WORKLOAD, "--num-requests", "60", "--trim", "10",
            "--slo", "ttft_p50=0.000001", "--quiet", "--out", str(tmp_path),
        ]
    )  # fmt: skip
    err = capfd.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    assert "no rate met the SLOs" in " ".join(err.split()), err
    summary = read_summary(tmp_path)
    answer = summary["capacity"]
    assert answer["capacity_rps"] is None, answer
    assert answer["converged"] is False, answer
    rates = [step["target_rate_rps"] for step in summary["steps"]]
    assert len(rates) > 1, rates
    assert rates == sorted(rates, reverse=True), rates  # it halved
    for step in summary["steps"]:
        assert step["slo"]["verdict"] == "fails", steps_text(summary)
        assert step["ttft_s"]["p50"] > 0.000001


def test_a_search_that_every_rate_passed_exits_1_and_prints_its_summary(tmp_path: Path) -> None:
    # Two steps, both well within a lax SLO: no rate failed, so no capacity was bracketed.
    argv = [
        *LOADGEN, "capacity", "--simulate", *WORKLOAD, "--num-requests", "60", "--trim", "10",
        "--slo", "ttft_mean=5,error_rate=0.2", "--start-rate", "4", "--max-steps", "2",
        "--json", "--quiet", "--out", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, env=env(), timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    line = one_line_error(done.stderr)
    assert "every rate held up to 8" in line, line
    printed = orjson.loads(done.stdout)
    written = read_summary(tmp_path)
    assert printed["capacity"] == written["capacity"]
    assert printed["steps"] == written["steps"]
    assert printed["capacity"]["capacity_rps"] == 8.0
    assert printed["capacity"]["fails_rps"] is None
    assert [step["slo"]["verdict"] for step in printed["steps"]] == ["holds", "holds"]
