"""OpenAIClient against real loopback servers that fail: every fault ends as one typed record.

Timeouts here are small (0.25-0.3 s) against stalls of 3 s, so a timeout that does not fire
turns into a success after the stall and fails the kind check; the timing bound checked is a
lower one (a timeout never fires early), which no machine load can break.
"""

from __future__ import annotations

from time import perf_counter_ns

import pytest

from loadgen.client.openai import OpenAIClient, Timeouts
from loadgen.client.protocol import Endpoint, RequestOptions
from loadgen.config import TargetConfig
from loadgen.core.records import ErrorKind, RequestRecord, RequestSpec
from loadgen.runtime.targets import timeouts as target_timeouts
from tests.support.fake_openai import Behaviour, FakeOpenAI, Fault, closed_port_url, serve

DEFAULT_TIMEOUTS = target_timeouts(TargetConfig())

OPTIONS = RequestOptions(model="fake-model")
SPEC = RequestSpec("#0 hello there", 8)
STALL_S = 3.0
LOW = 0.001  # timer rounding between the loop clock and perf_counter (both CLOCK_MONOTONIC)


async def send_to(
    url: str,
    options: RequestOptions = OPTIONS,
    timeouts: Timeouts | None = None,
    spec: RequestSpec = SPEC,
) -> RequestRecord:
    async with OpenAIClient(url, options, timeouts=timeouts or DEFAULT_TIMEOUTS) as client:
        return await client.send(spec, 7, perf_counter_ns())


def assert_failed(record: RequestRecord, kind: ErrorKind, status: int | None = None) -> None:
    """A failed record of `kind` (and HTTP `status`, when given) with its identity and times."""
    assert record.error_kind == kind, record.error
    assert not record.ok
    if status is not None:
        assert record.status == status
    assert record.index == 7
    assert record.error
    assert record.t_sched_ns <= record.t_send_ns <= record.t_done_ns


@pytest.mark.parametrize(
    ("fault", "kind", "status", "message"),
    [
        ("http_500", "http_5xx", 500, "injected failure"),
        ("http_400", "http_4xx", 400, "injected bad request"),
        ("reset", "disconnect", 200, None),
        ("malformed", "bad_stream", 200, "malformed event"),
        ("error_event", "bad_stream", 200, "injected engine failure"),
        ("plain_text", "bad_stream", 200, "no server-sent events"),
    ],
)
@pytest.mark.parametrize("endpoint", ["completions", "chat"])
async def test_server_fault_becomes_typed_record(
    fault: Fault, kind: ErrorKind, status: int, message: str | None, endpoint: Endpoint
) -> None:
    fake = FakeOpenAI(Behaviour(gap_s=0.005, fault=fault, fault_after_chunks=2))
    options = RequestOptions(endpoint=endpoint, model="fake-model")
    async with serve(fake) as url:
        record = await send_to(url, options)

    assert_failed(record, kind, status if kind.startswith("http") else None)
    if message is not None:
        assert record.error is not None
        assert message in record.error
    assert len(fake.seen.requests) == 1
    if fault in ("reset", "malformed", "error_event"):
        # The two token chunks before the fault were seen and kept.
        assert len(record.chunk_times_ns) == 2
        assert record.t_first_ns is not None


async def test_unknown_path_is_http_4xx() -> None:
    fake = FakeOpenAI()
    async with serve(fake) as url:
        record = await send_to(url.removesuffix("/v1") + "/no-such-prefix")

    assert_failed(record, "http_4xx", 404)
    assert fake.seen.requests == []


async def test_unknown_model_is_http_4xx() -> None:
    fake = FakeOpenAI()
    async with serve(fake) as url:
        record = await send_to(url, RequestOptions(model="no-such-model"))

    assert_failed(record, "http_4xx", 404)
    assert record.error is not None
    assert "does not exist" in record.error


async def test_stall_before_first_token_times_out_on_ttft_limit() -> None:
    timeouts = Timeouts(connect_s=5, ttft_s=0.25, idle_s=60, total_s=60)
    fake = FakeOpenAI(Behaviour(fault="stall_first", stall_s=STALL_S))
    async with serve(fake) as url:
        record = await send_to(url, timeouts=timeouts)

    assert_failed(record, "timeout")
    assert record.error is not None
    assert "no first token" in record.error
    assert record.t_first_ns is None
    assert (record.t_done_ns - record.t_send_ns) / 1e9 >= 0.25 - LOW


async def test_stall_before_first_chat_token_after_role_chunk_times_out() -> None:
    # The role chunk is data on the wire but no token: the TTFT limit must still apply.
    timeouts = Timeouts(connect_s=5, ttft_s=0.25, idle_s=60, total_s=60)
    fake = FakeOpenAI(Behaviour(fault="stall_first", stall_s=STALL_S, role_chunk=True))
    async with serve(fake) as url:
        record = await send_to(url, RequestOptions(endpoint="chat", model="fake-model"), timeouts)

    assert_failed(record, "timeout")
    assert record.t_first_ns is None


async def test_stall_mid_stream_times_out_on_idle_limit() -> None:
    timeouts = Timeouts(connect_s=5, ttft_s=60, idle_s=0.3, total_s=60)
    fake = FakeOpenAI(Behaviour(gap_s=0.005, fault="stall_mid", fault_after_chunks=3, stall_s=3))
    async with serve(fake) as url:
        record = await send_to(url, timeouts=timeouts)

    assert_failed(record, "timeout")
    assert record.error is not None
    assert "no data for" in record.error
    assert len(record.chunk_times_ns) == 3
    assert record.t_last_ns is not None
    assert (record.t_done_ns - record.t_last_ns) / 1e9 >= 0.3 - LOW


async def test_slow_stream_times_out_on_total_limit() -> None:
    # Every gap (0.1 s) is within the idle limit; the whole stream (~0.7 s) is not.
    timeouts = Timeouts(connect_s=5, ttft_s=60, idle_s=60, total_s=0.35)
    fake = FakeOpenAI(Behaviour(gap_s=0.1))
    async with serve(fake) as url:
        record = await send_to(url, timeouts=timeouts)

    assert_failed(record, "timeout")
    assert record.error is not None
    assert "longer than" in record.error
    assert 1 <= len(record.chunk_times_ns) < 8
    assert (record.t_done_ns - record.t_send_ns) / 1e9 >= 0.35 - LOW


async def test_connection_refused_is_connect() -> None:
    record = await send_to(closed_port_url())

    assert_failed(record, "connect")


async def test_non_streaming_server_error_body_is_bad_stream() -> None:
    fake = FakeOpenAI(Behaviour(fault="plain_text"))
    async with serve(fake) as url:
        record = await send_to(url, RequestOptions(model="fake-model", stream=False))

    assert_failed(record, "bad_stream")
    assert record.error is not None
    assert "not JSON" in record.error


async def test_non_streaming_answer_is_bounded_by_total_not_ttft_limit() -> None:
    # The whole answer takes ~0.3 s: past the 0.1 s TTFT limit, which a whole response (with
    # no first token to wait for) must not be held to; within the 5 s total limit.
    fake = FakeOpenAI(Behaviour(ttft_s=0.3))
    options = RequestOptions(model="fake-model", stream=False)
    async with serve(fake) as url:
        record = await send_to(
            url, options, Timeouts(connect_s=5, ttft_s=0.1, idle_s=120, total_s=5)
        )

    assert record.ok, record.error


async def test_non_streaming_answer_times_out_on_total_limit() -> None:
    fake = FakeOpenAI(Behaviour(ttft_s=STALL_S))
    options = RequestOptions(model="fake-model", stream=False)
    async with serve(fake) as url:
        record = await send_to(
            url, options, Timeouts(connect_s=5, ttft_s=60, idle_s=120, total_s=0.25)
        )

    assert_failed(record, "timeout")
    assert record.error is not None
    assert "longer than 0.25 s" in record.error
    assert (record.t_done_ns - record.t_send_ns) / 1e9 >= 0.25 - LOW


async def test_long_error_body_is_cut_after_redaction() -> None:
    # The key sits across byte 512 of the 401 body; a cut before redaction would keep its head.
    key = "sk-" + "0123456789abcdef" * 3
    fake = FakeOpenAI(Behaviour(fault="http_401_echo"))
    async with serve(fake) as url:
        client = OpenAIClient(url, OPTIONS, timeouts=DEFAULT_TIMEOUTS, api_key=key)
        async with client:
            record = await client.send(SPEC, 7, perf_counter_ns())

    assert_failed(record, "http_4xx", 401)
    assert record.error is not None
    assert key[:8] not in record.error
    assert len(record.error) <= 512
    assert fake.seen.requests[0].headers["Authorization"] == f"Bearer {key}"
