"""`loadgen sweep` / `loadgen run` through cli.main against a real server in a background thread.

The CLI owns its event loop (uvloop), so the fake server runs on a loop of its own in another
thread. Requests come from a dataset whose prompt i is tagged "#i", so the server knows every
request's send index and injects faults by index, not by arrival order.

Tolerances (s), and why they are safe on a loaded 2-core machine:
- LOW = 1 ms below an injected delay: only timer rounding can make a measurement shorter.
- HIGH = 40 ms above one injected delay (mean over a step): scheduler delay of the server's
  wake-ups and the client's reads; the delays under test are 20 ms and more, and the errors
  these checks catch (a wrong chunk taken as first, a gap not measured) are off by their size.
- Rates: the pacer never sends early and sends late by milliseconds over spans of 0.5 s or more;
  10% of the span is tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loadgen.cli import main
from tests.integration._helpers import (
    DATASET_PROMPT_WORDS,
    STAT_NAMES,
    read_jsonl,
    read_summary,
    run_cli,
    write_tagged_dataset,
)
from tests.support.fake_openai import Behaviour, FakeOpenAI, Fault, Incoming, ServerThread, serve

LOW = 0.001
HIGH = 0.040

RATES = (40.0, 80.0)
NUM_REQUESTS = 60
TRIM = 10
MAX_TOKENS = 6
TTFT_S = 0.020
GAP_S = 0.005
FAIL_EVERY = 5  # send index % 5 == 4 answers HTTP 500
FIGURE_FIELDS = (
    "target_rate_rps",
    "achieved_rate_rps",
    "send_gap_cv",
    "num_sent",
    "num_kept",
    "num_ok",
    "num_errors",
    "errors_by_kind",
    "window_s",
    "sequence_throughput_rps",
    "output_token_throughput_tps",
    "total_token_throughput_tps",
    "goodput_rps",
    "client_saturated",
    "interrupted",
    "untrimmed",
)
DISTRIBUTIONS = ("ttft_s", "tpot_s", "itl_s", "e2e_s", "per_token_latency_s", "queue_s")


def fails(index: int) -> bool:
    return index % FAIL_EVERY == FAIL_EVERY - 1


@dataclass(frozen=True)
class SweepRun:
    code: int
    out: Path
    fake: FakeOpenAI

    @property
    def summary(self) -> dict[str, Any]:
        return read_summary(self.out)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return read_jsonl(self.out / "requests.jsonl")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> SweepRun:
    """One two-rate sweep, 60 requests per step, HTTP 500 on every 5th send index."""

    def script(incoming: Incoming) -> Behaviour:
        assert incoming.tag is not None
        fault: Fault | None = "http_500" if fails(incoming.tag) else None
        return Behaviour(ttft_s=TTFT_S, gap_s=GAP_S, fault=fault)

    tmp = tmp_path_factory.mktemp("sweep")
    dataset = write_tagged_dataset(tmp / "prompts.jsonl", NUM_REQUESTS, MAX_TOKENS)
    fake = FakeOpenAI(script=script)
    with pytest.MonkeyPatch.context() as env, ServerThread(fake) as url:
        env.delenv("LOADGEN_TRIM", raising=False)
        code = run_cli(
            [
                "sweep",
                "--base-url",
                url,
                "--rates",
                ",".join(f"{rate:g}" for rate in RATES),
                "--arrival",
                "constant",
                "--num-requests",
                str(NUM_REQUESTS),
                "--trim",
                str(TRIM),
                "--dataset",
                str(dataset),
                "--slo",
                f"ttft={TTFT_S + 1.0}",
                "--out",
                str(tmp / "out"),
            ]
        )
    return SweepRun(code, tmp / "out", fake)


def test_sweep_exits_zero_and_writes_every_file(sweep: SweepRun) -> None:
    assert sweep.code == 0
    for name in ("summary.json", "summary.csv", "requests.jsonl"):
        assert (sweep.out / name).is_file()
    document = sweep.summary
    assert document["tool"] == "loadgen"
    assert document["target"]["model"] == "fake-model"
    assert [step["step"] for step in document["steps"]] == [0, 1]


def test_summary_has_documented_fields_per_step(sweep: SweepRun) -> None:
    for step, rate in zip(sweep.summary["steps"], RATES, strict=True):
        for name in FIGURE_FIELDS:
            assert name in step, name
        assert step["target_rate_rps"] == rate
        assert (step["num_sent"], step["num_kept"], step["trim"]) == (NUM_REQUESTS, 40, TRIM)
        assert step["interrupted"] is False
        assert step["tokens_source"] == "server"
        for name in DISTRIBUTIONS:
            dist = step[name]
            assert set(STAT_NAMES) <= set(dist), name
            ordered = [dist[key] for key in ("min", "p50", "p90", "p95", "p99", "max")]
            assert ordered == sorted(ordered), name
            assert dist["min"] <= dist["mean"] <= dist["max"]
            assert dist["std"] >= 0
        untrimmed = step["untrimmed"]
        assert untrimmed["num_requests"] == NUM_REQUESTS
        for name in DISTRIBUTIONS:
            assert set(STAT_NAMES) <= set(untrimmed[name]), name


def test_error_counts_follow_the_trim_rule(sweep: SweepRun) -> None:
    kept_failures = sum(fails(i) for i in range(TRIM, NUM_REQUESTS - TRIM))  # 14, 19, .., 49
    all_failures = sum(fails(i) for i in range(NUM_REQUESTS))
    for step in sweep.summary["steps"]:
        assert step["num_errors"] == kept_failures == 8
        assert step["num_ok"] == 40 - kept_failures
        assert step["errors_by_kind"] == {"http_5xx": kept_failures}
        assert step["error_rate"] == pytest.approx(kept_failures / 40)
        assert step["untrimmed"]["num_errors"] == all_failures == 12
        assert step["untrimmed"]["errors_by_kind"] == {"http_5xx": all_failures}


def test_figures_match_the_injected_truth(sweep: SweepRun) -> None:
    for step, rate in zip(sweep.summary["steps"], RATES, strict=True):
        assert step["achieved_rate_rps"] == pytest.approx(rate, rel=0.10)
        assert step["send_gap_cv"] >= 0
        assert_between(step["ttft_s"]["mean"], TTFT_S - LOW, TTFT_S + HIGH)
        assert step["ttft_s"]["min"] >= TTFT_S - LOW
        e2e = TTFT_S + GAP_S * (MAX_TOKENS - 1)
        assert step["e2e_s"]["min"] >= e2e - LOW
        assert_between(step["e2e_s"]["mean"], e2e - LOW, e2e + HIGH)
        # TPOT spreads the first-to-last span over 5 gaps; that span is short only when a first
        # chunk was read late, and 20 ms of that on average over 32 requests is already extreme.
        assert_between(step["tpot_s"]["mean"], GAP_S - 0.004, GAP_S + HIGH / (MAX_TOKENS - 1))
        num_ok = step["num_ok"]
        assert step["ttft_s"]["count"] == num_ok
        assert step["itl_s"]["count"] == num_ok * (MAX_TOKENS - 1)
        assert step["queue_s"]["count"] == 40  # queueing is shown for failures too
        assert step["queue_s"]["min"] >= 0  # the pacer never sends early
        # Kept successes end with index 48 (49 fails): the window spans 38 send gaps + one E2E.
        span = (48 - TRIM) / rate + e2e
        assert_between(step["window_s"], span * 0.9, span * 1.1 + HIGH)
        # Every success carries MAX_TOKENS output and DATASET_PROMPT_WORDS prompt tokens.
        seq = step["sequence_throughput_rps"]
        assert seq == pytest.approx(num_ok / step["window_s"])
        assert step["output_token_throughput_tps"] == pytest.approx(seq * MAX_TOKENS)
        assert step["total_token_throughput_tps"] == pytest.approx(
            seq * (MAX_TOKENS + DATASET_PROMPT_WORDS)
        )
        assert step["goodput_rps"] == pytest.approx(seq)  # a 1 s TTFT SLO every success meets


def test_summary_csv_has_one_row_per_step(sweep: SweepRun) -> None:
    with (sweep.out / "summary.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))

    assert len(rows) == len(RATES)
    for row, step in zip(rows, sweep.summary["steps"], strict=True):
        assert float(row["target_rate_rps"]) == step["target_rate_rps"]
        assert int(row["num_sent"]) == NUM_REQUESTS
        assert int(row["num_kept"]) == 40
        assert row["errors_by_kind"] == "http_5xx=8"
        assert float(row["ttft_mean_s"]) == pytest.approx(step["ttft_s"]["mean"])


def test_requests_jsonl_accounts_for_every_sent_request(sweep: SweepRun) -> None:
    rows = sweep.rows
    assert len(rows) == len(RATES) * NUM_REQUESTS
    for step, rate in enumerate(RATES):
        mine = [row for row in rows if row["step"] == step]
        assert [row["index"] for row in mine] == list(range(NUM_REQUESTS))
        assert {row["target_rate_rps"] for row in mine} == {rate}
        for row in mine:
            index = row["index"]
            expected = "warmup" if index < TRIM else "measure"
            expected = "cooldown" if index >= NUM_REQUESTS - TRIM else expected
            assert row["phase"] == expected, index
            if fails(index):
                assert (row["ok"], row["error_kind"], row["status"]) == (False, "http_5xx", 500)
            else:
                assert (row["ok"], row["error_kind"], row["status"]) == (True, None, 200)
                assert (row["tokens_out"], row["tokens_source"]) == (MAX_TOKENS, "server")
                assert row["tokens_in"] == DATASET_PROMPT_WORDS
                assert row["chunks"] == MAX_TOKENS
            assert row["t_send_s"] >= row["t_sched_s"]
            assert row["t_sched_s"] == pytest.approx(index / rate, abs=1e-6)


def test_server_saw_exactly_the_recorded_requests(sweep: SweepRun) -> None:
    seen = Counter(sweep.fake.seen.tags)
    assert seen == Counter({index: len(RATES) for index in range(NUM_REQUESTS)})
    assert len(sweep.fake.seen.requests) == len(sweep.rows)
    assert sweep.fake.seen.in_flight == 0


def assert_between(value: float, low: float, high: float) -> None:
    assert low <= value <= high, (value, low, high)


def test_no_stream_run_has_no_ttft_and_e2e_is_the_whole_answer(tmp_path: Path) -> None:
    ttft_s, gap_s, tokens = 0.030, 0.005, 4
    fake = FakeOpenAI(Behaviour(ttft_s=ttft_s, gap_s=gap_s))
    with ServerThread(fake) as url:
        code = run_cli(
            [
                "run",
                "--base-url",
                url,
                "--rate",
                "50",
                "--num-requests",
                "12",
                "--trim",
                "2",
                "--output-len",
                str(tokens),
                "--input-len",
                "8",
                "--no-stream",
                "--quiet",
                "--out",
                str(tmp_path),
            ]
        )

    assert code == 0
    step = read_summary(tmp_path)["steps"][0]
    assert step["num_ok"] == 8
    for name in ("ttft_s", "tpot_s", "itl_s"):
        assert step[name] is None, name
    total = ttft_s + gap_s * (tokens - 1)
    assert step["e2e_s"]["min"] >= total - LOW
    assert_between(step["e2e_s"]["mean"], total - LOW, total + HIGH)
    assert step["output_token_throughput_tps"] == pytest.approx(
        step["sequence_throughput_rps"] * tokens
    )
    for incoming in fake.seen.requests:
        assert incoming.body["stream"] is False
        assert "stream_options" not in incoming.body
        assert incoming.body["ignore_eos"] is True  # synthetic lengths are forced
    assert len(fake.seen.requests) == 12


def test_concurrency_cap_holds_at_the_server_and_queueing_is_not_pacer_lateness(
    tmp_path: Path,
) -> None:
    # Each request takes at least 30 ms + 7 x 30 ms = 0.24 s; 30 requests arrive at 40/s
    # (0.725 s), far more than 4 slots can serve, so requests queue for their slots.
    ttft_s, gap_s, tokens, cap, count, rate = 0.030, 0.030, 8, 4, 30, 40.0
    service_s = ttft_s + gap_s * (tokens - 1)
    fake = FakeOpenAI(Behaviour(ttft_s=ttft_s, gap_s=gap_s))
    with ServerThread(fake) as url:
        code = run_cli(
            [
                "run",
                "--base-url",
                url,
                "--rate",
                str(rate),
                "--arrival",
                "constant",
                "--num-requests",
                str(count),
                "--trim",
                "5",
                "--output-len",
                str(tokens),
                "--max-concurrency",
                str(cap),
                "--quiet",
                "--out",
                str(tmp_path),
            ]
        )

    assert code == 0
    assert fake.seen.max_in_flight == cap  # reached, never exceeded
    assert len(fake.seen.requests) == count
    step = read_summary(tmp_path)["steps"][0]
    assert step["num_ok"] == count - 10
    queue = step["untrimmed"]["queue_s"]
    lateness = step["untrimmed"]["pacer_lateness_s"]
    # The 30th slot is free no sooner than 7 services after the first send; the last request
    # was due 29/40 s after the first: some request waited at least that difference.
    assert queue["max"] >= 7 * service_s - (count - 1) / rate - LOW
    # Lateness excludes the slot wait, so it stays a small fraction of the queueing (on an
    # idle machine, a millisecond against about a second).
    assert lateness["max"] < 0.2 * queue["max"]
    rows = read_jsonl(tmp_path / "requests.jsonl")
    assert max(row["slot_wait_s"] for row in rows) >= 7 * service_s - (count - 1) / rate - LOW
    for row in rows:
        assert row["t_send_s"] - row["t_sched_s"] >= row["slot_wait_s"] - LOW


async def test_sweep_runs_from_a_worker_thread(tmp_path: Path) -> None:
    async with serve(FakeOpenAI(Behaviour())) as url:
        argv = ["run", "--base-url", url, "--rate", "100", "--num-requests", "3", "--trim", "1"]
        code = await asyncio.to_thread(main, [*argv, "--quiet", "--out", str(tmp_path)])

    assert code == 0
    step = read_summary(tmp_path)["steps"][0]
    assert step["num_ok"] == 1  # index 1 only: trim 1 of 3 at each end
    assert step["untrimmed"]["num_ok"] == 3
