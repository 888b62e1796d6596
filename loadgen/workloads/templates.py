"""Chat templates for prompts sent to /v1/completions (a chat endpoint applies its own)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from loadgen.core.records import RequestSpec
from loadgen.workloads import Workload

# The reference paper wrapped every prompt in Llama-2's chat format.
PROMPT_TEMPLATES: Mapping[str, str] = {"llama2": "[INST] {prompt} [/INST]"}


def prompt_template(name: str) -> str:
    """The template called `name`; ValueError naming the known ones otherwise."""
    try:
        return PROMPT_TEMPLATES[name]
    except KeyError:
        known = ", ".join(sorted(PROMPT_TEMPLATES))
        raise ValueError(f"unknown --prompt-template {name!r}; known: {known}") from None


@dataclass(frozen=True, slots=True)
class TemplatedWorkload:
    """Another workload's requests with each prompt put into `template` ("{prompt}" marks it)."""

    inner: Workload
    template: str

    @property
    def name(self) -> str:
        """The inner workload's name."""
        return self.inner.name

    def specs(self, num_requests: int, rng: np.random.Generator) -> Sequence[RequestSpec]:
        """The inner workload's specs, prompts wrapped; token counts are the inner ones."""
        return [
            replace(spec, prompt=self.template.format(prompt=spec.prompt))
            for spec in self.inner.specs(num_requests, rng)
        ]
