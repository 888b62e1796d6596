"""`loadgen compare` through cli.main: simulated runs in virtual time (deterministic), real-time
simulators on loopback ports, bad input, and the comparison section of `loadgen report`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from loadgen.report import sweep_plot
from tests.integration._helpers import read_summary, run_cli
from tests.support.sim_process import sim_process

RATES = "5,20"
STEP = ("--num-requests", "300", "--trim", "50", "--dataset", "s2s", "--seed", "3")
LATENCIES = tuple(
    f"{name}_p{q}_s" for name in ("ttft", "tpot", "e2e", "per_token_latency") for q in (50, 99)
)
# Every modelled step 1.2 times as long: 1/1.2 of the A100's bandwidth and FLOP/s, and 1.2 times
# its fixed per-step and per-sequence overheads (docs/simulator.md's cost model).
SLOWER_A100 = """\
[gpu]
bandwidth_gbps = 1699.1666666666667
peak_tflops = 260.0
[overheads]
step_s = 0.0024
seq_s = 0.000192
"""


def simulate(out: Path, *flags: str) -> Path:
    """A quiet `loadgen simulate` sweep of the A100 into `out`."""
    argv = ["simulate", "--rates", RATES, *STEP, "--gpu", "a100", "--quiet", "--out", str(out)]
    assert run_cli([*argv, *flags]) == 0
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three virtual-time sweeps: a base, the same again, and a 20% slower GPU."""
    tmp = tmp_path_factory.mktemp("compare")
    config = tmp / "slower.toml"
    config.write_text(SLOWER_A100)
    return {
        "base": simulate(tmp / "base"),
        "again": simulate(tmp / "again"),
        "slower": simulate(tmp / "slower", "--sim-config", str(config)),
    }


def compare_json(
    capfd: pytest.CaptureFixture[str], base: Path, new: Path, *flags: str
) -> tuple[int, dict[str, Any]]:
    """Exit code and JSON document of `loadgen compare BASE NEW --json FLAGS`."""
    code = run_cli(["compare", str(base), str(new), "--json", *flags])
    out, err = capfd.readouterr()
    assert "Traceback" not in err
    return code, orjson.loads(out)


def verdicts(document: dict[str, Any]) -> dict[tuple[Any, str], str]:
    """{(target rate, figure): verdict} over every compared step."""
    return {
        (step["target_rate_rps"], figure["figure"]): figure["verdict"]
        for step in document["steps"]
        for figure in step["figures"]
    }


def test_the_same_simulation_twice_has_no_significant_change(
    runs: dict[str, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    code, document = compare_json(capfd, runs["base"], runs["again"])

    assert code == 0
    assert [step["target_rate_rps"] for step in document["steps"]] == [5.0, 20.0]
    calls = verdicts(document)
    assert len(calls) == 2 * 11
    assert set(calls.values()) == {"no significant change"}
    for step in document["steps"]:
        for figure in step["figures"]:
            assert figure["base"] == figure["new"]
            assert figure["low"] <= 0 <= figure["high"], figure
    assert document["worse"] is False
    assert document["unmatched"] == {"base": [], "new": []}


def test_a_20_percent_slower_gpu_is_worse_on_latency_and_exits_1(
    runs: dict[str, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    code, document = compare_json(capfd, runs["base"], runs["slower"])

    assert code == 1
    assert document["worse"] is True
    calls = verdicts(document)
    for rate in (5.0, 20.0):
        for name in LATENCIES:
            assert calls[rate, name] == "worse", (rate, name)
        assert calls[rate, "error_rate"] == "no significant change"
    # Below saturation both serve the offered rate: the throughputs do not move.
    assert calls[5.0, "sequence_throughput_rps"] == "no significant change"


def test_the_other_way_round_is_better_and_exits_0(
    runs: dict[str, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    code, document = compare_json(capfd, runs["slower"], runs["base"])

    assert code == 0
    calls = verdicts(document)
    assert all(calls[rate, name] == "better" for rate in (5.0, 20.0) for name in LATENCIES)


def test_a_threshold_above_the_slowdown_forgives_it(
    runs: dict[str, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    # Below saturation the slower GPU adds 18-34% to these latencies: 60% is beyond them all.
    code, document = compare_json(capfd, runs["base"], runs["slower"], "--threshold", "60%")
    assert code == 0
    assert "worse" not in verdicts(document).values()
    assert document["threshold"] == pytest.approx(0.6)


def test_the_console_table_names_every_figure(
    runs: dict[str, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    code = run_cli(["compare", str(runs["base"]), str(runs["slower"])])
    out, _ = capfd.readouterr()

    assert code == 1
    for title in ("throughput (req/s)", "output (tok/s)", "TTFT p50 (ms)", "TPOT p99 (ms)",
                  "E2E p50 (ms)", "per-token p99 (ms)", "error rate (%)"):  # fmt: skip
        assert title in out, title
    assert out.count("worse") >= 2 * len(LATENCIES)
    assert "no significant change" in out


def relabel(source: Path, dest: Path, label: str) -> None:
    """Copy a results folder to `dest` with its target renamed `label` (a sweep file's name)."""
    shutil.copytree(source, dest)
    summary = read_summary(dest)
    summary["target"]["label"] = label
    (dest / "summary.json").write_bytes(orjson.dumps(summary))


def test_sweep_file_folders_pair_their_targets_by_name(
    runs: dict[str, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    relabel(runs["base"], tmp_path / "base" / "alpha", "alpha")
    relabel(runs["base"], tmp_path / "base" / "beta", "beta")
    relabel(runs["slower"], tmp_path / "new" / "alpha", "alpha")
    relabel(runs["base"], tmp_path / "new" / "gamma", "gamma")

    code, document = compare_json(capfd, tmp_path / "base", tmp_path / "new")

    assert code == 1
    assert [step["target"] for step in document["steps"]] == ["alpha", "alpha"]
    unmatched = document["unmatched"]
    assert [(s["target"], s["target_rate_rps"]) for s in unmatched["base"]] == [
        ("beta", 5.0),
        ("beta", 20.0),
    ]
    assert [s["target"] for s in unmatched["new"]] == ["gamma", "gamma"]


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing", "cannot read"),
        ("not_results", "summary.json"),
        ("no_rows", "requests.jsonl"),
        ("no_match", "no step matches"),
        ("threshold_word", "--threshold"),
        ("threshold_bare", "ambiguous"),
        ("threshold_negative", ">= 0"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    runs: dict[str, Path],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    case: str,
    needle: str,
) -> None:
    base, new, flags = runs["base"], runs["again"], []
    if case == "missing":
        new = tmp_path / "missing"
    elif case == "not_results":
        new = tmp_path
    elif case == "no_rows":
        new = tmp_path / "copy"
        shutil.copytree(runs["again"], new)
        (new / "requests.jsonl").unlink()
    elif case == "no_match":
        new = simulate(tmp_path / "other", "--rates", "7")
        capfd.readouterr()
    else:
        value = {"threshold_word": "five", "threshold_bare": "5", "threshold_negative": "-1%"}
        flags = [f"--threshold={value[case]}"]

    code = run_cli(["compare", str(base), str(new), *flags])
    out, err = capfd.readouterr()

    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error:"), err
    assert needle in err, err
    assert out == ""


# --- loadgen report ------------------------------------------------------------------------------


def test_report_of_two_runs_has_a_comparison_section(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[list[str]] = []
    draw = sweep_plot.plot_sweep

    def plot_sweep(series: dict[str, Any], title: str) -> Any:
        drawn.append(list(series))
        return draw(series, title)

    monkeypatch.setattr("loadgen.report.html.plot_sweep", plot_sweep)
    out = tmp_path / "report.html"
    assert run_cli(["report", str(runs["base"]), str(runs["slower"]), "--out", str(out)]) == 0
    page = out.read_text()

    # Both runs simulate the same target: each keeps its own curve, named by its folder.
    label = "sim a100/llama-2-7b/vllm"
    assert drawn == [[f"{label} ({runs['base']})", f"{label} ({runs['slower']})"]]

    assert "<h2>Comparison</h2>" in page
    section = page.split("<h2>Comparison</h2>", 1)[1]
    assert '<table class="comparison">' in section
    assert section.count('<tr class="worse">') == 2 * len(LATENCIES)
    assert "TTFT p99 (ms)" in section


def test_report_of_one_run_has_no_comparison(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert run_cli(["report", str(runs["base"]), "--out", str(out)]) == 0
    assert "Comparison" not in out.read_text()


# --- real time: two simulators on loopback ports ----------------------------------------------

REAL_TIME_SCALE = 0.2
REAL_SWEEP = ("--rates", "40", "--num-requests", "200", "--trim", "20", "--dataset", "s2s")
SWEEP_TIMEOUT_S = 120.0


@contextmanager
def simulators(*time_scales: float) -> Iterator[list[str]]:
    """One `loadgen sim` process per time scale on free loopback ports; their base URLs."""
    with ExitStack() as stack:
        yield [stack.enter_context(sim_process(scale)) for scale in time_scales]


def sweep_together(urls: list[str], outs: list[Path]) -> None:
    """Sweep each URL into its folder, all at once, so that whatever else loads the machine
    loads every run alike."""
    sweeps = [start_sweep(url, out) for url, out in zip(urls, outs, strict=True)]
    for process in sweeps:
        _, err = process.communicate(timeout=SWEEP_TIMEOUT_S)
        assert process.returncode == 0, err.decode()


def start_sweep(url: str, out: Path) -> subprocess.Popen[bytes]:
    """`loadgen sweep` of `url` into `out`, in a process of its own."""
    argv = [sys.executable, "-m", "loadgen", "sweep", "--base-url", url, *REAL_SWEEP,
            "--quiet", "--out", str(out)]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_real_time_a_20_percent_slower_simulator_is_worse(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    outs = [tmp_path / "base", tmp_path / "slower"]
    with simulators(REAL_TIME_SCALE, REAL_TIME_SCALE * 1.2) as urls:
        sweep_together(urls, outs)

    code, document = compare_json(capfd, outs[0], outs[1])

    assert code == 1
    calls = verdicts(document)
    # Medians of per-token times: each request's is a mean over its tokens, every one of them a
    # 20% longer engine step. E2E and TTFT vary with each request's lengths and 180 requests
    # leave their intervals wide, so they are not asserted; none may come out better though.
    for name in ("tpot_p50_s", "per_token_latency_p50_s"):
        assert calls[40.0, name] == "worse", (name, document)
    assert all(calls[40.0, name] != "better" for name in LATENCIES), document


@pytest.mark.slow
def test_real_time_same_speed_simulators_are_not_worse(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    outs = [tmp_path / "first", tmp_path / "second"]
    with simulators(REAL_TIME_SCALE, REAL_TIME_SCALE) as urls:
        sweep_together(urls, outs)

    code, document = compare_json(capfd, outs[0], outs[1])

    # Swept at the same time, both runs share whatever else loads the machine: what is left is
    # noise the intervals and the 5% threshold absorb.
    calls = verdicts(document)
    assert all(calls[40.0, name] != "worse" for name in LATENCIES), document
    assert calls[40.0, "error_rate"] == "no significant change"
    assert code == 0, document
