"""Trace replay through `loadgen run --arrival trace`: the trace's times (scaled) and lengths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration._helpers import read_jsonl, read_summary, run_cli
from tests.support.fake_openai import Behaviour, FakeOpenAI, ServerThread

# Timestamps (s) and lengths of a small trace, deliberately out of order in the file.
ROWS = [
    (1000.00, 12, 3),
    (1000.40, 5, 7),
    (1000.10, 30, 2),
    (1000.90, 8, 4),
    (1001.30, 16, 5),
    (1001.50, 9, 6),
    (1002.00, 20, 2),
    (1000.60, 7, 3),
]


def write_trace(path: Path) -> Path:
    lines = [
        json.dumps({"timestamp": t, "input_tokens": i, "output_tokens": o}) for t, i, o in ROWS
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_trace_replays_scaled_times_and_lengths(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "trace.jsonl")
    fake = FakeOpenAI(Behaviour())
    with ServerThread(fake) as url:
        code = run_cli(
            [
                "run",
                "--base-url",
                url,
                "--arrival",
                "trace",
                "--trace",
                str(trace),
                "--time-scale",
                "0.5",
                "--trim",
                "1",
                "--quiet",
                "--out",
                str(tmp_path / "out"),
            ]
        )
    assert code == 0
    ordered = sorted(ROWS)
    expected_offsets = [(t - 1000.0) * 0.5 for t, _, _ in ordered]  # 0, 0.05, 0.2, 0.3, ...
    rows = read_jsonl(tmp_path / "out" / "requests.jsonl")
    assert [row["index"] for row in rows] == list(range(len(ROWS)))
    for row, offset in zip(rows, expected_offsets, strict=True):
        assert row["t_sched_s"] == pytest.approx(offset, abs=1e-6)
        # Sent on schedule: 50 ms is far beyond the pacer's sub-millisecond lateness, and far
        # below the 25 ms-apart trace gaps it would take to mistake one slot for another.
        assert 0 <= row["t_send_s"] - row["t_sched_s"] < 0.05
    received = sorted(incoming.body["max_tokens"] for incoming in fake.seen.requests)
    assert received == sorted(o for _, _, o in ROWS)
    assert all(incoming.body["ignore_eos"] is True for incoming in fake.seen.requests)
    step = read_summary(tmp_path / "out")["steps"][0]
    assert step["target_rate_rps"] == pytest.approx(7 / 1.0)  # 7 gaps over (1002 - 1000) * 0.5
    assert step["num_sent"] == len(ROWS)


def test_a_trace_too_short_for_the_trim_exits_2(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    trace = write_trace(tmp_path / "trace.jsonl")
    with ServerThread(FakeOpenAI(Behaviour())) as url:
        code = run_cli(
            [
                "run",
                "--base-url",
                url,
                "--arrival",
                "trace",
                "--trace",
                str(trace),
                "--trim",
                "4",
                "--quiet",
                "--out",
                str(tmp_path / "out"),
            ]
        )
    err = capfd.readouterr().err
    assert code == 2
    assert "8 usable requests" in err
    assert "Traceback" not in err
