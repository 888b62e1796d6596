"""Tests for loadgen.sim.responses: SSE chunks and bodies in vLLM's and DeepSpeed-MII's shapes.

Chunks are pre-encoded from a template for speed, so every check parses the bytes back as a
client would: `data: <json>\\n\\n` events, one JSON object each.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from loadgen.sim.requests import FLAVORS, Flavor
from loadgen.sim.responses import (
    DONE,
    ChunkEncoder,
    error_body,
    usage,
    whole_response,
)
from loadgen.sim.tokens import WORDS, token_text

MODEL = "some/model-7b"


def events(raw: bytes) -> list[dict[str, Any]]:
    """Parse SSE bytes into JSON events; every event must be exactly `data: {json}\\n\\n`."""
    assert raw.endswith(b"\n\n")
    blocks = raw.split(b"\n\n")[:-1]
    assert all(block.startswith(b"data: ") and b"\n" not in block for block in blocks), raw
    return [orjson.loads(block.removeprefix(b"data: ")) for block in blocks]


def encoder(chat: bool, flavor: Flavor = "vllm") -> ChunkEncoder:
    return ChunkEncoder(chat=chat, model=MODEL, flavor=flavor)


def test_words_are_single_plain_tokens() -> None:
    assert len(WORDS) > 10
    for word in WORDS:
        assert word.startswith(" ")
        assert word[1:].isalpha()
        assert word[1:].islower()
    assert [token_text(3, p) for p in range(len(WORDS))] == [
        WORDS[(3 + p) % len(WORDS)] for p in range(len(WORDS))
    ]
    assert token_text(0, len(WORDS)) == token_text(0, 0)  # cycles


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("chat", [False, True])
def test_token_chunks_carry_one_token_each(chat: bool, flavor: Flavor) -> None:
    enc = encoder(chat, flavor)
    parsed = events(enc.tokens(rid=5, start=2, stop=6, finish_reason=None))

    assert len(parsed) == 4
    texts = []
    for event in parsed:
        assert event["id"] == enc.id
        assert event["id"].startswith("chatcmpl-" if chat else "cmpl-")
        assert event["object"] == ("chat.completion.chunk" if chat else "text_completion")
        assert event["model"] == MODEL
        assert isinstance(event["created"], int)
        assert "usage" not in event
        (choice,) = event["choices"]
        assert choice["index"] == 0
        assert choice["finish_reason"] is None
        assert choice["logprobs"] is None
        if chat:
            assert set(choice["delta"]) == {"content"}
            texts.append(choice["delta"]["content"])
        else:
            texts.append(choice["text"])
        # vLLM's completion chunks carry stop_reason; MII's and chat chunks do not.
        assert ("stop_reason" in choice) == (flavor == "vllm" and not chat)
    assert texts == [token_text(5, p) for p in range(2, 6)]


def test_no_tokens_no_bytes() -> None:
    assert encoder(False).tokens(rid=0, start=3, stop=3, finish_reason=None) == b""


@pytest.mark.parametrize("chat", [False, True])
@pytest.mark.parametrize("reason", ["length", "stop"])
def test_the_final_token_carries_the_finish_reason(chat: bool, reason: str) -> None:
    enc = encoder(chat)
    final = events(enc.tokens(rid=1, start=5, stop=8, finish_reason=reason))
    plain = events(enc.tokens(rid=1, start=5, stop=8, finish_reason=None))

    assert [e["choices"][0]["finish_reason"] for e in final] == [None, None, reason]
    # Same shapes and texts as ordinary token chunks; only the last finish reason differs.
    plain[-1]["choices"][0]["finish_reason"] = reason
    assert final == plain
    (single,) = events(enc.tokens(rid=1, start=7, stop=8, finish_reason=reason))
    assert single == final[-1]


@pytest.mark.parametrize(
    ("flavor", "delta"),
    [("vllm", {"role": "assistant", "content": ""}), ("mii", {"role": "assistant"})],
)
def test_chat_role_chunk(flavor: Flavor, delta: dict[str, str]) -> None:
    enc = encoder(True, flavor)
    (event,) = events(enc.role())

    assert event["id"] == enc.id
    assert event["object"] == "chat.completion.chunk"
    assert event["choices"] == [
        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
    ]


@pytest.mark.parametrize("chat", [False, True])
def test_usage_chunk_has_no_choices(chat: bool) -> None:
    enc = encoder(chat)
    (event,) = events(enc.usage(prompt_tokens=11, completion_tokens=4))

    assert event["id"] == enc.id
    assert event["choices"] == []
    assert event["usage"] == {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}


def test_done_marker() -> None:
    assert DONE == b"data: [DONE]\n\n"


def test_a_whole_stream_reads_back_in_order() -> None:
    enc = encoder(True)
    raw = enc.role() + enc.tokens(9, 0, 2, None) + enc.tokens(9, 2, 3, "length") + enc.usage(1, 3)
    parsed = events(raw)
    assert [e["choices"][0]["delta"].get("content") for e in parsed[:4]] == [
        "",
        token_text(9, 0),
        token_text(9, 1),
        token_text(9, 2),
    ]
    assert [e["choices"][0]["finish_reason"] for e in parsed[:4]] == [None, None, None, "length"]
    assert parsed[4]["usage"]["completion_tokens"] == 3
    assert len({e["id"] for e in parsed}) == 1


def test_encoders_have_distinct_ids() -> None:
    assert encoder(False).id != encoder(False).id


@pytest.mark.parametrize("chat", [False, True])
def test_whole_response(chat: bool) -> None:
    body = whole_response(chat=chat, model=MODEL, rid=4, tokens=(6, 3), finish_reason="stop")
    body = orjson.loads(orjson.dumps(body))  # JSON-ready

    assert body["object"] == ("chat.completion" if chat else "text_completion")
    assert body["id"].startswith("chatcmpl-" if chat else "cmpl-")
    assert body["model"] == MODEL
    assert body["usage"] == {"prompt_tokens": 6, "completion_tokens": 3, "total_tokens": 9}
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "stop"
    expected = "".join(token_text(4, p) for p in range(3))
    if chat:
        assert choice["message"] == {"role": "assistant", "content": expected}
    else:
        assert choice["text"] == expected


def test_whole_response_with_no_tokens_is_empty_text() -> None:
    body = whole_response(chat=False, model=MODEL, rid=0, tokens=(2, 0), finish_reason="stop")
    assert body["choices"][0]["text"] == ""
    assert body["usage"]["completion_tokens"] == 0


def test_usage_object() -> None:
    assert usage(10, 5) == {"prompt_tokens": 10, "total_tokens": 15, "completion_tokens": 5}
    assert usage(10, 5, cached=8, reasoning=2) == {
        "prompt_tokens": 10,
        "total_tokens": 15,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 8},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }


@pytest.mark.parametrize(("status", "kind"), [(400, "BadRequestError"), (404, "NotFoundError")])
def test_error_body(status: int, kind: str) -> None:
    body = orjson.loads(orjson.dumps(error_body('it is "wrong"\n', status)))
    assert body == {
        "object": "error",
        "message": 'it is "wrong"\n',
        "type": kind,
        "param": None,
        "code": status,
    }


# ---- a reasoning model ----------------------------------------------------------------------


def _deltas(raw: bytes) -> list[dict[str, str]]:
    return [event["choices"][0]["delta"] for event in events(raw)]


@pytest.mark.parametrize(("start", "stop"), [(0, 8), (0, 2), (2, 5), (3, 8), (5, 8)])
def test_chat_tokens_before_the_reasoning_count_are_reasoning(start: int, stop: int) -> None:
    deltas = _deltas(
        encoder(True).tokens(rid=2, start=start, stop=stop, finish_reason=None, reasoning=3)
    )
    assert deltas == [
        {"reasoning" if p < 3 else "content": token_text(2, p)} for p in range(start, stop)
    ]


@pytest.mark.parametrize(("reasoning", "last"), [(3, "content"), (8, "reasoning")])
def test_the_final_chat_token_is_reasoning_or_answer(reasoning: int, last: str) -> None:
    parsed = events(encoder(True).tokens(4, 6, 8, "length", reasoning=reasoning))
    assert parsed[-1]["choices"][0]["finish_reason"] == "length"
    assert parsed[-1]["choices"][0]["delta"] == {last: token_text(4, 7)}


def test_completions_have_no_reasoning_field() -> None:
    # vLLM's completions endpoint sends a reasoning model's thinking as plain text.
    parsed = events(encoder(False).tokens(2, 0, 5, "stop", reasoning=3))
    assert [event["choices"][0]["text"] for event in parsed] == [token_text(2, p) for p in range(5)]


def test_usage_counts_reasoning_tokens_among_the_completion() -> None:
    (event,) = events(encoder(True).usage(11, 9, reasoning=4))
    assert event["usage"] == {
        "prompt_tokens": 11,
        "completion_tokens": 9,
        "total_tokens": 20,
        "completion_tokens_details": {"reasoning_tokens": 4},
    }


@pytest.mark.parametrize(("reasoning", "thought", "answer"), [(2, 2, 3), (0, 0, 5), (9, 5, 0)])
def test_whole_chat_response_splits_reasoning_from_the_answer(
    reasoning: int, thought: int, answer: int
) -> None:
    body = whole_response(
        chat=True, model=MODEL, rid=1, tokens=(4, 5), finish_reason="stop", reasoning=reasoning
    )
    message = body["choices"][0]["message"]
    thinking = "".join(token_text(1, p) for p in range(thought))
    assert message["reasoning"] == (thinking if thought else None)
    expected = "".join(token_text(1, p) for p in range(thought, 5))
    assert message["content"] == (expected if answer else None)
    assert body["usage"]["completion_tokens"] == 5
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": thought}


def test_whole_completion_of_a_reasoning_model_is_plain_text() -> None:
    body = whole_response(
        chat=False, model=MODEL, rid=1, tokens=(4, 5), finish_reason="stop", reasoning=2
    )
    assert body["choices"][0]["text"] == "".join(token_text(1, p) for p in range(5))
    assert "completion_tokens_details" not in body["usage"]
