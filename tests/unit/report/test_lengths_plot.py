"""Tests for loadgen.report.lengths_plot: input/output length histograms as PNG."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from loadgen.report.lengths_plot import plot_lengths

pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIZE_PX = (1200, 480)  # 10 x 4 in at 120 dpi


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height (px) from the IHDR chunk, which must come first."""
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def lengths(seed: int) -> tuple[list[int], list[int]]:
    rng = np.random.default_rng(seed)
    inputs = rng.integers(5, 50, size=1000).tolist()
    outputs = rng.integers(3, 1000, size=1000).tolist()
    return inputs, outputs


def test_writes_png_of_the_figure_size(tmp_path: Path) -> None:
    path = tmp_path / "lengths.png"
    plot_lengths(*lengths(0), path, "S2L")
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert png_size(data) == SIZE_PX


def test_pil_reads_the_same_size(tmp_path: Path) -> None:
    image = pytest.importorskip("PIL.Image")
    path = tmp_path / "lengths.png"
    plot_lengths(*lengths(1), path, "S2S")
    with image.open(path) as png:
        assert png.format == "PNG"
        assert png.size == SIZE_PX


def test_leaves_no_figure_open(tmp_path: Path) -> None:
    pyplot = pytest.importorskip("matplotlib.pyplot")
    before = pyplot.get_fignums()
    plot_lengths(*lengths(2), tmp_path / "lengths.png", "L2S")
    assert pyplot.get_fignums() == before == []


def test_single_length_outputs(tmp_path: Path) -> None:
    path = tmp_path / "s16k.png"
    plot_lengths([12, 30, 18], [16000] * 3, path, "S-16k")
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_empty_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        plot_lengths([], [], tmp_path / "x.png", "empty")


def test_missing_matplotlib_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(RuntimeError, match="pip install matplotlib"):
        plot_lengths([1], [1], tmp_path / "x.png", "no matplotlib")


def test_import_does_not_load_matplotlib() -> None:
    code = "import sys, loadgen.report.lengths_plot; print('matplotlib' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert result.stdout.strip() == "False"
