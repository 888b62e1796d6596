"""Repeated steps (`--repeats`): each figure's mean over the runs of a step, with its 95% interval.

The runs of one step differ in prompts and send times only, so they are independent draws of
the same figure: its mean gets a two-sided Student t interval over the runs (none for one run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loadgen.core.bootstrap import Interval, mean_interval
from loadgen.core.distributions import DISTRIBUTION_FIELDS
from loadgen.core.records import Distribution, StepFigures, StepSummary

# The rate and throughput figures of the step table; each distribution adds mean, p50, p90, p99.
SCALAR_FIGURES = (
    "achieved_rate_rps",
    "sequence_throughput_rps",
    "output_token_throughput_tps",
    "total_token_throughput_tps",
    "goodput_rps",
    "error_rate",
)
DISTRIBUTION_STATS = ("mean", "p50", "p90", "p99")


@dataclass(frozen=True, slots=True)
class RepeatedStep:
    """The runs of one step: their step numbers, and each figure's mean and 95% interval
    (keyed `sequence_throughput_rps`, `ttft_s.p99`, ...; a figure no run measured is left out)."""

    target_rate_rps: float
    synchronous: bool
    steps: tuple[int, ...]
    figures: dict[str, Interval]


def repeated_steps(steps: Sequence[StepSummary]) -> list[RepeatedStep]:
    """The steps run more than once, grouped: runs `repeat` 0, 1, ... follow one another."""
    groups: list[list[StepSummary]] = []
    for step in steps:
        if step.repeat == 0 or not groups:
            groups.append([step])
        else:
            groups[-1].append(step)
    return [_repeated(group) for group in groups if len(group) > 1]


def _repeated(runs: Sequence[StepSummary]) -> RepeatedStep:
    """One step's runs summed up (their kept figures)."""
    values: dict[str, list[float]] = {}
    for run in runs:
        for name, value in figure_values(run.trimmed).items():
            values.setdefault(name, []).append(value)
    figures = {name: mean_interval(found) for name, found in values.items()}
    first = runs[0]
    return RepeatedStep(
        first.target_rate_rps, first.synchronous, tuple(run.step for run in runs), figures
    )


def figure_values(figures: StepFigures) -> dict[str, float]:
    """The step-table figures of one step by name, those it measured."""
    values: dict[str, float] = {}
    for name in SCALAR_FIGURES:
        value = getattr(figures, name)
        if value is not None:
            values[name] = float(value)
    for name in DISTRIBUTION_FIELDS:
        dist: Distribution | None = getattr(figures, name)
        if dist is not None:
            values |= {f"{name}.{stat}": float(getattr(dist, stat)) for stat in DISTRIBUTION_STATS}
    return values


def repeats_document(steps: Sequence[StepSummary]) -> list[dict[str, Any]]:
    """summary.json's `repeats`: each repeated step's runs and figures {mean, low, high}."""
    return [
        {
            "target_rate_rps": step.target_rate_rps,
            "synchronous": step.synchronous,
            "steps": list(step.steps),
            "figures": {
                name: {"mean": interval.estimate, "low": interval.low, "high": interval.high}
                for name, interval in step.figures.items()
            },
        }
        for step in repeated_steps(steps)
    ]
