"""Repeated steps for people: the step table's headline figures as mean [95% interval]."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict

from rich.table import Table

from loadgen.core.bootstrap import Interval
from loadgen.core.records import StepSummary
from loadgen.core.repeats import RepeatedStep, repeated_steps

# (column title, figure key, scale to the shown unit, digits)
_COLUMNS = (
    ("req/s", "sequence_throughput_rps", 1.0, 2),
    ("out tok/s", "output_token_throughput_tps", 1.0, 1),
    ("TTFT ms p99", "ttft_s.p99", 1e3, 1),
    ("TPOT ms p99", "tpot_s.p99", 1e3, 2),
    ("E2E s p99", "e2e_s.p99", 1.0, 3),
    ("per-token ms p50", "per_token_latency_s.p50", 1e3, 2),
    ("errors %", "error_rate", 100.0, 2),
)


def repeats_table(steps: Sequence[StepSummary]) -> Table | None:
    """Each repeated step's headline figures over its runs; None when no step was repeated."""
    repeated = repeated_steps(steps)
    if not repeated:
        return None
    table = Table(title="repeated steps: mean [95% interval] over the runs", title_justify="left")
    for column in repeat_columns():
        table.add_column(column, justify="right")
    for step in repeated:
        table.add_row(*repeat_cells(step))
    return table


def repeat_columns() -> list[str]:
    """The columns of a table of repeated steps."""
    return ["target req/s", "runs", *(title for title, *_ in _COLUMNS)]


def repeat_cells(step: RepeatedStep) -> list[str]:
    """One repeated step's row: its rate, runs, and each figure as mean [low, high]."""
    cells = [_cell(step.figures.get(key), scale, digits) for _, key, scale, digits in _COLUMNS]
    return [_rate(step), str(len(step.steps)), *cells]


def _rate(step: RepeatedStep) -> str:
    if step.synchronous:
        return "sync"
    return "inf" if math.isinf(step.target_rate_rps) else f"{step.target_rate_rps:g}"


def _cell(interval: Interval | None, scale: float, digits: int) -> str:
    if interval is None:
        return "-"
    mean, low, high = (value * scale for value in asdict(interval).values())
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
