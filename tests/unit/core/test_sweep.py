"""Tests for loadgen.core.sweep: rate parsing and the fixed-rate sweep policy."""

from __future__ import annotations

import math

import pytest

from loadgen.core.records import StepSummary
from loadgen.core.stats import step_figures
from loadgen.core.sweep import SweepPolicy, fixed_rates, parse_rate, parse_rate_range, parse_rates

EMPTY = step_figures([], {})  # figures of an empty step: nothing sent, nothing measured


def _summary(step: int, rate: float, *, interrupted: bool = False) -> StepSummary:
    """A hand-built summary of step `step` at `rate` req/s."""
    return StepSummary(
        step=step,
        target_rate_rps=rate,
        num_sent=0,
        trim=0,
        trimmed=EMPTY,
        untrimmed=EMPTY,
        client_saturated=False,
        interrupted=interrupted,
        tokens_source="estimate",
        duration_s=1.0,
    )


def _drive(policy: SweepPolicy, interrupt_at: int | None = None) -> list[float]:
    """Run a policy the way the runner does; step `interrupt_at` reports an interruption."""
    visited: list[float] = []
    try:
        rate = next(policy).rate_rps
        while True:
            step = len(visited)
            visited.append(rate)
            rate = policy.send(_summary(step, rate, interrupted=step == interrupt_at)).rate_rps
    except StopIteration:
        return visited


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2.5", 2.5), (" 3 ", 3.0), ("1e3", 1000.0), ("inf", math.inf), ("INF", math.inf)],
)
def test_parse_rate_accepts_positive_numbers_and_inf(text: str, expected: float) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["0", "-1", "abc", "nan", "", "  ", "-inf", "0.0"])
def test_parse_rate_rejects_bad_text(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,2,4,8,inf", [1.0, 2.0, 4.0, 8.0, math.inf]),
        (" 1 , 2.5,inf ", [1.0, 2.5, math.inf]),
        ("7", [7.0]),
        ("8,1", [8.0, 1.0]),
    ],
)
def test_parse_rates(text: str, expected: list[float]) -> None:
    assert parse_rates(text) == expected


@pytest.mark.parametrize("text", ["", " ", "1,,2", "1,2,", "1,0", "1,abc", "nan,1"])
def test_parse_rates_rejects_bad_lists(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rates(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.1:0.5:0.1", [0.1, 0.2, 0.3, 0.4, 0.5]),
        ("1:10:4", [1.0, 5.0, 9.0]),
        ("1:10:3", [1.0, 4.0, 7.0, 10.0]),
        ("0.5:2:0.5", [0.5, 1.0, 1.5, 2.0]),
        ("0.1:1:0.1", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
        ("1:2:0.3", [1.0, 1.3, 1.6, 1.9]),
        ("5:5:1", [5.0]),
        (" 1 : 3 : 1 ", [1.0, 2.0, 3.0]),
    ],
)
def test_parse_rate_range(text: str, expected: list[float]) -> None:
    assert parse_rate_range(text) == expected


def test_parse_rate_range_allows_exactly_the_maximum_count() -> None:
    assert len(parse_rate_range("1:10000:1")) == 10_000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1:10", "START:STOP:STEP"),
        ("1:10:1:1", "START:STOP:STEP"),
        ("", "START:STOP:STEP"),
        ("a:10:1", "START"),
        ("1:b:1", "STOP"),
        ("1:10:", "STEP"),
        ("1:inf:1", "STOP"),
        ("1:10:nan", "STEP"),
        ("1:10:0", "STEP"),
        ("1:10:-1", "STEP"),
        ("10:1:1", "STOP"),
        ("0:10:1", "START"),
        ("-1:10:1", "START"),
        ("1:10001:1", "more than 10000"),
        ("1:2:5e-324", "more than 10000"),
    ],
)
def test_parse_rate_range_rejects_bad_ranges(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rate_range(text)


def test_fixed_rates_yields_every_rate_in_order() -> None:
    assert _drive(fixed_rates([1.0, 2.0, 4.0, math.inf])) == [1.0, 2.0, 4.0, math.inf]


def test_fixed_rates_stops_after_an_interrupted_step() -> None:
    assert _drive(fixed_rates([1.0, 2.0, 4.0, 8.0]), interrupt_at=1) == [1.0, 2.0]


def test_fixed_rates_stops_when_the_last_step_is_interrupted() -> None:
    assert _drive(fixed_rates([1.0, 2.0]), interrupt_at=1) == [1.0, 2.0]


@pytest.mark.parametrize("rates", [[], [1.0, 0.0], [-2.0], [1.0, math.nan]])
def test_fixed_rates_validates_before_the_first_step(rates: list[float]) -> None:
    with pytest.raises(ValueError, match="rate"):
        fixed_rates(rates)
