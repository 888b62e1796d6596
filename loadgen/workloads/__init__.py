"""Workloads: where the requests of a step come from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from loadgen.core.records import RequestSpec


class DatasetError(Exception):
    """A dataset that cannot be used; the message names the file and what was wrong."""


class Workload(Protocol):
    """Produces the requests of one step, in send order."""

    @property
    def name(self) -> str:
        """A short name for results and labels."""
        ...

    def specs(self, num_requests: int, rng: np.random.Generator) -> Sequence[RequestSpec]:
        """`num_requests` request specs, deterministic for `rng`'s seed."""
        ...
