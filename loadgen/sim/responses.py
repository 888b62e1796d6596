"""Response bodies and SSE chunks in vLLM's (or DeepSpeed-MII's) shapes, pre-encoded for speed."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from loadgen.sim.requests import Flavor
from loadgen.sim.tokens import output_text, token_text

DONE = b"data: [DONE]\n\n"


class ChunkEncoder:
    """SSE chunks of one streamed response: token chunks, role chunk, usage, in one flavor.

    A chat stream sends a reasoning model's first tokens as `delta.reasoning` (current vLLM's
    field; older vLLM named it `reasoning_content`), the rest as `delta.content`.
    """

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
        template = self._event([self._choice(marker, None, reasoning=True)])
        self._reasoning_prefix, self._reasoning_suffix = template.split(marker.encode())

    def _choice(
        self, text: str, finish_reason: str | None, *, reasoning: bool = False
    ) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0}
        if self.chat:
            choice["delta"] = {"reasoning" if reasoning else "content": text}
        else:
            choice["text"] = text
        choice["logprobs"] = None
        choice["finish_reason"] = finish_reason
        if self.flavor == "vllm" and not self.chat:
            choice["stop_reason"] = None
        return choice

    def _event(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + orjson.dumps(self._head | {"choices": choices} | extra) + b"\n\n"

    def tokens(
        self,
        rid: int,
        start: int,
        stop: int,
        finish_reason: str | None,
        reasoning: int | None = None,
    ) -> bytes:
        """Chunks for output tokens `start .. stop - 1`, one token each; the last one carries
        `finish_reason` when it is the final token. In a chat, tokens before `reasoning` are
        reasoning."""
        last = stop - 1 if finish_reason is not None else stop
        split = start  # where the answer starts, within this call's tokens
        body = b""
        if reasoning is not None and reasoning > start and self.chat:
            split = min(reasoning, stop)
            body = self._texts(rid, start, min(split, last), reasoning=True)
        body += self._texts(rid, split, last, reasoning=False)
        if finish_reason is not None:
            choice = self._choice(token_text(rid, last), finish_reason, reasoning=last < split)
            body += self._event([choice])
        return body

    def _texts(self, rid: int, start: int, stop: int, *, reasoning: bool) -> bytes:
        """Token chunks of tokens `start .. stop - 1` from the pre-encoded template."""
        if reasoning:
            prefix, suffix = self._reasoning_prefix, self._reasoning_suffix
        else:
            prefix, suffix = self._prefix, self._suffix
        if stop - start == 1:  # the usual case: one new token a step
            return prefix + token_text(rid, start).encode() + suffix
        return b"".join(
            prefix + token_text(rid, position).encode() + suffix for position in range(start, stop)
        )

    def role(self) -> bytes:
        """The chat stream's opening chunk (vLLM: role and empty content; MII: role only)."""
        delta: dict[str, str] = {"role": "assistant"}
        if self.flavor == "vllm":
            delta["content"] = ""
        return self._event([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])

    def usage(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        reasoning: int | None = None,
        cached: int | None = None,
    ) -> bytes:
        """vLLM's final usage chunk (empty choices), sent when include_usage was asked."""
        body = usage(prompt_tokens, completion_tokens, reasoning=reasoning, cached=cached)
        return self._event([], usage=body)


def usage(
    prompt_tokens: int,
    completion_tokens: int,
    *,
    reasoning: int | None = None,
    cached: int | None = None,
) -> dict[str, Any]:
    """The OpenAI usage object, with the details that are given (tokens).

    `reasoning` tokens are part of the completion; `cached` prompt tokens were found in the
    prefix cache (vLLM reports them with --enable-prompt-tokens-details).
    """
    body: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
    }
    if cached is not None:
        body["prompt_tokens_details"] = {"cached_tokens": cached}
    if reasoning is not None:
        body["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return body


def whole_response(
    *,
    chat: bool,
    model: str,
    rid: int,
    tokens: tuple[int, int],
    finish_reason: str,
    reasoning: int | None = None,
    cached: int | None = None,
) -> dict[str, Any]:
    """A non-streamed completion of `tokens = (prompt_tokens, completion_tokens)`.

    A chat's first `reasoning` tokens go to `message.reasoning` (None: no reasoning phase);
    `cached` prompt tokens, when given, go to the usage's details.
    """
    prompt_tokens, completion_tokens = tokens
    split = min(reasoning or 0, completion_tokens) if chat else 0
    thought = output_text(rid, 0, split)
    text = output_text(rid, split, completion_tokens)
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": finish_reason}
    if chat and reasoning is not None:
        message = {"role": "assistant", "content": text or None, "reasoning": thought or None}
        choice["message"] = message
    elif chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    return {
        "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage(
            prompt_tokens,
            completion_tokens,
            reasoning=split if chat and reasoning is not None else None,
            cached=cached,
        ),
    }


def error_body(message: str, status: int) -> dict[str, Any]:
    """vLLM's error object."""
    kind = "NotFoundError" if status == 404 else "BadRequestError"
    return {"object": "error", "message": message, "type": kind, "param": None, "code": status}
