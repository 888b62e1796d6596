"""Servers that refuse optional fields: the field is dropped once, with a warning, never retried."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration._helpers import read_jsonl, run_cli
from tests.support.fake_openai import Behaviour, FakeOpenAI, ServerThread


def test_refused_fields_are_dropped_one_by_one(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    fake = FakeOpenAI(Behaviour(refused_fields=("ignore_eos", "min_tokens")))
    with ServerThread(fake) as url:
        argv = [
            "run", "--base-url", url, "--rate", "5", "--num-requests", "12", "--trim", "2",
            "--min-tokens", "2", "--output-len", "4", "--out", str(tmp_path),
        ]  # fmt: skip
        assert run_cli(argv) == 0
    err = capfd.readouterr().err
    rows = read_jsonl(tmp_path / "requests.jsonl")

    # Request 0 is refused for both fields; the message names both, and the client drops the
    # first it knows (stream_options, ignore_eos, min_tokens, ... in that order); request 1 is
    # refused for the other. Neither is sent again; no request is retried. (At 5 req/s each
    # answer is back long before the next send.)
    bodies = [incoming.body for incoming in fake.seen.requests]
    assert len(bodies) == 12
    assert ("ignore_eos" in bodies[0], "min_tokens" in bodies[0]) == (True, True)
    assert ("ignore_eos" in bodies[1], "min_tokens" in bodies[1]) == (False, True)
    assert all("ignore_eos" not in b and "min_tokens" not in b for b in bodies[2:])
    assert [row["ok"] for row in rows] == [False, False] + [True] * 10
    assert {row["status"] for row in rows[:2]} == {422}
    assert err.count("refused the optional field 'ignore_eos'") == 1
    assert err.count("refused the optional field 'min_tokens'") == 1


def test_a_4xx_naming_no_field_we_sent_changes_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # The server refuses a field loadgen never sends: every request fails the same way.
    fake = FakeOpenAI(Behaviour(refused_fields=("model",)))
    with ServerThread(fake) as url:
        argv = [
            "run", "--base-url", url, "--model", "fake-model", "--rate", "20",
            "--num-requests", "6", "--trim", "1", "--out", str(tmp_path),
        ]  # fmt: skip
        assert run_cli(argv) == 0
    rows = read_jsonl(tmp_path / "requests.jsonl")
    assert [row["status"] for row in rows] == [422] * 6
    assert "refused the optional field" not in capfd.readouterr().err
    assert all("ignore_eos" in incoming.body for incoming in fake.seen.requests)
