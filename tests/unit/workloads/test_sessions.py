"""Tests for loadgen.workloads.sessions: requests of a turn, transcripts, turn counts, and the
generated and recorded session workloads. Expected values are written out by hand."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from loadgen.workloads.sessions import (
    ChatSessions,
    RecordedSessions,
    Session,
    Turn,
    parse_turns,
    think_times_s,
    transcript,
)

# Three turns with known token counts: user 2, 3, 1 tokens; answers 1, 2 tokens (the last
# turn's answer is never part of a request, so its count, 50, must never be added).
TURNS = (
    Turn("Hi there", 5, "Hello!", 0.0, 2, 1),
    Turn("How are you?", 7, "Fine.", 1.5, 3, 2),
    Turn("Bye", 4, "Cheerio.", 2.0, 1, 50),
)


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


# Session.request


def test_first_turn_is_its_user_message_alone() -> None:
    spec = Session(TURNS).request(0)
    assert spec.messages == ({"role": "user", "content": "Hi there"},)
    assert spec.prompt == "User: Hi there\n\nAssistant:"
    assert spec.max_tokens == 5
    assert spec.tokens_in == 2  # the user message's 2 tokens


def test_second_turn_carries_the_first_exchange() -> None:
    spec = Session(TURNS).request(1)
    assert spec.messages == (user("Hi there"), assistant("Hello!"), user("How are you?"))
    assert spec.prompt == (
        "User: Hi there\n\nAssistant: Hello!\n\nUser: How are you?\n\nAssistant:"
    )
    assert spec.max_tokens == 7
    assert spec.tokens_in == 6  # 2 (Hi there) + 1 (Hello!) + 3 (How are you?)


def test_third_turn_carries_both_earlier_exchanges() -> None:
    spec = Session(TURNS).request(2)
    assert spec.messages == (
        user("Hi there"),
        assistant("Hello!"),
        user("How are you?"),
        assistant("Fine."),
        user("Bye"),
    )
    assert spec.prompt == (
        "User: Hi there\n\nAssistant: Hello!\n\nUser: How are you?\n\n"
        "Assistant: Fine.\n\nUser: Bye\n\nAssistant:"
    )
    assert spec.max_tokens == 4
    # 2 + 1 + 3 + 2 + 1; the third answer's 50 tokens are not part of the request.
    assert spec.tokens_in == 9


def test_system_message_comes_first_and_leaves_the_input_count_unknown() -> None:
    session = Session(TURNS, system="Be brief.")
    first = session.request(0)
    assert first.messages == ({"role": "system", "content": "Be brief."}, user("Hi there"))
    assert first.prompt == "System: Be brief.\n\nUser: Hi there\n\nAssistant:"
    assert first.tokens_in is None
    second = session.request(1)
    assert second.messages == (
        {"role": "system", "content": "Be brief."},
        user("Hi there"),
        assistant("Hello!"),
        user("How are you?"),
    )
    assert second.max_tokens == 7
    assert second.tokens_in is None


def test_unknown_count_makes_the_input_count_unknown_from_that_turn_on() -> None:
    # Turn 1's user count is unknown: turn 0's request is still countable, later ones are not.
    turns = (TURNS[0], replace(TURNS[1], user_tokens=None), TURNS[2])
    session = Session(turns)
    assert session.request(0).tokens_in == 2
    assert session.request(1).tokens_in is None
    assert session.request(2).tokens_in is None


def test_unknown_answer_count_matters_only_once_the_answer_is_history() -> None:
    # Turn 0's answer count is unknown: its own request does not carry the answer.
    turns = (replace(TURNS[0], answer_tokens=None), TURNS[1], TURNS[2])
    session = Session(turns)
    assert session.request(0).tokens_in == 2
    assert session.request(1).tokens_in is None
    # The last turn's answer count is never needed: 2 + 1 + 3 + 2 + 1 = 9.
    last_unknown = Session((TURNS[0], TURNS[1], replace(TURNS[2], answer_tokens=None)))
    assert last_unknown.request(2).tokens_in == 9


def test_zero_counts_are_known_counts() -> None:
    # An empty recorded answer counts 0 tokens: known, so the sum is 2 + 0 + 3 = 5.
    turns = (Turn("Hi there", 5, "", 0.0, 2, 0), TURNS[1])
    assert Session(turns).request(1).tokens_in == 5


# transcript


def test_transcript_capitalises_roles_and_ends_with_the_assistant_cue() -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "Line one\nline two"},
    ]
    assert transcript(messages) == (
        "System: You are terse.\n\nUser: 2+2?\n\nAssistant: 4\n\n"
        "User: Line one\nline two\n\nAssistant:"
    )


def test_transcript_of_no_messages_is_the_cue_alone() -> None:
    assert transcript([]) == "Assistant:"


# parse_turns


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", (3, 3)),
        ("1", (1, 1)),
        ("2:5", (2, 5)),
        ("4:4", (4, 4)),
        (" 1:6 ", (1, 6)),
    ],
)
def test_parse_turns_reads_n_and_low_high(text: str, expected: tuple[int, int]) -> None:
    assert parse_turns(text) == expected


@pytest.mark.parametrize("text", ["", "a", "2:", ":3", "1:2:3", "2.5", "two", "1-3"])
def test_parse_turns_rejects_what_is_not_n_or_low_high(text: str) -> None:
    message = f"expected N or LOW:HIGH turns, got {text!r}"
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        parse_turns(text)
    assert str(caught.value) == message


@pytest.mark.parametrize("text", ["0", "0:3", "-1:2", "5:2", "-2"])
def test_parse_turns_rejects_out_of_order_or_below_one(text: str) -> None:
    message = f"need 1 <= LOW <= HIGH turns, got {text!r}"
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        parse_turns(text)
    assert str(caught.value) == message


# think_times_s


@pytest.mark.parametrize("mean_s", [0.0, -1.0])
def test_think_times_are_zero_without_a_positive_mean(mean_s: float) -> None:
    assert think_times_s(4, mean_s, np.random.default_rng(0)) == [0.0, 0.0, 0.0, 0.0]


def test_think_times_have_the_configured_mean() -> None:
    # Exponential of mean 2 s: the standard error of the mean of n = 40_000 draws is
    # 2 / sqrt(40_000) = 0.01 s; allow 4 standard errors (0.04 s).
    draws = think_times_s(40_000, 2.0, np.random.default_rng(11))
    assert len(draws) == 40_000
    assert min(draws) >= 0.0
    assert abs(float(np.mean(draws)) - 2.0) < 0.04


# ChatSessions

CHAT = ChatSessions(turns=(2, 4), user_len=6, answer_len=20, think_s=3.0)


def test_chat_sessions_are_deterministic_for_a_seed() -> None:
    first = CHAT.sessions(40, np.random.default_rng(7))
    again = CHAT.sessions(40, np.random.default_rng(7))
    other = CHAT.sessions(40, np.random.default_rng(8))
    assert len(first) == 40
    assert first == again
    assert [s.turns[0].user for s in first] != [s.turns[0].user for s in other]


def test_chat_session_turn_counts_cover_low_to_high() -> None:
    sessions = CHAT.sessions(600, np.random.default_rng(3))
    counts = Counter(len(s.turns) for s in sessions)
    # Uniform over {2, 3, 4}: each about 200 of 600; a value missing altogether has
    # probability about 3 * (2/3)^600, i.e. never.
    assert set(counts) == {2, 3, 4}
    assert all(count > 100 for count in counts.values())


def test_chat_sessions_with_fixed_turns_all_have_that_many() -> None:
    fixed = ChatSessions(turns=(3, 3), user_len=4, answer_len=8, think_s=0.0)
    assert [len(s.turns) for s in fixed.sessions(25, np.random.default_rng(1))] == [3] * 25


def test_chat_session_think_times_start_at_zero_with_the_configured_mean() -> None:
    sessions = CHAT.sessions(2_000, np.random.default_rng(5))
    assert all(s.turns[0].think_s == 0.0 for s in sessions)
    later = [t.think_s for s in sessions for t in s.turns[1:]]
    # 2 to 4 turns each (mean 3): about 2 later turns per session, some 4_000 in all.
    assert len(later) > 3_000
    assert all(t > 0.0 for t in later)
    # Exponential of mean 3 s: standard error 3 / sqrt(n) (about 0.047 s at n = 4_000);
    # allow 4 standard errors.
    tolerance = 4 * 3.0 / math.sqrt(len(later))
    assert abs(float(np.mean(later)) - 3.0) < tolerance


def test_chat_sessions_without_think_time_send_turns_back_to_back() -> None:
    quick = ChatSessions(turns=(2, 3), user_len=5, answer_len=10, think_s=0.0)
    sessions = quick.sessions(30, np.random.default_rng(2))
    assert {t.think_s for s in sessions for t in s.turns} == {0.0}


def test_chat_session_messages_and_budgets_are_as_configured() -> None:
    sessions = CHAT.sessions(50, np.random.default_rng(9))
    for session in sessions:
        assert session.system is None
        for turn in session.turns:
            assert len(turn.user.split()) == 6
            assert len(turn.answer.split()) == 20
            assert turn.max_tokens == 20
            assert turn.user_tokens == 6
            assert turn.answer_tokens == 20
    # Every turn's message is drawn afresh: 50 sessions of 2-4 turns share no repeats here.
    users = [t.user for s in sessions for t in s.turns]
    assert len(set(users)) == len(users)


def test_chat_session_request_counts_the_generated_history() -> None:
    session = CHAT.sessions(1, np.random.default_rng(4))[0]
    # Turn 1 (the second): 6 + 20 + 6 = 32 tokens, budget 20.
    spec = session.request(1)
    assert spec.tokens_in == 32
    assert spec.max_tokens == 20
    assert spec.messages is not None
    assert [m["role"] for m in spec.messages] == ["user", "assistant", "user"]
    assert spec.messages[1]["content"] == session.turns[0].answer


# RecordedSessions


def pool() -> tuple[Session, ...]:
    """Five distinct recorded conversations; recorded think times must be replaced."""
    return (
        Session((Turn("a1", 3, "x", 9.0, 1, 1), Turn("a2", 4, "y", 9.0, 1, 1)), "sys"),
        Session((Turn("b1", 5, "z", 9.0, 1, 1),)),
        Session((Turn("c1", 6, "w", 9.0, 1, 1), Turn("c2", 7, "v", 9.0, 1, 1))),
        Session((Turn("d1", 8, "u", 9.0, 1, 1),)),
        Session((Turn("e1", 2, "t", 9.0, 1, 1),)),
    )


def firsts(sessions: object) -> list[str]:
    return [s.turns[0].user for s in sessions]  # type: ignore[attr-defined]


def test_recorded_sessions_repeat_in_file_order() -> None:
    recorded = RecordedSessions(pool(), "file.jsonl")
    made = recorded.sessions(12, np.random.default_rng(0))
    assert firsts(made) == ["a1", "b1", "c1", "d1", "e1"] * 2 + ["a1", "b1"]


def test_recorded_sessions_keep_everything_but_the_think_times() -> None:
    made = RecordedSessions(pool(), "file.jsonl").sessions(5, np.random.default_rng(0))
    # think_s = 0: every recorded 9.0 becomes 0.0; the rest of each turn, and the system
    # message, are the recording's.
    assert made[0] == Session((Turn("a1", 3, "x", 0.0, 1, 1), Turn("a2", 4, "y", 0.0, 1, 1)), "sys")
    assert made[2] == Session((Turn("c1", 6, "w", 0.0, 1, 1), Turn("c2", 7, "v", 0.0, 1, 1)))
    assert made[1].system is None


def test_recorded_sessions_draw_think_times_after_the_first_turn() -> None:
    recorded = RecordedSessions(pool(), "file.jsonl", think_s=2.0)
    made = recorded.sessions(10, np.random.default_rng(6))
    for session in made:
        assert session.turns[0].think_s == 0.0
        for turn in session.turns[1:]:
            assert turn.think_s > 0.0
            assert turn.think_s != 9.0
    again = recorded.sessions(10, np.random.default_rng(6))
    assert made == again


def test_shuffled_sessions_are_deterministic_per_seed() -> None:
    recorded = RecordedSessions(pool(), "file.jsonl", shuffle=True)
    one = firsts(recorded.sessions(10, np.random.default_rng(21)))
    assert one == firsts(recorded.sessions(10, np.random.default_rng(21)))
    others = [firsts(recorded.sessions(10, np.random.default_rng(seed))) for seed in (22, 23)]
    assert any(order != one for order in others)


def test_shuffled_sessions_of_the_pool_size_are_a_permutation() -> None:
    recorded = RecordedSessions(pool(), "file.jsonl", shuffle=True)
    orders = [firsts(recorded.sessions(5, np.random.default_rng(s))) for s in range(6)]
    for order in orders:
        assert sorted(order) == ["a1", "b1", "c1", "d1", "e1"]
    # Shuffled: not every seed gives the file's order.
    assert any(order != ["a1", "b1", "c1", "d1", "e1"] for order in orders)


def test_shuffled_sessions_cover_the_pool_evenly() -> None:
    recorded = RecordedSessions(pool(), "file.jsonl", shuffle=True)
    # 12 of a pool of 5: every conversation twice, two of them a third time.
    counts = Counter(firsts(recorded.sessions(12, np.random.default_rng(4))))
    assert set(counts) == {"a1", "b1", "c1", "d1", "e1"}
    assert sorted(counts.values()) == [2, 2, 2, 3, 3]
    # Fewer than the pool: no conversation twice.
    fewer = firsts(recorded.sessions(3, np.random.default_rng(4)))
    assert len(set(fewer)) == 3
