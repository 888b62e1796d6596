"""`loadgen compare`: two results folders' matched steps compared, as a table, JSON or HTML cells.

A folder of one target is compared with the other folder step by step at equal target rates.
When either side is a sweep file's folder (one subfolder per target), targets pair by name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich import box
from rich.table import Table
from rich.text import Text

from loadgen.core.bootstrap import CONFIDENCE
from loadgen.core.compare import (
    ERROR_RATE,
    ERROR_RATE_MARGIN,
    LATENCY_COLUMNS,
    THRESHOLD,
    Comparison,
    FigureComparison,
    StepKey,
    StepSample,
    compare_steps,
)
from loadgen.core.records import StepSummary
from loadgen.report.console import rate_text
from loadgen.report.results import ResultsError, RunResults, load_results, results_folders

COLUMNS = ("target", "rate", "figure", "base", "new", "change", "95% interval", "verdict")
VERDICT_STYLES = {"worse": "bold red", "better": "green"}
_LEFT = ("target", "figure", "verdict")
_TITLES = {
    "sequence_throughput_rps": "throughput (req/s)",
    "output_token_throughput_tps": "output (tok/s)",
    "ttft": "TTFT",
    "tpot": "TPOT",
    "e2e": "E2E",
    "per_token_latency": "per-token",
    ERROR_RATE: "error rate (%)",
}


@dataclass(frozen=True, slots=True)
class RunComparison:
    """Two runs' comparison and what was compared: each side's folders and target labels."""

    base: tuple[RunResults, ...]
    new: tuple[RunResults, ...]
    comparison: Comparison


def compare_folders(
    base: Path, new: Path, *, threshold: float = THRESHOLD, seed: int = 0
) -> RunComparison:
    """Load and compare two results folders (ResultsError, CompareError on bad input)."""
    base_runs = tuple(load_results(path) for path in results_folders([base]))
    new_runs = tuple(load_results(path) for path in results_folders([new]))
    by_name = len(base_runs) > 1 or len(new_runs) > 1
    comparison = compare_steps(
        [s for run in base_runs for s in step_samples(run, run.label if by_name else "")],
        [s for run in new_runs for s in step_samples(run, run.label if by_name else "")],
        threshold=threshold,
        seed=seed,
    )
    return RunComparison(base_runs, new_runs, comparison)


def compare_runs(
    base: RunResults, new: RunResults, *, threshold: float = THRESHOLD, seed: int = 0
) -> Comparison:
    """Two loaded runs compared at equal target rates, whatever their targets are called."""
    return compare_steps(
        step_samples(base, ""), step_samples(new, ""), threshold=threshold, seed=seed
    )


def step_samples(run: RunResults, target: str) -> list[StepSample]:
    """Each step's kept requests (requests.jsonl rows in phase "measure") as arrays."""
    try:
        kept: dict[int, list[Mapping[str, Any]]] = {}
        for row in run.requests:
            if row["phase"] == "measure":
                kept.setdefault(row["step"], []).append(row)
        return [_step_sample(step, kept.get(step.step, []), target, run.path) for step in run.steps]
    except ResultsError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultsError(f"{run.path}/requests.jsonl: not loadgen request rows ({exc})") from None


def _step_sample(
    step: StepSummary, rows: Sequence[Mapping[str, Any]], target: str, path: Path
) -> StepSample:
    """The kept `rows` of `step` as arrays (ResultsError when there is none)."""
    if not rows:
        raise ResultsError(
            f"{path}: requests.jsonl has no kept request of step {step.step + 1}; "
            "compare needs every request"
        )
    successes = [row for row in rows if row["ok"]]
    latencies = {
        column: np.array([_float(row.get(column)) for row in successes], dtype=np.float64)
        for column in LATENCY_COLUMNS
    }
    return StepSample(
        target=target,
        step=step.step,
        target_rate_rps=step.target_rate_rps,
        ok=np.array([bool(row["ok"]) for row in rows], dtype=np.bool_),
        window_s=step.trimmed.window_s,
        tokens_out=np.array([row["tokens_out"] for row in successes], dtype=np.float64),
        latencies_s=latencies,
        synchronous=step.synchronous,
    )


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def figure_title(name: str) -> str:
    """A figure's name for people, with its unit: "ttft_p99_s" -> "TTFT p99 (ms)"."""
    if name in _TITLES:
        return _TITLES[name]
    stem, _, percentile = name.removesuffix("_s").rpartition("_")
    return f"{_TITLES[stem]} {percentile} (ms)"


def value_text(name: str, value: float | None, *, signed: bool = False) -> str:
    """A figure's value in its title's unit: ms for latencies, req/s, tok/s, % for errors."""
    if value is None:
        return "-"
    sign = "+" if signed else ""
    if name == ERROR_RATE:
        return f"{value * 100:{sign}.2f}"
    if name.endswith("_s"):
        return f"{value * 1e3:{sign}.2f}"
    return f"{value:{sign}.2f}"


def figure_cells(figure: FigureComparison) -> tuple[str, ...]:
    """figure, base, new, change, 95% interval, verdict: the text of one figure's row."""
    name, diff = figure.name, figure.difference
    if figure.relative_change is None or diff is None:
        change = interval = "-"
    else:
        low, high = (value_text(name, end, signed=True) for end in (diff.low, diff.high))
        interval = f"[{low}, {high}]"
        change = (
            f"{value_text(name, diff.estimate, signed=True)} pp"
            if name == ERROR_RATE
            else _percent(figure.relative_change)
        )
    return (
        figure_title(name), value_text(name, figure.base), value_text(name, figure.new),
        change, interval, figure.verdict,
    )  # fmt: skip


def _percent(share: float) -> str:
    return f"{share:+.0%}" if math.isinf(share) else f"{share * 100:+.1f}%"


def rule_text(threshold: float = THRESHOLD, confidence: float = CONFIDENCE) -> str:
    """The verdict rule with its threshold (a share) and confidence, in one sentence."""
    return (
        f"worse / better: the {confidence:.0%} bootstrap interval of new - base lies wholly on "
        f"one side of 0 and the change passes {threshold:.1%} of the base value "
        f"({ERROR_RATE_MARGIN * 100:g} percentage point for the error rate)"
    )


def unmatched_text(comparison: Comparison) -> list[str]:
    """One line per side with steps that matched none ([] when every step matched)."""
    lines = []
    for side, keys in (("base", comparison.unmatched_base), ("new", comparison.unmatched_new)):
        if keys:
            lines.append(f"not compared, only in the {side} run: {_steps_text(keys)}")
    return lines


def _steps_text(keys: Sequence[StepKey]) -> str:
    return ", ".join(
        f"{key.target + ' ' if key.target else ''}step {key.step + 1} "
        f"({rate_text(key.target_rate_rps)} req/s)"
        for key in keys
    )


def console_table(result: RunComparison) -> Table:
    """The comparison as a rich table: worse in red, better in green."""
    comparison = result.comparison
    base = ", ".join(run.label for run in result.base)
    new = ", ".join(run.label for run in result.new)
    table = Table(
        title=f"compare: base {base}  vs  new {new}",
        title_justify="left",
        caption=rule_text(comparison.threshold, comparison.confidence),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    with_target = any(step.target for step in comparison.steps)
    columns = COLUMNS if with_target else COLUMNS[1:]
    for name in columns:
        table.add_column(name, justify="left" if name in _LEFT else "right")
    for step in comparison.steps:
        for i, figure in enumerate(step.figures):
            cells = figure_cells(figure)
            first = (step.target, rate_text(step.target_rate_rps)) if i == 0 else ("", "")
            style = VERDICT_STYLES.get(figure.verdict, "")
            table.add_row(
                *(first if with_target else first[1:]), *cells[:-1], Text(cells[-1], style=style),
                end_section=i == len(step.figures) - 1,
            )  # fmt: skip
    return table


def comparison_json(result: RunComparison) -> dict[str, Any]:
    """The comparison as a JSON document (an infinite rate or change as "inf" / "-inf")."""
    comparison = result.comparison
    return {
        "base": [{"path": str(run.path), "label": run.label} for run in result.base],
        "new": [{"path": str(run.path), "label": run.label} for run in result.new],
        "threshold": comparison.threshold,
        "error_rate_margin": ERROR_RATE_MARGIN,
        "confidence": comparison.confidence,
        "seed": comparison.seed,
        "worse": comparison.worse,
        "steps": [
            {
                "target": step.target,
                "target_rate_rps": _json_number(step.target_rate_rps),
                "base_step": step.base_step,
                "new_step": step.new_step,
                "figures": [_figure_json(figure) for figure in step.figures],
            }
            for step in comparison.steps
        ],
        "unmatched": {
            "base": [_key_json(key) for key in comparison.unmatched_base],
            "new": [_key_json(key) for key in comparison.unmatched_new],
        },
    }


def _figure_json(figure: FigureComparison) -> dict[str, Any]:
    diff = figure.difference
    return {
        "figure": figure.name,
        "better": "higher" if figure.higher_is_better else "lower",
        "base": figure.base,
        "new": figure.new,
        "difference": None if diff is None else diff.estimate,
        "low": None if diff is None else diff.low,
        "high": None if diff is None else diff.high,
        "relative_change": _json_number(figure.relative_change),
        "verdict": figure.verdict,
    }


def _key_json(key: StepKey) -> dict[str, Any]:
    return {"target": key.target, "step": key.step,
            "target_rate_rps": _json_number(key.target_rate_rps)}  # fmt: skip


def _json_number(value: float | None) -> float | str | None:
    if value is not None and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value
