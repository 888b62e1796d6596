"""Tests for loadgen.core.stats.summarize_step over records of several shards.

Every record is built from stated times, so each expected figure is worked out by hand here:
send index k is scheduled at k * 10 ms, shard k % 3 sends it (round robin), and a kept shard
therefore sends every 30 ms.
"""

from __future__ import annotations

import pytest

from loadgen.core.records import ErrorKind, RequestRecord, ShardFigures, StepSummary
from loadgen.core.stats import SATURATION_LATENESS_S, summarize_step

MS = 1_000_000  # ns per ms
BASE = 9_000_000_000_000  # an arbitrary perf_counter_ns origin
WORKERS = 3
TRIM = 5
NUM_SENT = 310  # kept: send indexes 5..304, 100 per shard
KEPT = range(TRIM, NUM_SENT - TRIM)
LATE_MS = 1  # every send's pacer lateness, unless a test says otherwise


def rec(
    index: int,
    *,
    late_ms: int = LATE_MS,
    slot_wait_ms: int = 0,
    shard: int | None = -1,
    error: ErrorKind | None = None,
) -> RequestRecord:
    """Send index `index`, scheduled at index * 10 ms, sent `late_ms` + `slot_wait_ms` after."""
    sched = BASE + index * 10 * MS
    send = sched + (slot_wait_ms + late_ms) * MS
    return RequestRecord(
        index=index,
        t_sched_ns=sched,
        t_send_ns=send if error != "lost" else sched,
        slot_wait_ns=slot_wait_ms * MS,
        t_done_ns=send + 200 * MS,
        tokens_out=1,
        tokens_source="server",
        error_kind=error,
        error=None if error is None else "it went wrong",
        shard=index % WORKERS if shard == -1 else shard,
    )


def summarize(records: list[RequestRecord], **kwargs: object) -> StepSummary:
    args: dict[str, object] = {
        "step": 0,
        "target_rate_rps": 100.0,
        "num_sent": NUM_SENT,
        "trim": TRIM,
        "slos": {},
        "interrupted": False,
        "duration_s": 3.1,
    }
    return summarize_step(records, **{**args, **kwargs})  # type: ignore[arg-type]


def test_the_threshold_is_ten_ms() -> None:
    assert SATURATION_LATENESS_S == 0.010


def test_each_shard_has_its_own_figures() -> None:
    # Shard 0 waits 50 ms for a slot before every send: queueing, not pacer lateness.
    records = [rec(k, slot_wait_ms=50 if k % 3 == 0 else 0) for k in range(NUM_SENT)]
    summary = summarize(records)
    # 100 kept sends per shard, 30 ms apart: 99 gaps over 2.97 s = 33.33 req/s; lateness 1 ms.
    assert summary.shards == tuple(
        ShardFigures(
            shard=i,
            num_sent=100,
            achieved_rate_rps=pytest.approx(99 / 2.97),  # type: ignore[arg-type]
            lateness_p99_s=pytest.approx(0.001),  # type: ignore[arg-type]
        )
        for i in range(WORKERS)
    )
    assert summary.client_saturated is False


def test_shard_figures_count_only_kept_requests() -> None:
    # Warm-up and cool-down sends (indexes 0..4 and 305..309) half a second late: trimmed away,
    # they neither count nor saturate. Shard 0 holds 0, 3, 306 and 309 of them.
    records = [rec(k, late_ms=LATE_MS if k in KEPT else 500) for k in range(NUM_SENT)]
    summary = summarize(records)
    assert [s.num_sent for s in summary.shards] == [100, 100, 100]
    assert [s.lateness_p99_s for s in summary.shards] == pytest.approx([0.001] * 3)
    assert summary.client_saturated is False
    # Over every send, untrimmed, the late ones do show.
    assert summary.untrimmed.pacer_lateness_s is not None
    assert summary.untrimmed.pacer_lateness_s.max == pytest.approx(0.5)


def test_one_late_shard_saturates_the_client_though_the_merged_p99_does_not() -> None:
    # Shard 2 (kept indexes 5, 8, ..., 302) sends two of its 100 kept requests 31 ms late.
    late = {152, 155}
    assert all(k % 3 == 2 for k in late)
    records = [rec(k, late_ms=31 if k in late else LATE_MS) for k in range(NUM_SENT)]
    summary = summarize(records)
    # Merged: 2 of 300 late; p99 (linear) sits at place 0.99 * 299 = 296.01 of the sorted 300,
    # between two 1 ms values: 1 ms, below the threshold.
    assert summary.trimmed.pacer_lateness_s is not None
    assert summary.trimmed.pacer_lateness_s.p99 == pytest.approx(0.001)
    assert summary.trimmed.pacer_lateness_s.p99 < SATURATION_LATENESS_S
    # Shard 2: 2 of 100 late; p99 at place 0.99 * 99 = 98.01, between the two 31 ms values.
    figures = {s.shard: s for s in summary.shards}
    assert figures[2].lateness_p99_s == pytest.approx(0.031)
    assert figures[0].lateness_p99_s == figures[1].lateness_p99_s == pytest.approx(0.001)
    # Its first and last kept sends are on time, so its rate is unchanged.
    assert figures[2].achieved_rate_rps == pytest.approx(99 / 2.97)
    assert summary.client_saturated is True


def test_lateness_is_measured_after_the_slot_wait() -> None:
    # The same two requests of shard 2 wait 31 ms for a slot and are then sent at once.
    late = {152, 155}
    records = [rec(k, late_ms=0, slot_wait_ms=31) if k in late else rec(k) for k in range(NUM_SENT)]
    summary = summarize(records)
    assert {s.shard: s.lateness_p99_s for s in summary.shards} == pytest.approx(
        {0: 0.001, 1: 0.001, 2: 0.001}
    )
    assert summary.client_saturated is False


def test_a_late_shard_does_not_saturate_a_batch_at_infinite_rate() -> None:
    late = {152, 155}
    records = [rec(k, late_ms=31 if k in late else LATE_MS) for k in range(NUM_SENT)]
    summary = summarize(records, target_rate_rps=float("inf"))
    assert {s.shard: s.lateness_p99_s for s in summary.shards}[2] == pytest.approx(0.031)
    assert summary.client_saturated is False


def test_a_shards_rate_is_over_its_own_sends() -> None:
    # Shard 1 (kept indexes 7, 10, ..., 304) sends only its kept requests up to index 154
    # (50 of them: 7 + 49 * 3 = 154) on time; the rest are lost, so never sent.
    records = [rec(k, error="lost" if k % 3 == 1 and k > 154 else None) for k in range(NUM_SENT)]
    summary = summarize(records)
    figures = {s.shard: s for s in summary.shards}
    assert figures[1].num_sent == 50
    # 49 gaps of 30 ms over 1.47 s: 33.33 req/s.
    assert figures[1].achieved_rate_rps == pytest.approx(49 / 1.47)
    assert figures[0].num_sent == figures[2].num_sent == 100
    assert summary.trimmed.errors_by_kind == {"lost": 50}


def test_a_shard_with_one_send_has_no_rate() -> None:
    records = [rec(k, shard=0) for k in range(NUM_SENT)]
    records[100] = rec(100, shard=1)
    summary = summarize(records)
    assert summary.shards == (
        ShardFigures(
            shard=0,
            num_sent=299,
            achieved_rate_rps=pytest.approx(298 / 2.99),  # type: ignore[arg-type]
            lateness_p99_s=pytest.approx(0.001),  # type: ignore[arg-type]
        ),
        ShardFigures(
            shard=1,
            num_sent=1,
            achieved_rate_rps=None,
            lateness_p99_s=pytest.approx(0.001),  # type: ignore[arg-type]
        ),
    )


def test_one_process_records_have_no_shard_figures() -> None:
    late = {152, 155}
    records = [rec(k, late_ms=31 if k in late else LATE_MS, shard=None) for k in range(NUM_SENT)]
    summary = summarize(records)
    assert summary.shards == ()
    # The same two late sends, with nothing to single them out: the merged p99 decides.
    assert summary.client_saturated is False


@pytest.mark.parametrize("invalid", [None, "shard 1 of 3 was lost at 2.5 s"])
def test_invalid_passes_through(invalid: str | None) -> None:
    records = [rec(k) for k in range(NUM_SENT)]
    assert summarize(records, invalid=invalid).invalid == invalid


def test_invalid_defaults_to_none() -> None:
    records = [rec(k) for k in range(NUM_SENT)]
    summary = summarize_step(
        records,
        step=0,
        target_rate_rps=100.0,
        num_sent=NUM_SENT,
        trim=TRIM,
        slos={},
        interrupted=False,
        duration_s=3.1,
    )
    assert summary.invalid is None
