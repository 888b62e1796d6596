"""Choosing a step's requests from a loaded dataset: file order, shuffled, or with replacement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from loadgen.core.records import RequestSpec


def _order(
    count: int, num_requests: int, rng: np.random.Generator, shuffle: bool, replacement: bool
) -> np.ndarray:
    """Indices into `count` specs for `num_requests` requests."""
    if replacement:
        return rng.integers(0, count, size=num_requests)
    rounds = -(-num_requests // count)
    if shuffle:
        # One independent permutation per pass over the dataset, so each pass holds every spec.
        return rng.permuted(np.tile(np.arange(count), (rounds, 1)), axis=1).ravel()[:num_requests]
    return np.arange(num_requests) % count


def sample(
    specs: Sequence[RequestSpec],
    num_requests: int,
    rng: np.random.Generator,
    *,
    shuffle: bool = False,
    replacement: bool = False,
) -> list[RequestSpec]:
    """`num_requests` specs: in file order (repeating), seeded permutations, or seeded draws."""
    if shuffle and replacement:
        raise ValueError("shuffle and replacement exclude each other")
    if not specs:
        raise ValueError("no request specs to sample from")
    if num_requests < 0:
        raise ValueError(f"num_requests must be >= 0, not {num_requests}")
    order = _order(len(specs), num_requests, rng, shuffle, replacement)
    return [specs[i] for i in order.tolist()]


@dataclass(frozen=True, slots=True)
class DatasetWorkload:
    """A loaded dataset as a Workload; each step's requests come from `sample`."""

    requests: Sequence[RequestSpec]
    name: str
    shuffle: bool = False
    replacement: bool = False

    def __post_init__(self) -> None:
        if self.shuffle and self.replacement:
            raise ValueError("shuffle and replacement exclude each other")
        if not self.requests:
            raise ValueError(f"dataset workload {self.name!r} has no requests")
        object.__setattr__(self, "requests", tuple(self.requests))  # immune to the caller's list

    def specs(self, num_requests: int, rng: np.random.Generator) -> Sequence[RequestSpec]:
        """`num_requests` specs, deterministic for `rng`'s seed (file order ignores it)."""
        return sample(
            self.requests, num_requests, rng, shuffle=self.shuffle, replacement=self.replacement
        )
