"""Throughput and latency against request rate for each target, like the paper's Figure 1."""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loadgen.core.events import RunObserver, StepProgress, TargetInfo, TargetOutcome
from loadgen.core.records import RequestRecord, StepSummary

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGSIZE_IN = (15.0, 4.5)  # width, height (inches)
DPI = 120  # 15 x 4.5 in at 120 dpi: an 1800 x 540 px PNG
INF_POSITION_FACTOR = 1.25  # an inf rate sits at this multiple of the largest finite rate (req/s)
INF_POSITION_ALONE = 1.0  # where an inf rate sits when no rate is finite (req/s)
INF_LABEL = "inf"
XLABEL = "request rate (req/s)"
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")


@dataclass(frozen=True, slots=True)
class _Panel:
    """One panel: its title, its y-axis label with units, and how a step gives its y value."""

    title: str
    ylabel: str
    value: Callable[[StepSummary], float | None]


def _per_token_latency(summary: StepSummary) -> float | None:
    """Mean per-token latency of the trimmed requests (s/token), or None without a sample."""
    latency = summary.trimmed.per_token_latency_s
    return None if latency is None else latency.mean


PANELS: tuple[_Panel, ...] = (
    _Panel(
        "Sequence throughput",
        "sequence throughput (req/s)",
        lambda s: s.trimmed.sequence_throughput_rps,
    ),
    _Panel(
        "Output token throughput",
        "output token throughput (tok/s)",
        lambda s: s.trimmed.output_token_throughput_tps,
    ),
    _Panel("Per-token latency", "per-token latency (s/token)", _per_token_latency),
)


def x_rate_rps(summary: StepSummary) -> float:
    """Where a step is drawn (req/s): its target rate, or the rate a synchronous step carried."""
    if summary.synchronous:
        return summary.trimmed.sequence_throughput_rps
    return summary.target_rate_rps


def plotted(steps: Sequence[StepSummary]) -> list[StepSummary]:
    """The steps drawn, by rate: a rate run again (a longer step of a search) shows its last."""
    last = {(step.synchronous, step.target_rate_rps): step for step in steps}
    return sorted(last.values(), key=x_rate_rps)


def _inf_position(series: Mapping[str, Sequence[StepSummary]]) -> float:
    """Where an inf rate is drawn on the x axis (req/s): right of every finite rate."""
    finite = [x_rate_rps(s) for steps in series.values() for s in steps]
    finite = [rate for rate in finite if math.isfinite(rate)]
    return INF_POSITION_FACTOR * max(finite) if finite else INF_POSITION_ALONE


def _tick_text(rate: float) -> str:
    """A finite tick's label (req/s): the shortest form, no float noise like 0.30000000000000004."""
    return f"{rate:.6g}"


def _inf_ticks(axes: Axes, max_finite: float | None, inf_x: float) -> None:
    """Numeric ticks over the finite rates (req/s) plus one tick at `inf_x` labelled "inf"."""
    from matplotlib.ticker import MaxNLocator

    ticks: list[float] = []
    if max_finite is not None:
        low, high = axes.get_xlim()
        locator = MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10])
        # Spaced for the whole axis, kept up to the largest finite rate: beyond it lies only inf.
        slack = 1e-9 * max(abs(max_finite), 1.0)
        ticks = [float(t) for t in locator.tick_values(low, high) if low <= t <= max_finite + slack]
    axes.set_xticks([*ticks, inf_x], labels=[*map(_tick_text, ticks), INF_LABEL])


def _draw_target(
    axes: Axes,
    steps: Sequence[StepSummary],
    panel: _Panel,
    label: str,
    color: str,
    marker: str,
    inf_x: float,
) -> None:
    """One target's line on one panel; interrupted steps get a hollow marker."""
    xs: list[float] = []
    ys: list[float] = []
    hollow: list[int] = []
    for summary in plotted(steps):
        value = panel.value(summary)
        if value is None:
            continue
        rate = x_rate_rps(summary)
        if summary.interrupted:
            hollow.append(len(xs))
        xs.append(rate if math.isfinite(rate) else inf_x)
        ys.append(value)
    filled = [i for i in range(len(xs)) if i not in hollow]
    axes.plot(
        xs, ys, color=color, marker=marker, markevery=filled, linewidth=1.5, label=label, zorder=3
    )
    if hollow:
        # A second, unlabelled artist: a Line2D has one face colour for all its markers.
        axes.plot(
            [xs[i] for i in hollow],
            [ys[i] for i in hollow],
            color=color,
            marker=marker,
            linestyle="none",
            markerfacecolor="white",
            label=f"_{label} (interrupted)",
            zorder=4,
        )


def plot_sweep(series: Mapping[str, Sequence[StepSummary]], title: str) -> Figure:
    """Three panels (req/s, tok/s, s/token) against request rate (req/s), one line per target."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
    except ImportError as exc:
        raise RuntimeError("plotting needs matplotlib: pip install matplotlib") from exc
    rates = [x_rate_rps(s) for steps in series.values() for s in steps]
    if not rates:
        raise ValueError("plot_sweep needs at least one step")
    finite = [rate for rate in rates if math.isfinite(rate)]
    has_inf = len(finite) < len(rates)
    inf_x = _inf_position(series)
    any_interrupted = any(s.interrupted for steps in series.values() for s in steps)

    # A bare Figure on an Agg canvas: no pyplot, so no global backend or figure registry.
    figure = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes_row: Sequence[Axes] = figure.subplots(1, len(PANELS), squeeze=False)[0]
    for axes, panel in zip(axes_row, PANELS, strict=True):
        for index, (label, steps) in enumerate(series.items()):
            color = f"C{index % 10}"
            marker = _MARKERS[index % len(_MARKERS)]
            _draw_target(axes, steps, panel, label, color, marker, inf_x)
        if panel is PANELS[0] and finite:
            # Ideal y = x: every offered request completes; the lines bend away at saturation.
            low, high = min(finite), max(finite)
            axes.plot(
                [low, high],
                [low, high],
                color="0.4",
                linestyle="--",
                linewidth=0.8,
                label="offered rate",
                zorder=2,
            )
        axes.set_title(panel.title)
        axes.set_xlabel(XLABEL)
        axes.set_ylabel(panel.ylabel)
        axes.set_ylim(bottom=0.0)  # after every artist: set_ylim also freezes the top
        axes.grid(True, alpha=0.3)
        if has_inf:
            _inf_ticks(axes, max(finite) if finite else None, inf_x)

    # One legend for all panels, below them, so it can never cover a point.
    handles: list[Artist] = [
        line for line in axes_row[0].get_lines() if not str(line.get_label()).startswith("_")
    ]
    if any_interrupted:
        handles.append(
            Line2D(
                [],
                [],
                color="0.3",
                marker="o",
                markerfacecolor="white",
                linestyle="none",
                label="interrupted step",
            )
        )
    figure.legend(
        handles=handles,
        labels=[str(h.get_label()) for h in handles],
        loc="outside lower center",
        ncols=min(len(handles), 6),
        frameon=False,
    )
    figure.suptitle(title)
    return figure


def write_sweep_plot(path: Path, series: Mapping[str, Sequence[StepSummary]], title: str) -> Path:
    """Write the sweep figure (req/s, tok/s, s/token panels) as a PNG at `path`, atomically."""
    figure = plot_sweep(series, title)
    # A unique name in the same folder (so os.replace is atomic), opened "x" so it obeys umask.
    temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with temp.open("xb") as handle:
            figure.savefig(handle, format="png", dpi=DPI)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path


class SweepPlotter(RunObserver):
    """Draws each target's sweep.png as its steps end, and every target's in `run_dir`.

    The run folder's plot (one line per target) is drawn for runs of named targets (a sweep
    file's), after each target ends.
    """

    def __init__(self, run_dir: Path) -> None:
        self._run_dir = run_dir
        self._target: TargetInfo | None = None
        self._series: dict[str, list[StepSummary]] = {}

    def on_target_start(self, target: TargetInfo) -> None:
        """Start the target's line."""
        self._target = target
        self._series[target.label] = []

    def on_step_end(
        self, progress: StepProgress, summary: StepSummary, records: list[RequestRecord]
    ) -> None:
        """Redraw the target's plot with the step that just ended."""
        target = self._target
        if target is None or target.out_dir is None:
            return
        steps = self._series[target.label]
        steps.append(summary)
        write_sweep_plot(target.out_dir / "sweep.png", {target.label: steps}, target.plot_title)

    def on_target_end(self, outcome: TargetOutcome) -> None:
        """Redraw the run's plot of every named target swept so far."""
        target = self._target
        series = {label: steps for label, steps in self._series.items() if steps}
        if outcome.name is not None and target is not None and series:
            write_sweep_plot(self._run_dir / "sweep.png", series, target.plot_title)
