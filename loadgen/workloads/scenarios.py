"""The reference paper's four serving scenarios as synthetic workloads (pure, generated offline)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np

from loadgen.core.records import RequestSpec
from loadgen.workloads.text import IntArray, TextBatch, prose_batch, question_batch

TextStyle = Literal["question", "prose"]

_TEXT_BATCHES: Mapping[TextStyle, TextBatch] = {
    "question": question_batch,
    "prose": prose_batch,
}


@dataclass(frozen=True, slots=True)
class UniformLengths:
    """Integer lengths (tokens) uniform on `low`..`high`, both included."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not 1 <= self.low <= self.high:
            raise ValueError(f"need 1 <= low <= high, got low={self.low} high={self.high}")

    def draw(self, count: int, rng: np.random.Generator) -> IntArray:
        """`count` lengths (tokens)."""
        return rng.integers(self.low, self.high + 1, size=count)


@dataclass(frozen=True, slots=True)
class LogNormalLengths:
    """Integer lengths (tokens) log-normal with `median` and log-space `sigma`, clipped to range."""

    median: float
    sigma: float
    low: int
    high: int

    def __post_init__(self) -> None:
        if not 1 <= self.low <= self.median <= self.high:
            raise ValueError(
                f"need 1 <= low <= median <= high, got {self.low}, {self.median}, {self.high}"
            )
        if self.sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")

    def draw(self, count: int, rng: np.random.Generator) -> IntArray:
        """`count` lengths (tokens)."""
        raw = rng.lognormal(np.log(self.median), self.sigma, size=count)
        return np.clip(np.rint(raw), self.low, self.high).astype(np.int64)


LengthDistribution = UniformLengths | LogNormalLengths


@dataclass(frozen=True, slots=True)
class ScenarioWorkload:
    """Prompts of drawn length (tokens) in a text style, each with a drawn output budget."""

    name: str
    prompt_lengths: LengthDistribution
    output_lengths: LengthDistribution
    style: TextStyle

    @property
    def text_batch(self) -> TextBatch:
        """How its prompts' text is drawn, for shared prefixes in the same style."""
        return _TEXT_BATCHES[self.style]

    def specs(self, num_requests: int, rng: np.random.Generator) -> Sequence[RequestSpec]:
        """`num_requests` request specs, deterministic for `rng`'s seed."""
        if num_requests < 0:
            raise ValueError(f"num_requests must be >= 0, got {num_requests}")
        prompt_lens = self.prompt_lengths.draw(num_requests, rng)
        max_tokens = self.output_lengths.draw(num_requests, rng)
        # A prompt of L vocabulary words counts as L tokens: each word is about one BPE token
        # with its leading space (punctuation adds a few percent). This estimate stands until a
        # tokenizer is available to count exactly.
        prompts = _TEXT_BATCHES[self.style](prompt_lens, rng)
        return [
            RequestSpec(prompt=prompt, max_tokens=budget, tokens_in=length)
            for prompt, budget, length in zip(
                prompts, max_tokens.tolist(), prompt_lens.tolist(), strict=True
            )
        ]


# Length distributions from the reference paper's "Datasets" table.
SCENARIOS: Mapping[str, ScenarioWorkload] = MappingProxyType(
    {
        # Alpaca-like instructions: prompts mostly < 50 tokens, output 3..49 (median about 27).
        "s2s": ScenarioWorkload(
            name="s2s",
            prompt_lengths=LogNormalLengths(median=20, sigma=0.5, low=4, high=64),
            output_lengths=UniformLengths(3, 49),
            style="question",
        ),
        # Alpaca-like instructions: prompts <= 50 tokens, output roughly uniform, median 487.
        "s2l": ScenarioWorkload(
            name="s2l",
            prompt_lengths=LogNormalLengths(median=20, sigma=0.5, low=4, high=50),
            output_lengths=UniformLengths(3, 971),
            style="question",
        ),
        # ShareGPT-like conversations: prompts 1100..1500 tokens, output <= 120.
        "l2s": ScenarioWorkload(
            name="l2s",
            prompt_lengths=UniformLengths(1100, 1500),
            output_lengths=UniformLengths(4, 120),
            style="prose",
        ),
        # Vicuna-like short questions, each asking for exactly 16000 tokens.
        "s16k": ScenarioWorkload(
            name="s16k",
            prompt_lengths=UniformLengths(8, 40),
            output_lengths=UniformLengths(16000, 16000),
            style="question",
        ),
    }
)


def scenario(name: str) -> ScenarioWorkload:
    """The scenario called `name`; ValueError naming the known ones otherwise."""
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)
        raise ValueError(f"unknown scenario {name!r}; known: {known}") from None
