"""Steps through the simulated engine in virtual time: what `loadgen simulate` runs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from loadgen.core.events import StepProgress
from loadgen.core.records import RequestSpec
from loadgen.runtime.runner import StepResult, StopSignal
from loadgen.sim.settings import SimSetup
from loadgen.sim.virtual import OutputPolicy, simulate_requests


class VirtualStepRunner:
    """Runs a step through a fresh engine in virtual time; records start at time 0 (ns)."""

    def __init__(self, setup: SimSetup, outputs: OutputPolicy, seed: int) -> None:
        self._setup = setup
        self._outputs = outputs
        self._seed = seed

    async def run(
        self,
        progress: StepProgress,
        specs: Sequence[RequestSpec],
        offsets_s: npt.NDArray[np.float64],
        stop: StopSignal,
    ) -> StepResult:
        """Every request of the step, simulated to its end (a stop ends the sweep after it)."""
        progress.t_start_ns = 0
        rng = np.random.default_rng([self._seed, 2, progress.step])
        setup = self._setup
        records = simulate_requests(
            setup.build_engine(), specs, offsets_s, self._outputs, rng, setup.reasoning
        )
        progress.sent = progress.done = len(records)
        progress.errors = sum(not record.ok for record in records)
        last_ns = max((record.t_done_ns for record in records), default=0)
        return StepResult(records, interrupted=False, duration_s=last_ns / 1e9)
