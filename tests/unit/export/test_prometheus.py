"""Tests for loadgen.export.prometheus (fed by hand-built events) and the Observers fan-out."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry

from loadgen.core.events import StepProgress
from loadgen.core.records import ErrorKind, RequestRecord, StepSummary
from loadgen.core.stats import summarize_step
from loadgen.export.prometheus import PrometheusExporter, RunLabels
from loadgen.version import __version__
from tests.support.prom_samples import Samples, samples, series

MS = 1_000_000  # ns per ms
T0 = 5_000_000_000_000  # an arbitrary perf_counter_ns origin; only differences matter
WALL_START = 1_700_000_000.0
WALL_END = 1_700_000_011.5
RUN = {"target": "tgt", "model": "m", "scenario": "s2s"}
STEP = {**RUN, "rate": "4"}
SLOS = {"ttft": 0.5}
LABELS = RunLabels("run1", "tgt", "m", "s2s")
# vLLM's V1 bucket bounds, written out.
TTFT_LE = [
    "0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1", "0.25", "0.5", "0.75",
    "1.0", "2.5", "5.0", "7.5", "10.0", "20.0", "40.0", "80.0", "160.0", "640.0", "2560.0", "+Inf",
]  # fmt: skip
ITL_LE = [
    "0.01", "0.025", "0.05", "0.075", "0.1", "0.15", "0.2", "0.3", "0.4", "0.5",
    "0.75", "1.0", "2.5", "5.0", "7.5", "10.0", "20.0", "40.0", "80.0", "+Inf",
]  # fmt: skip
REQUEST_LE = [
    "0.3", "0.5", "0.8", "1.0", "1.5", "2.0", "2.5", "5.0", "10.0", "15.0", "20.0",
    "30.0", "40.0", "50.0", "60.0", "120.0", "240.0", "480.0", "960.0", "1920.0", "7680.0", "+Inf",
]  # fmt: skip
ALLOWED_LABELS = {*RUN, "rate", "phase", "status", "direction", "stat", "le", "run_id", "version"}
ALLOWED_LABELS |= {"shard"}


def named(found: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every series of sample `name`, by label set."""
    return {labels: v for (sample, labels), v in found.items() if sample == name}


# fmt: off
def rec(
    index: int, sched_ms: int, send_ms: int, *, chunks_ms: Sequence[int] = (),
    chunk_tokens: Sequence[int] | None = None, last_ms: int | None = None,
    done_ms: int | None = None, tokens_in: int | None = None, tokens_out: int = 0,
    error: ErrorKind | None = None,
) -> RequestRecord:
    # fmt: on
    """A record, times in ms after T0; streamed (t_first = first chunk) when chunks are given."""
    if last_ms is None and chunks_ms:
        last_ms = chunks_ms[-1]
    if done_ms is None:
        done_ms = send_ms if last_ms is None else last_ms + 1
    return RequestRecord(
        index=index, t_sched_ns=T0 + sched_ms * MS, t_send_ns=T0 + send_ms * MS,
        slot_wait_ns=0, t_done_ns=T0 + done_ms * MS,
        t_first_ns=T0 + chunks_ms[0] * MS if chunks_ms else None,
        t_last_ns=None if last_ms is None else T0 + last_ms * MS,
        tokens_in=tokens_in, tokens_out=tokens_out, tokens_source="server",
        chunk_times_ns=tuple(T0 + t * MS for t in chunks_ms), chunk_tokens=chunk_tokens,
        error_kind=error,
    )  # fmt: skip


# N = 10, trim = 2: indices 0, 1 warmup; 2..7 measure; 8, 9 cooldown.
RECORDS = [
    rec(0, 0, 0, chunks_ms=(100, 200, 300), tokens_in=10, tokens_out=3),
    rec(1, 250, 255, done_ms=300, error="http_5xx"),
    rec(2, 500, 500, chunks_ms=(600, 700, 900), chunk_tokens=(1, 2, 4), tokens_in=10, tokens_out=7),
    rec(3, 750, 760, chunks_ms=(810, 860), tokens_in=20, tokens_out=2),
    rec(4, 1000, 1000, last_ms=1500, tokens_in=30, tokens_out=5),  # not streamed
    rec(5, 1250, 1270, done_ms=11270, error="timeout"),
    rec(6, 1500, 1500, chunks_ms=(1600,), tokens_in=10, tokens_out=1),
    rec(7, 1750, 1750, chunks_ms=(4750, 4850), tokens_in=10, tokens_out=2),
    rec(8, 2000, 2000, chunks_ms=(2100, 2200), tokens_in=10, tokens_out=2),
    rec(9, 2250, 2250, done_ms=2300, error="http_5xx"),
]


class Step:
    """A fresh registry and exporter, with hand-set clocks, told that step 0 started."""

    def __init__(self, rate: float = 4.0, num_planned: int = 10, trim: int = 2) -> None:
        self.ns, self.wall = T0, WALL_START  # monotonic (ns) and wall (s) clock readings
        self.registry = CollectorRegistry()
        self.exporter = PrometheusExporter(
            self.registry, "run1", wall_clock_s=lambda: self.wall, monotonic_ns=lambda: self.ns
        )
        self.exporter.start_run(LABELS)
        self.progress = StepProgress(0, rate, num_planned, trim, t_start_ns=T0)
        self.exporter.on_step_start(self.progress)

    def send(self, index: int, late_ns: int) -> None:
        """A dispatch, counted as the runner counts it."""
        self.progress.sent += 1
        self.exporter.on_request_sent(self.progress, index, late_ns)

    def end(self, record: RequestRecord) -> None:
        """A request's end, counted as the runner counts it."""
        self.progress.done += 1
        self.exporter.on_request_done(self.progress, record)

    def finish(self, records: Sequence[RequestRecord]) -> StepSummary:
        """Summarise `records` (SLOS) and tell the exporter the step ended."""
        summary = summarize_step(
            records, step=0, target_rate_rps=self.progress.target_rate_rps, slos=SLOS,
            num_sent=self.progress.num_planned, trim=self.progress.trim,
            interrupted=False, duration_s=11.3,
        )  # fmt: skip
        self.exporter.on_step_end(self.progress, summary, list(records))
        return summary

    def samples(self) -> Samples:
        return samples(self.registry)


def run_step(records: Sequence[RequestRecord] = RECORDS) -> tuple[Samples, StepSummary]:
    """Drive one step as the runner does: sends in index order, then ends in t_done order."""
    step = Step()
    for r in records:
        step.ns = r.t_send_ns
        step.send(r.index, r.t_send_ns - r.t_sched_ns)
    for r in sorted(records, key=lambda r: r.t_done_ns):
        step.ns = r.t_done_ns
        step.end(r)
    step.wall = WALL_END
    summary = step.finish(records)
    return step.samples(), summary


@pytest.fixture
def step() -> tuple[Samples, StepSummary]:
    return run_step()


def per_phase(key: str, expected: dict[tuple[str, str], float]) -> dict[frozenset, float]:
    """{(phase, `key` value): n} as label sets of the step."""
    return {frozenset({**STEP, "phase": p, key: v}.items()): n for (p, v), n in expected.items()}


def test_requests_are_counted_by_phase_and_status(step: tuple[Samples, StepSummary]) -> None:
    found, _ = step
    expected = {
        ("warmup", "ok"): 1, ("warmup", "http_5xx"): 1,  # 0 | 1
        ("measure", "ok"): 5, ("measure", "timeout"): 1,  # 2, 3, 4, 6, 7 | 5
        ("cooldown", "ok"): 1, ("cooldown", "http_5xx"): 1,  # 8 | 9
    }  # fmt: skip
    assert named(found, "loadgen_requests_total") == per_phase("status", expected)


def test_tokens_are_summed_by_direction(step: tuple[Samples, StepSummary]) -> None:
    found, _ = step
    expected = {
        ("warmup", "input"): 10, ("warmup", "output"): 3,
        # 10 + 20 + 30 + 10 + 10 | 7 + 2 + 5 + 1 + 2 (failed 5 carries none)
        ("measure", "input"): 80, ("measure", "output"): 17,
        ("cooldown", "input"): 10, ("cooldown", "output"): 2,
    }  # fmt: skip
    assert named(found, "loadgen_tokens_total") == per_phase("direction", expected)


# (count, sum) per histogram and phase, worked out from RECORDS (s).
HISTOGRAMS = {
    "ttft": {"warmup": (1, 0.1), "measure": (4, 3.25), "cooldown": (1, 0.1)},  # .1 .05 .1 3
    "tpot": {"warmup": (1, 0.1), "measure": (3, 0.2), "cooldown": (1, 0.1)},  # .05 .05 .1
    # index 2: gaps of 100 ms over 2 tokens and 200 ms over 4 -> six of 0.05; 3: 0.05; 7: 0.1.
    "itl": {"warmup": (2, 0.2), "measure": (8, 0.45), "cooldown": (1, 0.1)},
    "e2e_latency": {"warmup": (1, 0.3), "measure": (5, 4.2), "cooldown": (1, 0.2)},
    # .4/7, .1/2, .5/5, .1/1, 3.1/2
    "per_token_latency": {"warmup": (1, 0.1), "measure": (5, 0.4 / 7 + 1.8), "cooldown": (1, 0.1)},
    # failed requests too: 0, .005 | 0, .01, 0, .02, 0, 0 | 0, 0
    "queue": {"warmup": (2, 0.005), "measure": (6, 0.03), "cooldown": (2, 0.0)},
}


@pytest.mark.parametrize("name", HISTOGRAMS)
def test_latency_histograms_count_and_sum(step: tuple[Samples, StepSummary], name: str) -> None:
    found, _ = step
    metric = f"loadgen_{name}_seconds"
    counts = named(found, f"{metric}_count")
    assert set(counts) == {frozenset({**STEP, "phase": p}.items()) for p in HISTOGRAMS[name]}
    for phase, (count, total) in HISTOGRAMS[name].items():
        assert series(found, f"{metric}_count", **STEP, phase=phase) == count
        assert series(found, f"{metric}_sum", **STEP, phase=phase) == pytest.approx(total)


def test_histogram_buckets_are_vllms(step: tuple[Samples, StepSummary]) -> None:
    found, _ = step
    bounds = {
        "ttft": TTFT_LE, "tpot": ITL_LE, "itl": ITL_LE, "per_token_latency": ITL_LE,
        "e2e_latency": REQUEST_LE, "queue": REQUEST_LE,
    }  # fmt: skip
    for name, le in bounds.items():
        buckets = named(found, f"loadgen_{name}_seconds_bucket")
        measure = [dict(labels)["le"] for labels in buckets if ("phase", "measure") in labels]
        assert measure == le, name
    ttft = [series(found, "loadgen_ttft_seconds_bucket", **STEP, phase="measure", le=le)
            for le in TTFT_LE]  # fmt: skip
    # 0.05 | 0.1, 0.1 (on the bound: le is inclusive) | 3.0
    assert ttft == [0, 0, 0, 0, 0, 1, 1, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4]
    itl = [series(found, "loadgen_itl_seconds_bucket", **STEP, phase="measure", le=le)
           for le in ITL_LE[:6]]  # fmt: skip
    assert itl == [0, 0, 7, 7, 8, 8]  # seven 0.05 | one 0.1


def test_step_summary_gauges_copy_the_trimmed_figures(step: tuple[Samples, StepSummary]) -> None:
    found, summary = step
    figures = summary.trimmed
    # Kept: indices 2..7; window = t_last of 7 (4850 ms) - t_send of 2 (500 ms) = 4.35 s.
    assert series(found, "loadgen_step_sequence_throughput_rps", **STEP) == pytest.approx(5 / 4.35)
    assert series(found, "loadgen_step_output_token_throughput_tps", **STEP) == pytest.approx(
        17 / 4.35
    )
    assert series(found, "loadgen_step_error_rate", **STEP) == pytest.approx(1 / 6)
    # ttft <= 0.5 s: indices 2, 3, 6 (4 has no ttft, 7 took 3 s).
    assert series(found, "loadgen_step_goodput_rps", **STEP) == pytest.approx(3 / 4.35)
    # TTFTs .1, .05, .1, 3.0: mean 0.8125, median 0.1.
    assert series(found, "loadgen_step_ttft_seconds", **STEP, stat="mean") == pytest.approx(0.8125)
    assert series(found, "loadgen_step_ttft_seconds", **STEP, stat="p50") == pytest.approx(0.1)
    fields = {
        "ttft": figures.ttft_s, "tpot": figures.tpot_s, "itl": figures.itl_s,
        "e2e_latency": figures.e2e_s, "per_token_latency": figures.per_token_latency_s,
        "queue": figures.queue_s,
    }  # fmt: skip
    for name, dist in fields.items():
        assert dist is not None
        got = named(found, f"loadgen_step_{name}_seconds")
        stats = ("mean", "p50", "p90", "p99")
        expected = {frozenset({**STEP, "stat": k}.items()): getattr(dist, k) for k in stats}
        assert got == pytest.approx(expected)


def test_step_times_and_rolling_gauges(step: tuple[Samples, StepSummary]) -> None:
    found, _ = step
    assert series(found, "loadgen_step_start_timestamp_seconds", **STEP) == WALL_START
    assert series(found, "loadgen_step_end_timestamp_seconds", **STEP) == WALL_END
    assert series(found, "loadgen_target_rate_rps", **RUN) == 4.0
    assert series(found, "loadgen_in_flight_requests", **RUN) == 0
    # Lateness 0 x7, 5, 10, 20 ms: p99 at rank 8.91 -> 10 + 0.91 * 10 = 19.1 ms.
    assert series(found, "loadgen_dispatch_lag_seconds", **RUN) == pytest.approx(0.0191)


def test_run_info(step: tuple[Samples, StepSummary]) -> None:
    found, _ = step
    assert named(found, "loadgen_run_info") == {
        frozenset({"run_id": "run1", **RUN, "version": __version__}.items()): 1
    }


def test_no_label_carries_a_per_request_value(step: tuple[Samples, StepSummary]) -> None:
    found, _ = step
    loadgen = [(name, dict(labels)) for name, labels in found if name.startswith("loadgen_")]
    assert loadgen
    for name, labels in loadgen:
        assert set(labels) <= ALLOWED_LABELS, name
        assert labels.get("rate", "4") == "4", name


def test_in_flight_follows_progress() -> None:
    step = Step()
    for r in RECORDS[:3]:
        step.ns = r.t_send_ns
        step.send(r.index, 0)
    assert series(step.samples(), "loadgen_in_flight_requests", **RUN) == 3
    step.end(RECORDS[1])
    assert series(step.samples(), "loadgen_in_flight_requests", **RUN) == 2
    step.finish(RECORDS[1:2])  # ended (say, interrupted) with two still out
    assert series(step.samples(), "loadgen_in_flight_requests", **RUN) == 0


def test_dispatch_lag_of_0_to_99_ms() -> None:
    step = Step(num_planned=200)
    for i in range(100):
        step.ns = T0 + i * 10 * MS
        step.send(i, i * MS)
    step.exporter.refresh()
    # Rank 0.99 * 99 = 98.01: 98 ms + 0.01 * (99 - 98) ms = 98.01 ms.
    assert series(step.samples(), "loadgen_dispatch_lag_seconds", **RUN) == pytest.approx(0.09801)


def test_each_shard_has_its_own_dispatch_lag() -> None:
    step = Step(num_planned=200)
    for i in range(100):
        # Shard 0 sends 1 ms late, shard 1 from 0 to 49 ms late (t_send - t_sched - slot wait).
        late_ms = 1 if i % 2 == 0 else i // 2
        record = RequestRecord(
            index=i, t_sched_ns=T0 + i * MS, t_send_ns=T0 + (i + late_ms) * MS, slot_wait_ns=0,
            t_done_ns=T0 + (i + late_ms + 5) * MS, shard=i % 2,
        )  # fmt: skip
        step.end(record)
    step.exporter.refresh()
    found = step.samples()
    assert series(found, "loadgen_shard_dispatch_lag_seconds", **RUN, shard="0") == pytest.approx(
        0.001
    )
    # Shard 1's lateness is 0..49 ms: rank 0.99 * 49 = 48.51 gives 48.51 ms.
    assert series(found, "loadgen_shard_dispatch_lag_seconds", **RUN, shard="1") == pytest.approx(
        0.04851
    )


def test_one_process_has_no_shard_series(step: tuple[Samples, StepSummary]) -> None:
    found, _ = step
    assert not named(found, "loadgen_shard_dispatch_lag_seconds")


def test_achieved_rate_over_the_last_ten_seconds() -> None:
    step = Step()
    step.exporter.refresh()
    assert series(step.samples(), "loadgen_achieved_rate_rps", **RUN) == 0  # nothing sent
    for i, at_ms in enumerate((0, 500, 1000, 1500, 2000)):
        step.ns = T0 + at_ms * MS
        step.send(i, 0)
    step.exporter.refresh()
    # 5 sends, the oldest 2.0 s before now: (5 - 1) / 2.0.
    assert series(step.samples(), "loadgen_achieved_rate_rps", **RUN) == pytest.approx(2.0)
    step.ns = T0 + 12_001 * MS  # the newest send is 10.001 s old
    step.exporter.refresh()
    assert series(step.samples(), "loadgen_achieved_rate_rps", **RUN) == 0


def test_refresh_survives_sends_at_the_same_instant() -> None:
    step = Step()
    for i in range(3):  # the clock does not move
        step.send(i, 0)
    step.exporter.refresh()
    assert math.isfinite(series(step.samples(), "loadgen_achieved_rate_rps", **RUN))


def test_infinite_rate_is_labelled_inf() -> None:
    step = Step(rate=float("inf"), num_planned=1, trim=0)
    record = rec(0, 0, 0, chunks_ms=(100, 200), tokens_in=4, tokens_out=2)
    step.send(0, 0)
    step.end(record)
    step.finish([record])
    found = step.samples()
    on_inf = {**RUN, "rate": "inf"}
    assert series(found, "loadgen_target_rate_rps", **RUN) == float("inf")
    assert series(found, "loadgen_requests_total", **on_inf, phase="measure", status="ok") == 1
    # One success over a window of 0.2 s; its ttft 0.1 s meets the 0.5 s SLO.
    assert series(found, "loadgen_step_sequence_throughput_rps", **on_inf) == pytest.approx(5.0)
    assert series(found, "loadgen_step_goodput_rps", **on_inf) == pytest.approx(5.0)
    assert {dict(k).get("rate") for _, k in found} <= {None, "inf"}


def test_non_streamed_success_adds_e2e_and_per_token_only() -> None:
    found, _ = run_step([RECORDS[4]])
    measure = {**STEP, "phase": "measure"}
    assert series(found, "loadgen_e2e_latency_seconds_sum", **measure) == pytest.approx(0.5)
    assert series(found, "loadgen_per_token_latency_seconds_sum", **measure) == pytest.approx(0.1)
    for name in ("ttft", "tpot", "itl"):
        assert named(found, f"loadgen_{name}_seconds_count") == {}, name


def test_failed_request_with_a_partial_stream_adds_to_queue_only() -> None:
    partial = rec(3, 750, 800, chunks_ms=(900, 1000, 1100), tokens_out=3, error="disconnect")
    found, _ = run_step([partial])
    measure = {**STEP, "phase": "measure"}
    assert series(found, "loadgen_queue_seconds_count", **measure) == 1
    assert series(found, "loadgen_queue_seconds_sum", **measure) == pytest.approx(0.05)
    for name in ("ttft", "tpot", "itl", "e2e_latency", "per_token_latency"):
        assert named(found, f"loadgen_{name}_seconds_count") == {}, name
    assert series(found, "loadgen_requests_total", **measure, status="disconnect") == 1


def test_start_run_labels_the_next_target_and_rests_the_last() -> None:
    step = Step()
    for i, at_ms in enumerate((0, 500, 1000)):
        step.ns = T0 + at_ms * MS
        step.send(i, 0)
    step.exporter.refresh()
    assert series(step.samples(), "loadgen_achieved_rate_rps", **RUN) == pytest.approx(2.0)
    step.exporter.start_run(RunLabels("run1", "other", "m2", "s2s"))
    step.exporter.on_step_start(StepProgress(0, 8.0, 10, 2, t_start_ns=T0))
    step.ns = T0 + 1_100 * MS
    step.send(0, 0)
    step.exporter.on_request_done(step.progress, RECORDS[0])
    step.exporter.refresh()
    found = step.samples()
    other = {"target": "other", "model": "m2", "scenario": "s2s"}
    # The first target's sends do not count towards the second's rate; it rests at 0.
    assert series(found, "loadgen_achieved_rate_rps", **RUN) == 0
    assert series(found, "loadgen_in_flight_requests", **RUN) == 0
    assert series(found, "loadgen_achieved_rate_rps", **other) == 0  # one send: no rate yet
    assert series(found, "loadgen_target_rate_rps", **other) == 8
    assert series(found, "loadgen_target_rate_rps", **RUN) == 4
    ok = {**other, "rate": "8", "phase": "warmup", "status": "ok"}
    assert series(found, "loadgen_requests_total", **ok) == 1
    info = {"run_id": "run1", "version": __version__}
    assert series(found, "loadgen_run_info", **RUN, **info) == 1
    assert series(found, "loadgen_run_info", **other, **info) == 1


def test_a_second_exporter_on_the_same_registry_is_refused() -> None:
    step = Step()
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        PrometheusExporter(step.registry, "run1")


def test_histograms_fill_at_each_refresh_before_the_step_ends() -> None:
    step = Step()
    step.send(0, 0)
    step.end(RECORDS[0])
    found = step.samples()
    # Ended requests wait for the next refresh (every 0.5 s when served), not the step's end.
    assert named(found, "loadgen_e2e_latency_seconds_count") == {}
    step.exporter.refresh()
    found = step.samples()
    assert series(found, "loadgen_e2e_latency_seconds_count", **STEP, phase="warmup") == 1
    assert series(found, "loadgen_e2e_latency_seconds_sum", **STEP, phase="warmup") == (
        pytest.approx(0.3)
    )
    step.exporter.refresh()  # nothing new: nothing counted twice
    assert series(step.samples(), "loadgen_e2e_latency_seconds_count", **STEP, phase="warmup") == 1
