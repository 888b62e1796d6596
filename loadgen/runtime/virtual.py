"""Steps through the simulated engine in virtual time: what `loadgen simulate` runs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from loadgen.core.events import StepProgress
from loadgen.core.records import RequestRecord, RequestSpec
from loadgen.runtime.runner import StepResult, StopSignal
from loadgen.sim.engine import Engine
from loadgen.sim.settings import SimSetup
from loadgen.sim.virtual import OutputPolicy, simulate_one_by_one, simulate_requests
from loadgen.sim.virtual_sessions import simulate_sessions
from loadgen.workloads.sessions import Session


class _VirtualRunner:
    """A fresh engine of `setup` for each step, its draws seeded by `seed` and the step."""

    def __init__(self, setup: SimSetup, outputs: OutputPolicy, seed: int) -> None:
        self._setup = setup
        self._outputs = outputs
        self._seed = seed

    def _start(self, progress: StepProgress) -> tuple[Engine, np.random.Generator]:
        """The step's engine and draws (output lengths, reasoning); its clock starts at 0."""
        progress.t_start_ns = 0
        rng = np.random.default_rng([self._seed, 2, progress.step])
        return self._setup.build_engine(), rng


class VirtualStepRunner(_VirtualRunner):
    """Runs a step through a fresh engine in virtual time; records start at time 0 (ns)."""

    async def run(
        self,
        progress: StepProgress,
        specs: Sequence[RequestSpec],
        offsets_s: npt.NDArray[np.float64],
        stop: StopSignal,
        max_concurrency: int | None = None,
    ) -> StepResult:
        """Every request of the step, simulated to its end (a stop ends the sweep after it);
        with `max_concurrency` 1, one at a time, each as the last ends (a synchronous step)."""
        engine, rng = self._start(progress)
        reasoning = self._setup.reasoning
        if max_concurrency not in (None, 1):
            raise ValueError("virtual time models no concurrency cap but 1 (synchronous)")
        if max_concurrency == 1:
            records = simulate_one_by_one(engine, specs, self._outputs, rng, reasoning)
        else:
            records = simulate_requests(engine, specs, offsets_s, self._outputs, rng, reasoning)
        return _result(progress, records)


class VirtualSessionRunner(_VirtualRunner):
    """Runs a step of multi-turn sessions through a fresh engine in virtual time (ns from 0)."""

    async def run(
        self,
        progress: StepProgress,
        sessions: Sequence[Session],
        offsets_s: npt.NDArray[np.float64],
        stop: StopSignal,
    ) -> StepResult:
        """Every session of the step started at its offset (s), each turn simulated to its end."""
        engine, rng = self._start(progress)
        reasoning = self._setup.reasoning
        records = simulate_sessions(engine, sessions, offsets_s, self._outputs, rng, reasoning)
        return _result(progress, records)


def _result(progress: StepProgress, records: list[RequestRecord]) -> StepResult:
    """The step's result, its progress counted; it lasted until the last record ended."""
    progress.sent = progress.done = len(records)
    progress.errors = sum(not record.ok for record in records)
    last_ns = max((record.t_done_ns for record in records), default=0)
    return StepResult(records, interrupted=False, duration_s=last_ns / 1e9)
