"""What the fake OpenAI server writes: chunks, usage and whole bodies of each API, by endpoint.

Completions and chat stream `data:` chunks; the Responses API streams typed events (an `event:`
line and a `data:` line each) and ends with `response.completed` holding the usage, no [DONE].
Reasoning text goes in chat deltas' `reasoning_field` (vLLM's `reasoning_content`, or the
newer `reasoning`) and in `response.reasoning_text.delta` events.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

RESPONSES = "responses"


def prompt_tokens(body: Mapping[str, Any]) -> int:
    """Words in the prompt, input or every message: the fake's 'tokenizer'."""
    text = body.get("prompt", body.get("input"))
    if isinstance(text, str):
        return len(text.split())
    messages = body.get("messages") if text is None else text
    return sum(len(str(m.get("content", "")).split()) for m in messages or [])


def max_tokens(body: Mapping[str, Any], endpoint: str) -> Any:
    """The output budget the request asked for (16 when it did not say)."""
    return body.get("max_output_tokens" if endpoint == RESPONSES else "max_tokens", 16)


def usage(
    body: Mapping[str, Any], endpoint: str, completion_tokens: int, reasoning_tokens: int | None
) -> dict[str, Any]:
    """The usage object of the endpoint's API; reasoning details when `reasoning_tokens` is
    not None."""
    prompt = prompt_tokens(body)
    names = ("input", "output") if endpoint == RESPONSES else ("prompt", "completion")
    counts: dict[str, Any] = {
        f"{names[0]}_tokens": prompt,
        f"{names[1]}_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }
    if reasoning_tokens is not None:
        counts[f"{names[1]}_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return counts


def chunk(endpoint: str, text: str, *, reasoning_field: str | None = None) -> dict[str, Any]:
    """A streamed chunk (or, for the Responses API, event) carrying `text`: reasoning text
    when `reasoning_field` names where it goes, else answer text."""
    if endpoint == RESPONSES:
        kind = "reasoning_text" if reasoning_field else "output_text"
        return {"type": f"response.{kind}.delta", "item_id": "item-0", "delta": text}
    if endpoint == "chat":
        delta = {reasoning_field or "content": text}
        return {
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
    return {"object": "text_completion", "choices": [{"index": 0, "text": text}]}


def sse(obj: Any, number: int, end: bytes) -> bytes:
    """One event on the wire; Responses API events get their type line and sequence number."""
    if isinstance(obj, bytes):
        return b"data: " + obj + end
    if "type" not in obj:
        return b"data: " + json.dumps(obj).encode() + end
    data = json.dumps({**obj, "sequence_number": number}).encode()
    return b"event: " + str(obj["type"]).encode() + b"\n" + b"data: " + data + end


def response_object(status: str, answer: str, reasoning: str) -> dict[str, Any]:
    """A Responses API response: its reasoning and message output items, when they have text."""
    output: list[dict[str, Any]] = []
    if reasoning:
        parts: list[dict[str, Any]] = [{"type": "reasoning_text", "text": reasoning}]
        output.append({"type": "reasoning", "id": "rs-0", "content": parts, "summary": []})
    if answer:
        content: list[dict[str, Any]] = [{"type": "output_text", "text": answer, "annotations": []}]
        output.append({"type": "message", "id": "msg-0", "role": "assistant", "content": content})
    return {"object": "response", "id": "resp-0", "status": status, "output": output}


def whole(endpoint: str, answer: str, reasoning: str, reasoning_field: str) -> dict[str, Any]:
    """A non-streamed answer of the endpoint's API (without usage)."""
    if endpoint == RESPONSES:
        return response_object("completed", answer, reasoning)
    if endpoint == "chat":
        message = {"role": "assistant", "content": answer}
        if reasoning:
            message[reasoning_field] = reasoning
        return {"object": "chat.completion", "choices": [{"index": 0, "message": message}]}
    return {"object": "completion", "choices": [{"index": 0, "text": reasoning + answer}]}
