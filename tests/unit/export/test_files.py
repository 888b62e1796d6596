"""Tests for loadgen.export.files: the results folder after each step, with hand-set times."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from loadgen.core.events import StepProgress, TargetInfo
from loadgen.core.records import RequestRecord, StepSummary
from loadgen.core.stats import summarize_step
from loadgen.export.files import ResultsWriter, append_rows, request_rows

MS = 1_000_000  # ns per ms
T0 = 4_000_000_000_000  # step 0's schedule origin (an arbitrary perf_counter_ns reading)
T1 = 9_000_000_000_000  # step 1's schedule origin
FILES = {"summary.json", "summary.csv", "requests.jsonl"}
CONFIG = {"target": {"base_url": "http://h:8000/v1"}, "load": {"rates_rps": [2.0, "inf"]}}


def step_records(t0: int) -> list[RequestRecord]:
    """Three requests of a step starting at `t0`: two streamed successes and one HTTP 500."""
    return [
        RequestRecord(
            index=0,
            t_sched_ns=t0,
            t_send_ns=t0 + 1 * MS,
            slot_wait_ns=0,
            t_first_ns=t0 + 101 * MS,
            t_last_ns=t0 + 301 * MS,
            t_done_ns=t0 + 302 * MS,
            tokens_in=8,
            tokens_out=3,
            tokens_source="server",
            chunk_times_ns=(t0 + 101 * MS, t0 + 201 * MS, t0 + 301 * MS),
        ),
        RequestRecord(
            index=1,
            t_sched_ns=t0 + 250 * MS,
            t_send_ns=t0 + 255 * MS,
            slot_wait_ns=2_500_000,
            t_first_ns=t0 + 355 * MS,
            t_last_ns=t0 + 555 * MS,
            t_done_ns=t0 + 560 * MS,
            tokens_in=8,
            tokens_out=2,
            tokens_source="server",
            chunk_times_ns=(t0 + 355 * MS, t0 + 555 * MS),
        ),
        RequestRecord(
            index=2,
            t_sched_ns=t0 + 500 * MS,
            t_send_ns=t0 + 500 * MS,
            slot_wait_ns=0,
            t_done_ns=t0 + 750 * MS,
            error_kind="http_5xx",
            error="HTTP 500: boom",
            status=500,
        ),
    ]


def summary_of(records: Sequence[RequestRecord], step: int, rate: float) -> StepSummary:
    """The summary of `records` with trim 1 (index 0 warmup, 1 measure, 2 cooldown)."""
    return summarize_step(
        records,
        step=step,
        target_rate_rps=rate,
        num_sent=len(records),
        trim=1,
        slos={},
        interrupted=False,
        duration_s=0.75,
    )


def no_constants(name: str) -> Any:
    """A json.loads parse_constant that fails on NaN / Infinity (strict JSON has none)."""
    raise AssertionError(f"non-standard JSON constant {name} in output")


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(), parse_constant=no_constants)
    return data


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line, parse_constant=no_constants) for line in path.read_text().splitlines()]


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or ()), rows


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "results" / "run-1"  # not there yet: the writer creates it


def started(out_dir: Path, config: dict[str, Any] | None = None) -> ResultsWriter:
    """A writer told that a target writing to `out_dir` starts."""
    writer = ResultsWriter()
    writer.on_target_start(
        TargetInfo(
            name=None,
            label="m @ h:8000",
            model="m",
            base_url="http://h:8000/v1",
            scenario="synthetic",
            run_id="run-1",
            out_dir=out_dir,
            plot_title="a sweep",
            config=config or CONFIG,
            notes={"simulator": {"label": "sim"}},
        )
    )
    return writer


def write_step(
    writer: ResultsWriter, records: list[RequestRecord], summary: StepSummary, t0: int
) -> None:
    progress = StepProgress(summary.step, summary.target_rate_rps, len(records), summary.trim, t0)
    writer.on_step_end(progress, summary, records)


def row_of(record_index: int, summary: StepSummary, t0: int) -> dict[str, Any]:
    """The requests.jsonl row of one of `step_records(T0)`."""
    return list(request_rows(step_records(T0), summary, t0))[record_index]


def test_first_step_written_at_once(out_dir: Path) -> None:
    writer = started(out_dir)
    records = step_records(T0)
    write_step(writer, records, summary_of(records, 0, 2.0), T0)

    assert {p.name for p in out_dir.iterdir()} == FILES
    doc = read_json(out_dir / "summary.json")
    assert doc["tool"] == "loadgen"
    assert doc["config"] == CONFIG
    assert doc["target"] == {
        "name": None,
        "label": "m @ h:8000",
        "model": "m",
        "base_url": "http://h:8000/v1",
        "scenario": "synthetic",
    }
    assert doc["simulator"] == {"label": "sim"}
    assert [s["step"] for s in doc["steps"]] == [0]
    assert doc["requests_bytes"] == (out_dir / "requests.jsonl").stat().st_size
    header, rows = read_csv(out_dir / "summary.csv")
    assert len(rows) == 1
    assert "target_rate_rps" in header
    assert len(read_jsonl(out_dir / "requests.jsonl")) == 3


def test_two_steps(out_dir: Path) -> None:
    writer = started(out_dir)
    first, second = step_records(T0), step_records(T1)
    write_step(writer, first, summary_of(first, 0, 2.0), T0)
    first_rows = (out_dir / "requests.jsonl").read_bytes()
    write_step(writer, second, summary_of(second, 1, math.inf), T1)

    doc = read_json(out_dir / "summary.json")
    assert [s["step"] for s in doc["steps"]] == [0, 1]
    assert [s["target_rate_rps"] for s in doc["steps"]] == [2.0, "inf"]
    # Trim 1 of 3 keeps index 1 only; the untrimmed figures cover all three.
    assert [s["num_sent"] for s in doc["steps"]] == [3, 3]
    assert [s["num_kept"] for s in doc["steps"]] == [1, 1]
    assert [s["untrimmed"]["num_requests"] for s in doc["steps"]] == [3, 3]
    assert doc["steps"][0]["untrimmed"]["errors_by_kind"] == {"http_5xx": 1}
    # The second step's rows were appended: the first step's bytes are as they were.
    assert doc["requests_bytes"] == (out_dir / "requests.jsonl").stat().st_size
    assert (out_dir / "requests.jsonl").read_bytes().startswith(first_rows)

    text = (out_dir / "summary.csv").read_text()
    assert len(text.splitlines()) == 3  # header + one row per step
    _, rows = read_csv(out_dir / "summary.csv")
    assert [row["step"] for row in rows] == ["0", "1"]
    assert [row["target_rate_rps"] for row in rows] == ["2.0", "inf"]

    lines = read_jsonl(out_dir / "requests.jsonl")
    assert [(row["step"], row["index"]) for row in lines] == [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 1),
        (1, 2),
    ]
    assert [row["target_rate_rps"] for row in lines] == [2.0, 2.0, 2.0, "inf", "inf", "inf"]
    # Each step's times are relative to its own origin, so both steps read the same.
    assert [row["t_send_s"] for row in lines] == [0.001, 0.255, 0.5, 0.001, 0.255, 0.5]


def test_a_new_target_starts_its_folder_afresh(out_dir: Path) -> None:
    records = step_records(T0)
    write_step(started(out_dir), records, summary_of(records, 0, 2.0), T0)
    write_step(started(out_dir), records, summary_of(records, 0, 3.0), T0)
    assert [row["target_rate_rps"] for row in read_jsonl(out_dir / "requests.jsonl")] == [3.0] * 3
    assert [s["target_rate_rps"] for s in read_json(out_dir / "summary.json")["steps"]] == [3.0]


def test_json_is_strict_with_inf_rate(out_dir: Path) -> None:
    writer = started(out_dir, {"load": {"rates_rps": ["inf"]}})
    records = step_records(T0)
    write_step(writer, records, summary_of(records, 0, math.inf), T0)
    # Every file parses with a parse_constant that refuses Infinity / NaN.
    assert read_json(out_dir / "summary.json")["steps"][0]["target_rate_rps"] == "inf"
    assert {row["target_rate_rps"] for row in read_jsonl(out_dir / "requests.jsonl")} == {"inf"}
    assert "Infinity" not in (out_dir / "summary.json").read_text()


def test_no_temp_files_left(out_dir: Path) -> None:
    writer = started(out_dir)
    for step, t0 in enumerate((T0, T1)):
        records = step_records(t0)
        write_step(writer, records, summary_of(records, step, 1.0), t0)
        assert sorted(p.name for p in out_dir.iterdir()) == sorted(FILES)


def test_request_row_times_relative_to_step_start() -> None:
    summary = summary_of(step_records(T0), 4, 2.0)
    row = row_of(0, summary, T0)
    latencies = {
        name: row.pop(name)
        for name in ("ttft_s", "ttfa_s", "tpot_s", "e2e_s", "per_token_latency_s")
    }
    assert row == {
        "step": 4,
        "target_rate_rps": 2.0,
        "index": 0,
        "phase": "warmup",
        "ok": True,
        "t_sched_s": 0.0,
        "t_send_s": 0.001,
        "t_first_s": 0.101,
        "t_first_answer_s": None,
        "t_last_s": 0.301,
        "t_done_s": 0.302,
        "slot_wait_s": 0.0,
        "tokens_in": 8,
        "tokens_out": 3,
        "tokens_source": "server",
        "reasoning_tokens": None,
        "cached_tokens": None,
        "session": None,
        "turn": None,
        "chunks": 3,
        "status": None,
        "error_kind": None,
        "error": None,
    }
    # Sent at 1 ms, first token at 101 ms, last (third) at 301 ms.
    assert latencies == {
        "ttft_s": pytest.approx(0.100),
        "ttfa_s": None,  # no answer text was told apart from reasoning
        "tpot_s": pytest.approx(0.100),
        "e2e_s": pytest.approx(0.300),
        "per_token_latency_s": pytest.approx(0.100),
    }


def test_request_row_origin_before_first_schedule() -> None:
    summary = summary_of(step_records(T0), 0, 2.0)
    row = row_of(1, summary, T0 - 20 * MS)  # a 20 ms lead before offset 0
    assert row["t_sched_s"] == 0.27
    assert row["t_send_s"] == 0.275
    assert row["t_first_s"] == 0.375
    assert row["t_last_s"] == 0.575
    assert row["t_done_s"] == 0.58
    assert row["slot_wait_s"] == 0.0025
    # Latencies do not depend on the origin: 100 ms to the first token, 300 ms to the last.
    assert row["ttft_s"] == pytest.approx(0.100)
    assert row["e2e_s"] == pytest.approx(0.300)


def test_request_row_error() -> None:
    row = row_of(2, summary_of(step_records(T0), 0, 2.0), T0)
    assert row["ok"] is False
    assert row["error_kind"] == "http_5xx"
    assert row["error"] == "HTTP 500: boom"
    assert row["status"] == 500
    assert row["t_first_s"] is None
    assert row["t_last_s"] is None
    assert row["t_done_s"] == 0.75
    assert row["chunks"] == 0
    assert [row[name] for name in ("ttft_s", "tpot_s", "e2e_s", "per_token_latency_s")] == [
        None
    ] * 4


def test_request_row_phases_by_trim_rule() -> None:
    summary = summary_of(step_records(T0), 0, 2.0)
    assert [row["phase"] for row in request_rows(step_records(T0), summary, T0)] == [
        "warmup",
        "measure",
        "cooldown",
    ]


def test_phases_in_file_with_larger_trim(out_dir: Path) -> None:
    # Six requests, trim 2: indices 0-1 warmup, 2-3 measure, 4-5 cooldown.
    records = [
        RequestRecord(
            index=i,
            t_sched_ns=T0 + i * 100 * MS,
            t_send_ns=T0 + i * 100 * MS,
            slot_wait_ns=0,
            t_done_ns=T0 + i * 100 * MS + 50 * MS,
            t_last_ns=T0 + i * 100 * MS + 50 * MS,
            tokens_out=1,
        )
        for i in range(6)
    ]
    summary = summarize_step(
        records,
        step=0,
        target_rate_rps=10.0,
        num_sent=6,
        trim=2,
        slos={},
        interrupted=False,
        duration_s=0.55,
    )
    write_step(started(out_dir), records, summary, T0)
    phases = [row["phase"] for row in read_jsonl(out_dir / "requests.jsonl")]
    assert phases == ["warmup", "warmup", "measure", "measure", "cooldown", "cooldown"]


def test_an_append_that_fails_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    size = append_rows(path, iter([{"step": 0, "index": 0}]), 0)
    before = path.read_bytes()

    def rows() -> Any:
        for index in range(25_000):  # more than one write's worth, then a failure
            yield {"step": 1, "index": index}
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        append_rows(path, rows(), size)
    assert path.read_bytes() == before
    assert before == b'{"step":0,"index":0}\n'


def test_an_append_after_a_torn_tail_cuts_it_first(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    size = append_rows(path, iter([{"index": 0}]), 0)
    with path.open("ab") as handle:
        handle.write(b'{"index": 1, "tor')  # what a crash mid-append could leave
    append_rows(path, iter([{"index": 2}]), size)
    assert read_jsonl(path) == [{"index": 0}, {"index": 2}]
