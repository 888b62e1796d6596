"""`loadgen report`: one self-contained report.html from one or more results folders.

The page holds a summary table per target, the sweep curves (the same three panels as
`sweep.png`, one colour per target), the latency distributions of every step, and each run's
configuration (as summary.json has it: header values hidden, no API key). Images are PNGs
embedded as data URIs, so the file can be mailed or archived alone.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadgen.core.capacity import capacity_answer
from loadgen.core.compare import CompareError
from loadgen.core.distributions import DISTRIBUTIONS
from loadgen.core.repeats import repeated_steps
from loadgen.report.capacity import answer_line, search_columns, search_rows
from loadgen.report.compare import COLUMNS as COMPARE_COLUMNS
from loadgen.report.compare import compare_runs, figure_cells, rule_text, unmatched_text
from loadgen.report.console import rate_text, step_rate_text
from loadgen.report.repeats import repeat_cells, repeat_columns
from loadgen.report.results import ResultsError, RunResults
from loadgen.report.server_view import (
    SERVER_COLUMNS,
    TURN_COLUMNS,
    reasoning_rows,
    scraped,
    server_cells,
    turn_cells,
)
from loadgen.report.sweep_plot import plot_sweep

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_DPI = 110
# Request latencies drawn per step: the requests.jsonl columns, each with its axis label.
_LATENCIES = (
    ("ttft_s", "time to first token (s)"),
    ("e2e_s", "end-to-end latency (s)"),
    ("per_token_latency_s", "per-token latency (s/token)"),
)
_TITLES = {spec.field: spec.title for spec in DISTRIBUTIONS}
_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: right; }
th { background: #eee; }
img { max-width: 100%; display: block; margin: 1em 0; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.8em; }
tr.worse td:last-child { color: #b00; font-weight: bold; }
tr.better td:last-child { color: #070; }
tr.fails td:last-child { color: #b00; font-weight: bold; }
tr.holds td:last-child { color: #070; }
tr.undecided td:last-child { color: #a60; }
"""
# Comparison rows carry their verdict as a class (a row without one is a step's table row).
_VERDICT_CLASSES = {"worse": "worse", "better": "better", "no significant change": "same",
                    "not measured": "unmeasured"}  # fmt: skip
_COLUMNS = (
    "target req/s", "achieved req/s", "req/s", "out tok/s", "per-token ms p50",
    "TTFT ms p50", "TTFT ms p99", "TTFA ms p50", "TPOT ms p50", "E2E s p50",
    "reasoning / answer tok", "ok", "errors",
)  # fmt: skip


def _png(figure: Figure) -> str:
    """`figure` as a PNG data URI."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _image(uri: str, alt: str) -> str:
    # data-ok marks images the browser decoded (read back by the report's browser test).
    return f'<img src="{uri}" alt="{html.escape(alt)}" onload="this.dataset.ok=1">'


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.1f}"


def _table(run: RunResults) -> str:
    """The steps of one run as an HTML table."""
    rows = []
    for step in run.steps:
        f = step.trimmed
        cells = (
            step_rate_text(step),
            "-" if f.achieved_rate_rps is None else f"{f.achieved_rate_rps:.2f}",
            f"{f.sequence_throughput_rps:.2f}",
            f"{f.output_token_throughput_tps:.1f}",
            _ms(f.per_token_latency_s.p50 if f.per_token_latency_s else None),
            _ms(f.ttft_s.p50 if f.ttft_s else None),
            _ms(f.ttft_s.p99 if f.ttft_s else None),
            _ms(f.ttfa_s.p50 if f.ttfa_s else None),
            _ms(f.tpot_s.p50 if f.tpot_s else None),
            "-" if f.e2e_s is None else f"{f.e2e_s.p50:.2f}",
            " / ".join(value for _, value in reasoning_rows(f)) or "-",
            str(f.num_ok),
            str(f.num_errors),
        )
        rows.append(_cells(cells))
    return _html_table(_COLUMNS, rows)


def _html_table(columns: Sequence[str], rows: Sequence[str], kind: str = "steps") -> str:
    """A table (class `kind`) of `columns` over the already rendered `rows`."""
    head = "".join(f"<th>{html.escape(name)}</th>" for name in columns)
    return f'<table class="{kind}"><tr>{head}</tr>{"".join(rows)}</table>'


def _cells(cells: Sequence[str]) -> str:
    return "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"


def _turn_tables(run: RunResults) -> str:
    """Each step of sessions' figures by turn number ('' for steps of single requests)."""
    parts = []
    for step in run.steps:
        if step.sessions is None:
            continue
        rows = [_cells(cells) for cells in turn_cells(step.sessions)]
        rate = rate_text(step.target_rate_rps)
        parts.append(
            f"<h3>{rate} sessions/s: by turn</h3>" + _html_table(TURN_COLUMNS, rows, "turns")
        )
    return "".join(parts)


def _server_table(run: RunResults) -> str:
    """The server's own view of each step, when its metrics were scraped ('' when never)."""
    steps = scraped(run.steps)
    if not steps:
        return ""
    rows = [
        _cells((rate_text(step.target_rate_rps), *server_cells(server))) for step, server in steps
    ]
    title = "<h3>The server's view (from its /metrics)</h3>"
    return title + _html_table(("target req/s", *SERVER_COLUMNS), rows, "server")


def _capacity_section(run: RunResults) -> str:
    """A capacity search's steps, verdicts and answer ('' for a run of fixed rates)."""
    rows = search_rows(run.steps)
    if not rows:
        return ""
    resolution = float(run.config.get("capacity", {}).get("resolution", 0.05))
    answer = answer_line(capacity_answer(run.steps, resolution))
    table_rows = [
        f'<tr class="{verdict}">' + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
        for cells, verdict in rows
    ]
    title = f"<h3>Capacity search</h3><p><b>{html.escape(answer)}</b></p>"
    return title + _html_table(search_columns(run.steps), table_rows, "capacity")


def _repeats_section(run: RunResults) -> str:
    """Repeated steps' figures as mean [95% interval] ('' when no step was repeated)."""
    repeated = repeated_steps(run.steps)
    if not repeated:
        return ""
    rows = [_cells(repeat_cells(step)) for step in repeated]
    title = "<h3>Repeated steps: mean [95% interval] over the runs</h3>"
    return title + _html_table(repeat_columns(), rows, "repeats")


def _comparison_section(runs: Sequence[RunResults]) -> str:
    """Each later run against the first over steps at equal target rates ('' for one run)."""
    if len(runs) < 2:
        return ""
    base = runs[0]
    parts = [f"<h2>Comparison</h2><p>{html.escape(rule_text())}</p>"]
    for new in runs[1:]:
        title = f"<h3>{html.escape(_named(new))} against the base, {html.escape(_named(base))}</h3>"
        try:
            comparison = compare_runs(base, new)
        except (CompareError, ResultsError) as exc:
            parts.append(f"{title}<p>not compared: {html.escape(str(exc))}</p>")
            continue
        rows = [
            _verdict_row((rate_text(step.target_rate_rps), *figure_cells(figure)))
            for step in comparison.steps
            for figure in step.figures
        ]
        notes = "".join(f"<p>{html.escape(line)}</p>" for line in unmatched_text(comparison))
        parts.append(title + _html_table(COMPARE_COLUMNS[1:], rows, "comparison") + notes)
    return "".join(parts)


def _named(run: RunResults) -> str:
    """A run's label and folder, which tell apart two runs of one target."""
    return f"{run.label} ({run.path})"


def _verdict_row(cells: Sequence[str]) -> str:
    """A comparison row, its class the verdict in its last cell."""
    tds = "".join(f"<td>{html.escape(c)}</td>" for c in cells)
    return f'<tr class="{_VERDICT_CLASSES[cells[-1]]}">{tds}</tr>'


def latency_figure(run: RunResults) -> Figure:
    """Box plots of TTFT, E2E and per-token latency of each step's kept successes."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(15.0, 4.5), layout="constrained")
    axes = figure.subplots(1, len(_LATENCIES))
    rates = [step.target_rate_rps for step in run.steps]
    for ax, (column, label) in zip(axes, _LATENCIES, strict=True):
        samples = [_step_values(run.requests, rate, column) for rate in rates]
        ax.boxplot(samples, showfliers=False)
        ax.set_xticks(range(1, len(rates) + 1), [rate_text(rate) for rate in rates])
        ax.set_title(_TITLES[column])
        ax.set_xlabel("request rate (req/s)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    figure.suptitle(f"{run.label}: latency of kept successes per step (boxes: p25-p75)")
    return figure


def _step_values(rows: Sequence[Mapping[str, Any]], rate: float, column: str) -> list[float]:
    """The measured `column` latencies (s) of the kept successes of the step at `rate`."""
    values = [
        row[column]
        for row in rows
        if row["phase"] == "measure"
        and row["ok"]
        and row.get(column) is not None
        and _rate_of(row) == rate
    ]
    return values or [float("nan")]


def _rate_of(row: Mapping[str, Any]) -> float:
    rate = row["target_rate_rps"]
    return float("inf") if rate == "inf" else float(rate)


def render_report(runs: Sequence[RunResults]) -> str:
    """The whole page for `runs` (one target each)."""
    # Two runs of one target (a before and an after) share a label: their folders tell them apart.
    labels = [run.label for run in runs]
    series = {_named(run) if labels.count(run.label) > 1 else run.label: run.steps for run in runs}
    sweep = _image(_png(plot_sweep(series, "Throughput and latency against request rate")), "sweep")
    sections = [f"<h1>loadgen report</h1><h2>Sweep</h2>{sweep}", _comparison_section(runs)]
    for run in runs:
        config = json.dumps(dict(run.config), indent=2, sort_keys=True, default=str)
        latencies = _image(_png(latency_figure(run)), f"latencies of {run.label}")
        prefixes = "" if run.prefixes is None else f"<p>{html.escape(run.prefixes)}</p>"
        sections.append(
            f"<h2>{html.escape(run.label)}</h2><p>{html.escape(str(run.path))}</p>{prefixes}"
            f"{_capacity_section(run)}{_table(run)}{_repeats_section(run)}{_turn_tables(run)}"
            f"{_server_table(run)}{latencies}<details><summary>Configuration</summary>"
            f"<pre>{html.escape(config)}</pre></details>"
        )
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>loadgen report</title><style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )


def write_report(runs: Sequence[RunResults], out: Path) -> Path:
    """Write report.html for `runs` to `out`."""
    out.write_text(render_report(runs))
    return out
