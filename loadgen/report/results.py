"""Read a results folder back: summary.json into StepSummary objects, requests.jsonl rows."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from loadgen.core.records import Distribution, StepFigures, StepSummary


class ResultsError(ValueError):
    """A folder that is not a readable loadgen results folder."""


@dataclass(frozen=True, slots=True)
class RunResults:
    """One results folder: its configuration, its steps, and its request rows."""

    path: Path
    config: Mapping[str, Any]
    steps: tuple[StepSummary, ...]
    requests: tuple[Mapping[str, Any], ...]

    @property
    def label(self) -> str:
        """The target's name: its sweep file name, the simulator's label, or "model @ host:port"."""
        if self.config.get("target"):
            return str(self.config["target"])
        simulator = self.config.get("simulator")
        if isinstance(simulator, Mapping) and "label" in simulator:
            return str(simulator["label"])
        host = urlsplit(str(self.config.get("base_url") or "")).netloc
        return f"{self.config.get('model', '?')} @ {host}" if host else str(self.path.name)


def _number(value: Any) -> Any:
    """JSON numbers back to floats: "inf" and "-inf" were written for infinities."""
    if value == "inf":
        return math.inf
    if value == "-inf":
        return -math.inf
    return value


def _distribution(value: Mapping[str, Any] | None) -> Distribution | None:
    return None if value is None else Distribution(**value)


def figures_from_dict(data: Mapping[str, Any]) -> StepFigures:
    """The StepFigures that `export.files.figures_dict` wrote (num_kept read as num_requests)."""
    values: dict[str, Any] = {}
    for item in fields(StepFigures):
        key = "num_kept" if item.name == "num_requests" and "num_kept" in data else item.name
        raw = data[key]
        values[item.name] = (
            _distribution(raw) if item.name.endswith("_s") and item.name != "window_s" else raw
        )
    return StepFigures(**values)


def summary_from_dict(data: Mapping[str, Any]) -> StepSummary:
    """The StepSummary that `export.files.summary_dict` wrote."""
    return StepSummary(
        step=data["step"],
        target_rate_rps=float(_number(data["target_rate_rps"])),
        num_sent=data["num_sent"],
        trim=data["trim"],
        trimmed=figures_from_dict(data),
        untrimmed=figures_from_dict(data["untrimmed"]),
        client_saturated=data["client_saturated"],
        interrupted=data["interrupted"],
        tokens_source=data["tokens_source"],
        duration_s=data["duration_s"],
    )


def results_folders(paths: Sequence[Path]) -> list[Path]:
    """`paths`, each folder without summary.json replaced by its subfolders that have one.

    So the folder of a sweep file's run (one subfolder per target) stands for all its targets.
    """
    found: list[Path] = []
    for path in paths:
        targets = [] if (path / "summary.json").exists() else sorted(path.glob("*/summary.json"))
        found += [summary.parent for summary in targets] or [path]
    return found


def load_results(path: Path) -> RunResults:
    """The results folder `path` (ResultsError when it has no readable summary.json)."""
    summary_path = path / "summary.json"
    try:
        document = orjson.loads(summary_path.read_bytes())
        steps = tuple(summary_from_dict(step) for step in document["steps"])
        config = document["config"]
    except OSError as exc:
        raise ResultsError(f"{summary_path}: cannot read ({exc.strerror or exc})") from None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ResultsError(f"{summary_path}: not a loadgen summary ({exc})") from None
    if not steps:
        raise ResultsError(f"{summary_path}: no finished step to report")
    requests_path = path / "requests.jsonl"
    rows: tuple[Mapping[str, Any], ...] = ()
    if requests_path.exists():
        lines = requests_path.read_bytes().splitlines()
        rows = tuple(orjson.loads(line) for line in lines if line.strip())
    return RunResults(path, config, steps, rows)
