"""Generated prompts made exactly as long as drawn, when a tokenizer is configured."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from loadgen.core.records import RequestSpec
from loadgen.workloads import Workload
from loadgen.workloads.tokenizers import ExactCounter, exact_length_prompts


@dataclass(frozen=True, slots=True)
class ExactLengthWorkload:
    """Another workload's requests with each prompt re-cut to exactly `tokens_in` tokens."""

    inner: Workload
    tokenizer: ExactCounter

    @property
    def name(self) -> str:
        """The inner workload's name."""
        return self.inner.name

    def specs(self, num_requests: int, rng: np.random.Generator) -> Sequence[RequestSpec]:
        """The inner specs, prompts exactly `tokens_in` tokens long (checked by re-encoding)."""
        specs = self.inner.specs(num_requests, rng)
        lengths = [spec.tokens_in or 1 for spec in specs]
        prompts = exact_length_prompts([spec.prompt for spec in specs], lengths, self.tokenizer)
        return [replace(spec, prompt=prompt) for spec, prompt in zip(specs, prompts, strict=True)]
