"""Response bodies and SSE chunks in vLLM's (or DeepSpeed-MII's) shapes, pre-encoded for speed."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from loadgen.sim.requests import Flavor

# Output text: common words, one token each, so clients counting tokens agree with usage.
WORDS = tuple(
    f" {word}"
    for word in (
        "the model answers with a short and plain sentence about the question it was "
        "given while the server keeps every sequence of the batch moving one token at "
        "each step of the engine"
    ).split()
)
DONE = b"data: [DONE]\n\n"


def token_text(rid: int, position: int) -> str:
    """The text of output token `position` of request `rid` (one word)."""
    return WORDS[(rid + position) % len(WORDS)]


class ChunkEncoder:
    """SSE chunks of one streamed response: token chunks, role chunk, usage, in one flavor."""

    def __init__(self, *, chat: bool, model: str, flavor: Flavor) -> None:
        self.chat = chat
        self.flavor = flavor
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        self._head = {
            "id": self.id,
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()),
            "model": model,
        }
        marker = "@@token@@"
        template = self._event([self._choice(marker, None)])
        self._prefix, self._suffix = template.split(marker.encode())

    def _choice(self, text: str, finish_reason: str | None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0}
        if self.chat:
            choice["delta"] = {"content": text}
        else:
            choice["text"] = text
        choice["logprobs"] = None
        choice["finish_reason"] = finish_reason
        if self.flavor == "vllm" and not self.chat:
            choice["stop_reason"] = None
        return choice

    def _event(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + orjson.dumps(self._head | {"choices": choices} | extra) + b"\n\n"

    def tokens(self, rid: int, start: int, stop: int, finish_reason: str | None) -> bytes:
        """Chunks for output tokens `start .. stop - 1`, one token each; the last one carries
        `finish_reason` when it is the final token."""
        prefix, suffix = self._prefix, self._suffix
        last = stop - 1 if finish_reason is not None else stop
        body = b"".join(
            prefix + token_text(rid, position).encode() + suffix for position in range(start, last)
        )
        if finish_reason is not None:
            body += self._event([self._choice(token_text(rid, last), finish_reason)])
        return body

    def role(self) -> bytes:
        """The chat stream's opening chunk (vLLM: role and empty content; MII: role only)."""
        delta: dict[str, str] = {"role": "assistant"}
        if self.flavor == "vllm":
            delta["content"] = ""
        return self._event([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        """vLLM's final usage chunk (empty choices), sent when include_usage was asked."""
        return self._event([], usage=usage(prompt_tokens, completion_tokens))


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """The OpenAI usage object."""
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
    }


def whole_response(
    *,
    chat: bool,
    model: str,
    rid: int,
    tokens: tuple[int, int],
    finish_reason: str,
) -> dict[str, Any]:
    """A non-streamed completion of `tokens = (prompt_tokens, completion_tokens)`."""
    prompt_tokens, completion_tokens = tokens
    text = "".join(token_text(rid, position) for position in range(completion_tokens))
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": finish_reason}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    return {
        "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def error_body(message: str, status: int) -> dict[str, Any]:
    """vLLM's error object."""
    kind = "NotFoundError" if status == 404 else "BadRequestError"
    return {"object": "error", "message": message, "type": kind, "param": None, "code": status}
