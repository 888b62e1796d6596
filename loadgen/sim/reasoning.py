"""The reasoning phase of a simulated reasoning model: how many output tokens are thinking.

Each request's first R output tokens are reasoning and the rest its answer, R drawn per request
(uniform in a range, inclusive, from a seeded generator) and capped by the request's output
length: an output that ends while still reasoning has no answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loadgen.core.ranges import parse_int_range


@dataclass(frozen=True, slots=True)
class ReasoningRange:
    """Reasoning tokens per request, uniform in `[low, high]` (tokens)."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high:
            raise ValueError(f"need 0 <= LOW <= HIGH, got {self.low}:{self.high}")

    def draw(self, output_tokens: int, rng: np.random.Generator) -> int:
        """Reasoning tokens of one request that generates `output_tokens` tokens in all."""
        drawn = self.low if self.low == self.high else int(rng.integers(self.low, self.high + 1))
        return min(drawn, output_tokens)


def parse_reasoning(text: str) -> ReasoningRange | None:
    """The range `--reasoning-tokens` gives: "0" (no reasoning phase), "N" or "LOW:HIGH"."""
    low, high = parse_int_range(text, "(tokens)", 0)
    if (low, high) == (0, 0) and ":" not in text:
        return None
    return ReasoningRange(low, high)
