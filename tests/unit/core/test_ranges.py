"""Tests for loadgen.core.ranges: "N" or "LOW:HIGH" integer ranges."""

from __future__ import annotations

import pytest

from loadgen.core.ranges import parse_int_range


@pytest.mark.parametrize(
    ("text", "least", "expected"),
    [("3", 1, (3, 3)), (" 2:7 ", 1, (2, 7)), ("0", 0, (0, 0)), ("0:4", 0, (0, 4))],
)
def test_reads_n_and_low_high(text: str, least: int, expected: tuple[int, int]) -> None:
    assert parse_int_range(text, "turns", least) == expected


@pytest.mark.parametrize("text", ["", "x", "2:", ":3", "1:2:3", "1.5"])
def test_what_is_neither_form_names_the_unit(text: str) -> None:
    with pytest.raises(ValueError, match=f"expected N or LOW:HIGH widgets, got {text!r}"):
        parse_int_range(text, "widgets", 0)


@pytest.mark.parametrize(("text", "least"), [("0", 1), ("5:2", 0), ("-1:3", 0)])
def test_out_of_order_or_below_the_least_is_refused(text: str, least: int) -> None:
    with pytest.raises(ValueError, match=f"need {least} <= LOW <= HIGH turns"):
        parse_int_range(text, "turns", least)
