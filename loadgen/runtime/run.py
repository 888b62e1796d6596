"""Run a configuration: every target in turn, each swept by the same loop, outputs as observers.

Everything is planned before anything is sent, so a bad dataset, a missing API key or an
unusable simulator preset fails the run at once. A target that cannot be reached is reported
and skipped; a stop (SIGINT, SIGTERM) drains the step in flight and ends the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from loadgen.client.openai import ServerProbeError
from loadgen.config import ConfigError, RunConfig, TargetConfig
from loadgen.config.render import public_dump
from loadgen.core.events import (
    Observers,
    RunObserver,
    RunOutcome,
    TargetInfo,
    TargetOutcome,
)
from loadgen.core.records import StepSummary
from loadgen.export.files import ResultsWriter
from loadgen.report.sweep_plot import SweepPlotter
from loadgen.runtime.metrics_server import live_metrics
from loadgen.runtime.plan import TargetPlan, plan_target, plot_title
from loadgen.runtime.runner import StopSignal
from loadgen.runtime.sweep import ShardError, StepExecutor, sweep_steps
from loadgen.runtime.targets import OpenTarget, api_key, open_http, open_virtual
from loadgen.runtime.workload import prefix_note
from loadgen.sim.embedded import SimProcessError
from loadgen.sim.settings import SimSetup, resolve

# What makes one target unsweepable without ending the run.
TARGET_FAILURES = (ServerProbeError, SimProcessError, ShardError, OSError)


class Distributor(Protocol):
    """Runs a run's steps elsewhere than in this process: on a cluster's shards."""

    def executor(
        self, index: int, opened: OpenTarget, plan: TargetPlan, observer: RunObserver
    ) -> contextlib.AbstractAsyncContextManager[StepExecutor]:
        """What runs the steps of target `index` (of `run_targets()`), opened here as `opened`."""
        ...


# Starts a distributor once the run is planned; it tells what happens to the observer given.
Distributing = Callable[[RunObserver], contextlib.AbstractAsyncContextManager[Distributor]]


@dataclass(frozen=True, slots=True)
class _RunFacts:
    """What every target of a run shares in its TargetInfo, worked out once."""

    run_id: str
    config: dict[str, Any]
    plot_title: str


@dataclass(slots=True)
class _Run:
    """What every target of a run is swept with."""

    config: RunConfig
    setup: SimSetup | None
    stop: StopSignal
    virtual: bool
    distributor: Distributor | None = None


@dataclass(frozen=True, slots=True)
class _Planned:
    """A target with its plan, checked before anything is sent."""

    target: TargetConfig
    plan: TargetPlan


async def run_config(
    config: RunConfig,
    observer: RunObserver | None = None,
    *,
    virtual: bool = False,
    stop: StopSignal | None = None,
    handle_signals: bool = True,
    distributing: Distributing | None = None,
) -> RunOutcome:
    """Sweep every target of `config`; results go to `config.output.out_dir` when it is set.

    `virtual` runs the steps through the simulated engine in virtual time (no server, no
    waiting); `distributing` starts what runs them elsewhere (a cluster), once the run is
    planned: `config.cluster` means nothing here (`loadgen.cluster.run.run` reads it).
    `observer` hears every event, after the run's own outputs. ConfigError, DatasetError or
    PresetError before anything is sent when the run cannot start.
    """
    planned = _plan(config, virtual)
    setup = _sim_setup(config, planned, virtual)
    stop = stop or StopSignal()
    run = _Run(config, setup, stop, virtual)
    try:
        with _signals_to(stop) if handle_signals else contextlib.nullcontext():
            return await _run_targets(run, planned, observer, distributing)
    finally:
        gc.unfreeze()  # what the steps set aside (settle_garbage) is the collector's again


async def _run_targets(
    run: _Run,
    planned: list[_Planned],
    observer: RunObserver | None,
    distributing: Distributing | None,
) -> RunOutcome:
    """Sweep the planned targets in turn, with the run's outputs and metrics around them."""
    config, stop = run.config, run.stop
    user = observer or RunObserver()
    out_dir = config.output.out_dir
    run_id = out_dir.name if out_dir is not None else datetime.now().strftime("%Y%m%d-%H%M%S")
    facts = _RunFacts(run_id, public_dump(config), plot_title(config))
    outcomes: list[TargetOutcome] = []
    async with live_metrics(config.metrics, run_id, user, stop) as exporters:
        outputs: list[RunObserver] = []
        if out_dir is not None:
            outputs += [ResultsWriter(), SweepPlotter(out_dir)]
        hub = Observers(*outputs, *exporters, user)
        async with contextlib.AsyncExitStack() as stack:
            if distributing is not None:
                run.distributor = await stack.enter_async_context(distributing(hub))
            for index, item in enumerate(planned):
                if stop.stop_sending.is_set():
                    break
                outcomes.append(await _sweep_target(run, index, item, hub, facts))
        outcome = RunOutcome(tuple(outcomes), stop.stop_sending.is_set())
        hub.on_run_end(outcome)
    return outcome


def virtual_problems(config: RunConfig) -> list[tuple[tuple[str, ...], str]]:
    """What a virtual-time run cannot do with `config`: (field path, why) pairs."""
    problems: list[tuple[tuple[str, ...], str]] = []
    for i, target in enumerate(config.run_targets()):
        if target.base_url is not None:
            path: tuple[str, ...] = (
                ("targets", str(i), "base_url") if config.targets else ("target", "base_url")
            )
            problems.append((path, "simulating in virtual time sends to no server"))
    if config.load.max_concurrency is not None:
        problems.append((("load", "max_concurrency"), "not modelled in virtual time"))
    if config.cluster.processes is not None:
        problems.append((("cluster", "processes"), "virtual time runs in one process"))
    return problems


def _plan(config: RunConfig, virtual: bool) -> list[_Planned]:
    """Every target's plan, API keys checked (ConfigError, DatasetError: nothing sent yet)."""
    if virtual:
        for path, why in virtual_problems(config):
            raise ConfigError(f"{'.'.join(path)}: {why}")
    planned = []
    for target in config.run_targets():
        try:
            if not virtual:
                api_key(target)
            planned.append(_Planned(target, plan_target(config, target)))
        except ConfigError as exc:
            where = f"target {target.name}: " if target.name else ""
            raise ConfigError(f"{where}{exc}") from None
    return planned


def _sim_setup(config: RunConfig, planned: list[_Planned], virtual: bool) -> SimSetup | None:
    """The simulated engine, when a target needs it (PresetError when it cannot be built)."""
    if virtual or any(item.target.base_url is None for item in planned):
        return resolve(config.sim)
    return None


def _opener(
    run: _Run, item: _Planned, hub: RunObserver
) -> contextlib.AbstractAsyncContextManager[OpenTarget]:
    if run.virtual:
        if run.setup is None:
            raise ConfigError("simulating needs the simulated engine's setup")
        return open_virtual(run.config, item.target, item.plan, run.setup)
    return open_http(run.config, item.target, item.plan, hub, run.setup)


def _notes(target_notes: Mapping[str, Any], config: RunConfig) -> dict[str, Any]:
    """What summary.json says about the target and the workload (its shared prefixes)."""
    note = prefix_note(config.workload)
    return {**target_notes, **({"prefixes": note} if note is not None else {})}


async def _sweep_target(
    run: _Run, index: int, item: _Planned, hub: RunObserver, facts: _RunFacts
) -> TargetOutcome:
    """One target's sweep; a failure to reach it becomes its outcome."""
    target, config = item.target, run.config
    steps: list[StepSummary] = []
    info: TargetInfo | None = None
    error: Exception | None = None
    try:
        async with contextlib.AsyncExitStack() as stack:
            opened = await stack.enter_async_context(_opener(run, item, hub))
            executor = opened.executor
            if run.distributor is not None:
                executor = await stack.enter_async_context(
                    run.distributor.executor(index, opened, item.plan, hub)
                )
            info = TargetInfo(
                name=target.name,
                label=opened.label,
                model=opened.model,
                base_url=opened.base_url,
                scenario=item.plan.scenario,
                run_id=facts.run_id,
                out_dir=_target_dir(config, target),
                plot_title=facts.plot_title,
                config=facts.config,
                notes=_notes(opened.notes, config),
            )
            hub.on_target_start(info)
            go_on = config.cluster.on_worker_loss == "continue"
            await sweep_steps(
                item.plan,
                executor,
                hub,
                run.stop,
                steps,
                past_invalid=go_on,
                scraper=opened.scraper,
            )
    except TARGET_FAILURES as exc:
        error = exc
    label = info.label if info is not None else target.name or target.base_url or "simulator"
    outcome = TargetOutcome(target.name, label, info, tuple(steps), error)
    hub.on_target_end(outcome)
    return outcome


def _target_dir(config: RunConfig, target: TargetConfig) -> Path | None:
    """Where a target's results go: the run's folder, or its subfolder for a named target."""
    out_dir = config.output.out_dir
    if out_dir is None or target.name is None:
        return out_dir
    return out_dir / target.name


@contextlib.contextmanager
def _signals_to(stop: StopSignal) -> Iterator[None]:
    """Route SIGINT and SIGTERM to `stop` while inside (first: drain, second: abandon)."""
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.request_stop)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or no signals here: Ctrl-C then ends the process
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
