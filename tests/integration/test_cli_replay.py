"""A result is its own recipe: `loadgen sweep --config results/X/summary.json` runs X again.

A sweep against a fake server that records every request is run twice: once from flags and a
variable, once from the first run's summary.json alone. The second sends the same requests
(prompts, max_tokens, fields) on the same schedule, to the same target, at the same rates.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration._helpers import read_jsonl, read_summary, run_cli
from tests.support.fake_openai import Behaviour, FakeOpenAI, ServerThread

ARGS = (
    "--rates", "30,60", "--num-requests", "40", "--trim", "5", "--dataset", "s2s",
    "--arrival", "gamma", "--burstiness", "0.5", "--seed", "7", "--temperature", "0.5",
    "--header", "X-Run: replay-test", "--endpoint", "chat", "--quiet",
)  # fmt: skip


def sent(fake: FakeOpenAI) -> list[tuple[object, ...]]:
    """What the server received, by send order: body fields that make a request what it is."""
    bodies = [incoming.body for incoming in fake.seen.requests]
    return sorted(
        (str(body["messages"]), body["max_tokens"], body["temperature"], body["ignore_eos"])
        for body in bodies
    )


def test_a_summary_runs_the_same_requests_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, again = FakeOpenAI(Behaviour(gap_s=0.001)), FakeOpenAI(Behaviour(gap_s=0.001))
    with ServerThread(first) as url:
        monkeypatch.setenv("LOADGEN_BASE_URL", url)
        assert run_cli(["sweep", *ARGS, "--out", str(tmp_path / "first")]) == 0
    monkeypatch.delenv("LOADGEN_BASE_URL")
    summary = tmp_path / "first" / "summary.json"
    with ServerThread(again) as url:
        # The recipe names the first server; a flag points the replay at the second one. The
        # header's value was hidden in results, so it is given again, as a user would.
        code = run_cli(
            [
                "sweep", "--config", str(summary), "--base-url", url,
                "--header", "X-Run: replay-test", "--out", str(tmp_path / "again"), "--quiet",
            ]
        )  # fmt: skip
    assert code == 0

    assert len(first.seen.requests) == 80
    assert sent(again) == sent(first)
    assert {incoming.headers["X-Run"] for incoming in again.seen.requests} == {"replay-test"}
    rows = {
        name: [
            (row["step"], row["index"], row["t_sched_s"])
            for row in read_jsonl(tmp_path / name / "requests.jsonl")
        ]
        for name in ("first", "again")
    }
    assert rows["again"] == rows["first"]
    config = {name: read_summary(tmp_path / name)["config"] for name in ("first", "again")}
    assert config["again"]["load"] == config["first"]["load"]
    assert config["again"]["workload"] == config["first"]["workload"]
    assert config["first"]["load"]["rates_rps"] == [30.0, 60.0]
    assert config["first"]["load"]["seed"] == 7
