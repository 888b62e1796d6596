"""Sweep several targets one after another with the same load, reporting to one metrics registry.

One at a time, so no target's load disturbs another's figures. A target that cannot be swept
(unreachable, refusing its model) is reported and skipped; a stop ends the whole run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadgen.client.openai import ServerProbeError
from loadgen.config import ConfigError, RunConfig
from loadgen.report.sweep_plot import write_sweep_plot
from loadgen.runtime.events import RunObserver
from loadgen.runtime.metrics_server import live_metrics
from loadgen.runtime.runner import StopSignal
from loadgen.runtime.sweep_run import SweepOutcome, plot_title, stop_on_signals, sweep_target
from loadgen.workloads import DatasetError


@dataclass(frozen=True, slots=True)
class TargetFailure:
    """A target that could not be swept, and why."""

    name: str
    error: Exception


@dataclass(frozen=True, slots=True)
class TargetsOutcome:
    """What a multi-target run produced: each swept target's outcome, and the failures."""

    swept: tuple[SweepOutcome, ...]
    failures: tuple[TargetFailure, ...]
    interrupted: bool


async def run_targets(
    targets: Sequence[tuple[str, RunConfig]],
    make_observer: Callable[[str], RunObserver],
    out_dir: Path,
    *,
    stop: StopSignal | None = None,
    on_model: Callable[[str, str], None] | None = None,
    on_metrics: Callable[[str], None] | None = None,
) -> TargetsOutcome:
    """Sweep each (name, config) into `out_dir/name/`, then plot all in `out_dir/sweep.png`.

    Live metrics (served or pushed as the first target's config says) label each target by its
    name; `on_model` gets (name, model) as each target starts.
    """
    stop = stop or StopSignal()
    first = targets[0][1]
    swept: list[SweepOutcome] = []
    failures: list[TargetFailure] = []
    with stop_on_signals(stop):
        async with live_metrics(first.metrics, first.pushgateway, out_dir.name, on_metrics) as live:
            for name, config in targets:
                if stop.stop_sending.is_set():
                    break
                announce = None if on_model is None else _named(on_model, name)
                try:
                    outcome = await sweep_target(
                        config,
                        make_observer(name),
                        out_dir / name,
                        stop,
                        live,
                        on_model=announce,
                        label=name,
                        notes={"target": name},
                    )
                except (ConfigError, DatasetError, ServerProbeError, OSError) as exc:
                    failures.append(TargetFailure(name, exc))
                    continue
                swept.append(outcome)
                series = {done.label: done.steps for done in swept}
                write_sweep_plot(out_dir / "sweep.png", series, plot_title(config))
    return TargetsOutcome(tuple(swept), tuple(failures), stop.stop_sending.is_set())


def _named(on_model: Callable[[str, str], None], name: str) -> Callable[[str], None]:
    return lambda model: on_model(name, model)
