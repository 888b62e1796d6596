"""Tests for loadgen.workloads.templates: prompts wrapped in a chat template."""

from __future__ import annotations

import numpy as np
import pytest

from loadgen.core.records import RequestSpec
from loadgen.workloads.synthetic import SyntheticWorkload
from loadgen.workloads.templates import TemplatedWorkload, prompt_template


def test_llama2_template_wraps_every_prompt() -> None:
    inner = SyntheticWorkload(input_len=5, output_len=7)
    wrapped = TemplatedWorkload(inner, prompt_template("llama2"))
    plain = inner.specs(3, np.random.default_rng(4))
    specs = wrapped.specs(3, np.random.default_rng(4))
    assert [s.prompt for s in specs] == [f"[INST] {p.prompt} [/INST]" for p in plain]
    assert [(s.max_tokens, s.tokens_in) for s in specs] == [(7, 5)] * 3
    assert wrapped.name == "synthetic"


def test_braces_in_a_prompt_are_kept() -> None:
    class Braces:
        name = "braces"

        def specs(self, num_requests: int, rng: np.random.Generator) -> list[RequestSpec]:
            return [RequestSpec(prompt="print({x}) {prompt}", max_tokens=1)]

    specs = TemplatedWorkload(Braces(), "[INST] {prompt} [/INST]").specs(
        1, np.random.default_rng(0)
    )
    assert specs[0].prompt == "[INST] print({x}) {prompt} [/INST]"


def test_unknown_template_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="llama2"):
        prompt_template("vicuna")
