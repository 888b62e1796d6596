"""Read a results folder back: summary.json into StepSummary objects, requests.jsonl rows."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import orjson

from loadgen.core.distributions import DISTRIBUTION_FIELDS
from loadgen.core.records import (
    Distribution,
    ServerFigures,
    SessionFigures,
    ShardFigures,
    SloCheck,
    StepFigures,
    StepSummary,
    StepVerdict,
    TurnFigures,
)

# Figures that results written before they existed do not have.
_ADDED_LATER = frozenset(
    {
        "send_gap_ks",
        "send_gap_ks_pvalue",
        "send_count_dispersion",
        "ttfa_s",
        "reasoning_tokens_mean",
        "answer_tokens_mean",
    }
)


class ResultsError(ValueError):
    """A folder that is not a readable loadgen results folder."""


@dataclass(frozen=True, slots=True)
class RunResults:
    """One results folder: what was swept, its configuration, its steps, its request rows, and
    how its prompts shared prefixes (None: they did not)."""

    path: Path
    target: Mapping[str, Any]
    config: Mapping[str, Any]
    steps: tuple[StepSummary, ...]
    requests: tuple[Mapping[str, Any], ...]
    prefixes: str | None = None

    @property
    def label(self) -> str:
        """The target's label: its sweep-file name, the simulator's, or "model @ host:port"."""
        return str(self.target.get("label") or self.path.name)


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
        raw = data.get(key) if key in _ADDED_LATER else data[key]
        values[item.name] = _distribution(raw) if item.name in DISTRIBUTION_FIELDS else raw
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
        invalid=data.get("invalid"),
        shards=tuple(ShardFigures(**shard) for shard in data.get("shards", ())),
        capped_sends=data.get("capped_sends", 0),
        server=None if data.get("server") is None else ServerFigures(**data["server"]),
        sessions=_sessions(data.get("sessions")),
        over_saturated=data.get("over_saturated", False),
        synchronous=data.get("synchronous", False),
        repeat=data.get("repeat", 0),
        slo=_slo(data.get("slo")),
    )


def _slo(data: Mapping[str, Any] | None) -> StepVerdict | None:
    """The StepVerdict `export.files.summary_dict` wrote, None outside a capacity search."""
    if data is None:
        return None
    return StepVerdict(data["verdict"], tuple(SloCheck(**check) for check in data["checks"]))


def _sessions(data: Mapping[str, Any] | None) -> SessionFigures | None:
    """The SessionFigures `export.files.summary_dict` wrote, None for a step of requests."""
    if data is None:
        return None
    turns = tuple(
        TurnFigures(
            **{
                **turn,
                "ttft_s": _distribution(turn["ttft_s"]),
                "e2e_s": _distribution(turn["e2e_s"]),
            }
        )
        for turn in data["turns"]
    )
    return SessionFigures(
        **{
            **data,
            "turns_ok": _distribution(data["turns_ok"]),
            "duration_s": _distribution(data["duration_s"]),
            "turns": turns,
        }
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
        target = document.get("target") or {}
    except OSError as exc:
        raise ResultsError(f"{summary_path}: cannot read ({exc.strerror or exc})") from None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ResultsError(f"{summary_path}: not a loadgen summary ({exc})") from None
    if not steps:
        raise ResultsError(f"{summary_path}: no finished step to report")
    rows = _request_rows(path / "requests.jsonl", document.get("requests_bytes"))
    return RunResults(path, target, config, steps, rows, document.get("prefixes"))


def _request_rows(path: Path, committed: int | None) -> tuple[Mapping[str, Any], ...]:
    """The rows of finished steps: up to the size summary.json says its steps wrote (bytes)."""
    if not path.exists():
        return ()
    with path.open("rb") as handle:
        data = handle.read(committed) if committed is not None else handle.read()
    return tuple(orjson.loads(line) for line in data.splitlines() if line.strip())
