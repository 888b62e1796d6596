"""The service's gatekeeping (loadgen/service/security.py): tokens, allow-list, ids."""

from __future__ import annotations

import pytest

from loadgen.service.security import AllowList, Tokens, parse_tokens, unknown_names, valid_sweep_id


def test_tokens_admit_any_of_theirs_as_a_bearer_and_nothing_else() -> None:
    tokens = Tokens.of(["old-token", "new-token", "  "])
    assert len(tokens.digests) == 2
    assert tokens.admits("Bearer old-token")
    assert tokens.admits("bearer new-token")
    for header in (None, "", "Bearer", "Bearer ", "Basic old-token", "Bearer old-token2",
                   "Bearer old-toke", "old-token", "Bearer NEW-TOKEN"):  # fmt: skip
        assert not tokens.admits(header), header


def test_no_tokens_is_false_and_admits_nobody() -> None:
    assert not Tokens.of([])
    assert not Tokens.of([]).admits("Bearer anything")


def test_tokens_parse_from_lines_or_commas() -> None:
    assert parse_tokens("a,b\n c \n\n,d") == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("entry", "url", "allowed"),
    [
        ("https://staging.example.com/v1", "https://staging.example.com/v1", True),
        ("https://staging.example.com/v1", "https://staging.example.com/v1/", True),
        ("https://staging.example.com/v1", "https://staging.example.com/v10", False),
        ("https://staging.example.com", "https://staging.example.com:8443/v1", True),
        ("https://staging.example.com", "https://staging.example.com.evil.io/v1", False),
        ("https://staging.example.com", "http://staging.example.com/v1", False),
        ("https://staging.example.com:8443/v1", "https://staging.example.com:9443/v1", False),
        ("*.staging.internal", "http://vllm.staging.internal:8000/v1", True),
        ("*.staging.internal", "http://staging.internal.evil.io/v1", False),
        ("10.0.0.5:8000", "http://10.0.0.5:8000/v1", True),
        ("10.0.0.5:8000", "http://10.0.0.5:8001/v1", False),
        ("10.0.0.5", "http://10.0.0.5:8001/v1", True),
        ("10.0.0.5", "ftp://10.0.0.5/v1", False),
        ("10.0.0.5", "http:///v1", False),
    ],
)
def test_allow_list(entry: str, url: str, allowed: bool) -> None:
    assert AllowList((entry,)).allows(url) is allowed


def test_an_empty_allow_list_allows_nothing() -> None:
    assert not AllowList(()).allows("http://127.0.0.1:8000/v1")


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("20261202-190359-8bdbe5dd", True),
        ("20261202-190359-8bdbe5d", False),
        ("../20261202-190359-8bdbe5dd", False),
        ("20261202-190359-8bdbe5dd/..", False),
        ("..", False),
        ("20261202-190359-8BDBE5DD", False),
    ],
)
def test_sweep_ids(text: str, valid: bool) -> None:
    assert valid_sweep_id(text) is valid


def test_unknown_key_names_are_those_not_allowed() -> None:
    assert unknown_names(["A", None, "B", "A"], ["B"]) == ["A"]
