"""Recorded request traces (BurstGPT CSV or JSON/JSONL) and a workload replaying their lengths."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from loadgen.core.records import RequestSpec
from loadgen.workloads import DatasetError
from loadgen.workloads.files import read_entries
from loadgen.workloads.text import prose_batch

CSV_COLUMNS: tuple[str, str, str] = ("Timestamp", "Request tokens", "Response tokens")
JSON_KEYS: tuple[str, str, str] = ("timestamp", "input_tokens", "output_tokens")

# One parsed row: timestamp (s), input tokens, output tokens.
_Row = tuple[float, int, int]


@dataclass(frozen=True, eq=False)
class Trace:
    """Requests of a recorded trace: arrival times (s, from the first) and token lengths."""

    offsets_s: npt.NDArray[np.float64]
    input_tokens: npt.NDArray[np.int64]
    output_tokens: npt.NDArray[np.int64]
    name: str

    def __len__(self) -> int:
        """Number of requests."""
        return len(self.offsets_s)

    def head(self, count: int) -> Trace:
        """The first `count` requests (all of them when the trace has fewer)."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        return Trace(
            offsets_s=self.offsets_s[:count],
            input_tokens=self.input_tokens[:count],
            output_tokens=self.output_tokens[:count],
            name=self.name,
        )

    def take(self, rows: npt.NDArray[np.intp]) -> Trace:
        """The requests at `rows` (indices, in the order given)."""
        return Trace(
            offsets_s=self.offsets_s[rows],
            input_tokens=self.input_tokens[rows],
            output_tokens=self.output_tokens[rows],
            name=self.name,
        )

    def scaled_offsets_s(self, time_scale: float) -> npt.NDArray[np.float64]:
        """Offsets (s) times `time_scale` (0.5 replays twice as fast)."""
        if not math.isfinite(time_scale) or time_scale <= 0:
            raise ValueError(f"time_scale must be finite and > 0, got {time_scale}")
        return self.offsets_s * time_scale

    def mean_rate_rps(self, time_scale: float) -> float:
        """(n - 1) / last scaled offset (req/s); inf when the span is 0 or n < 2."""
        scaled = self.scaled_offsets_s(time_scale)
        if len(scaled) < 2 or scaled[-1] <= 0:
            return math.inf
        return (len(scaled) - 1) / float(scaled[-1])


def load_trace(path: Path) -> Trace:
    """The trace in `path`: BurstGPT CSV for `.csv`, else a JSON list or JSONL of requests."""
    rows = list(_csv_rows(path) if path.suffix.lower() == ".csv" else _json_rows(path))
    # BurstGPT logs failed requests with 0 response tokens; they generated nothing to replay.
    usable = [row for row in rows if row[2] >= 1]
    if not usable:
        raise DatasetError(f"{path}: no usable rows (need at least one with output tokens >= 1)")
    stamps = np.array([row[0] for row in usable], dtype=np.float64)
    order = np.argsort(stamps, kind="stable")
    # A prompt needs at least one token, so a recorded 0-token input is replayed as 1.
    inputs = np.maximum(np.array([row[1] for row in usable], dtype=np.int64), 1)
    outputs = np.array([row[2] for row in usable], dtype=np.int64)
    stamps = stamps[order]
    return Trace(
        offsets_s=stamps - stamps[0],
        input_tokens=inputs[order],
        output_tokens=outputs[order],
        name=path.stem,
    )


def _csv_rows(path: Path) -> Iterator[_Row]:
    """Rows of a BurstGPT-style CSV file; DatasetError naming the file and line."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                needed = ", ".join(repr(c) for c in CSV_COLUMNS)
                raise DatasetError(f"{path}: missing CSV column(s) {missing}; need {needed}")
            for record in reader:
                where = f"{path}:{reader.line_num}"
                yield _row([record.get(column) for column in CSV_COLUMNS], where)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: not a readable CSV file ({exc})") from None


def _json_rows(path: Path) -> Iterator[_Row]:
    """Rows of a JSON list or JSONL of {timestamp, input_tokens, output_tokens}."""
    for entry, where in read_entries(path):
        if not isinstance(entry, dict):
            raise DatasetError(f"{where}: expected an object with keys {list(JSON_KEYS)}")
        absent = [key for key in JSON_KEYS if key not in entry]
        if absent:
            raise DatasetError(f"{where}: missing key(s) {absent}; need {list(JSON_KEYS)}")
        yield _row([entry[key] for key in JSON_KEYS], where)


def _row(values: Sequence[Any], where: str) -> _Row:
    """(timestamp s, input tokens, output tokens) from raw values; DatasetError naming `where`."""
    stamp = _number(values[0], "timestamp", where)
    inputs = _count(values[1], "input tokens", where)
    return stamp, inputs, _count(values[2], "output tokens", where)


def _count(value: Any, name: str, where: str) -> int:
    """`value` as a whole number >= 0; DatasetError naming `where` and the field otherwise."""
    number = _number(value, name, where)
    if number != int(number):
        raise DatasetError(f"{where}: {name} must be a whole number, got {value!r}")
    return int(number)


def _number(value: Any, name: str, where: str) -> float:
    """`value` as a finite number >= 0; DatasetError naming `where` and the field otherwise."""
    if isinstance(value, bool):
        raise DatasetError(f"{where}: {name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise DatasetError(f"{where}: {name} must be finite, got {value!r}")
    if number < 0:
        raise DatasetError(f"{where}: {name} must be >= 0, got {value!r}")
    return number


@dataclass(frozen=True, eq=False)
class TraceWorkload:
    """Prompts and output budgets with the token lengths of a recorded trace, in trace order."""

    trace: Trace

    @property
    def name(self) -> str:
        """The trace's name."""
        return self.trace.name

    def specs(self, num_requests: int, rng: np.random.Generator) -> Sequence[RequestSpec]:
        """Specs for the first `num_requests` requests of the trace; ValueError if it is shorter."""
        if not 0 <= num_requests <= len(self.trace):
            raise ValueError(
                f"need 0 <= num_requests <= {len(self.trace)} (trace {self.trace.name!r}), "
                f"got {num_requests}"
            )
        lengths = self.trace.input_tokens[:num_requests]
        # One prose word is about one BPE token, as in ScenarioWorkload.
        prompts = prose_batch(lengths, rng)
        budgets = self.trace.output_tokens[:num_requests].tolist()
        return [
            RequestSpec(prompt=prompt, max_tokens=budget, tokens_in=length)
            for prompt, budget, length in zip(prompts, budgets, lengths.tolist(), strict=True)
        ]
