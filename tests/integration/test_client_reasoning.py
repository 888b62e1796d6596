"""Reasoning streams and the Responses API against a real loopback server with known timing.

The fake server sends `reasoning_tokens` reasoning tokens, then the answer, one token per chunk
`GAP_S` apart after `TTFT_S`: the first answer token leaves at TTFT_S + GAP_S * R. Tolerances
as in test_client_streaming.py: LOW below an injected delay (timer rounding only), HIGH above
one delay, HIGH_SPAN above a sum of injected gaps (one late wake-up per gap adds up).
"""

from __future__ import annotations

import orjson
import pytest

from loadgen.client.protocol import Endpoint, RequestOptions
from loadgen.core.records import RequestRecord, RequestSpec
from loadgen.core.stats import step_figures
from tests.integration.test_client_streaming import (
    HIGH,
    HIGH_SPAN,
    LOW,
    PROMPT,
    assert_near,
    e2e_s,
    s,
    send_one,
    ttft_s,
)
from tests.support.fake_openai import Behaviour, FakeOpenAI

TTFT_S = 0.060
GAP_S = 0.015
REASONING = 6
MAX_TOKENS = 10


def ttfa_s(record: RequestRecord) -> float:
    assert record.t_first_answer_ns is not None
    return s(record.t_first_answer_ns - record.t_send_ns)


async def reasoning_request(endpoint: Endpoint, behaviour: Behaviour) -> RequestRecord:
    fake = FakeOpenAI(behaviour)
    options = RequestOptions(endpoint=endpoint, model="fake-model")
    record = await send_one(fake, RequestSpec(PROMPT, MAX_TOKENS), options)
    assert record.ok, record.error
    return record


@pytest.mark.parametrize(
    ("endpoint", "field"),
    [
        ("chat", "reasoning_content"),
        ("chat", "reasoning"),
        ("responses", "reasoning_content"),  # the Responses API has events, not fields
    ],
)
@pytest.mark.parametrize("usage_details", [True, False], ids=["server-count", "client-count"])
async def test_time_to_first_answer_and_reasoning_count(
    endpoint: Endpoint, field: str, usage_details: bool
) -> None:
    behaviour = Behaviour(
        ttft_s=TTFT_S,
        gap_s=GAP_S,
        reasoning_tokens=REASONING,
        reasoning_field=field,
        reasoning_usage=usage_details,
    )
    record = await reasoning_request(endpoint, behaviour)
    # TTFT is the first token of any kind: the first reasoning token.
    assert_near(ttft_s(record), TTFT_S, below=LOW, above=HIGH)
    assert_near(ttfa_s(record), TTFT_S + GAP_S * REASONING, below=LOW, above=HIGH_SPAN)
    assert_near(e2e_s(record), TTFT_S + GAP_S * (MAX_TOKENS - 1), below=LOW, above=HIGH_SPAN)
    # Counted by the server when it says, else one per reasoning chunk (one token each here).
    assert record.reasoning_tokens == REASONING
    assert (record.tokens_out, record.tokens_source, record.tokens_in) == (MAX_TOKENS, "server", 5)
    assert len(record.chunk_times_ns) == MAX_TOKENS  # reasoning and answer chunks alike

    figures = step_figures([record], {})
    assert figures.ttfa_s is not None
    assert figures.ttfa_s.count == 1
    assert (figures.reasoning_tokens_mean, figures.answer_tokens_mean) == (6.0, 4.0)
    # Per-token latency is over every output token, reasoning included.
    assert figures.per_token_latency_s is not None
    assert figures.per_token_latency_s.mean == pytest.approx(e2e_s(record) / MAX_TOKENS)


async def test_multi_token_reasoning_chunks_switch_to_answer_at_the_right_chunk() -> None:
    # Chunks of 4 tokens: reasoning 4 + 2 (a short chunk: chunks never mix), then 4 answer.
    behaviour = Behaviour(
        ttft_s=TTFT_S, gap_s=GAP_S, tokens_per_chunk=4, reasoning_tokens=REASONING,
        reasoning_usage=False,
    )  # fmt: skip
    record = await reasoning_request("chat", behaviour)
    assert len(record.chunk_times_ns) == 3
    assert_near(ttfa_s(record), TTFT_S + GAP_S * 2, below=LOW, above=HIGH_SPAN)
    # Without the server's count, each reasoning chunk is estimated as one token.
    assert record.reasoning_tokens == 2


async def test_a_plain_stream_answers_from_its_first_token() -> None:
    behaviour = Behaviour(ttft_s=TTFT_S, gap_s=GAP_S, reasoning_usage=False)
    record = await reasoning_request("chat", behaviour)
    assert record.t_first_answer_ns == record.t_first_ns
    assert record.reasoning_tokens is None  # none seen, none reported
    assert step_figures([record], {}).reasoning_tokens_mean is None


async def test_a_server_that_reports_no_reasoning_says_zero() -> None:
    # As OpenAI's API does for every request of a model that does not reason.
    record = await reasoning_request("chat", Behaviour(ttft_s=TTFT_S, gap_s=GAP_S))
    assert record.reasoning_tokens == 0
    figures = step_figures([record], {})
    assert (figures.reasoning_tokens_mean, figures.answer_tokens_mean) == (0.0, MAX_TOKENS)


async def test_an_output_that_ends_while_reasoning_has_no_answer_time() -> None:
    behaviour = Behaviour(ttft_s=TTFT_S, gap_s=GAP_S, reasoning_tokens=MAX_TOKENS + 5)
    record = await reasoning_request("chat", behaviour)
    assert record.t_first_ns is not None
    assert record.t_first_answer_ns is None
    assert record.reasoning_tokens == MAX_TOKENS
    assert step_figures([record], {}).ttfa_s is None


@pytest.mark.parametrize("endpoint", ["chat", "responses", "completions"])
async def test_whole_responses_count_reasoning_apart(endpoint: Endpoint) -> None:
    fake = FakeOpenAI(Behaviour(ttft_s=TTFT_S, reasoning_tokens=REASONING))
    options = RequestOptions(endpoint=endpoint, model="fake-model", stream=False)
    record = await send_one(fake, RequestSpec(PROMPT, MAX_TOKENS), options)
    assert record.ok, record.error
    assert (record.tokens_out, record.tokens_in) == (MAX_TOKENS, 5)
    assert record.reasoning_tokens == REASONING  # the server's count, on every endpoint
    assert record.t_first_ns is None
    assert record.t_first_answer_ns is None  # nothing is timed inside a whole response


async def test_responses_request_body_and_every_token_counted() -> None:
    behaviour = Behaviour(ttft_s=TTFT_S, gap_s=GAP_S, tokens_per_chunk=3, reasoning_usage=False)
    fake = FakeOpenAI(behaviour)
    options = RequestOptions(endpoint="responses", model="fake-model", optional={"top_k": 4})
    record = await send_one(fake, RequestSpec(PROMPT, MAX_TOKENS), options)
    assert record.ok, record.error
    sent = fake.seen.requests[0]
    assert sent.endpoint == "responses"
    assert sent.body == {
        "model": "fake-model",
        "input": PROMPT,
        "max_output_tokens": MAX_TOKENS,
        "stream": True,
        "top_k": 4,
    }
    assert (record.tokens_out, record.tokens_source) == (MAX_TOKENS, "server")
    assert len(record.chunk_times_ns) == 4  # 3 + 3 + 3 + 1 tokens
    assert record.reasoning_tokens is None
    figures = step_figures([record], {})
    assert figures.itl_s is not None
    # Token-weighted: the chunks after the first carry 10 - 3 = 7 tokens, so 7 gaps.
    assert figures.itl_s.count == MAX_TOKENS - 3


async def test_responses_stream_failure_is_a_bad_stream() -> None:
    fake = FakeOpenAI(Behaviour(fault="error_event", fault_after_chunks=2))
    options = RequestOptions(endpoint="responses", model="fake-model")
    record = await send_one(fake, RequestSpec(PROMPT, MAX_TOKENS), options)
    assert record.error_kind == "bad_stream"
    assert record.error is not None
    assert "injected engine failure" in record.error
    assert len(record.chunk_times_ns) == 2  # what came before the failure is kept


def test_fake_responses_events_are_typed_with_sequence_numbers() -> None:
    # The wire shape the tests above rely on, written out: an event line, then data.
    from tests.support.fake_wire import chunk, sse

    wire = sse(chunk("responses", " x"), 7, b"\n\n")
    event, data = wire.split(b"\n", 1)
    assert event == b"event: response.output_text.delta"
    assert orjson.loads(data.removeprefix(b"data: ")) == {
        "type": "response.output_text.delta",
        "item_id": "item-0",
        "delta": " x",
        "sequence_number": 7,
    }
