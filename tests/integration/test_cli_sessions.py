"""Multi-turn sessions through the CLI: generated against the built-in simulator (with its
prefix cache and /metrics) and in virtual time, recorded conversations against a server that
shows what it got, and the clear errors of what sessions cannot do yet."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.integration._helpers import read_jsonl, read_summary, run_cli
from tests.support.fake_openai import Behaviour, FakeOpenAI, ServerThread

SESSIONS = 12
TRIM = 2
TURNS = 3
USER_WORDS = 40
ANSWER_TOKENS = 12


@pytest.mark.slow
def test_chat_sessions_against_the_simulator_hit_its_prefix_cache(tmp_path: Path) -> None:
    code = run_cli([
        "run", "--dataset", "chat-sessions", "--rate", "6", "--num-requests", str(SESSIONS),
        "--trim", str(TRIM), "--turns", str(TURNS), "--think-time", "0.05",
        "--input-len", str(USER_WORDS), "--output-len", str(ANSWER_TOKENS),
        "--endpoint", "chat", "--out", str(tmp_path), "--quiet",
    ])  # fmt: skip
    assert code == 0
    rows = read_jsonl(tmp_path / "requests.jsonl")
    # Every turn of every session was sent, succeeded and was recorded once.
    assert len(rows) == SESSIONS * TURNS
    assert sorted(row["index"] for row in rows) == list(range(SESSIONS * TURNS))
    assert all(row["ok"] for row in rows)
    assert sorted((row["session"], row["turn"]) for row in rows) == [
        (s, t) for s in range(SESSIONS) for t in range(1, TURNS + 1)
    ]
    # Trimmed by session start order: a session's turns share its phase.
    for row in rows:
        expected = "warmup" if row["session"] < TRIM else "measure"
        expected = "cooldown" if row["session"] >= SESSIONS - TRIM else expected
        assert row["phase"] == expected
    (step,) = read_summary(tmp_path)["steps"]
    sessions = step["sessions"]
    assert (sessions["num_started"], sessions["num_sessions"]) == (SESSIONS, SESSIONS - 2 * TRIM)
    assert sessions["num_broken"] == 0
    assert sessions["turns_ok"]["min"] == sessions["turns_ok"]["max"] == TURNS
    assert step["num_kept"] == (SESSIONS - 2 * TRIM) * TURNS
    # The prompt grows by a user message and an answer each turn (the simulator's usage).
    growth = [turn["tokens_in_mean"] for turn in sessions["turns"]]
    assert growth[0] < growth[1] < growth[2]
    # Later turns resend the history: the simulator's prefix cache serves part of it, and the
    # step scrape of its /metrics says so.
    server = step["server"]
    assert server["prefix_cache_hits"] > 0
    assert 0 < server["prefix_cache_hit_rate"] < 1
    assert server["generation_tokens"] == SESSIONS * TURNS * ANSWER_TOKENS
    assert server["tokens_mismatch"] is None
    # The report shows the step by turn and the server's view of it.
    assert run_cli(["report", str(tmp_path), "--out", str(tmp_path / "report.html")]) == 0
    page = (tmp_path / "report.html").read_text()
    by_turn = page.split("sessions/s: by turn</h3>", 1)[1].split("</table>", 1)[0]
    assert [row.split("</td>")[0] for row in by_turn.split("<tr><td>")[1:]] == ["1", "2", "3"]
    assert "<h3>The server's view (from its /metrics)</h3>" in page


def test_chat_sessions_run_in_virtual_time(tmp_path: Path) -> None:
    code = run_cli([
        "simulate", "--dataset", "chat-sessions", "--rates", "2,4", "--num-requests", "40",
        "--trim", "5", "--turns", "3", "--endpoint", "chat", "--out", str(tmp_path), "--quiet",
    ])  # fmt: skip
    assert code == 0
    steps = read_summary(tmp_path)["steps"]
    assert [step["target_rate_rps"] for step in steps] == [2.0, 4.0]
    for step in steps:
        sessions = step["sessions"]
        # 40 sessions started, 5 trimmed at each end by start order
        assert (sessions["num_started"], sessions["num_sessions"]) == (40, 30)
        assert sessions["num_broken"] == 0
        assert sessions["turns_ok"]["min"] == sessions["turns_ok"]["max"] == 3
        turns = sessions["turns"]
        assert [turn["turn"] for turn in turns] == [1, 2, 3]
        assert [(turn["num_requests"], turn["num_ok"]) for turn in turns] == [(30, 30)] * 3
        # each turn resends the last one's prompt and answer, and the prefix cache serves it
        growth = [turn["tokens_in_mean"] for turn in turns]
        assert growth[0] < growth[1] < growth[2]
        assert turns[1]["cached_share"] > 0


def write_conversations(path: Path) -> Path:
    """Two ShareGPT conversations of two and three turns."""
    conversations = [
        {"conversations": [
            {"from": "human", "value": "#0 first question"},
            {"from": "gpt", "value": "one two three four"},
            {"from": "human", "value": "#1 second question"},
            {"from": "gpt", "value": "five six"},
        ]},
        {"conversations": [
            {"from": "system", "value": "you are terse"},
            {"from": "human", "value": "#2 alpha"},
            {"from": "gpt", "value": "beta"},
            {"from": "human", "value": "#3 gamma"},
            {"from": "gpt", "value": "delta epsilon"},
            {"from": "human", "value": "#4 zeta"},
            {"from": "gpt", "value": "eta theta iota"},
        ]},
    ]  # fmt: skip
    path.write_bytes(orjson.dumps(conversations))
    return path


def test_multi_turn_dataset_sends_each_conversation_with_its_recorded_history(
    tmp_path: Path,
) -> None:
    dataset = write_conversations(tmp_path / "chats.json")
    fake = FakeOpenAI(Behaviour())
    with ServerThread(fake) as url:
        code = run_cli([
            "run", "--base-url", url, "--dataset", str(dataset), "--multi-turn",
            "--endpoint", "chat", "--rate", "20", "--num-requests", "4", "--trim", "1",
            "--out", str(tmp_path / "out"), "--quiet",
        ])  # fmt: skip
    assert code == 0
    # Four sessions in file order: 2 + 3 + 2 + 3 turns, each turn sent once.
    rows = read_jsonl(tmp_path / "out" / "requests.jsonl")
    assert len(rows) == len(fake.seen.requests) == 10
    last_turns = {}
    for incoming in fake.seen.requests:
        messages = incoming.body["messages"]
        last_turns[messages[-1]["content"]] = messages
    assert last_turns["#1 second question"] == [
        {"role": "user", "content": "#0 first question"},
        {"role": "assistant", "content": "one two three four"},
        {"role": "user", "content": "#1 second question"},
    ]
    assert last_turns["#4 zeta"] == [
        {"role": "system", "content": "you are terse"},
        {"role": "user", "content": "#2 alpha"},
        {"role": "assistant", "content": "beta"},
        {"role": "user", "content": "#3 gamma"},
        {"role": "assistant", "content": "delta epsilon"},
        {"role": "user", "content": "#4 zeta"},
    ]
    # A turn asks for as many tokens as its recorded answer had (four characters a token).
    budgets = {
        m[-1]["content"]: incoming.body["max_tokens"]
        for incoming in fake.seen.requests
        for m in [incoming.body["messages"]]
    }
    assert budgets["#0 first question"] == 4  # "one two three four": 18 characters


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["sweep", "--dataset", "chat-sessions", "--rates", "2", "--processes", "2"],
         "multi-turn sessions run in one process"),
        (["run", "--dataset", "synthetic", "--multi-turn", "--rate", "2"],
         "multi_turn reads a dataset file's conversations"),
        (["run", "--dataset", "chat-sessions", "--turns", "3:1", "--rate", "2"],
         "need 1 <= LOW <= HIGH turns"),
        (["run", "--dataset", "chat-sessions", "--prefix-tokens", "8", "--rate", "2"],
         "sessions share their own history"),
    ],
)  # fmt: skip
def test_what_sessions_cannot_do_is_a_clear_error(
    extra: list[str], message: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code = run_cli([*extra, "--num-requests", "10", "--trim", "1", "--out", str(tmp_path)])
    _, err = capfd.readouterr()
    assert code == 2, err
    assert message in " ".join(err.split())
    assert "Traceback" not in err


def test_a_multi_turn_alpaca_file_is_a_clear_error(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    dataset = tmp_path / "alpaca.json"
    dataset.write_bytes(orjson.dumps([{"instruction": "hi", "input": "", "output": "hello"}]))
    code = run_cli([
        "run", "--dataset", str(dataset), "--multi-turn", "--rate", "2", "--num-requests", "4",
        "--trim", "1", "--base-url", "http://127.0.0.1:9/v1", "--out", str(tmp_path / "o"),
    ])  # fmt: skip
    _, err = capfd.readouterr()
    assert code == 2, err
    assert "multi-turn sessions need a sharegpt or messages dataset, not alpaca" in err


def test_describe_counts_every_turn_of_the_sessions(capfd: pytest.CaptureFixture[str]) -> None:
    argv = ["dataset", "describe", "chat-sessions", "--turns", "3", "--num-requests", "10",
            "--input-len", "20", "--output-len", "8", "--json"]  # fmt: skip
    assert run_cli(argv) == 0
    summary = orjson.loads(capfd.readouterr().out)
    # 10 sessions of 3 turns; turn k resends k - 1 user messages and answers: 20, 48, 76 tokens.
    assert summary["count"] == 30
    assert (summary["input_tokens"]["min"], summary["input_tokens"]["max"]) == (20, 76)
    assert summary["input_tokens"]["mean"] == 48.0
    assert summary["output_tokens"]["max"] == 8
