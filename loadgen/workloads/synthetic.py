"""Synthetic prompts of about L tokens with a fixed output budget (no tokenizer needed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from loadgen.core.records import RequestSpec

# Common English words that Llama-, Mistral- and GPT-style BPE vocabularies each encode as one
# token when preceded by a space, so a prompt of L words is about L tokens.
_WORDS = tuple(
    """the of and to in is was for on are with as his they at be this from have or by one had
    not but what all were when we there can an your which their said if do will each about how
    up out them then she many some so these would other into has more her two like him see time
    could no make than first been its who now people my made over did down only way find use may
    water long little very after words called just where most know get through back much before
    go good new write our used me man too any day same right look think also around another came
    come work three word must because does part even place well such here take why things help
    put years different away again off went old number great tell men say small every found still
    between name should home big give air line set own under read last never us left end along
    while might next sound below saw something thought both few those always looked show large
    often together asked house world going want school important until form food keep children
    feet land side without boy once animals life enough took sometimes four head above kind began
    almost live page got earth need far hand high year mother light parts country father let night
    following picture being study second eyes soon times story boys since white days ever paper
    hard near sentence better best across during today others however sure means knew try told
    young miles sun ways thing whole hear example heard several change answer room sea against top
    turned learn point city play toward five using himself usually""".split()
)


@dataclass(frozen=True, slots=True)
class SyntheticWorkload:
    """Prompts of `input_len` random common words, each asking for `output_len` tokens."""

    input_len: int
    output_len: int
    name: str = "synthetic"

    def __post_init__(self) -> None:
        if self.input_len < 1 or self.output_len < 1:
            raise ValueError("--input-len and --output-len must be at least 1")

    def specs(self, num_requests: int, rng: np.random.Generator) -> Sequence[RequestSpec]:
        """`num_requests` distinct prompts, deterministic for `rng`'s seed."""
        vocabulary = np.array(_WORDS)
        picks = rng.integers(0, len(vocabulary), size=(num_requests, self.input_len))
        return [
            RequestSpec(
                prompt=" ".join(vocabulary[row].tolist()),
                max_tokens=self.output_len,
                tokens_in=self.input_len,
            )
            for row in picks
        ]
