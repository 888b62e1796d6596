"""Tests for loadgen.sim.reasoning: the `--reasoning-tokens` range and the per-request draw."""

from __future__ import annotations

import numpy as np
import pytest

from loadgen.sim.reasoning import ReasoningRange, parse_reasoning


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", None),
        ("5", ReasoningRange(5, 5)),
        ("2:8", ReasoningRange(2, 8)),
        (" 3:3 ", ReasoningRange(3, 3)),
        ("0:0", ReasoningRange(0, 0)),  # a reasoning model that happens never to reason
        ("0:4", ReasoningRange(0, 4)),
    ],
)
def test_parse(text: str, expected: ReasoningRange | None) -> None:
    assert parse_reasoning(text) == expected


@pytest.mark.parametrize("text", ["", "x", "-1", "8:2", "1:2:3", "1.5", "2:"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="LOW"):
        parse_reasoning(text)


def test_a_fixed_count_is_capped_by_the_output() -> None:
    rng = np.random.default_rng(0)
    assert ReasoningRange(5, 5).draw(100, rng) == 5
    assert ReasoningRange(5, 5).draw(3, rng) == 3  # the output ends while still reasoning


def test_draws_are_uniform_over_the_inclusive_range() -> None:
    rng = np.random.default_rng(7)
    draws = np.array([ReasoningRange(2, 5).draw(1000, rng) for _ in range(4000)])
    assert set(draws.tolist()) == {2, 3, 4, 5}
    # Each of 4 values has probability 1/4: 1000 expected, sd ~27; 150 is over 5 sd.
    counts = np.bincount(draws, minlength=6)[2:]
    assert np.all(np.abs(counts - 1000) < 150), counts


def test_draws_are_reproducible_for_a_seed() -> None:
    one = [ReasoningRange(0, 100).draw(50, np.random.default_rng(3)) for _ in range(5)]
    two = [ReasoningRange(0, 100).draw(50, np.random.default_rng(3)) for _ in range(5)]
    assert one == two
    assert all(0 <= draw <= 50 for draw in one)
