"""Tests for loadgen.report.sweep_plot: throughput and latency against request rate as PNG."""

from __future__ import annotations

import math
import struct
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from loadgen.core.records import Distribution, StepFigures, StepSummary
from loadgen.report.sweep_plot import plot_sweep, write_sweep_plot

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.lines import Line2D

pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIZE_PX = (1800, 540)  # 15 x 4.5 in at 120 dpi
TITLES = ("Sequence throughput", "Output token throughput", "Per-token latency")
YLABEL_UNITS = ("(req/s)", "(tok/s)", "(s/token)")


def latency(mean: float) -> Distribution:
    """A per-token latency sample (s/token) with the given mean."""
    return Distribution(10, mean, 0.0, mean, mean, mean, mean, mean, mean)


def step(
    rate: float,
    seq_rps: float,
    tok_tps: float,
    latency_s: float | None,
    *,
    interrupted: bool = False,
    index: int = 0,
) -> StepSummary:
    """A step at `rate` (req/s) whose trimmed figures carry the given throughputs and latency."""
    figures = StepFigures(
        num_requests=10,
        num_ok=10,
        num_errors=0,
        errors_by_kind={},
        error_rate=0.0,
        window_s=1.0,
        sequence_throughput_rps=seq_rps,
        output_token_throughput_tps=tok_tps,
        total_token_throughput_tps=None,
        reasoning_tokens_mean=None,
        answer_tokens_mean=None,
        goodput_rps=None,
        achieved_rate_rps=None,
        send_gap_cv=None,
        send_gap_ks=None,
        send_gap_ks_pvalue=None,
        send_count_dispersion=None,
        ttft_s=None,
        ttft_sched_s=None,
        ttfa_s=None,
        tpot_s=None,
        itl_s=None,
        e2e_s=None,
        per_token_latency_s=None if latency_s is None else latency(latency_s),
        queue_s=None,
        pacer_lateness_s=None,
    )
    return StepSummary(
        step=index,
        target_rate_rps=rate,
        num_sent=10,
        trim=0,
        trimmed=figures,
        untrimmed=figures,
        client_saturated=False,
        interrupted=interrupted,
        tokens_source="server",
        duration_s=1.0,
    )


def series() -> dict[str, list[StepSummary]]:
    """Two targets; steps given out of rate order, one inf (batch) step each."""
    return {
        "sim a100/llama-2-7b": [
            step(4.0, 3.5, 350.0, 0.04, index=2),
            step(1.0, 1.0, 100.0, 0.02, index=0),
            step(math.inf, 3.6, 360.0, 0.09, index=3),
            step(2.0, 2.0, 200.0, 0.03, index=1),
        ],
        "vllm": [
            step(2.0, 1.9, 190.0, None, index=1),  # no per-token latency sample
            step(1.0, 1.0, 95.0, 0.025, index=0),
            step(math.inf, 2.5, 250.0, 0.2, index=3, interrupted=True),
            step(4.0, 2.4, 240.0, 0.1, index=2),
        ],
    }


def target_lines(axes: Axes) -> dict[str, Line2D]:
    """The legend-labelled lines of one panel, by label."""
    return {
        str(line.get_label()): line
        for line in axes.get_lines()
        if not str(line.get_label()).startswith("_")
    }


def xy(line: Line2D) -> tuple[list[float], list[float]]:
    """A line's plotted x and y data as plain floats."""
    xs = np.asarray(line.get_xdata(), dtype=float).tolist()
    ys = np.asarray(line.get_ydata(), dtype=float).tolist()
    return xs, ys


def tick_labels(axes: Axes) -> dict[float, str]:
    return {
        float(tick): label.get_text()
        for tick, label in zip(axes.get_xticks(), axes.get_xticklabels(), strict=True)
    }


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height (px) from the IHDR chunk, which must come first."""
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_three_panels_with_titles_and_units() -> None:
    figure = plot_sweep(series(), "S2L sweep")
    assert len(figure.axes) == 3
    for axes, title, unit in zip(figure.axes, TITLES, YLABEL_UNITS, strict=True):
        assert axes.get_title() == title
        assert unit in axes.get_ylabel()
        assert axes.get_xlabel() == "request rate (req/s)"
    assert figure.get_suptitle() == "S2L sweep"


def test_one_line_per_target_in_rate_order() -> None:
    figure = plot_sweep(series(), "sweep")
    inf_x = 1.25 * 4.0
    seq, tok, lat = figure.axes
    assert set(target_lines(seq)) == {"sim a100/llama-2-7b", "vllm", "offered rate"}
    assert set(target_lines(tok)) == set(target_lines(lat)) == {"sim a100/llama-2-7b", "vllm"}

    a100 = "sim a100/llama-2-7b"
    assert xy(target_lines(seq)[a100]) == ([1.0, 2.0, 4.0, inf_x], [1.0, 2.0, 3.5, 3.6])
    assert xy(target_lines(tok)[a100]) == ([1.0, 2.0, 4.0, inf_x], [100.0, 200.0, 350.0, 360.0])
    assert xy(target_lines(lat)[a100]) == ([1.0, 2.0, 4.0, inf_x], [0.02, 0.03, 0.04, 0.09])
    assert xy(target_lines(seq)["vllm"]) == ([1.0, 2.0, 4.0, inf_x], [1.0, 1.9, 2.4, 2.5])
    assert xy(target_lines(tok)["vllm"]) == ([1.0, 2.0, 4.0, inf_x], [95.0, 190.0, 240.0, 250.0])


def test_missing_latency_points_are_skipped() -> None:
    lat = plot_sweep(series(), "sweep").axes[2]
    # The vllm step at 2 req/s has no per-token latency: the line goes 1 -> 4 -> inf.
    assert xy(target_lines(lat)["vllm"]) == ([1.0, 4.0, 5.0], [0.025, 0.1, 0.2])


def test_each_target_has_its_own_colour() -> None:
    for axes in plot_sweep(series(), "sweep").axes:
        lines = target_lines(axes)
        assert lines["sim a100/llama-2-7b"].get_color() != lines["vllm"].get_color()


def test_inf_lands_right_of_the_largest_finite_rate_with_an_inf_tick() -> None:
    for axes in plot_sweep(series(), "sweep").axes:
        ticks = tick_labels(axes)
        inf_ticks = [tick for tick, label in ticks.items() if label == "inf"]
        assert inf_ticks == [5.0]
        assert inf_ticks[0] > 4.0
        numeric = {tick: label for tick, label in ticks.items() if label != "inf"}
        assert numeric, "the finite rates keep numeric ticks"
        assert all(float(label) == tick and tick <= 4.0 for tick, label in numeric.items())
        low, high = axes.get_xlim()
        assert low <= 1.0
        assert high >= 5.0


def test_without_inf_the_ticks_are_all_numeric() -> None:
    finite = {"vllm": [step(1.0, 1.0, 10.0, 0.1), step(3.0, 2.0, 20.0, 0.2)]}
    for axes in plot_sweep(finite, "sweep").axes:
        assert "inf" not in tick_labels(axes).values()
        assert xy(target_lines(axes)["vllm"])[0] == [1.0, 3.0]


def test_only_inf_gives_a_single_inf_tick() -> None:
    batch = {"a": [step(math.inf, 5.0, 500.0, 0.1)], "b": [step(math.inf, 3.0, 300.0, 0.2)]}
    figure = plot_sweep(batch, "batch")
    for axes in figure.axes:
        assert tick_labels(axes) == {1.0: "inf"}
        assert xy(target_lines(axes)["a"])[0] == [1.0]
    # No finite range: no offered-rate diagonal.
    assert "offered rate" not in target_lines(figure.axes[0])


def test_offered_rate_diagonal_spans_the_finite_rates() -> None:
    seq = plot_sweep(series(), "sweep").axes[0]
    diagonal = target_lines(seq)["offered rate"]
    assert xy(diagonal) == ([1.0, 4.0], [1.0, 4.0])
    assert diagonal.get_linestyle() == "--"


def test_interrupted_steps_get_a_hollow_marker() -> None:
    seq = plot_sweep(series(), "sweep").axes[0]
    vllm = target_lines(seq)["vllm"]
    # The main line leaves the interrupted inf step (index 3) without a filled marker...
    assert list(vllm.get_markevery()) == [0, 1, 2]  # type: ignore[arg-type]
    # ...and an unlabelled overlay draws it hollow in the target's colour.
    overlays = [line for line in seq.get_lines() if str(line.get_label()).startswith("_vllm")]
    assert len(overlays) == 1
    assert xy(overlays[0]) == ([5.0], [2.5])
    assert overlays[0].get_markerfacecolor() == "white"
    assert overlays[0].get_color() == vllm.get_color()
    # The other target has no interrupted step: every marker filled, no overlay.
    assert not any(str(line.get_label()).startswith("_sim") for line in seq.get_lines())


def test_legend_names_every_target() -> None:
    figure = plot_sweep(series(), "sweep")
    assert len(figure.legends) == 1
    texts = [text.get_text() for text in figure.legends[0].get_texts()]
    assert texts[:2] == ["sim a100/llama-2-7b", "vllm"]
    assert "offered rate" in texts
    assert "interrupted step" in texts


def test_legend_leaves_out_interrupted_when_none_is() -> None:
    plain = {"vllm": [step(1.0, 1.0, 10.0, 0.1), step(2.0, 2.0, 20.0, 0.2)]}
    texts = [t.get_text() for t in plot_sweep(plain, "sweep").legends[0].get_texts()]
    assert texts == ["vllm", "offered rate"]


def test_no_steps_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one step"):
        plot_sweep({"vllm": []}, "empty")


def test_write_sweep_plot_writes_a_png_and_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "sweep.png"
    assert write_sweep_plot(path, series(), "S2L sweep") == path
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 10_000
    assert png_size(data) == SIZE_PX
    assert [p.name for p in tmp_path.iterdir()] == ["sweep.png"]


def test_write_sweep_plot_replaces_an_old_file(tmp_path: Path) -> None:
    path = tmp_path / "sweep.png"
    path.write_bytes(b"old")
    write_sweep_plot(path, series(), "S2L sweep")
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert [p.name for p in tmp_path.iterdir()] == ["sweep.png"]


def test_failed_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.figure import Figure

    def broken_savefig(self: Figure, *args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        write_sweep_plot(tmp_path / "sweep.png", series(), "S2L sweep")
    assert list(tmp_path.iterdir()) == []


def test_leaves_no_figure_open(tmp_path: Path) -> None:
    pyplot = pytest.importorskip("matplotlib.pyplot")
    before = pyplot.get_fignums()
    write_sweep_plot(tmp_path / "sweep.png", series(), "sweep")
    assert pyplot.get_fignums() == before == []


def test_accepts_any_mapping_of_sequences() -> None:
    frozen: Mapping[str, Sequence[StepSummary]] = {k: tuple(v) for k, v in series().items()}
    assert len(plot_sweep(frozen, "sweep").axes) == 3


def test_import_does_not_load_matplotlib() -> None:
    code = "import sys, loadgen.report.sweep_plot; print('matplotlib' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert result.stdout.strip() == "False"
