"""Tests for loadgen.workloads.conversations: ShareGPT and chat-messages files as sessions.

Token counts come from a word counter, so every budget below is counted by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loadgen.workloads import DatasetError
from loadgen.workloads.conversations import load_conversations
from loadgen.workloads.sessions import Session, Turn
from loadgen.workloads.tokens import EstimateCounter
from tests.support.words import WORDS


def write_json(tmp_path: Path, name: str, data: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_jsonl(tmp_path: Path, name: str, entries: list[Any]) -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(e) + "\n" for e in entries), encoding="utf-8")
    return path


def said(who: str, text: str) -> dict[str, str]:
    return {"from": who, "value": text}


def msg(role: str, text: str) -> dict[str, str]:
    return {"role": role, "content": text}


SHAREGPT = [
    {
        "id": "two-turns",
        "conversations": [
            said("system", "You are terse."),
            said("human", "What is two plus two?"),
            said("gpt", "It is four."),
            said("human", "And three plus three?"),
            said("gpt", "Six, of course."),
        ],
    },
    {"id": "bot-only", "conversations": [said("gpt", "Hello, I am a bot.")]},
    {"id": "open-question", "conversations": [said("human", "Tell me a joke")]},
]


def test_sharegpt_pairs_are_turns_with_the_answer_as_budget(tmp_path: Path) -> None:
    path = write_json(tmp_path, "sharegpt.json", SHAREGPT)
    sessions = load_conversations(path, WORDS)
    # Entry 0: system kept; "What is two plus two?" 5 words, "It is four." 3 words,
    # "And three plus three?" 4 words, "Six, of course." 3 words.
    # Entry 1 has no user message: skipped.
    # Entry 2: a trailing user message, no answer: the default budget 256, answer "" (0).
    assert sessions == (
        Session(
            (
                Turn("What is two plus two?", 3, "It is four.", 0.0, 5, 3),
                Turn("And three plus three?", 3, "Six, of course.", 0.0, 4, 3),
            ),
            "You are terse.",
        ),
        Session((Turn("Tell me a joke", 256, "", 0.0, 4, 0),)),
    )


def test_sharegpt_format_given_reads_the_same(tmp_path: Path) -> None:
    path = write_json(tmp_path, "sharegpt.json", SHAREGPT)
    assert load_conversations(path, WORDS, "sharegpt") == load_conversations(path, WORDS)


def test_trailing_user_turn_takes_the_default_given(tmp_path: Path) -> None:
    path = write_json(tmp_path, "sharegpt.json", SHAREGPT)
    sessions = load_conversations(path, WORDS, default_max_tokens=64)
    assert sessions[1] == Session((Turn("Tell me a joke", 64, "", 0.0, 4, 0),))
    # Answered turns keep their answer's length whatever the default.
    assert [t.max_tokens for t in sessions[0].turns] == [3, 3]


def test_loaded_session_requests_carry_the_recorded_history(tmp_path: Path) -> None:
    path = write_json(tmp_path, "sharegpt.json", SHAREGPT)
    spec = load_conversations(path, WORDS)[0].request(1)
    assert spec.messages == (
        msg("system", "You are terse."),
        msg("user", "What is two plus two?"),
        msg("assistant", "It is four."),
        msg("user", "And three plus three?"),
    )
    assert spec.max_tokens == 3
    assert spec.tokens_in is None  # a system message's count is not kept


MESSAGES = [
    {
        "messages": [
            msg("user", "Name a color"),
            msg("assistant", "Blue"),
            msg("user", "Another one please"),
        ],
        "max_tokens": 12,
    },
    {"messages": [msg("system", "Be kind."), msg("assistant", "Hi")]},
    {
        "messages": [
            msg("user", "One two three four five"),
            msg("assistant", "a b c d e f g"),
        ],
        "max_tokens": 99,
    },
]


def test_messages_jsonl_sessions(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path, "chat.jsonl", MESSAGES)
    sessions = load_conversations(path, WORDS)
    # Line 1: "Name a color" 3 words answered by "Blue" (1); "Another one please" (3) has
    # no answer: the entry's max_tokens 12. Line 2: no user message, skipped. Line 3: one
    # answered turn, 5 words in, 7 out; its max_tokens 99 is not used (nothing trails).
    assert sessions == (
        Session(
            (
                Turn("Name a color", 1, "Blue", 0.0, 3, 1),
                Turn("Another one please", 12, "", 0.0, 3, 0),
            )
        ),
        Session((Turn("One two three four five", 7, "a b c d e f g", 0.0, 5, 7),)),
    )
    assert load_conversations(path, WORDS, "messages") == sessions


def test_messages_system_is_kept_and_counts_follow_the_counter(tmp_path: Path) -> None:
    entry = {
        "messages": [
            msg("system", "Answer in French."),
            msg("user", "Hello"),
            msg("assistant", "Bonjour"),
        ]
    }
    path = write_jsonl(tmp_path, "chat.jsonl", [entry])
    # The estimate: 4 characters a token, at least 1: "Hello" 5 chars -> round(1.25) = 1,
    # "Bonjour" 7 chars -> round(1.75) = 2.
    assert load_conversations(path, EstimateCounter()) == (
        Session((Turn("Hello", 2, "Bonjour", 0.0, 1, 2),), "Answer in French."),
    )


def test_roles_are_matched_in_any_case_and_by_their_aliases(tmp_path: Path) -> None:
    entry = {
        "conversations": [
            said("Human", "first question here"),
            said("ChatGPT", "an answer"),
            said("USER", "second"),
            said("bard", "x y z w"),
            {"role": "user", "content": "third one"},
            {"role": "model", "content": "ok"},
        ]
    }
    path = write_json(tmp_path, "sharegpt.json", [entry])
    assert load_conversations(path, WORDS) == (
        Session(
            (
                Turn("first question here", 2, "an answer", 0.0, 3, 2),
                Turn("second", 4, "x y z w", 0.0, 1, 4),
                Turn("third one", 1, "ok", 0.0, 2, 1),
            )
        ),
    )


def test_unpaired_messages_are_not_turns(tmp_path: Path) -> None:
    entry = {
        "conversations": [
            said("gpt", "I speak first"),  # no user before it: ignored
            said("human", "dropped question"),  # followed by another user message
            said("human", "kept question"),
            said("gpt", "one two"),
            said("human", "   "),  # blank: not a user message
            said("gpt", "ignored answer"),  # no user before it since the last answer
            said("tool", "some output"),  # neither role
            said("system", "late system"),  # only a leading system message is kept
        ]
    }
    path = write_json(tmp_path, "sharegpt.json", [entry])
    assert load_conversations(path, WORDS) == (
        Session((Turn("kept question", 2, "one two", 0.0, 2, 2),)),
    )


def test_an_empty_answer_still_has_a_budget_of_one(tmp_path: Path) -> None:
    entry = {"messages": [msg("user", "Say nothing"), msg("assistant", "")]}
    path = write_jsonl(tmp_path, "chat.jsonl", [entry])
    (session,) = load_conversations(path, WORDS)
    assert session.turns[0].max_tokens == 1  # max(1, 0 words)


# Errors


def test_file_with_no_user_message_is_an_error(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path,
        "chat.jsonl",
        [
            {"messages": [msg("assistant", "Hi")]},
            {"messages": [msg("system", "Be kind.")]},
        ],
    )
    with pytest.raises(DatasetError) as caught:
        load_conversations(path, WORDS)
    assert str(caught.value) == f"{path}: no conversation with a user message in 2"


@pytest.mark.parametrize(
    ("entry", "kind"),
    [
        ({"instruction": "Sum 2 and 2", "input": "", "output": "4"}, "alpaca"),
        ({"prompt": "Hello", "max_tokens": 8}, "prompts"),
    ],
)
def test_single_turn_formats_are_errors(tmp_path: Path, entry: Any, kind: str) -> None:
    path = write_json(tmp_path, "data.json", [entry])
    with pytest.raises(DatasetError) as caught:
        load_conversations(path, WORDS)
    assert str(caught.value) == (
        f"{path}: multi-turn sessions need a sharegpt or messages dataset, not {kind}"
    )


def test_a_format_given_that_is_not_multi_turn_is_an_error(tmp_path: Path) -> None:
    path = write_json(tmp_path, "sharegpt.json", SHAREGPT)
    with pytest.raises(DatasetError) as caught:
        load_conversations(path, WORDS, "alpaca")
    assert str(caught.value) == (
        f"{path}: multi-turn sessions need a sharegpt or messages dataset, not alpaca"
    )


def test_unknown_format_is_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path, "data.jsonl", [{"text": "hello"}])
    with pytest.raises(DatasetError, match="unknown dataset format"):
        load_conversations(path, WORDS)


def test_entry_without_a_message_list_is_an_error(tmp_path: Path) -> None:
    # The format is judged by the first entry; the second one is malformed.
    path = write_json(tmp_path, "sharegpt.json", [SHAREGPT[0], {"conversations": "nope"}])
    with pytest.raises(DatasetError) as caught:
        load_conversations(path, WORDS)
    assert str(caught.value) == (f"{path}: entry 1: expected a 'conversations' or 'messages' list")


def test_message_without_string_text_is_an_error(tmp_path: Path) -> None:
    entry = {"messages": [msg("user", "Hi"), {"role": "assistant", "content": None}]}
    path = write_jsonl(tmp_path, "chat.jsonl", [MESSAGES[0], entry])
    with pytest.raises(DatasetError) as caught:
        load_conversations(path, WORDS)
    assert str(caught.value) == f"{path}:2, message 1: expected a string role and text"


@pytest.mark.parametrize("budget", [0, -3, "12", 2.5, True])
def test_trailing_user_turn_needs_a_positive_integer_budget(tmp_path: Path, budget: object) -> None:
    entry = {"messages": [msg("user", "Hi")], "max_tokens": budget}
    path = write_jsonl(tmp_path, "chat.jsonl", [entry])
    with pytest.raises(DatasetError) as caught:
        load_conversations(path, WORDS)
    assert str(caught.value) == f"{path}:1: 'max_tokens' must be a positive integer"
