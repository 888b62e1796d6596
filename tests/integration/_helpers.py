"""Helpers shared by the integration tests: the CLI in-process, its files, tagged datasets."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from loadgen.cli import main

# Words in every prompt of `write_tagged_dataset`; the fake server reports them as prompt tokens.
DATASET_PROMPT_WORDS = 4
STAT_NAMES = ("mean", "std", "min", "p50", "p90", "p95", "p99", "max")


def run_cli(argv: Sequence[str]) -> int:
    """The exit status `loadgen ARGV` would have: main's return, or argparse's SystemExit code."""
    try:
        return main(list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every row of a JSON-lines file."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def read_summary(out_dir: Path) -> dict[str, Any]:
    """summary.json of a results folder."""
    document: dict[str, Any] = orjson.loads((out_dir / "summary.json").read_bytes())
    return document


def write_tagged_dataset(path: Path, count: int, max_tokens: int) -> Path:
    """A JSONL dataset whose entry i has the prompt "#i alpha beta gamma".

    The fake server reads the "#i" tag back, so it knows each request's send index.
    """
    rows = [
        orjson.dumps({"prompt": f"#{i} alpha beta gamma", "max_tokens": max_tokens})
        for i in range(count)
    ]
    path.write_bytes(b"\n".join(rows) + b"\n")
    return path


def scrape_when_written(
    port: int,
    folders: Sequence[Path],
    num_steps: int,
    process: subprocess.Popen[bytes],
    timeout_s: float,
) -> str:
    """/metrics at `port` once every folder's summary.json holds `num_steps` steps.

    The run lingers after its last step, still serving; a `process` that exits first fails.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        summaries = [folder / "summary.json" for folder in folders]
        if all(path.exists() and len(read_summary(path.parent)["steps"]) == num_steps
               for path in summaries):  # fmt: skip
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                return str(resp.read().decode())
        if process.poll() is not None:
            pytest.fail(f"loadgen exited early with {process.returncode}")
        time.sleep(0.05)
    pytest.fail(f"the run did not write its steps in {timeout_s:g} s")
