"""The simulated server's OpenAI API (vLLM flavor), with raw aiohttp requests.

Streams, whole answers, output lengths (ignore_eos, min_tokens, EOS draws), error objects,
/v1/models and /health; a reasoning model's chat and completions; the Responses API. The
server runs on a loopback port of the test's loop at time scale 0.1 with a short mean EOS
length (8 tokens), so every request takes milliseconds.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from loadgen.config import SimConfig
from tests.integration._sim import DONE, post_sse, served, serving, token_events

MODEL = "llama-2-7b"
FAST = served(time_scale=0.1, eos_mean_tokens=8)


def completion(max_tokens: int, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "prompt": "say something short", "max_tokens": max_tokens} | extra


@pytest.mark.parametrize("include_usage", [True, False])
async def test_streamed_completion_is_one_token_per_chunk(include_usage: bool) -> None:
    body = completion(5, stream=True, ignore_eos=True)
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    async with serving(options=FAST) as (_, root), aiohttp.ClientSession() as session:
        status, events = await post_sse(session, f"{root}/v1/completions", body)

    assert status == 200
    assert events[-1] == DONE
    tokens = token_events(events)
    assert len(tokens) == 5
    assert all(event["object"] == "text_completion" for event in tokens)
    assert [event["choices"][0]["finish_reason"] for event in tokens] == [None] * 4 + ["length"]
    assert len({event["id"] for event in tokens}) == 1
    usage_events = [event for event in events[:-1] if event.get("usage")]
    if include_usage:
        assert usage_events == [events[-2]]
        assert events[-2]["choices"] == []
        assert events[-2]["usage"] == {
            "prompt_tokens": 3,
            "completion_tokens": 5,
            "total_tokens": 8,
            "prompt_tokens_details": {"cached_tokens": 0},
        }
        assert len(events) == 5 + 2
    else:
        assert usage_events == []
        assert len(events) == 5 + 1


async def test_chat_stream_starts_with_a_role_chunk() -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hello there"}],
        "max_tokens": 4,
        "stream": True,
        "ignore_eos": True,
    }
    async with serving(options=FAST) as (_, root), aiohttp.ClientSession() as session:
        status, events = await post_sse(session, f"{root}/v1/chat/completions", body)

    assert status == 200
    first = events[0]["choices"][0]
    assert first["delta"] == {"role": "assistant", "content": ""}
    tokens = token_events(events)
    assert len(tokens) == 4
    assert len(events) == 1 + 4 + 1
    assert all(event["object"] == "chat.completion.chunk" for event in tokens)
    assert tokens[-1]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("chat", [False, True])
async def test_whole_answers_carry_usage(chat: bool) -> None:
    body: dict[str, Any] = {"model": MODEL}
    if chat:
        path, body["messages"] = "chat/completions", [{"role": "user", "content": "a b c"}]
    else:
        path, body["prompt"] = "completions", "a b c"
    body |= {"max_tokens": 7, "ignore_eos": True}
    async with (
        serving(options=FAST) as (_, root),
        aiohttp.ClientSession() as session,
        session.post(f"{root}/v1/{path}", json=body) as resp,
    ):
        assert resp.status == 200
        answer = await resp.json()

    assert answer["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 7,
        "total_tokens": 10,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "length"
    text = choice["message"]["content"] if chat else choice["text"]
    assert choice.get("message", {"role": "assistant"})["role"] == "assistant"
    assert len(text.split()) == 7


async def _lengths(root: str, count: int, **extra: Any) -> list[tuple[int, str]]:
    """(completion_tokens, finish_reason) of `count` streamed requests for 40 tokens."""
    body = completion(40, stream=True, stream_options={"include_usage": True}, **extra)
    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(
            *(post_sse(session, f"{root}/v1/completions", body) for _ in range(count))
        )
    lengths = []
    for _, events in results:
        tokens = token_events(events)
        assert events[-2]["usage"]["completion_tokens"] == len(tokens)
        lengths.append((len(tokens), tokens[-1]["choices"][0]["finish_reason"]))
    return lengths


async def test_eos_lengths_without_ignore_eos_and_min_tokens_bound_them() -> None:
    # eos_mean_tokens=8: nearly every request stops at EOS well before 40 tokens.
    async with serving(options=FAST) as (_, root):
        free = await _lengths(root, 20, ignore_eos=False)
        bounded = await _lengths(root, 20, min_tokens=30)
        forced = await _lengths(root, 5, ignore_eos=True)

    assert any(n < 40 for n, _ in free)
    assert len({n for n, _ in free}) > 1  # drawn, not fixed
    for n, reason in free + bounded:
        assert 1 <= n <= 40
        assert reason == ("length" if n == 40 else "stop")
    assert all(n >= 30 for n, _ in bounded)
    assert forced == [(40, "length")] * 5


LONG_PROMPT = "w " * 4000
BAD_REQUESTS = [
    ("completions", b"{not json", 400),
    ("completions", b"[1, 2]", 400),
    ("completions", {"prompt": ""}, 400),
    ("completions", {"prompt": "x", "max_tokens": 0}, 400),
    ("completions", {"prompt": "x", "max_tokens": "7"}, 400),
    ("completions", {"prompt": "x", "stream": "yes"}, 400),
    ("completions", {"prompt": "x", "temperature": -1}, 400),
    ("completions", {"prompt": "x", "n": 2}, 400),
    ("completions", {"prompt": "x", "stream_options": 3}, 400),
    ("chat/completions", {"messages": []}, 400),
    ("chat/completions", {"messages": [{"content": "no role"}]}, 400),
    ("completions", {"prompt": "x", "model": "gpt-4"}, 404),
    ("chat/completions", {"messages": [{"role": "user", "content": "x"}], "model": "gpt"}, 404),
    ("completions", {"prompt": LONG_PROMPT, "max_tokens": 200}, 400),
    (
        "chat/completions",
        {"messages": [{"role": "user", "content": LONG_PROMPT}], "max_tokens": 200},
        400,
    ),
]


@pytest.mark.parametrize(("path", "body", "status"), BAD_REQUESTS)
async def test_bad_requests_get_vllm_error_objects(path: str, body: Any, status: int) -> None:
    data = body if isinstance(body, bytes) else None
    payload = None if isinstance(body, bytes) else body
    async with serving(options=FAST) as (server, root), aiohttp.ClientSession() as session:
        async with session.post(f"{root}/v1/{path}", data=data, json=payload) as resp:
            assert resp.status == status
            assert resp.content_type == "application/json"
            error = await resp.json()
        assert server.loop is not None
        assert server.loop.stats().steps == 0  # nothing was queued

    assert set(error) == {"object", "message", "type", "param", "code"}
    assert error["object"] == "error"
    assert error["code"] == status
    assert error["type"] == ("NotFoundError" if status == 404 else "BadRequestError")
    assert isinstance(error["message"], str)
    assert error["message"]
    if isinstance(payload, dict) and payload.get("max_tokens") == 200:
        assert "maximum context length is 4096 tokens" in error["message"]


async def test_models_and_health() -> None:
    async with serving(options=FAST) as (_, root), aiohttp.ClientSession() as session:
        async with session.get(f"{root}/v1/models") as resp:
            assert resp.status == 200
            models = await resp.json()
        async with session.get(f"{root}/health") as resp:
            assert resp.status == 200

    assert [entry["id"] for entry in models["data"]] == [MODEL]
    assert models["data"][0]["max_model_len"] == 4096


# --- a reasoning model ------------------------------------------------------------------------

THINKER = SimConfig(reasoning_tokens="3")


async def test_chat_stream_sends_reasoning_then_answer_and_counts_it() -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "why is the sky blue"}],
        "max_tokens": 8,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
    }
    async with serving(THINKER, FAST) as (_, root), aiohttp.ClientSession() as session:
        status, events = await post_sse(session, f"{root}/v1/chat/completions", body)

    assert status == 200
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [event["choices"][0]["delta"] for event in events[1:-2]]
    assert [set(delta) for delta in deltas] == [{"reasoning"}] * 3 + [{"content"}] * 5
    assert events[-3]["choices"][0]["finish_reason"] == "length"
    assert events[-2]["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 8,
        "total_tokens": 13,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 3},
    }
    assert events[-1] == DONE


async def test_whole_chat_answer_puts_reasoning_beside_content() -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "a b c"}],
        "max_tokens": 7,
        "ignore_eos": True,
    }
    async with (
        serving(THINKER, FAST) as (_, root),
        aiohttp.ClientSession() as session,
        session.post(f"{root}/v1/chat/completions", json=body) as resp,
    ):
        answer = await resp.json()

    message = answer["choices"][0]["message"]
    assert (len(message["reasoning"].split()), len(message["content"].split())) == (3, 4)
    assert answer["usage"]["completion_tokens"] == 7
    assert answer["usage"]["completion_tokens_details"] == {"reasoning_tokens": 3}


async def test_completions_of_a_reasoning_model_are_plain_text() -> None:
    body = completion(6, stream=True, stream_options={"include_usage": True}, ignore_eos=True)
    async with serving(THINKER, FAST) as (_, root), aiohttp.ClientSession() as session:
        _, events = await post_sse(session, f"{root}/v1/completions", body)

    assert len(token_events(events)) == 6
    assert events[-2]["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 6,
        "total_tokens": 9,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


# --- the Responses API ------------------------------------------------------------------------


def parse_events(raw: bytes) -> list[dict[str, Any]]:
    """A Responses API stream: `event: TYPE` and `data: JSON` per event, and nothing else."""
    parsed = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        event_line, data_line = block.split("\n")
        assert event_line.startswith("event: ")
        assert data_line.startswith("data: ")
        data = orjson.loads(data_line.removeprefix("data: "))
        assert data["type"] == event_line.removeprefix("event: ")
        parsed.append(data)
    return parsed


async def test_streamed_response_events_usage_and_no_done_marker() -> None:
    body = {
        "model": MODEL,
        "input": "tell me a story about the sea",
        "max_output_tokens": 9,
        "stream": True,
        "ignore_eos": True,
    }
    async with (
        serving(THINKER, FAST) as (_, root),
        aiohttp.ClientSession() as session,
        session.post(f"{root}/v1/responses", json=body) as resp,
    ):
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        raw = await resp.read()

    assert b"[DONE]" not in raw
    events = parse_events(raw)
    types = [event["type"] for event in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types.count("response.reasoning_text.delta") == 3
    assert types.count("response.output_text.delta") == 6
    assert types[-1] == "response.completed"
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    answer = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    final = events[-1]["response"]
    assert final["output"][1]["content"][0]["text"] == answer
    assert final["usage"] == {
        "input_tokens": 7,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 9,
        "output_tokens_details": {"reasoning_tokens": 3},
        "total_tokens": 16,
    }
    assert final["status"] == "incomplete"  # cut at max_output_tokens, as vLLM says it
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}


async def test_whole_response_object() -> None:
    body = {
        "model": MODEL,
        "instructions": "be brief",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi there"}]}],
        "max_output_tokens": 50,
        "min_tokens": 4,
    }
    async with (
        serving(options=FAST) as (_, root),
        aiohttp.ClientSession() as session,
        session.post(f"{root}/v1/responses", json=body) as resp,
    ):
        assert resp.status == 200
        answer = await resp.json()

    assert answer["object"] == "response"
    assert answer["id"].startswith("resp_")
    (message,) = answer["output"]
    assert (message["type"], message["role"], message["status"]) == (
        "message",
        "assistant",
        "completed",
    )
    text = message["content"][0]["text"]
    usage = answer["usage"]
    assert usage["input_tokens"] == 4
    assert usage["output_tokens"] == len(text.split()) >= 4
    assert usage["output_tokens_details"] == {"reasoning_tokens": 0}
    assert usage["total_tokens"] == 4 + usage["output_tokens"]
    expected = "incomplete" if usage["output_tokens"] == 50 else "completed"
    assert answer["status"] == expected


@pytest.mark.parametrize(
    ("body", "status"),
    [({"model": "other", "input": "a"}, 404), ({"model": MODEL, "input": []}, 400)],
)
async def test_bad_responses_requests_get_vllm_error_objects(body: Any, status: int) -> None:
    async with (
        serving(options=FAST) as (_, root),
        aiohttp.ClientSession() as session,
        session.post(f"{root}/v1/responses", json=body) as resp,
    ):
        assert resp.status == status
        error = await resp.json()
    assert (error["object"], error["code"]) == ("error", status)
