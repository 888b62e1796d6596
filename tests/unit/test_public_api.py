"""`import loadgen`: the public API, and the README's example of it, run as written."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

import loadgen

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_public_name_resolves_to_its_home() -> None:
    for name in loadgen.__all__:
        assert getattr(loadgen, name) is not None, name
    assert loadgen.RunConfig.__module__ == "loadgen.config.model"
    assert loadgen.StepSummary.__module__ == "loadgen.core.records"
    assert loadgen.run.__module__ == "loadgen.cluster.run"
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        loadgen.nothing_here  # noqa: B018


def test_importing_loadgen_loads_no_engine() -> None:
    probe = (
        "import sys, loadgen; print(sorted(m for m in ('aiohttp', 'pydantic') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_the_readme_example_runs_as_written() -> None:
    section = README.read_text().split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code.group(1), str(README), "exec"), {})
    lines = [line.split() for line in printed.getvalue().splitlines()]
    assert [float(rate) for rate, _ in lines] == [5.0, 10.0, 20.0]
    # At rates this far below the simulated A100's capacity, every request is served at its rate.
    for rate, throughput in lines:
        assert float(throughput) == pytest.approx(float(rate), rel=0.25)
