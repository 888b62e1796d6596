"""Helpers shared by the integration tests: the CLI in-process, its files, tagged datasets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

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
