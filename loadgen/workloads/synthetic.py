"""Synthetic prompts of about L tokens with a fixed output budget (no tokenizer needed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from loadgen.core.records import RequestSpec
from loadgen.workloads.text import COMMON_WORDS, IntArray, TextBatch


@dataclass(frozen=True, slots=True)
class SyntheticWorkload:
    """Prompts of `input_len` random common words, each asking for `output_len` tokens."""

    input_len: int
    output_len: int
    name: str = "synthetic"

    def __post_init__(self) -> None:
        if self.input_len < 1 or self.output_len < 1:
            raise ValueError("--input-len and --output-len must be at least 1")

    @property
    def text_batch(self) -> TextBatch:
        """How its prompts' text is drawn, for shared prefixes in the same style."""
        return synthetic_texts

    def specs(self, num_requests: int, rng: np.random.Generator) -> Sequence[RequestSpec]:
        """`num_requests` distinct prompts, deterministic for `rng`'s seed."""
        vocabulary = np.array(COMMON_WORDS)
        picks = rng.integers(0, len(vocabulary), size=(num_requests, self.input_len))
        return [
            RequestSpec(
                prompt=" ".join(vocabulary[row].tolist()),
                max_tokens=self.output_len,
                tokens_in=self.input_len,
            )
            for row in picks
        ]


def synthetic_texts(word_counts: Sequence[int] | IntArray, rng: np.random.Generator) -> list[str]:
    """One text per entry of `word_counts` (words) of random common words, as in the prompts."""
    counts = np.asarray(word_counts, dtype=np.int64).reshape(-1)
    if np.any(counts < 0):
        raise ValueError(f"word counts must be >= 0, got {int(counts.min())}")
    picks = rng.integers(0, len(COMMON_WORDS), size=int(counts.sum()))
    words: list[str] = np.array(COMMON_WORDS)[picks].tolist()
    ends = np.cumsum(counts).tolist()
    return [" ".join(words[end - n : end]) for n, end in zip(counts.tolist(), ends, strict=True)]
