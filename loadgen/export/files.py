"""Results on disk: summary.json and summary.csv replaced per step, requests.jsonl appended.

summary.json records how many bytes of requests.jsonl its steps wrote (`requests_bytes`):
a crash while a step's rows are being appended leaves at most a part of that unfinished step
after that size, which readers leave out.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from loadgen.core.capacity import capacity_answer
from loadgen.core.distributions import DISTRIBUTION_FIELDS
from loadgen.core.events import RunObserver, StepProgress, TargetInfo
from loadgen.core.latency import request_latencies
from loadgen.core.records import (
    Distribution,
    RequestRecord,
    ServerFigures,
    StepFigures,
    StepSummary,
    record_phase,
)
from loadgen.core.repeats import repeats_document
from loadgen.version import __version__

# Per-request latencies written on each requests.jsonl row (None where not measured).
ROW_LATENCIES = ("ttft_s", "ttfa_s", "tpot_s", "e2e_s", "per_token_latency_s")
# Rows encoded and written at a time: a step's rows never sit in memory all at once.
_ROWS_PER_WRITE = 10_000
_CSV_STATS = ("mean", "p50", "p90", "p99")
# The server's view of a step in summary.csv (as server_<name> columns).
_SERVER_COLUMNS = tuple(
    item.name for item in fields(ServerFigures) if item.name not in ("url", "tokens_mismatch")
)


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
        "invalid": summary.invalid,
        "capped_sends": summary.capped_sends,
        "tokens_source": summary.tokens_source,
        "duration_s": summary.duration_s,
        **trimmed,
        "shards": [asdict(shard) for shard in summary.shards],
        "server": None if summary.server is None else asdict(summary.server),
        "sessions": None if summary.sessions is None else asdict(summary.sessions),
        "synchronous": summary.synchronous,
        "repeat": summary.repeat,
        "over_saturated": summary.over_saturated,
        "slo": None if summary.slo is None else asdict(summary.slo),
        "untrimmed": figures_dict(summary.untrimmed),
    }


def csv_row(summary: StepSummary) -> dict[str, Any]:
    """One step as a flat summary.csv row (distributions as mean/p50/p90/p99 columns)."""
    data = summary_dict(summary)
    data.pop("untrimmed")
    data.pop("shards")
    data["slo"] = None if summary.slo is None else summary.slo.verdict
    data |= _session_columns(data.pop("sessions"))
    server = data.pop("server") or {}
    data |= {f"server_{name}": server.get(name) for name in _SERVER_COLUMNS}
    data["errors_by_kind"] = ";".join(f"{k}={v}" for k, v in data["errors_by_kind"].items())
    for name in DISTRIBUTION_FIELDS:
        dist = data.pop(name)
        for stat in _CSV_STATS:
            data[f"{name.removesuffix('_s')}_{stat}_s"] = dist[stat] if dist else None
    return data


def _session_columns(sessions: Mapping[str, Any] | None) -> dict[str, Any]:
    """A step's session figures as summary.csv columns (none for a step of single requests)."""
    if sessions is None:
        return {}
    means = {name: (sessions[name] or {}).get("mean") for name in ("turns_ok", "duration_s")}
    return {
        "sessions_started": sessions["num_started"],
        "sessions_kept": sessions["num_sessions"],
        "sessions_broken": sessions["num_broken"],
        "session_rate_sps": sessions["session_rate_sps"],
        "session_turns_ok_mean": means["turns_ok"],
        "session_duration_mean_s": means["duration_s"],
    }


def request_rows(
    records: Sequence[RequestRecord], summary: StepSummary, t_start_ns: int
) -> Iterator[dict[str, Any]]:
    """Each request of a step as a requests.jsonl row; times in s from the step's origin."""
    latencies = request_latencies(records)
    columns = {name: latencies.column(name) for name in ROW_LATENCIES}
    sessions = summary.sessions
    planned = summary.num_sent if sessions is None else sessions.num_started

    def since_start(t_ns: int | None) -> float | None:
        return None if t_ns is None else (t_ns - t_start_ns) / 1e9

    for i, record in enumerate(records):
        row = {
            "step": summary.step,
            "target_rate_rps": _json_value(summary.target_rate_rps),
            "index": record.index,
            "phase": record_phase(record, planned, summary.trim),
            "ok": record.ok,
            "t_sched_s": since_start(record.t_sched_ns),
            "t_send_s": since_start(record.t_send_ns),
            "t_first_s": since_start(record.t_first_ns),
            "t_first_answer_s": since_start(record.t_first_answer_ns),
            "t_last_s": since_start(record.t_last_ns),
            "t_done_s": since_start(record.t_done_ns),
            "slot_wait_s": record.slot_wait_ns / 1e9,
            "tokens_in": record.tokens_in,
            "tokens_out": record.tokens_out,
            "tokens_source": record.tokens_source,
            "reasoning_tokens": record.reasoning_tokens,
            "cached_tokens": record.cached_tokens,
            "session": record.session,
            "turn": record.turn,
            "chunks": len(record.chunk_times_ns),
        }
        for name, column in columns.items():
            value = float(column[i])
            row[name] = None if np.isnan(value) else value

        row |= {"status": record.status, "error_kind": record.error_kind, "error": record.error}
        yield row


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so a reader (or a crash) never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def append_rows(path: Path, rows: Iterator[dict[str, Any]], size: int) -> int:
    """Append `rows` as JSON lines to `path`, whose committed size is `size` (bytes).

    Returns the new size; on failure the file is cut back to `size`, so it never keeps a part
    of the rows.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.ftruncate(fd, size)  # a tail a failed append may have left
        written = size
        batch = bytearray()
        for count, row in enumerate(rows, 1):
            batch += orjson.dumps(row)
            batch += b"\n"
            if count % _ROWS_PER_WRITE == 0:
                written += _write_all(fd, batch)
                batch.clear()
        written += _write_all(fd, batch)
        os.fsync(fd)
    except BaseException:
        os.ftruncate(fd, size)
        raise
    finally:
        os.close(fd)
    return written


def _write_all(fd: int, data: bytes | bytearray) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return len(data)


def summary_document(target: TargetInfo, steps: Sequence[StepSummary]) -> dict[str, Any]:
    """A target's summary.json: what was swept, the configuration, and every finished step."""
    return {
        "tool": "loadgen",
        "version": __version__,
        "target": {
            "name": target.name,
            "label": target.label,
            "model": target.model,
            "base_url": target.base_url,
            "scenario": target.scenario,
        },
        **target.notes,
        "config": dict(target.config),
        **_capacity(target, steps),
        **_repeats(steps),
        "steps": [summary_dict(step) for step in steps],
    }


def _repeats(steps: Sequence[StepSummary]) -> dict[str, Any]:
    """summary.json's `repeats` (see core.repeats), when some step ran more than once."""
    document = repeats_document(steps)
    for entry in document:
        entry["target_rate_rps"] = _json_value(entry["target_rate_rps"])
    return {"repeats": document} if document else {}


def _capacity(target: TargetInfo, steps: Sequence[StepSummary]) -> dict[str, Any]:
    """What a capacity search's steps found, as summary.json's `capacity` (none for a sweep)."""
    if not any(step.slo is not None for step in steps):
        return {}
    resolution = float(target.config.get("capacity", {}).get("resolution", 0.05))
    return {"capacity": asdict(capacity_answer(steps, resolution))}


class ResultsWriter(RunObserver):
    """Writes each target's results folder as its steps end (nothing for a target without one)."""

    def __init__(self) -> None:
        self._target: TargetInfo | None = None
        self._steps: list[StepSummary] = []
        self._requests_bytes = 0

    def on_target_start(self, target: TargetInfo) -> None:
        """Start the target's folder afresh."""
        self._target = target if target.out_dir is not None else None
        self._steps = []
        self._requests_bytes = 0
        if target.out_dir is not None:
            target.out_dir.mkdir(parents=True, exist_ok=True)
            (target.out_dir / "requests.jsonl").write_bytes(b"")

    def on_step_end(
        self, progress: StepProgress, summary: StepSummary, records: list[RequestRecord]
    ) -> None:
        """Append the step's rows, then replace summary.csv and summary.json."""
        if self._target is None or self._target.out_dir is None:
            return
        out_dir = self._target.out_dir
        self._steps.append(summary)
        rows = request_rows(records, summary, progress.t_start_ns)
        self._requests_bytes = append_rows(out_dir / "requests.jsonl", rows, self._requests_bytes)
        write_atomic(out_dir / "summary.csv", _csv_bytes(self._steps))
        document = summary_document(self._target, self._steps)
        document["requests_bytes"] = self._requests_bytes
        write_atomic(
            out_dir / "summary.json", orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"
        )


def _csv_bytes(steps: Sequence[StepSummary]) -> bytes:
    rows = [csv_row(step) for step in steps]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()
