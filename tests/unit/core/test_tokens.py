"""Tests for loadgen.core.tokens: the character-based token estimate."""

from __future__ import annotations

import pytest

from loadgen.core.tokens import estimate_tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("abcd", 1),  # 4 chars / 4 per token
        ("abcdefgh", 2),
        ("abcdefghijklmnop", 4),
        ("abcdefghijklm", 3),  # 13 / 4 = 3.25
        ("abcdefghijklmno", 4),  # 15 / 4 = 3.75
    ],
)
def test_estimate_tokens(text: str, expected: int) -> None:
    assert estimate_tokens(text) == expected


@pytest.mark.parametrize("text", ["a", "Hi"])
def test_estimate_tokens_non_empty_text_is_at_least_one_token(text: str) -> None:
    assert estimate_tokens(text) >= 1
