"""Tests for loadgen.sim.tokens: token content from text, output words, chained block hashes."""

from __future__ import annotations

import pytest

from loadgen.sim.tokens import (
    WORDS,
    block_hashes,
    fit_tokens,
    message_tokens,
    output_tokens,
    prompt_tokens,
    text_tokens,
    token_text,
)


def test_text_tokens_are_the_words_prompt_tokens_counts() -> None:
    text = "one two  three\nfour"
    assert text_tokens(text) == ["one", "two", "three", "four"]
    assert prompt_tokens(text) == len(text_tokens(text)) == 4
    assert prompt_tokens("   ") == 1  # an empty prompt is still charged one token


def test_message_tokens_tag_each_message_with_its_role() -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "one two three"},
        {"role": "assistant", "content": None},
    ]
    assert message_tokens(messages) == [
        ("system", "be"),
        "brief",
        ("user", "one"),
        "two",
        "three",
    ]


def test_message_tokens_count_an_empty_text_as_one_token() -> None:
    # As the simulator charges it: every text message is at least one token.
    tokens = message_tokens([{"role": "user", "content": ""}, {"role": "user", "content": "a"}])
    assert tokens == [("user", ""), ("user", "a")]


def test_the_same_words_under_other_roles_are_other_tokens() -> None:
    one = message_tokens([{"role": "system", "content": "a b"}, {"role": "user", "content": "c"}])
    other = message_tokens([{"role": "user", "content": "a b c"}])
    assert one != other
    assert len(one) == len(other)


def test_fit_keeps_tokens_of_the_right_length() -> None:
    assert fit_tokens(["a", "b"], 2) == ("a", "b")


def test_fit_shortens_without_confusing_texts_that_differ_late() -> None:
    one = fit_tokens(["a", "b", "c", "d"], 3)
    other = fit_tokens(["a", "b", "c", "e"], 3)
    assert len(one) == len(other) == 3
    assert one[:2] == other[:2] == ("a", "b")
    assert one[2] != other[2]


def test_fit_pads_with_tokens_unique_to_the_content() -> None:
    one = fit_tokens(["a", "b"], 5)
    other = fit_tokens(["a", "c"], 5)
    assert len(one) == len(other) == 5
    assert one[:2] == ("a", "b")
    assert set(one[2:]).isdisjoint(other[2:])
    assert len(set(one[2:])) == 3


def test_block_hashes_cover_full_blocks_only() -> None:
    assert len(block_hashes(list("abcdefghij"), 4)) == 2  # 10 tokens: 2 full blocks of 4
    assert block_hashes(list("abc"), 4) == []


def test_block_hashes_match_while_every_earlier_token_matches() -> None:
    one = block_hashes([*"abcdefgh", *"ijkl"], 4)
    other = block_hashes([*"abcdefgh", *"ijkX"], 4)
    assert one[:2] == other[:2]
    assert one[2] != other[2]


def test_a_block_hash_chains_everything_before_it() -> None:
    # The same third block after a different first block is a different block.
    one = block_hashes([*"abcd", *"efgh", *"ijkl"], 4)
    other = block_hashes([*"Xbcd", *"efgh", *"ijkl"], 4)
    assert all(a != b for a, b in zip(one, other, strict=True))


def test_block_hashes_continue_from_a_parent() -> None:
    tokens = list("abcdefghijkl")
    whole = block_hashes(tokens, 4)
    assert block_hashes(tokens[4:], 4, parent=whole[0]) == whole[1:]


def test_output_tokens_are_the_words_token_text_sends() -> None:
    assert output_tokens(3, 0, 2 * len(WORDS)) == [
        token_text(3, p).strip() for p in range(2 * len(WORDS))
    ]
    # A prompt holding an answer's text has the answer's tokens.
    answer = "".join(token_text(7, p) for p in range(20))
    assert text_tokens(answer) == output_tokens(7, 0, 20)


@pytest.mark.parametrize("count", [1, 16, 17])
def test_fit_tokens_always_gives_count_tokens(count: int) -> None:
    assert len(fit_tokens(text_tokens("one two three four five"), count)) == count
