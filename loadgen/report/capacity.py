"""A capacity search for people: each step's verdict under the SLOs, and what was found."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text

from loadgen.core.capacity import ERROR_RATE, CapacityAnswer
from loadgen.core.records import SloCheck, StepSummary, Verdict

STYLES: dict[Verdict, str] = {"holds": "green", "fails": "red", "undecided": "yellow"}


def search_columns(steps: Sequence[StepSummary]) -> list[str]:
    """The columns of a search's table: step, rate, sent, one per SLO (with its limit), verdict."""
    first = next((step.slo for step in steps if step.slo is not None), None)
    checks = first.checks if first is not None else ()
    limits = [f"{check.key} ≤ {_number(check.key, check.limit)}" for check in checks]
    return ["step", "rate (req/s)", "sent", *limits, "verdict"]


def search_rows(steps: Sequence[StepSummary]) -> list[tuple[list[str], Verdict]]:
    """Each searched step's cells (each SLO: figure [95% interval]) and its verdict."""
    rows = []
    for step in steps:
        if step.slo is None:
            continue
        verdict = step.slo.verdict + (" (over-saturated)" if step.over_saturated else "")
        cells = [
            str(step.step),
            f"{step.target_rate_rps:.4g}",
            str(step.num_sent),
            *(check_text(check) for check in step.slo.checks),
            verdict,
        ]
        rows.append((cells, step.slo.verdict))
    return rows


def capacity_table(label: str, steps: Sequence[StepSummary], answer: CapacityAnswer) -> Group:
    """The steps a search ran and its answer, for the console."""
    table = Table(title=f"capacity search: {label}", title_justify="left")
    for column in search_columns(steps):
        table.add_column(column, justify="left" if column == "verdict" else "right")
    for cells, verdict in search_rows(steps):
        table.add_row(*cells[:-1], Text(cells[-1], style=STYLES[verdict]))
    return Group(table, Text(answer_line(answer)))


def answer_line(answer: CapacityAnswer) -> str:
    """One line on what the search found."""
    if answer.capacity_rps is None:
        return f"capacity: not found (no rate held; {answer.steps} steps)"
    if answer.fails_rps is None:
        return f"capacity: at least {answer.capacity_rps:.4g} req/s (no rate failed)"
    width = f"within {answer.resolution:.0%}" if answer.converged else "not converged"
    return (
        f"capacity: {answer.capacity_rps:.4g} req/s (held at {answer.capacity_rps:.4g}, "
        f"failed at {answer.fails_rps:.4g}; {width}; {answer.steps} steps)"
    )


def check_text(check: SloCheck) -> str:
    """One SLO on one step: its figure and 95% interval, or why it has none."""
    if check.estimate is None:
        return check.why or check.verdict
    shown = _number(check.key, check.estimate)
    if check.low is not None and check.high is not None:
        shown += f" [{_number(check.key, check.low)}, {_number(check.key, check.high)}]"
    return shown


def _number(key: str, value: float) -> str:
    """A figure of SLO `key`: a share as a percentage, seconds with 3 significant digits."""
    if key == ERROR_RATE:
        return f"{value:.2%}"
    return "inf" if math.isinf(value) else f"{value:.3g}"
