"""Results on disk: summary.json, summary.csv and requests.jsonl, rewritten atomically per step."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import orjson

from loadgen import __version__
from loadgen.core.records import (
    Distribution,
    RequestRecord,
    StepFigures,
    StepSummary,
    phase_of,
)

DISTRIBUTION_NAMES = (
    "ttft_s",
    "ttft_sched_s",
    "tpot_s",
    "itl_s",
    "e2e_s",
    "per_token_latency_s",
    "queue_s",
    "pacer_lateness_s",
)
_CSV_STATS = ("mean", "p50", "p90", "p99")


def _json_value(value: Any) -> Any:
    """`value` made JSON-safe: infinities become "inf" (strict JSON has no Infinity)."""
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def figures_dict(figures: StepFigures) -> dict[str, Any]:
    """A StepFigures as plain JSON-ready data."""
    return {
        item.name: _json_value(getattr(figures, item.name))
        if not isinstance(getattr(figures, item.name), Distribution | Mapping)
        else _nested(getattr(figures, item.name))
        for item in fields(figures)
    }


def _nested(value: Distribution | Mapping[str, int]) -> dict[str, Any]:
    return asdict(value) if isinstance(value, Distribution) else dict(value)


def summary_dict(summary: StepSummary) -> dict[str, Any]:
    """One step as written to summary.json: trimmed figures flat, `untrimmed` nested."""
    trimmed = figures_dict(summary.trimmed)
    return {
        "step": summary.step,
        "target_rate_rps": _json_value(summary.target_rate_rps),
        "num_sent": summary.num_sent,
        "num_kept": trimmed.pop("num_requests"),
        "trim": summary.trim,
        "client_saturated": summary.client_saturated,
        "interrupted": summary.interrupted,
        "tokens_source": summary.tokens_source,
        "duration_s": summary.duration_s,
        **trimmed,
        "untrimmed": figures_dict(summary.untrimmed),
    }


def csv_row(summary: StepSummary) -> dict[str, Any]:
    """One step as a flat summary.csv row (distributions as mean/p50/p90/p99 columns)."""
    data = summary_dict(summary)
    data.pop("untrimmed")
    data["errors_by_kind"] = ";".join(f"{k}={v}" for k, v in data["errors_by_kind"].items())
    for name in DISTRIBUTION_NAMES:
        dist = data.pop(name)
        for stat in _CSV_STATS:
            data[f"{name.removesuffix('_s')}_{stat}_s"] = dist[stat] if dist else None
    return data


def request_row(record: RequestRecord, summary: StepSummary, t_start_ns: int) -> dict[str, Any]:
    """One request as a requests.jsonl row; times in seconds from the step's schedule origin."""

    def since_start(t_ns: int | None) -> float | None:
        return None if t_ns is None else (t_ns - t_start_ns) / 1e9

    return {
        "step": summary.step,
        "target_rate_rps": _json_value(summary.target_rate_rps),
        "index": record.index,
        "phase": phase_of(record.index, summary.num_sent, summary.trim),
        "ok": record.ok,
        "t_sched_s": since_start(record.t_sched_ns),
        "t_send_s": since_start(record.t_send_ns),
        "t_first_s": since_start(record.t_first_ns),
        "t_last_s": since_start(record.t_last_ns),
        "t_done_s": since_start(record.t_done_ns),
        "slot_wait_s": record.slot_wait_ns / 1e9,
        "tokens_in": record.tokens_in,
        "tokens_out": record.tokens_out,
        "tokens_source": record.tokens_source,
        "chunks": len(record.chunk_times_ns),
        "status": record.status,
        "error_kind": record.error_kind,
        "error": record.error,
    }


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so a reader (or a crash) never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class ResultsWriter:
    """Writes a sweep's results folder, step by step."""

    def __init__(self, out_dir: Path, config: Mapping[str, Any]) -> None:
        self.out_dir = out_dir
        self._config = dict(config)
        self._steps: list[StepSummary] = []
        self._request_lines = bytearray()
        out_dir.mkdir(parents=True, exist_ok=True)

    @property
    def steps(self) -> Sequence[StepSummary]:
        """The steps written so far."""
        return tuple(self._steps)

    def document(self) -> dict[str, Any]:
        """The summary.json document for the steps so far."""
        return {
            "tool": "loadgen",
            "version": __version__,
            "config": self._config,
            "steps": [summary_dict(step) for step in self._steps],
        }

    def write_step(
        self, summary: StepSummary, records: Iterable[RequestRecord], t_start_ns: int
    ) -> None:
        """Add one finished step to every file (each replaced atomically)."""
        self._steps.append(summary)
        for record in records:
            self._request_lines += orjson.dumps(request_row(record, summary, t_start_ns))
            self._request_lines += b"\n"
        _write_atomic(self.out_dir / "requests.jsonl", bytes(self._request_lines))
        _write_atomic(self.out_dir / "summary.csv", self._csv_bytes())
        _write_atomic(
            self.out_dir / "summary.json",
            orjson.dumps(self.document(), option=orjson.OPT_INDENT_2) + b"\n",
        )

    def _csv_bytes(self) -> bytes:
        rows = [csv_row(step) for step in self._steps]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue().encode()
