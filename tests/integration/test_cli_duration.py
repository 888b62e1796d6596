"""`--duration S`: steps bounded by time instead of a number of requests (trim still by order)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration._helpers import read_jsonl, read_summary, run_cli


def test_each_step_sends_for_its_duration(tmp_path: Path) -> None:
    argv = ["simulate", "--rates", "50,100", "--duration", "4", "--trim", "20", "--seed", "3"]
    assert run_cli([*argv, "--dataset", "s2s", "--quiet", "--out", str(tmp_path)]) == 0

    summary = read_summary(tmp_path)
    assert summary["config"]["load"]["duration_s"] == 4.0
    assert "num_requests" not in summary["config"]["load"]  # a step's size is its duration
    rows = read_jsonl(tmp_path / "requests.jsonl")
    for step, rate in ((0, 50), (1, 100)):
        mine = [row for row in rows if row["step"] == step]
        # Poisson counts in 4 s: mean 200 and 400, standard deviation 14 and 20; 4 sigma.
        assert abs(len(mine) - 4 * rate) <= 4 * (4 * rate) ** 0.5, (rate, len(mine))
        assert max(row["t_sched_s"] for row in mine) < 4.0
        assert summary["steps"][step]["num_sent"] == len(mine)
        assert summary["steps"][step]["num_kept"] == len(mine) - 40
    # One arrival stream scaled by rate: the 100 req/s step's first sends are the 50's, halved.
    first = [row["t_sched_s"] for row in rows if row["step"] == 0][:50]
    second = [row["t_sched_s"] for row in rows if row["step"] == 1][:50]
    assert second == pytest.approx([t / 2 for t in first])


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--rates", "inf", "--duration", "5"], "--duration: a duration needs finite rates"),
        (["--rates", "10", "--duration", "5"], "--duration: 5 s at 10 req/s sends about 50"),
        (["--rates", "10", "--duration", "0"], "--duration: must be greater than 0 (got '0')"),
        (
            ["--rates", "10", "--duration", "60", "--num-requests", "500"],
            "--num-requests and --duration exclude each other",
        ),
    ],
)
def test_a_duration_that_cannot_work_exits_2(
    flags: list[str], needle: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code = run_cli(["simulate", *flags, "--out", str(tmp_path)])
    err = " ".join(capfd.readouterr().err.split())
    assert code == 2
    assert needle in err
    assert "Traceback" not in err
