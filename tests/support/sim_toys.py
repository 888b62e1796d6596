"""A toy model and a recording cost model for the simulator's unit tests."""

from __future__ import annotations

from loadgen.sim.cost_model import BatchShape
from loadgen.sim.presets import ModelSpec

# hidden 8, FFN 16, 2 layers, 2 heads, 1 KV head, vocab 10, context 64: small enough to check
# FLOPs, bytes and blocks by hand.
TINY = ModelSpec("tiny", 8, 16, 2, 2, 1, 10, 64)


class RecordingCost:
    """Every step takes 1 s; keeps every batch it priced."""

    def __init__(self) -> None:
        self.shapes: list[BatchShape] = []

    def step_time_s(self, batch: BatchShape) -> float:
        """1.0 s, after recording `batch`."""
        self.shapes.append(batch)
        return 1.0
