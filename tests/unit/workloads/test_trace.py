"""Tests for loadgen.workloads.trace: BurstGPT CSV and JSON(L) traces, scaling, TraceWorkload."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from loadgen.workloads import DatasetError
from loadgen.workloads.trace import Trace, TraceWorkload, load_trace

BURSTGPT_HEADER = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def make_trace(stamps: list[float], inputs: list[int], outputs: list[int]) -> Trace:
    return Trace(
        offsets_s=np.array(stamps, dtype=np.float64),
        input_tokens=np.array(inputs, dtype=np.int64),
        output_tokens=np.array(outputs, dtype=np.int64),
        name="t",
    )


def test_burstgpt_csv_sorted_offsets_and_lengths(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "burst.csv",
        BURSTGPT_HEADER
        + "12,ChatGPT,30,40,70,Conversation log\n"
        + "10,ChatGPT,5,7,12,Conversation log\n"
        + "11,GPT-4,9,0,9,Conversation log\n"
        + "10.5,GPT-4,0,3,3,API log\n",
    )
    trace = load_trace(path)
    assert trace.name == "burst"
    assert trace.offsets_s.tolist() == [0.0, 0.5, 2.0]
    assert trace.input_tokens.tolist() == [5, 1, 30]
    assert trace.output_tokens.tolist() == [7, 3, 40]
    assert trace.offsets_s.dtype == np.float64
    assert trace.input_tokens.dtype == np.int64


def test_sort_is_stable_for_equal_timestamps(tmp_path: Path) -> None:
    path = write(tmp_path, "tie.csv", BURSTGPT_HEADER + "5,m,3,1,4,x\n4,m,1,1,2,x\n5,m,2,1,3,x\n")
    trace = load_trace(path)
    assert trace.offsets_s.tolist() == [0.0, 1.0, 1.0]
    assert trace.input_tokens.tolist() == [1, 3, 2]


def test_jsonl_trace(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.jsonl",
        '{"timestamp": 3.5, "input_tokens": 8, "output_tokens": 2}\n'
        "\n"
        '{"timestamp": 1.5, "input_tokens": 4, "output_tokens": 6}\n'
        '{"timestamp": 2.0, "input_tokens": 4, "output_tokens": 0}\n',
    )
    trace = load_trace(path)
    assert trace.name == "t"
    assert trace.offsets_s.tolist() == [0.0, 2.0]
    assert trace.input_tokens.tolist() == [4, 8]
    assert trace.output_tokens.tolist() == [6, 2]


def test_json_list_trace(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.json",
        '[{"timestamp": 0, "input_tokens": 0, "output_tokens": 1},'
        ' {"timestamp": 0.25, "input_tokens": 2, "output_tokens": 3}]',
    )
    trace = load_trace(path)
    assert trace.offsets_s.tolist() == [0.0, 0.25]
    assert trace.input_tokens.tolist() == [1, 2]
    assert trace.output_tokens.tolist() == [1, 3]


def test_scaled_offsets_and_mean_rate() -> None:
    trace = make_trace([0.0, 0.5, 2.0], [1, 1, 1], [1, 1, 1])
    assert trace.scaled_offsets_s(0.5).tolist() == [0.0, 0.25, 1.0]
    assert trace.scaled_offsets_s(2.0).tolist() == [0.0, 1.0, 4.0]
    assert trace.mean_rate_rps(1.0) == 1.0
    assert trace.mean_rate_rps(0.5) == 2.0


def test_mean_rate_infinite_for_zero_span_or_one_request() -> None:
    assert make_trace([0.0, 0.0], [1, 1], [1, 1]).mean_rate_rps(1.0) == math.inf
    assert make_trace([0.0], [1], [1]).mean_rate_rps(1.0) == math.inf


@pytest.mark.parametrize("scale", [0.0, -1.0, math.inf, math.nan])
def test_bad_time_scale(scale: float) -> None:
    trace = make_trace([0.0, 1.0], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="time_scale"):
        trace.scaled_offsets_s(scale)
    with pytest.raises(ValueError, match="time_scale"):
        trace.mean_rate_rps(scale)


def test_head() -> None:
    trace = make_trace([0.0, 1.0, 3.0], [4, 5, 6], [7, 8, 9])
    first = trace.head(2)
    assert len(first) == 2
    assert first.offsets_s.tolist() == [0.0, 1.0]
    assert first.input_tokens.tolist() == [4, 5]
    assert first.output_tokens.tolist() == [7, 8]
    assert first.name == "t"
    assert len(trace.head(10)) == 3
    assert len(trace.head(0)) == 0
    with pytest.raises(ValueError, match="count"):
        trace.head(-1)


def test_missing_file(tmp_path: Path) -> None:
    for name in ("none.csv", "none.jsonl"):
        path = tmp_path / name
        with pytest.raises(DatasetError, match=f"{re.escape(name)}: cannot read"):
            load_trace(path)


def test_missing_csv_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "cols.csv", "Timestamp,Model,Request tokens\n1,m,2\n")
    with pytest.raises(DatasetError, match=r"cols\.csv: missing CSV column") as info:
        load_trace(path)
    assert "'Response tokens'" in str(info.value)
    assert "Timestamp" in str(info.value)


def test_empty_csv_names_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.csv", "")
    with pytest.raises(DatasetError, match=r"empty\.csv: missing CSV column"):
        load_trace(path)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("abc,m,1,1,2,x", "timestamp must be a number"),
        ("1,m,one,1,2,x", "input tokens must be a number"),
        ("1,m,1,,2,x", "output tokens must be a number"),
        ("-1,m,1,1,2,x", "timestamp must be >= 0"),
        ("1,m,-2,1,2,x", "input tokens must be >= 0"),
        ("1,m,2,-1,2,x", "output tokens must be >= 0"),
        ("1,m,2.5,1,2,x", "input tokens must be a whole number"),
        ("inf,m,2,1,2,x", "timestamp must be finite"),
        ("1,m", "input tokens must be a number"),
    ],
)
def test_bad_csv_value_names_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    path = write(tmp_path, "bad.csv", BURSTGPT_HEADER + "0,m,1,1,2,x\n" + row + "\n")
    with pytest.raises(DatasetError, match=rf"bad\.csv:3: {message}"):
        load_trace(path)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('{"timestamp": "x", "input_tokens": 1, "output_tokens": 1}', "timestamp must be a number"),
        ('{"timestamp": 1, "input_tokens": true, "output_tokens": 1}', "input tokens must be a"),
        ('{"timestamp": 1, "input_tokens": 1, "output_tokens": -3}', "output tokens must be >= 0"),
        ('{"timestamp": -0.5, "input_tokens": 1, "output_tokens": 1}', "timestamp must be >= 0"),
        ('{"timestamp": 1, "input_tokens": 1}', r"missing key\(s\) \['output_tokens'\]"),
        ("[1, 2]", "expected an object"),
    ],
)
def test_bad_jsonl_entry_names_file_and_line(tmp_path: Path, entry: str, message: str) -> None:
    good = '{"timestamp": 0, "input_tokens": 1, "output_tokens": 1}\n'
    path = write(tmp_path, "bad.jsonl", good + entry + "\n")
    with pytest.raises(DatasetError, match=rf"bad\.jsonl:2: {message}"):
        load_trace(path)


def test_bad_json_list_entry_named(tmp_path: Path) -> None:
    entry = '{"timestamp": 0, "input_tokens": 1, "output_tokens": "?"}'
    path = write(tmp_path, "bad.json", f"[{entry}]")
    with pytest.raises(DatasetError, match=r"bad\.json: entry 0: output tokens must be a number"):
        load_trace(path)


def test_invalid_json_named(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.jsonl", "{not json\n")
    with pytest.raises(DatasetError, match=r"broken\.jsonl:1: not valid JSON"):
        load_trace(path)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("header.csv", BURSTGPT_HEADER),
        ("failed.csv", BURSTGPT_HEADER + "1,m,5,0,5,x\n2,m,6,0,6,x\n"),
        ("blank.jsonl", "\n\n"),
        ("failed.jsonl", '{"timestamp": 1, "input_tokens": 3, "output_tokens": 0}\n'),
    ],
)
def test_no_usable_rows(tmp_path: Path, name: str, text: str) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(DatasetError, match=f"{re.escape(name)}: no usable rows"):
        load_trace(path)


def test_workload_specs_follow_trace_lengths() -> None:
    trace = make_trace([0.0, 1.0, 2.0, 3.0], [3, 12, 1, 25], [5, 6, 7, 8])
    workload = TraceWorkload(trace)
    assert workload.name == "t"
    specs = workload.specs(3, np.random.default_rng(0))
    assert [spec.tokens_in for spec in specs] == [3, 12, 1]
    assert [spec.max_tokens for spec in specs] == [5, 6, 7]
    assert [len(spec.prompt.split()) for spec in specs] == [3, 12, 1]
    again = workload.specs(3, np.random.default_rng(0))
    assert [spec.prompt for spec in again] == [spec.prompt for spec in specs]


def test_workload_specs_whole_trace_and_zero() -> None:
    workload = TraceWorkload(make_trace([0.0, 1.0], [2, 4], [1, 9]))
    specs = workload.specs(2, np.random.default_rng(1))
    assert [len(spec.prompt.split()) for spec in specs] == [2, 4]
    assert workload.specs(0, np.random.default_rng(1)) == []


@pytest.mark.parametrize("count", [3, -1])
def test_workload_rejects_bad_counts(count: int) -> None:
    workload = TraceWorkload(make_trace([0.0, 1.0], [2, 4], [1, 9]))
    with pytest.raises(ValueError, match="num_requests"):
        workload.specs(count, np.random.default_rng(0))
