"""`--rates auto` and `--repeats` through cli.main: in virtual time, and against real servers.

`--rates auto --steps K` runs a synchronous step (one request at a time, at most 120 sent and
at most 10 trimmed at each end), then a saturated one (inf), then K rates evenly spaced
strictly between the sequence throughputs the two measured, to 3 significant digits.
`--repeats R` runs each step R times, with fresh prompts and send times; summary.json then
holds each repeated step's figures as a mean with its 95% Student t interval.

Tolerances, and why they are safe:
- A spread rate is rounded to 3 significant digits: it lies within half a unit of its third
  digit of the exact rate, which is a relative error of at most 0.5 / 100 (RATE_REL).
- Times in requests.jsonl are whole ns written in seconds: two of them compared after scaling
  by a rate of 10 req/s differ by at most a few 1e-9 (SCALED_ABS leaves a margin of 10).
- The t quantile t(0.975, 2) = 4.3027 is written out here; the code's table has 4.303, within
  5e-4 relative (T_REL).
- Against real servers nothing is asserted about wall-clock time: only counts, orders and the
  server's own in-flight count, each exact.
"""

from __future__ import annotations

import itertools
import math
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from loadgen.report import sweep_plot
from tests.integration._helpers import read_jsonl, read_summary, run_cli
from tests.support.fake_openai import Behaviour, FakeOpenAI, Incoming, ServerThread
from tests.support.sim_process import sim_process

SMALL = ("--num-requests", "300", "--trim", "50", "--output-len", "32")
SYNC_SENT = 120  # what a synchronous step sends at most
SYNC_TRIM = 10  # what it trims at most at each end
RATE_REL = 5e-3
SCALED_ABS = 1e-7
T_REL = 5e-4
T975_2 = 4.3027  # Student t, 97.5% quantile, 2 degrees of freedom (printed tables)
# Figures the repeated-steps table shows, and others of summary.json's `repeats`.
HEADLINE = (
    "sequence_throughput_rps",
    "achieved_rate_rps",
    "output_token_throughput_tps",
    "error_rate",
    "ttft_s.p99",
    "tpot_s.p99",
    "e2e_s.p99",
    "per_token_latency_s.p50",
    "e2e_s.mean",
    "tpot_s.p50",
)


@pytest.fixture
def no_plot(monkeypatch: pytest.MonkeyPatch) -> None:
    """No sweep.png: redrawn after every step, it takes most of a small run's time, and only
    test_auto_in_virtual_time_sync_then_inf_then_rates_between looks at it."""
    monkeypatch.setattr(sweep_plot, "write_sweep_plot", lambda path, series, title: path)


def simulate(out: Path, *flags: str, quiet: bool = True) -> dict[str, Any]:
    """`loadgen simulate FLAGS` into `out` (exit 0); its summary.json."""
    code = run_cli(["simulate", *flags, *(["--quiet"] if quiet else []), "--out", str(out)])
    assert code == 0
    return read_summary(out)


def rate_of(step: dict[str, Any]) -> float:
    """A step's target rate (req/s): summary.json writes inf as "inf"."""
    return float(step["target_rate_rps"])


def check_auto_steps(steps: list[dict[str, Any]], count: int, sent: int, trim: int) -> None:
    """Steps of `--rates auto --steps COUNT` with `sent` requests and `trim` per step: sync,
    inf, then COUNT rates evenly spaced strictly between what those two measured."""
    assert len(steps) == 2 + count
    assert [step["step"] for step in steps] == list(range(2 + count))
    sync, saturated, *between = steps
    assert (sync["synchronous"], rate_of(sync)) == (True, math.inf)
    assert sync["num_sent"] == min(sent, SYNC_SENT)
    assert sync["trim"] == min(trim, SYNC_TRIM)
    assert sync["num_kept"] == sync["num_sent"] - 2 * sync["trim"]
    assert (saturated["synchronous"], rate_of(saturated)) == (False, math.inf)
    assert (saturated["num_sent"], saturated["trim"]) == (sent, trim)
    assert all(not step["synchronous"] for step in between)
    assert all(step["repeat"] == 0 for step in steps)
    check_spread(
        [rate_of(step) for step in between],
        sync["sequence_throughput_rps"],
        saturated["sequence_throughput_rps"],
    )


def check_spread(rates: list[float], low_rps: float, high_rps: float) -> None:
    """`rates` lie strictly between the two ends, each the evenly spaced one to 3 digits."""
    assert low_rps < high_rps, (low_rps, high_rps)
    width = (high_rps - low_rps) / (len(rates) + 1)
    for i, rate in enumerate(rates, start=1):
        assert low_rps < rate < high_rps, (rates, low_rps, high_rps)
        assert rate == pytest.approx(low_rps + i * width, rel=RATE_REL)
        assert float(f"{rate:.3g}") == rate  # no more than 3 significant digits


def rows_by_step(out: Path) -> dict[int, list[dict[str, Any]]]:
    """requests.jsonl's rows of each step, in send-index order."""
    rows: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in read_jsonl(out / "requests.jsonl"):
        rows[row["step"]].append(row)
    return {step: sorted(found, key=lambda row: row["index"]) for step, found in rows.items()}


def check_one_at_a_time(rows: list[dict[str, Any]]) -> None:
    """Each request of a step was sent at or after the end of the one before it."""
    for before, after in itertools.pairwise(rows):
        assert after["t_send_s"] >= before["t_done_s"], (before, after)


# ---- --rates auto in virtual time -------------------------------------------------------------


def test_auto_in_virtual_time_sync_then_inf_then_rates_between(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    summary = simulate(tmp_path, "--rates", "auto", "--steps", "3", *SMALL, quiet=False)
    out = capfd.readouterr().err  # the console prints to stderr
    steps = summary["steps"]
    check_auto_steps(steps, 3, sent=300, trim=50)
    assert "repeats" not in summary
    rows = rows_by_step(tmp_path)
    assert len(rows[0]) == SYNC_SENT
    check_one_at_a_time(rows[0])
    # The saturated step sends everything at once: its requests do overlap.
    assert any(row["t_send_s"] < rows[1][0]["t_done_s"] for row in rows[1][1:])
    # One at a time on an idle engine, the synchronous step's kept requests go back to back:
    # its throughput is one over their mean latency (virtual time: no noise; 1e-6 relative
    # covers the ns rounding of 100 latencies).
    e2e_mean_s = steps[0]["e2e_s"]["mean"]
    assert steps[0]["sequence_throughput_rps"] == pytest.approx(1 / e2e_mean_s, rel=1e-6)
    # The console names the synchronous step's rate "sync" in the sweep table.
    cells = [line.split()[1:2] for line in out.splitlines()]
    assert cells.count(["sync"]) == 1, out
    assert cells.count(["inf"]) == 1, out
    # The plot takes the synchronous step (at the rate it carried) with the others.
    assert (tmp_path / "sweep.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.usefixtures("no_plot")
def test_auto_with_fewer_requests_than_the_synchronous_cap(tmp_path: Path) -> None:
    flags = ("--num-requests", "60", "--trim", "5", "--output-len", "16")
    summary = simulate(tmp_path, "--rates", "auto", "--steps", "1", *flags)
    check_auto_steps(summary["steps"], 1, sent=60, trim=5)
    assert summary["steps"][0]["num_sent"] == 60
    assert summary["steps"][0]["trim"] == 5


# ---- --rates auto against real servers ---------------------------------------------------------


@contextmanager
def simulator(time_scale: float) -> Iterator[int]:
    """A `loadgen sim` process on a free loopback port; yields the port."""
    with sim_process(time_scale) as url:
        yield int(urlsplit(url).port or 0)


def successes(port: int) -> float:
    """The simulator's own count of requests that finished (vllm:request_success_total)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "vllm:request_success_total"
    )


@pytest.mark.usefixtures("no_plot")
def test_auto_against_the_simulated_server(tmp_path: Path) -> None:
    flags = ("--num-requests", "120", "--trim", "20", "--output-len", "16")
    with simulator(0.05) as port:
        before = successes(port)
        code = run_cli(
            ["sweep", "--base-url", f"http://127.0.0.1:{port}/v1", "--rates", "auto",
             "--steps", "3", *flags, "--quiet", "--out", str(tmp_path)]
        )  # fmt: skip
        served = successes(port) - before
    assert code == 0
    steps = read_summary(tmp_path)["steps"]
    check_auto_steps(steps, 3, sent=120, trim=20)
    assert all(step["num_ok"] == step["num_kept"] for step in steps)
    assert all(step["untrimmed"]["num_errors"] == 0 for step in steps)
    # The server finished every request the sweep sent, and no other.
    assert served == sum(step["num_sent"] for step in steps)
    rows = rows_by_step(tmp_path)
    check_one_at_a_time(rows[0])
    # The server's gauges, sampled around and during the synchronous step, never saw two
    # requests running or any waiting.
    server = steps[0]["server"]
    assert server is not None
    assert server["scrapes"] >= 2
    assert server["running_max"] <= 1
    assert server["waiting_max"] == 0


@pytest.mark.usefixtures("no_plot")
def test_auto_against_a_server_that_counts_requests_in_flight(tmp_path: Path) -> None:
    arrivals: list[int] = []  # requests in flight at the server as each one arrived (itself in)
    fake = FakeOpenAI()

    def count(incoming: Incoming) -> Behaviour:
        arrivals.append(fake.seen.in_flight + 1)  # called before the server counts it
        return Behaviour(ttft_s=0.003, gap_s=0.001)

    fake.script = count
    flags = ("--num-requests", "60", "--trim", "5", "--output-len", "8")
    with ServerThread(fake) as url:
        code = run_cli(
            ["sweep", "--base-url", url, "--rates", "auto", "--steps", "2", *flags,
             "--quiet", "--out", str(tmp_path)]
        )  # fmt: skip
    assert code == 0
    steps = read_summary(tmp_path)["steps"]
    check_auto_steps(steps, 2, sent=60, trim=5)
    sent = [step["num_sent"] for step in steps]
    assert len(arrivals) == sum(sent)
    # Steps run one after another: the first 60 arrivals are the synchronous step's.
    assert arrivals[: sent[0]] == [1] * sent[0]
    # ... and the saturated step's did overlap, so the count above can tell.
    assert max(arrivals[sent[0] : sent[0] + sent[1]]) > 1
    assert fake.seen.max_in_flight > 1
    check_one_at_a_time(rows_by_step(tmp_path)[0])


# ---- configuration errors ----------------------------------------------------------------------


def sweep_file(path: Path, rates: str) -> Path:
    path.write_text(f"[load]\nrates_rps = {rates}\nnum_requests = 40\ntrim = 5\n")
    return path


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["simulate", "--rates", "auto", "--dataset", "chat-sessions"], "sessions"),
        (["sweep", "--rates", "auto", "--processes", "2"], "one process"),
        (["simulate", "--rates", "auto", "--duration", "10"], "duration"),
        (["simulate", "--config", "{sweep_file}"], "auto"),
        (["simulate", "--rates", "auto", "--steps", "0"], "--steps"),
    ],
)
def test_auto_configuration_errors_exit_2_with_one_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    listed = str(sweep_file(tmp_path / "sweep.toml", '[1, "auto"]'))
    argv = [listed if arg == "{sweep_file}" else arg for arg in argv]
    code = run_cli([*argv, "--out", str(tmp_path / "out")])
    captured = capfd.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error:"), captured.err
    assert words in lines[0]
    assert "Traceback" not in captured.out + captured.err
    assert not (tmp_path / "out" / "summary.json").exists()


def test_capacity_refuses_repeats(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    # No such flag for a search ...
    code = run_cli(["capacity", "--simulate", "--slo", "ttft_p99=0.5", "--repeats", "2",
                    "--out", str(tmp_path / "flag")])  # fmt: skip
    captured = capfd.readouterr()
    assert code == 2
    assert "--repeats" in captured.err
    assert "Traceback" not in captured.err
    # ... and a sweep file that asks for repeats is refused by the search's checks.
    config = tmp_path / "capacity.toml"
    config.write_text(
        "[load]\nrepeats = 2\nnum_requests = 100\ntrim = 10\n"
        "[capacity]\nslos = { ttft_p99 = 0.5 }\n"
    )
    code = run_cli(["capacity", "--simulate", "--config", str(config),
                    "--out", str(tmp_path / "file")])  # fmt: skip
    captured = capfd.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "repeats" in lines[0]
    assert "Traceback" not in captured.err
    assert not (tmp_path / "file" / "summary.json").exists()


# ---- --repeats ---------------------------------------------------------------------------------


def figure_of(step: dict[str, Any], name: str) -> float | None:
    """A figure of a summary.json step by its `repeats` name: `sequence_throughput_rps`, or
    `ttft_s.p99` for a statistic of a distribution."""
    if "." not in name:
        value = step[name]
        return None if value is None else float(value)
    field, stat = name.split(".")
    dist = step[field]
    return None if dist is None else float(dist[stat])


@pytest.mark.usefixtures("no_plot")
def test_repeats_in_virtual_time(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "repeated"
    summary = simulate(out, "--rates", "5,10", "--repeats", "3", *SMALL, quiet=False)
    console = capfd.readouterr().err  # the console prints to stderr
    steps = summary["steps"]
    assert [rate_of(step) for step in steps] == [5.0] * 3 + [10.0] * 3
    assert [step["repeat"] for step in steps] == [0, 1, 2, 0, 1, 2]
    assert [step["step"] for step in steps] == list(range(6))
    assert not any(step["synchronous"] for step in steps)
    assert all(step["num_sent"] == 300 for step in steps)

    # Each run of a step draws its own send times ...
    rows = rows_by_step(out)
    sched = {step: [row["t_sched_s"] for row in rows[step]] for step in range(6)}
    for first, second in [(0, 1), (0, 2), (1, 2), (3, 4), (3, 5), (4, 5)]:
        assert sched[first] != sched[second], (first, second)
    # ... from a seed of its own that every rate shares (one arrival stream, scaled).
    for repeat in range(3):
        at_5 = [5.0 * t for t in sched[repeat]]
        at_10 = [10.0 * t for t in sched[3 + repeat]]
        assert at_5 == pytest.approx(at_10, abs=SCALED_ABS)
    # Run 0 keeps the seed: its send times are those of a run without --repeats.
    single = simulate(tmp_path / "single", "--rates", "5", *SMALL)
    assert len(single["steps"]) == 1
    assert "repeats" not in single
    assert [row["t_sched_s"] for row in rows_by_step(tmp_path / "single")[0]] == sched[0]

    # summary.json's repeats: each rate's runs, each figure's mean over them with its interval.
    repeats = summary["repeats"]
    groups = [(entry["target_rate_rps"], entry["synchronous"], entry["steps"]) for entry in repeats]
    assert groups == [(5.0, False, [0, 1, 2]), (10.0, False, [3, 4, 5])]
    for entry in repeats:
        runs = [steps[i] for i in entry["steps"]]
        figures = entry["figures"]
        assert set(HEADLINE) <= set(figures)
        for name, figure in figures.items():
            values = [v for v in (figure_of(run, name) for run in runs) if v is not None]
            assert values, name
            mean = sum(values) / len(values)
            assert figure["mean"] == pytest.approx(mean, rel=1e-9, abs=1e-15), name
            if len(set(values)) > 1:
                assert figure["low"] < figure["mean"] < figure["high"], name
            else:
                assert figure["low"] == pytest.approx(figure["mean"]) == figure["high"], name
        # The runs differ (fresh prompts, send times), so the interval has a width to check:
        # t(0.975, 2) * sample std / sqrt(3) on each side.
        values = [run["sequence_throughput_rps"] for run in runs]
        assert len(set(values)) == 3
        mean = sum(values) / 3
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
        throughput = figures["sequence_throughput_rps"]
        assert throughput["high"] - throughput["mean"] == pytest.approx(
            T975_2 * std / math.sqrt(3), rel=T_REL
        )
        assert throughput["mean"] - throughput["low"] == pytest.approx(
            T975_2 * std / math.sqrt(3), rel=T_REL
        )
    assert "repeated steps" in console


@pytest.mark.usefixtures("no_plot")
def test_repeats_send_fresh_prompts(tmp_path: Path) -> None:
    fake = FakeOpenAI(Behaviour())
    flags = ("--num-requests", "30", "--trim", "5", "--output-len", "4")
    with ServerThread(fake) as url:
        code = run_cli(
            ["sweep", "--base-url", url, "--rates", "400", "--repeats", "2", *flags,
             "--quiet", "--out", str(tmp_path)]
        )  # fmt: skip
    assert code == 0
    summary = read_summary(tmp_path)
    assert [step["repeat"] for step in summary["steps"]] == [0, 1]
    assert [entry["steps"] for entry in summary["repeats"]] == [[0, 1]]
    prompts = [incoming.body["prompt"] for incoming in fake.seen.requests]
    assert len(prompts) == 60
    first, second = set(prompts[:30]), set(prompts[30:])
    assert len(first) == len(second) == 30
    assert not first & second
    rows = rows_by_step(tmp_path)
    assert [row["t_sched_s"] for row in rows[0]] != [row["t_sched_s"] for row in rows[1]]


@pytest.mark.usefixtures("no_plot")
def test_auto_with_repeats_spreads_from_the_last_runs(tmp_path: Path) -> None:
    # s2s prompts and outputs vary in length, so each run of a step measures its own throughput.
    flags = ("--num-requests", "60", "--trim", "5", "--dataset", "s2s")
    summary = simulate(tmp_path, "--rates", "auto", "--steps", "2", "--repeats", "2", *flags)
    steps = summary["steps"]
    assert [step["repeat"] for step in steps] == [0, 1] * 4
    assert [step["synchronous"] for step in steps] == [True, True] + [False] * 6
    assert [rate_of(step) for step in steps[:4]] == [math.inf] * 4
    assert rate_of(steps[4]) == rate_of(steps[5])
    assert rate_of(steps[6]) == rate_of(steps[7])
    rates = [rate_of(steps[4]), rate_of(steps[6])]
    last_sync, last_inf = steps[1], steps[3]
    check_spread(rates, last_sync["sequence_throughput_rps"], last_inf["sequence_throughput_rps"])
    # The first runs measured otherwise: spread from them, the rates would be further off
    # than rounding explains, so the check above tells the last runs from the first.
    first_low = steps[0]["sequence_throughput_rps"]
    first_width = (steps[2]["sequence_throughput_rps"] - first_low) / 3
    from_first = [first_low + i * first_width for i in (1, 2)]
    assert any(abs(r / f - 1) > 2 * RATE_REL for r, f in zip(rates, from_first, strict=True))
    # The synchronous runs are one group in `repeats`, flagged as such.
    groups = [(entry["target_rate_rps"], entry["synchronous"], entry["steps"])
              for entry in summary["repeats"]]  # fmt: skip
    assert groups == [
        ("inf", True, [0, 1]),
        ("inf", False, [2, 3]),
        (rates[0], False, [4, 5]),
        (rates[1], False, [6, 7]),
    ]
