"""What each step of a target sends: its requests and their send times, from the config."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, cast

import numpy as np
import numpy.typing as npt

from loadgen.config import LoadConfig, RunConfig, TargetConfig
from loadgen.config.model import CapacityConfig
from loadgen.core.arrivals import ArrivalKind, send_offsets_s, send_offsets_within_s
from loadgen.core.records import RequestSpec
from loadgen.core.shards import Shard, deal, shard_offsets_s
from loadgen.core.sweep import SYNC_REQUESTS, SYNC_TRIM, StepOrder
from loadgen.runtime.workload import (
    build_sessions,
    build_workload,
    shape_prompts,
    step_specs,
    token_counter,
    workload_rng,
)
from loadgen.workloads import DatasetError, Workload
from loadgen.workloads.sessions import Session, SessionWorkload
from loadgen.workloads.tokenizers import ExactCounter
from loadgen.workloads.tokens import EstimateCounter
from loadgen.workloads.trace import TraceWorkload, load_trace

Offsets = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TargetPlan:
    """The steps one target is sent: the workload (or sessions), the rates (req/s), how send
    times are drawn.

    `trace_offsets_s` is a replayed trace's schedule (s), the same at every step; otherwise the
    arrival process draws one per step. `forced_lengths`: the output lengths were drawn, and
    mean something only if the server is asked to keep to them. `output_counter` counts output
    tokens with the target's tokenizer, for servers that stream no usage. With `sessions`,
    each step sends multi-turn sessions: its rate and size count sessions, not requests.
    With `capacity`, the steps search for the highest rate that meets its SLOs (`rates_rps`
    is then empty).
    """

    workload: Workload | None
    rates_rps: tuple[float, ...] | Literal["auto"]
    load: LoadConfig
    scenario: str
    forced_lengths: bool
    trace_offsets_s: Offsets | None = None
    output_counter: Callable[[str], int] | None = None
    shard: Shard | None = None
    sessions: SessionWorkload | None = None
    capacity: CapacityConfig | None = None

    def step(self, step: int, order: StepOrder) -> tuple[Sequence[RequestSpec], Offsets]:
        """Step `step`'s requests as `order` says and their send offsets (s from the step
        start): `order.scale` times the usual number (a synchronous step: up to SYNC_REQUESTS).

        A shard's plan gives its own share: its requests, drawn from its own seed.
        """
        if self.workload is None:
            raise RuntimeError("step() of a plan of sessions")
        if order.synchronous:
            offsets_s = np.zeros(min(self.load.num_requests, SYNC_REQUESTS), dtype=np.float64)
        else:
            offsets_s = self.offsets_s(order.rate_rps, scale=order.scale, repeat=order.repeat)
        specs = step_specs(self.workload, len(offsets_s), self.load.seed, step, self.shard)
        return specs, offsets_s

    def session_step(self, step: int, order: StepOrder) -> tuple[Sequence[Session], Offsets]:
        """Step `step`'s sessions as `order` says (its rate in sessions/s), their start
        offsets (s)."""
        if self.sessions is None:
            raise RuntimeError("session_step() of a plan of single requests")
        offsets_s = self.offsets_s(order.rate_rps, scale=order.scale, repeat=order.repeat)
        rng = workload_rng(self.load.seed, step)
        return self.sessions.sessions(len(offsets_s), rng), offsets_s

    def trim(self, order: StepOrder) -> int:
        """Requests a step of `order` leaves out at each end (fewer for a synchronous one)."""
        return min(self.load.trim, SYNC_TRIM) if order.synchronous else self.load.trim

    def offsets_s(
        self, rate_rps: float, shard: Shard | None = None, scale: int = 1, repeat: int = 0
    ) -> Offsets:
        """A step's send offsets (s from its start) at `rate_rps`, `scale` times as many as
        usual, for run `repeat` of the step: this plan's, or, from the whole run's plan, those
        of `shard`'s share."""
        shard = self.shard or shard
        if self.trace_offsets_s is not None:
            if shard is None or self.shard is not None:
                return self.trace_offsets_s
            return self.trace_offsets_s[deal(len(self.trace_offsets_s), shard, self.load.seed)]
        load = self.load
        kind = cast(ArrivalKind, load.arrival)
        num_requests = load.num_requests * scale
        duration_s = None if load.duration_s is None else load.duration_s * scale
        seed = repeat_seed(load.seed, repeat)
        if shard is not None:
            return shard_offsets_s(
                kind,
                rate_rps,
                shard,
                seed,
                num_requests=num_requests,
                duration_s=duration_s,
                burstiness=load.burstiness,
            )
        # One arrival stream for every step: steps differ only in scale (common random numbers).
        rng = np.random.default_rng([seed, 1])
        if duration_s is not None:
            return send_offsets_within_s(kind, rate_rps, duration_s, rng, load.burstiness)
        return send_offsets_s(kind, rate_rps, num_requests, rng, load.burstiness)


def repeat_seed(seed: int, repeat: int) -> int:
    """The arrival seed of run `repeat` of a step: `seed` itself for the first run."""
    if repeat == 0:
        return seed
    return int(np.random.SeedSequence([seed, repeat]).generate_state(1, np.uint32)[0])


def plan_target(config: RunConfig, target: TargetConfig, shard: Shard | None = None) -> TargetPlan:
    """The plan of `target` under `config`'s load (DatasetError when it cannot be built).

    A shard's plan sends its share of the load: its deal of a dataset's or a trace's requests.
    """
    plan = _plan_target(config, target, shard)
    if config.capacity.searching:
        plan = replace(plan, capacity=config.capacity)
    return plan


def _plan_target(config: RunConfig, target: TargetConfig, shard: Shard | None) -> TargetPlan:
    """The plan of `target` under `config`, before any capacity search is added."""
    load = config.load
    counter = token_counter(target.tokenizer)
    # The tokenizer also counts output tokens for servers that send no usage (DeepSpeed-MII).
    output_counter = None if isinstance(counter, EstimateCounter) else counter.count
    if config.workload.sessions:
        sessions = build_sessions(config.workload, counter)
        forced = config.workload.forced_lengths
        return TargetPlan(
            None, load.rates_rps, load, sessions.name, forced, None, output_counter, shard,
            sessions,
        )  # fmt: skip
    if load.trace is None:
        workload = build_workload(config.workload, target.endpoint, counter, shard)
        scenario = Path(config.workload.dataset).name
        forced = config.workload.forced_lengths
        return TargetPlan(
            workload, load.rates_rps, load, scenario, forced, None, output_counter, shard
        )
    return _trace_plan(config, target, counter, output_counter, shard)


def _trace_plan(
    config: RunConfig,
    target: TargetConfig,
    counter: ExactCounter | EstimateCounter,
    output_counter: Callable[[str], int] | None,
    shard: Shard | None,
) -> TargetPlan:
    """A replayed trace's plan: its requests at their recorded times, or a shard's deal of them."""
    load = config.load
    trace = load_trace(Path(load.trace or ""))
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
    rate_rps = trace.mean_rate_rps(load.time_scale)
    offsets_s = offsets_s[:kept]
    if shard is not None:
        rows = deal(kept, shard, load.seed)
        trace, offsets_s = trace.take(rows), offsets_s[rows]
    workload = shape_prompts(
        TraceWorkload(trace), config.workload, target.endpoint, counter, exact=True
    )
    scenario = f"trace:{Path(load.trace or '').name}"
    # A trace's recorded lengths are what it replays: forced, like generated ones.
    return TargetPlan(workload, (rate_rps,), load, scenario, True, offsets_s, output_counter, shard)


def plot_title(config: RunConfig) -> str:
    """What a sweep sends: dataset, arrival process and step size."""
    load = config.load
    size = f"{load.num_requests} requests" if load.duration_s is None else f"{load.duration_s:g} s"
    return (
        f"{config.workload.dataset} workload, {load.arrival} arrivals, "
        f"{size} per step (trim {load.trim})"
    )
