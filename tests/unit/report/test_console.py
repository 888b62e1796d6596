"""Tests for loadgen.report.console: what a person reads after each step and after a sweep."""

from __future__ import annotations

import math
from dataclasses import replace

from rich.console import Console

from loadgen.core.events import StepProgress
from loadgen.core.records import RequestRecord, StepSummary
from loadgen.core.stats import summarize_step
from loadgen.report.console import (
    progress_text,
    rate_text,
    server_table,
    step_warnings,
    summary_table,
    sweep_table,
)
from tests.support.figures import SERVER

MS = 1_000_000


def record(index: int, *, late_ms: int = 0, error: bool = False) -> RequestRecord:
    """A streamed 4-token request sent at index*100 ms (+late_ms) that takes 400 ms."""
    sched = index * 100 * MS
    send = sched + late_ms * MS
    chunks = (send + 100 * MS, send + 200 * MS, send + 300 * MS, send + 400 * MS)
    if error:
        return RequestRecord(index, sched, send, 0, send + 5 * MS, error_kind="http_5xx")
    return RequestRecord(
        index, sched, send, 0, send + 400 * MS, chunks[0], chunks[-1], 10, 4, "server", chunks
    )


def summary(rate: float, records: list[RequestRecord], step: int = 0) -> StepSummary:
    return summarize_step(
        records,
        step=step,
        target_rate_rps=rate,
        num_sent=len(records),
        trim=0,
        slos={},
        interrupted=False,
        duration_s=1.0,
    )


def rendered(renderable: object) -> str:
    console = Console(record=True, width=200)
    console.print(renderable)
    return console.export_text()


def test_rate_text() -> None:
    assert rate_text(math.inf) == "inf"
    assert rate_text(2.5) == "2.5"
    assert rate_text(10.0) == "10"


def test_summary_table_shows_the_steps_figures() -> None:
    text = rendered(summary_table(summary(10.0, [record(i) for i in range(5)])))
    assert "target 10 req/s, kept 5 of 5 (trim 0)" in text
    # Every request: TTFT 100 ms, E2E 400 ms, TPOT (400-100)/3 = 100 ms, per-token 400/4 = 100.
    assert "100.0 / 100.0 / 100.0" in text
    assert "400.0 / 400.0 / 400.0" in text
    # Sends every 100 ms: 4 gaps over 0.4 s -> 10.00 req/s achieved.
    assert "10.00" in text
    assert "5 / 0" in text


def test_sweep_table_has_one_row_per_step_with_flags() -> None:
    on_time = summary(10.0, [record(i) for i in range(5)], step=0)
    late = summary(20.0, [record(i, late_ms=i * 30) for i in range(5)], step=1)
    text = rendered(sweep_table([on_time, late]))
    lines = [line for line in text.splitlines() if line.strip().startswith("│")]
    assert len(lines) == 2
    assert "saturated" not in lines[0]
    assert "saturated" in lines[1]  # lateness up to 120 ms: p99 far over 10 ms


def test_warnings_name_saturation_errors_and_estimates() -> None:
    late = summary(20.0, [record(i, late_ms=i * 30) for i in range(5)])
    assert any("client_saturated" in line for line in step_warnings(late))
    failing = summary(10.0, [record(0), record(1, error=True)])
    assert any("1 kept requests failed (http_5xx 1)" in line for line in step_warnings(failing))
    assert step_warnings(summary(10.0, [record(i) for i in range(3)])) == []


def test_progress_text_counts() -> None:
    progress = StepProgress(step=1, target_rate_rps=4.0, num_planned=50, trim=5, t_start_ns=0)
    progress.sent, progress.done, progress.errors = 20, 15, 2
    text = progress_text(progress, now_ns=5_000_000_000).plain
    assert text.startswith("step 2 @ 4 req/s")
    assert "sent 20/50" in text
    assert "in flight 5" in text
    assert "sending at 4.0 req/s" in text  # 20 sent in 5 s


def test_summary_table_and_sweep_show_the_servers_view_and_its_mismatch() -> None:
    steps = [replace(summary(10.0, [record(i) for i in range(5)], step=0), server=SERVER)]
    steps.append(summary(20.0, [record(i) for i in range(5)], step=1))  # not scraped
    text = rendered(summary_table(steps[0]))
    assert "20 / 18 (prompt 500 / 500)" in text
    assert "25.0 (125 of 500 tokens)" in text
    assert "4.5 / 7" in text  # running mean / max
    assert "42.5 / 12.0 / 250.0" in text
    assert "4 of http://127.0.0.1:8000/metrics" in text
    assert "server metrics: the server generated 20 tokens" in " ".join(step_warnings(steps[0]))
    table = server_table(steps)
    assert table is not None
    lines = [line for line in rendered(table).splitlines() if line.strip().startswith("│")]
    assert len(lines) == 1  # the step without server figures has no row
    assert lines[0].split() == ["│", "10", "│", "20", "│", "18", "│", "25.0", "│", "3", "│",
                                "7", "│", "2", "│", "50.0", "│", "42.5", "│"]  # fmt: skip
    assert server_table(steps[1:]) is None
    assert "server:" not in rendered(summary_table(steps[1]))


def test_summary_table_shows_reasoning_only_when_reported() -> None:
    thinking = [replace(record(i), reasoning_tokens=i) for i in range(5)]
    # Reasoning 0..4 of 4 tokens each: mean 2.0, answers 4 - i: mean 2.0.
    row = next(
        line
        for line in rendered(summary_table(summary(10.0, thinking))).splitlines()
        if "reasoning" in line
    )
    assert row.split() == ["│", "reasoning", "/", "answer", "tokens,", "mean", "│", "2.0", "/",
                           "2.0", "│"]  # fmt: skip
    assert "reasoning" not in rendered(summary_table(summary(10.0, [record(0), record(1)])))
