"""What each step of a target sends: its requests and their send times, from the config."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt

from loadgen.config import LoadConfig, RunConfig, TargetConfig
from loadgen.core.arrivals import ArrivalKind, send_offsets_s, send_offsets_within_s
from loadgen.core.records import RequestSpec
from loadgen.runtime.workload import build_workload, shape_prompts, token_counter, workload_rng
from loadgen.workloads import DatasetError, Workload
from loadgen.workloads.tokens import EstimateCounter
from loadgen.workloads.trace import TraceWorkload, load_trace

Offsets = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TargetPlan:
    """The steps one target is sent: the workload, the rates (req/s), how send times are drawn.

    `trace_offsets_s` is a replayed trace's schedule (s), the same at every step; otherwise the
    arrival process draws one per step. `forced_lengths`: the output lengths were drawn, and
    mean something only if the server is asked to keep to them. `output_counter` counts output
    tokens with the target's tokenizer, for servers that stream no usage.
    """

    workload: Workload
    rates_rps: tuple[float, ...]
    load: LoadConfig
    scenario: str
    forced_lengths: bool
    trace_offsets_s: Offsets | None = None
    output_counter: Callable[[str], int] | None = None

    def step(self, step: int, rate_rps: float) -> tuple[Sequence[RequestSpec], Offsets]:
        """Step `step`'s requests at `rate_rps` and their send offsets (s from the step start)."""
        offsets_s = self._offsets(rate_rps)
        return self.workload.specs(len(offsets_s), workload_rng(self.load.seed, step)), offsets_s

    def _offsets(self, rate_rps: float) -> Offsets:
        if self.trace_offsets_s is not None:
            return self.trace_offsets_s
        load = self.load
        kind = cast(ArrivalKind, load.arrival)
        # One arrival stream for every step: steps differ only in scale (common random numbers).
        rng = np.random.default_rng([load.seed, 1])
        if load.duration_s is not None:
            return send_offsets_within_s(kind, rate_rps, load.duration_s, rng, load.burstiness)
        return send_offsets_s(kind, rate_rps, load.num_requests, rng, load.burstiness)


def plan_target(config: RunConfig, target: TargetConfig) -> TargetPlan:
    """The plan of `target` under `config`'s load (DatasetError when it cannot be built)."""
    load = config.load
    counter = token_counter(target.tokenizer)
    # The tokenizer also counts output tokens for servers that send no usage (DeepSpeed-MII).
    output_counter = None if isinstance(counter, EstimateCounter) else counter.count
    if load.trace is None:
        workload = build_workload(config.workload, target.endpoint, counter)
        scenario = Path(config.workload.dataset).name
        forced = config.workload.forced_lengths
        return TargetPlan(workload, load.rates_rps, load, scenario, forced, None, output_counter)
    trace = load_trace(Path(load.trace))
    offsets_s = trace.scaled_offsets_s(load.time_scale)
    kept = len(trace) if load.duration_s is None else int((offsets_s < load.duration_s).sum())
    if load.duration_s is None:
        kept = min(kept, load.num_requests)
    trace = trace.head(kept)
    if len(trace) <= 2 * load.trim:
        raise DatasetError(
            f"{load.trace}: {len(trace)} usable requests; trimming {load.trim} from each end "
            "needs more (use a smaller trim)"
        )
    workload = shape_prompts(
        TraceWorkload(trace), config.workload, target.endpoint, counter, exact=True
    )
    rate_rps = trace.mean_rate_rps(load.time_scale)
    scenario = f"trace:{Path(load.trace).name}"
    # A trace's recorded lengths are what it replays: forced, like generated ones.
    return TargetPlan(workload, (rate_rps,), load, scenario, True, offsets_s[:kept], output_counter)


def plot_title(config: RunConfig) -> str:
    """What a sweep sends: dataset, arrival process and step size."""
    load = config.load
    size = f"{load.num_requests} requests" if load.duration_s is None else f"{load.duration_s:g} s"
    return (
        f"{config.workload.dataset} workload, {load.arrival} arrivals, "
        f"{size} per step (trim {load.trim})"
    )
