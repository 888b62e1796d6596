"""`loadgen report`: report.html from two simulated runs, opened in headless Chromium."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration._helpers import run_cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RATES = ("10", "40", "inf")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
)  # fmt: skip


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """report.html of an A100 and an H100 simulated sweep."""
    runs = []
    for gpu in ("a100", "h100"):
        out = tmp_path_factory.mktemp(gpu)
        argv = ["simulate", "--rates", ",".join(RATES), "--num-requests", "200", "--trim", "20"]
        assert run_cli([*argv, "--gpu", gpu, "--dataset", "s2s", "--out", str(out), "--quiet"]) == 0
        runs.append(out)
    assert run_cli(["report", *map(str, runs)]) == 0
    return runs[0] / "report.html"


def test_report_has_a_table_per_target_and_every_step(report: Path) -> None:
    page = report.read_text()
    tables = re.findall(r'<table class="steps">(.*?)</table>', page, re.S)
    assert len(tables) == 2
    for table in tables:
        first_cells = re.findall(r"<tr><td>([^<]*)</td>", table)
        assert first_cells == list(RATES)
    assert "sim a100/llama-2-7b/vllm" in page
    assert "sim h100/llama-2-7b/vllm" in page


def test_report_is_self_contained(report: Path) -> None:
    page = report.read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 3  # the sweep, and one latency figure per target
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1])[:8] == PNG_SIGNATURE
    assert "http://" not in page.replace('"base_url": null', "")


def test_unreadable_folder_exits_2(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["report", str(tmp_path / "missing")]) == 2
    err = capfd.readouterr().err
    assert "summary.json" in err
    assert "Traceback" not in err


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium not installed")
def test_report_renders_in_chromium(report: Path, tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    url = report.resolve().as_uri()
    dom = subprocess.run(
        ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    # Every image decoded: its onload handler marked it.
    assert len(re.findall(r"<img ", dom)) == 3
    assert len(re.findall(r'data-ok="1"', dom)) == 3
    assert len(re.findall(r"<tr><td>", dom)) == 2 * len(RATES)
    shot = tmp_path / "report.png"
    subprocess.run(
        ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1400,2000",
         f"--screenshot={shot}", url],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert shot.read_bytes()[:8] == PNG_SIGNATURE
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
