"""OpenAIClient against a real loopback server that streams with known timing.

Every latency here is injected by the fake server with `asyncio.sleep` after it has the request
and before it writes, so a measured TTFT or E2E can never be shorter than the injected one.

Tolerances (seconds), and why they are safe on a loaded 2-core machine:
- LOW = 1 ms below an injected delay: only timer rounding between the server loop's clock and
  `perf_counter` (both CLOCK_MONOTONIC) can make a measurement shorter.
- HIGH = 40 ms above a single injected delay: the server's timer wake-up, its write and the
  client's read may each be late by scheduler delay; 40 ms is several scheduler quanta and still
  well below the delays under test (a TTFT taken at the wrong chunk is off by >= 60 ms).
- HIGH_SPAN = 60 ms above a sum of injected gaps: one late wake-up per gap adds up.
- SPAN_LOW = 25 ms below a sum of gaps between first and last token chunk: that span can only
  come out short when the client read the *first* chunk late; 25 ms allows one long stall.
"""

from __future__ import annotations

from time import perf_counter_ns

import pytest

from loadgen.client.openai import OpenAIClient, Timeouts
from loadgen.client.protocol import Endpoint, RequestOptions
from loadgen.config import TargetConfig
from loadgen.core.records import RequestRecord, RequestSpec
from loadgen.core.stats import step_figures
from loadgen.runtime.targets import timeouts as target_timeouts
from tests.support.fake_openai import Behaviour, FakeOpenAI, serve

DEFAULT_TIMEOUTS = target_timeouts(TargetConfig())

LOW = 0.001
HIGH = 0.040
HIGH_SPAN = 0.060
SPAN_LOW = 0.025

TTFT_S = 0.080
GAP_S = 0.020
PROMPT = "#0 tell me a story"  # 5 words: the fake server reports 5 prompt tokens


def s(ns: int) -> float:
    """Nanoseconds as seconds."""
    return ns / 1e9


async def send_one(
    fake: FakeOpenAI,
    spec: RequestSpec,
    options: RequestOptions,
    timeouts: Timeouts | None = None,
) -> RequestRecord:
    """Serve `fake` on a loopback port and send `spec` to it once."""
    async with (
        serve(fake) as url,
        OpenAIClient(url, options, timeouts=timeouts or DEFAULT_TIMEOUTS) as client,
    ):
        return await client.send(spec, 0, perf_counter_ns())


def ttft_s(record: RequestRecord) -> float:
    assert record.t_first_ns is not None
    return s(record.t_first_ns - record.t_send_ns)


def e2e_s(record: RequestRecord) -> float:
    assert record.t_last_ns is not None
    return s(record.t_last_ns - record.t_send_ns)


def assert_near(measured: float, injected: float, *, below: float, above: float) -> None:
    """`measured` lies in [injected - below, injected + above]."""
    assert injected - below <= measured <= injected + above, (measured, injected)


@pytest.mark.parametrize(
    ("endpoint", "behaviour"),
    [
        # Completions; a leading chunk with empty text must not count as the first token.
        ("completions", Behaviour(ttft_s=TTFT_S, gap_s=GAP_S, empty_first_chunk=True)),
        # Chat; the role-only chunk is sent at once, TTFT_S before the first content.
        ("chat", Behaviour(ttft_s=TTFT_S, gap_s=GAP_S, role_chunk=True)),
    ],
)
async def test_stream_timing_matches_injected(endpoint: Endpoint, behaviour: Behaviour) -> None:
    fake = FakeOpenAI(behaviour)
    max_tokens = 8
    record = await send_one(
        fake, RequestSpec(PROMPT, max_tokens), RequestOptions(endpoint=endpoint, model="fake-model")
    )

    assert record.ok, record.error
    assert record.status == 200
    assert record.tokens_out == max_tokens
    assert record.tokens_source == "server"
    assert record.tokens_in == 5
    assert len(record.chunk_times_ns) == max_tokens  # one token per chunk, nothing else counted
    # A role-only or empty chunk taken as the first token would give a TTFT of a few ms.
    assert_near(ttft_s(record), TTFT_S, below=LOW, above=HIGH)
    assert_near(e2e_s(record), TTFT_S + GAP_S * (max_tokens - 1), below=LOW, above=HIGH_SPAN)

    figures = step_figures([record], {})
    assert figures.tpot_s is not None
    assert figures.itl_s is not None
    assert figures.itl_s.count == max_tokens - 1
    gaps = max_tokens - 1
    # TPOT and mean ITL both measure the span from first to last token over its gaps.
    for measured in (figures.tpot_s.mean, figures.itl_s.mean):
        assert_near(measured, GAP_S, below=SPAN_LOW / gaps, above=HIGH_SPAN / gaps)
    # The client asked for usage, which is how it got the server's token counts.
    sent = fake.seen.requests[0].body
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["max_tokens"] == max_tokens


@pytest.mark.parametrize("chunk_usage", [False, True], ids=["final-usage", "usage-every-chunk"])
async def test_multi_token_chunks_weight_itl_by_tokens(chunk_usage: bool) -> None:
    gap_s = 0.040
    behaviour = Behaviour(ttft_s=0.02, gap_s=gap_s, tokens_per_chunk=4, chunk_usage=chunk_usage)
    max_tokens = 16  # 4 chunks of 4 tokens: 3 gaps, each worth 4 inter-token latencies
    record = await send_one(
        FakeOpenAI(behaviour), RequestSpec(PROMPT, max_tokens), RequestOptions(model="fake-model")
    )

    assert record.ok, record.error
    assert record.tokens_out == max_tokens
    assert record.tokens_source == "server"
    assert len(record.chunk_times_ns) == 4
    assert (None if record.chunk_tokens is None else list(record.chunk_tokens)) == (
        [4, 4, 4, 4] if chunk_usage else None
    )
    figures = step_figures([record], {})
    itl, tpot = figures.itl_s, figures.tpot_s
    assert itl is not None
    assert tpot is not None
    assert itl.count == max_tokens - 4  # the first chunk's tokens have no gap before them
    # An unweighted ITL would be ~gap_s, 4x the truth.
    assert_near(itl.mean, gap_s / 4, below=SPAN_LOW / 12, above=HIGH_SPAN / 12)
    assert_near(tpot.mean, 3 * gap_s / 15, below=SPAN_LOW / 15, above=HIGH_SPAN / 15)
    # Both spread the same first-to-last span: over tokens_out - 1 tokens, or as ITL samples.
    assert itl.mean * itl.count == pytest.approx(tpot.mean * (max_tokens - 1), rel=1e-9)


async def test_uneven_chunks_with_per_chunk_usage_keep_exact_counts() -> None:
    behaviour = Behaviour(gap_s=0.030, tokens_per_chunk=4, chunk_usage=True)
    record = await send_one(
        FakeOpenAI(behaviour), RequestSpec(PROMPT, 14), RequestOptions(model="fake-model")
    )

    assert record.ok, record.error
    assert record.tokens_out == 14
    assert list(record.chunk_tokens or ()) == [4, 4, 4, 2]
    itl = step_figures([record], {}).itl_s
    assert itl is not None
    assert itl.count == 10
    # The last gap is split over 2 tokens (15 ms each), the others over 4 (7.5 ms each): an even
    # spread of 14 tokens ([4, 4, 3, 3]) would cap samples at 10 ms.
    assert itl.max >= 0.030 / 2 - SPAN_LOW / 2


@pytest.mark.parametrize(
    "behaviour",
    [
        Behaviour(gap_s=0.020, tokens_per_chunk=2, send_usage=False),
        Behaviour(gap_s=0.020, tokens_per_chunk=2, send_usage=False, send_done=False),
        Behaviour(gap_s=0.020, tokens_per_chunk=2, send_usage=False, crlf=True),
        Behaviour(gap_s=0.020, tokens_per_chunk=2, send_usage=False, send_done=False, crlf=True),
    ],
    ids=["no-usage", "no-usage-no-done", "no-usage-crlf", "no-usage-no-done-crlf"],
)
async def test_stream_without_usage_estimates_one_token_per_chunk(behaviour: Behaviour) -> None:
    record = await send_one(
        FakeOpenAI(behaviour), RequestSpec(PROMPT, 8), RequestOptions(model="fake-model")
    )

    assert record.ok, record.error  # a stream may end without [DONE]
    assert record.tokens_source == "estimate"
    assert len(record.chunk_times_ns) == 4
    assert record.tokens_out == 4  # the estimate is one token per chunk (no tokenizer)
    assert record.tokens_in is None  # neither the spec nor the server gave a prompt count
    assert_near(e2e_s(record) - ttft_s(record), 3 * 0.020, below=SPAN_LOW, above=HIGH_SPAN)


async def test_stream_with_crlf_framing_and_usage() -> None:
    behaviour = Behaviour(ttft_s=TTFT_S, gap_s=GAP_S, crlf=True)
    record = await send_one(
        FakeOpenAI(behaviour),
        RequestSpec(PROMPT, 6),
        RequestOptions(endpoint="chat", model="fake-model"),
    )

    assert record.ok, record.error
    assert (record.tokens_out, record.tokens_source) == (6, "server")
    assert len(record.chunk_times_ns) == 6
    assert_near(ttft_s(record), TTFT_S, below=LOW, above=HIGH)


async def test_include_usage_off_is_not_asked_and_falls_back_to_estimate() -> None:
    fake = FakeOpenAI(Behaviour(gap_s=0.005))
    record = await send_one(
        fake, RequestSpec(PROMPT, 5), RequestOptions(model="fake-model", include_usage=False)
    )

    assert record.ok, record.error
    assert "stream_options" not in fake.seen.requests[0].body
    assert (record.tokens_out, record.tokens_source) == (5, "estimate")


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
async def test_non_streaming_has_no_ttft_and_e2e_is_the_whole_answer(endpoint: Endpoint) -> None:
    ttft, gap, max_tokens = 0.050, 0.010, 6
    fake = FakeOpenAI(Behaviour(ttft_s=ttft, gap_s=gap))
    record = await send_one(
        fake,
        RequestSpec(PROMPT, max_tokens),
        RequestOptions(endpoint=endpoint, model="fake-model", stream=False),
    )

    assert record.ok, record.error
    assert fake.seen.requests[0].body["stream"] is False
    assert "stream_options" not in fake.seen.requests[0].body
    assert record.t_first_ns is None
    assert list(record.chunk_times_ns) == []
    assert (record.tokens_out, record.tokens_source, record.tokens_in) == (max_tokens, "server", 5)
    # The server answers after the whole generation time in one body.
    assert_near(e2e_s(record), ttft + gap * (max_tokens - 1), below=LOW, above=HIGH)
    figures = step_figures([record], {})
    assert figures.ttft_s is None
    assert figures.tpot_s is None
    assert figures.itl_s is None
    assert figures.e2e_s is not None
    assert figures.per_token_latency_s is not None


async def test_non_streaming_without_usage_estimates_from_text() -> None:
    fake = FakeOpenAI(Behaviour(send_usage=False))
    record = await send_one(
        fake, RequestSpec(PROMPT, 10), RequestOptions(model="fake-model", stream=False)
    )

    assert record.ok, record.error
    assert record.tokens_source == "estimate"
    # The fake's text is " tok" per token: 40 characters, 4 characters per estimated token.
    assert record.tokens_out == 10
