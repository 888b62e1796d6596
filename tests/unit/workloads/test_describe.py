"""Tests for loadgen.workloads.describe: length statistics of a workload's requests."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from loadgen.core.records import RequestSpec, TokensSource
from loadgen.workloads.describe import describe, describe_text, input_tokens, token_lengths

# tokens_in 1..5 and max_tokens 10..50: the worked example of every statistic below.
FIVE = [RequestSpec(prompt=f"p{i}", max_tokens=10 * i, tokens_in=i) for i in range(1, 6)]


class WordCounter:
    """One token per whitespace-separated word; exact enough to reason about by hand."""

    @property
    def source(self) -> TokensSource:
        return "tokenizer"

    def count(self, text: str) -> int:
        return len(text.split())


class BatchWordCounter(WordCounter):
    """A WordCounter that also counts in batches and remembers what it was asked."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.singles: list[str] = []

    def count(self, text: str) -> int:
        self.singles.append(text)
        return super().count(text)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        self.batches.append(list(texts))
        return [len(text.split()) for text in texts]


def chat(*contents: str) -> RequestSpec:
    roles = ("system", "user", "assistant")
    messages = tuple({"role": roles[i % 3], "content": c} for i, c in enumerate(contents))
    return RequestSpec(prompt="", max_tokens=8, messages=messages)


def test_worked_example() -> None:
    summary = describe(FIVE, WordCounter())
    assert summary == {
        "count": 5,
        # Linear percentile at rank q * (n - 1): p50 at rank 2 -> 3; p90 at rank 3.6 ->
        # 4 + 0.6 * (5 - 4) = 4.6. Mean (1 + 2 + 3 + 4 + 5) / 5 = 3.0.
        "input_tokens": {
            "min": 1,
            "p50": 3.0,
            "mean": 3.0,
            "p90": pytest.approx(4.6),
            "max": 5,
        },
        # Same ranks: p50 30; p90 40 + 0.6 * (50 - 40) = 46; mean 150 / 5 = 30.
        "output_tokens": {
            "min": 10,
            "p50": 30.0,
            "mean": 30.0,
            "p90": pytest.approx(46.0),
            "max": 50,
        },
        "tokens_source": "tokenizer",
    }


def test_types_ints_for_extremes_floats_for_the_rest() -> None:
    stats = describe(FIVE, WordCounter())["input_tokens"]
    assert [type(stats[key]) for key in ("min", "p50", "mean", "p90", "max")] == [
        int,
        float,
        float,
        float,
        int,
    ]


def test_counts_prompts_without_tokens_in_and_sums_messages() -> None:
    specs = [
        RequestSpec(prompt="four words not counted", max_tokens=1, tokens_in=7),
        RequestSpec(prompt="one two", max_tokens=1),
        chat("a b c", "d"),
    ]
    # 7 as given; "one two" is 2 words; the chat is 3 + 1 = 4 words.
    assert input_tokens(specs, WordCounter()) == [7, 2, 4]
    stats = describe(specs, WordCounter())["input_tokens"]
    # Sorted 2, 4, 7: p50 at rank 1 -> 4; p90 at rank 1.8 -> 4 + 0.8 * (7 - 4) = 6.4;
    # mean 13 / 3.
    assert stats == {
        "min": 2,
        "p50": 4.0,
        "mean": pytest.approx(13 / 3),
        "p90": pytest.approx(6.4),
        "max": 7,
    }


def test_uses_count_batch_once_when_available() -> None:
    counter = BatchWordCounter()
    specs = [RequestSpec(prompt="x y", max_tokens=1), FIVE[0], chat("a", "b c")]
    assert input_tokens(specs, counter) == [2, 1, 3]
    assert counter.batches == [["x y", "a", "b c"]]
    assert counter.singles == []


def test_tokens_in_zero_is_kept_not_recounted() -> None:
    spec = RequestSpec(prompt="three words here", max_tokens=1, tokens_in=0)
    assert input_tokens([spec], WordCounter()) == [0]


def test_no_specs() -> None:
    summary = describe([], WordCounter())
    assert summary["count"] == 0
    assert summary["input_tokens"] == dict.fromkeys(("min", "p50", "mean", "p90", "max"))
    assert "-" in describe_text(summary)


def test_describe_text_table() -> None:
    text = describe_text(describe(FIVE, WordCounter()))
    assert text == (
        "requests: 5  (tokens: tokenizer)\n"
        "        min   p50  mean   p90  max\n"
        "input     1   3.0   3.0   4.6    5\n"
        "output   10  30.0  30.0  46.0   50\n"
    )


def test_token_lengths_pairs_inputs_with_budgets() -> None:
    specs = [FIVE[1], RequestSpec(prompt="one two three", max_tokens=9)]
    assert token_lengths(specs, WordCounter()) == ([2, 3], [20, 9])
