"""`loadgen simulate`: the sweep `loadgen sweep` would send, through the engine in virtual time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import numpy.typing as npt

from loadgen.config import RunConfig
from loadgen.core.records import RequestSpec
from loadgen.export.files import ResultsWriter
from loadgen.runtime.events import RunObserver, StepProgress
from loadgen.runtime.runner import StepResult, StopSignal
from loadgen.runtime.sweep_run import SweepOutcome, plan_arrivals, run_steps, stop_on_signals
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
        records = simulate_requests(
            self._setup.build_engine(), specs, offsets_s, self._outputs, rng
        )
        progress.sent = progress.done = len(records)
        progress.errors = sum(not record.ok for record in records)
        last_ns = max((record.t_done_ns for record in records), default=0)
        return StepResult(records, interrupted=False, duration_s=last_ns / 1e9)


def output_policy(config: RunConfig, eos_mean_tokens: float) -> OutputPolicy:
    """Output lengths as a vLLM server would give for the configured request options."""
    options = config.request_options("sim")
    return OutputPolicy(
        ignore_eos=bool(options.ignore_eos),
        min_tokens=options.min_tokens or 0,
        eos_mean_tokens=eos_mean_tokens,
    )


async def run_simulation(
    config: RunConfig,
    setup: SimSetup,
    observer: RunObserver,
    out_dir: Path,
    *,
    label: str,
    eos_mean_tokens: float = 256.0,
) -> SweepOutcome:
    """Run every step of `config` in virtual time and write results to `out_dir`."""
    plan = plan_arrivals(config)
    simulator = asdict(setup) | {"label": label}
    writer = ResultsWriter(
        out_dir, config.public_dict() | {"model": setup.model.name, "simulator": simulator}
    )
    runner = VirtualStepRunner(setup, output_policy(config, eos_mean_tokens), config.seed)
    stop = StopSignal()
    try:
        with stop_on_signals(stop):
            await run_steps(config, plan, runner, observer, writer, stop, label)
    finally:
        observer.on_run_end()
    return SweepOutcome(
        tuple(writer.steps), out_dir, setup.model.name, stop.stop_sending.is_set(), label
    )
