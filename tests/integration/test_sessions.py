"""SessionRunner driving the real OpenAIClient against a real server with known timing.

Every turn of a session must wait for the previous answer and its think time, carry the whole
history, and end as exactly one record; a failed turn ends its session; a stop ends every
session after the turn in flight. The fake server answers each turn after TTFT_S plus a gap
per token, so a turn's end is known from below. Lower bounds are exact up to timer rounding
(LOW); the think-time bound is checked from below only, since a late wake-up only delays.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from time import perf_counter_ns

import numpy as np

from loadgen.client.openai import OpenAIClient, Timeouts
from loadgen.client.protocol import RequestOptions
from loadgen.core.events import RunObserver, StepProgress
from loadgen.core.records import RequestRecord
from loadgen.core.stats import summarize_step
from loadgen.runtime.pacer import make_pacer
from loadgen.runtime.runner import StepResult, StopSignal
from loadgen.runtime.sessions import SessionRunner
from loadgen.workloads.sessions import Session, Turn
from tests.integration.test_runner_faults import Counting
from tests.support.fake_openai import Behaviour, FakeOpenAI, Incoming, serve

TIMEOUTS = Timeouts(connect_s=5, ttft_s=5, idle_s=5, total_s=30)
TTFT_S = 0.020
GAP_S = 0.005
TOKENS = 4
THINK_S = 0.060
LOW_NS = 1_000_000
HIGH_NS = 40_000_000


def session(number: int, turns: int, think_s: float = THINK_S) -> Session:
    """A session whose user messages are tagged "#<number * 10 + turn>" for the server."""
    return Session(
        tuple(
            Turn(
                user=f"#{number * 10 + k} question {k} of session {number}",
                max_tokens=TOKENS,
                answer=f"answer {k}",
                think_s=0.0 if k == 0 else think_s,
            )
            for k in range(turns)
        ),
        system="be brief",
    )


@asynccontextmanager
async def session_runner(
    fake: FakeOpenAI,
    observer: RunObserver,
    drain_timeout_s: float = 30.0,
    max_concurrency: int | None = None,
) -> AsyncIterator[SessionRunner]:
    async with serve(fake) as url:
        options = RequestOptions(endpoint="chat", model="fake-model")
        async with OpenAIClient(url, options, timeouts=TIMEOUTS) as client:
            pacer = make_pacer(asyncio.get_running_loop())
            try:
                yield SessionRunner(
                    client,
                    pacer,
                    observer,
                    max_concurrency=max_concurrency,
                    drain_timeout_s=drain_timeout_s,
                )
            finally:
                pacer.close()


async def run_sessions(
    runner: SessionRunner, sessions: Sequence[Session], rate: float, stop: StopSignal
) -> tuple[StepResult, StepProgress]:
    progress = StepProgress(0, rate, len(sessions), 1, perf_counter_ns() + 5_000_000, True)
    offsets = np.arange(len(sessions), dtype=np.float64) / rate
    return await runner.run(progress, sessions, offsets, stop), progress


def current_tag(incoming: Incoming) -> int:
    """The tag of the turn's own (last) user message: the history holds earlier tags too."""
    content = str(incoming.body["messages"][-1]["content"])
    return int(content.split()[0].removeprefix("#"))


def by_session(records: Sequence[RequestRecord]) -> dict[int, list[RequestRecord]]:
    grouped: dict[int, list[RequestRecord]] = {}
    for record in records:
        assert record.session is not None
        grouped.setdefault(record.session, []).append(record)
    return {number: sorted(turns, key=lambda r: r.turn or 0) for number, turns in grouped.items()}


async def test_turns_follow_answers_and_think_time_carrying_the_history() -> None:
    fake = FakeOpenAI(Behaviour(ttft_s=TTFT_S, gap_s=GAP_S))
    observer = Counting()
    sessions = [session(number, turns=3) for number in range(5)]
    async with session_runner(fake, observer) as runner:
        result, progress = await run_sessions(runner, sessions, 20.0, StopSignal())

    # Every turn of every session sent once, recorded once, numbered in send order.
    assert [r.index for r in result.records] == list(range(15))
    assert sorted(observer.sent) == sorted(observer.done) == list(range(15))
    assert (progress.sent, progress.done, progress.errors) == (15, 15, 0)
    grouped = by_session(result.records)
    assert sorted(grouped) == list(range(5))
    for number, turns in grouped.items():
        assert [r.turn for r in turns] == [1, 2, 3]
        for before, after in itertools.pairwise(turns):
            # Sent no earlier than the previous answer's end plus the think time, and not
            # much later (HIGH_NS: a late timer wake-up on a loaded machine).
            waited_ns = after.t_send_ns - before.t_done_ns
            assert THINK_S * 1e9 - LOW_NS <= waited_ns <= THINK_S * 1e9 + HIGH_NS
        # Sessions start on the arrival schedule: 50 ms apart.
        assert turns[0].t_sched_ns == progress.t_start_ns + number * 50_000_000
    # The server saw each turn carry the history: system, then 1, 2, 3 user messages.
    for incoming in fake.seen.requests:
        tag = current_tag(incoming)
        number, turn = divmod(tag, 10)
        messages = incoming.body["messages"]
        assert len(messages) == 2 + 2 * turn
        assert messages[0] == {"role": "system", "content": "be brief"}
        assert [m["role"] for m in messages[1:]] == ["user", "assistant"] * turn + ["user"]
        assert incoming.tag == number * 10  # the first tag the server finds: turn 0's
        assert [m["content"] for m in messages[2:-1:2]] == [f"answer {k}" for k in range(turn)]
        assert number < 5


async def test_a_failed_turn_ends_its_session_and_trimming_is_by_session() -> None:
    def script(incoming: Incoming) -> Behaviour:
        # Session 2's second turn fails: its third turn must never be sent.
        return Behaviour(fault="http_500" if current_tag(incoming) == 21 else None)

    fake = FakeOpenAI(script=script)
    sessions = [session(number, turns=3, think_s=0.0) for number in range(5)]
    async with session_runner(fake, Counting()) as runner:
        result, _ = await run_sessions(runner, sessions, 50.0, StopSignal())

    grouped = by_session(result.records)
    assert [len(grouped[number]) for number in range(5)] == [3, 3, 2, 3, 3]
    assert grouped[2][1].error_kind == "http_5xx"
    assert 22 not in [current_tag(incoming) for incoming in fake.seen.requests]
    summary = summarize_step(
        result.records, step=0, target_rate_rps=50.0, num_sent=len(result.records), trim=1,
        slos={}, interrupted=False, duration_s=1.0, num_sessions=5,
    )  # fmt: skip
    assert summary.sessions is not None
    # Sessions 1..3 kept (trim 1 of 5 sessions): 3 + 2 + 3 turns.
    assert (summary.sessions.num_started, summary.sessions.num_sessions) == (5, 3)
    assert summary.sessions.num_broken == 1
    assert summary.trimmed.num_requests == 8
    assert summary.trimmed.num_errors == 1
    assert summary.untrimmed.num_requests == 14
    assert [turn.num_requests for turn in summary.sessions.turns] == [3, 3, 2]


async def test_a_stop_ends_every_session_after_its_turn_in_flight() -> None:
    fake = FakeOpenAI(Behaviour(ttft_s=0.100, gap_s=0.010))
    sessions = [session(number, turns=4, think_s=0.050) for number in range(20)]
    stop = StopSignal()
    async with session_runner(fake, Counting(), drain_timeout_s=5.0) as runner:
        asyncio.get_running_loop().call_later(0.25, stop.request_stop)
        result, progress = await run_sessions(runner, sessions, 40.0, stop)

    assert result.interrupted
    # Every request sent is one record, and no session went on after the stop.
    assert [r.index for r in result.records] == list(range(progress.sent))
    assert len(fake.seen.requests) == progress.sent
    assert all(r.ok for r in result.records)  # a stop waits for the turns in flight
    started = len(by_session(result.records))
    assert 0 < started < 20  # sessions due after 0.25 s never started
    assert all(len(turns) < 4 for turns in by_session(result.records).values())


async def test_a_stop_sends_no_turn_that_still_waits_for_a_concurrency_slot() -> None:
    # One slot, turns of 150 ms: sessions queue for it; a stop at 0.2 s leaves queued turns
    # unsent, each still one record (cancelled), none seen by the server.
    fake = FakeOpenAI(Behaviour(ttft_s=0.150))
    sessions = [session(number, turns=2, think_s=0.0) for number in range(6)]
    stop = StopSignal()
    async with session_runner(fake, Counting(), 5.0, max_concurrency=1) as runner:
        asyncio.get_running_loop().call_later(0.2, stop.request_stop)
        result, progress = await run_sessions(runner, sessions, 100.0, stop)

    assert [r.index for r in result.records] == list(range(progress.sent))
    queued = [r for r in result.records if r.error_kind == "cancelled"]
    assert queued
    assert all(r.error == "stopped while waiting for a concurrency slot" for r in queued)
    assert len(fake.seen.requests) == progress.sent - len(queued)
    assert all(r.ok for r in result.records if r.error_kind is None)
