"""Histograms of a workload's input and output lengths (tokens), like the paper's Figure 3."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from matplotlib.axes import Axes

FIGSIZE_IN = (10.0, 4.0)  # width, height (inches)
DPI = 120  # 10 x 4 in at 120 dpi: a 1200 x 480 px PNG
_MAX_BINS = 50


def _edges(values: npt.NDArray[np.int64]) -> list[float]:
    """Bin edges (tokens): at most `_MAX_BINS` bins, each the same whole number of lengths."""
    low, high = int(values.min()), int(values.max())
    # Bins of unequal integer counts would draw spikes that are not in the data.
    width = -(-(high - low + 1) // _MAX_BINS)
    return [edge - 0.5 for edge in range(low, high + width + 1, width)]


def _histogram(
    axes: Axes, values: npt.NDArray[np.int64], title: str, xlabel: str, color: str
) -> None:
    """One panel: a histogram of `values` (tokens) with its median marked."""
    from matplotlib.ticker import MaxNLocator

    axes.hist(values, bins=_edges(values), color=color, edgecolor="white", linewidth=0.5)
    median = float(np.median(values))
    axes.axvline(median, color="black", linestyle="--", linewidth=1)
    # The median goes in the title, not a legend, so it can never cover a bar.
    axes.set_title(f"{title}, median {median:g} (dashed)")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("requests")
    # Lengths and counts are whole numbers; no "+1.6e4" offset when all lengths are equal.
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.ticklabel_format(axis="x", style="plain", useOffset=False)
    if values.min() == values.max():
        axes.set_xticks([int(values[0])])  # one bin one token wide: ticks would be fractions


def plot_lengths(
    input_tokens: Sequence[int], output_tokens: Sequence[int], path: Path, title: str
) -> None:
    """Write side-by-side input and output length histograms (tokens) as a PNG at `path`."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise RuntimeError("plotting needs matplotlib: pip install matplotlib") from exc
    inputs = np.asarray(input_tokens, dtype=np.int64)
    outputs = np.asarray(output_tokens, dtype=np.int64)
    if inputs.size == 0 or outputs.size == 0:
        raise ValueError("plot_lengths needs at least one request")
    # A bare Figure on an Agg canvas: no pyplot, so no global backend or figure registry.
    figure = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    _histogram(left, inputs, "Input length", "prompt length (tokens)", "tab:blue")
    _histogram(right, outputs, "Output length", "max_tokens (tokens)", "tab:orange")
    figure.suptitle(title)
    figure.savefig(path, format="png", dpi=DPI)
