"""Reading one response into what the record needs: token chunk times, usage, errors."""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

import aiohttp
import orjson

from loadgen.client.protocol import (
    chunk_template,
    count_template_events,
    error_of,
    fits_template,
    is_reasoning_template,
    output_parts,
    usage_of,
)
from loadgen.client.sse import SSEParser
from loadgen.core.records import ErrorKind, TokensSource
from loadgen.core.tokens import estimate_tokens


class RequestFailed(Exception):
    """A request ended in an error of a known kind."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind


class Progress:
    """What a request has seen so far (times in `perf_counter_ns`); becomes its record."""

    __slots__ = (
        "cached_tokens",
        "chunk_times_ns",
        "chunk_tokens",
        "completion_tokens",
        "estimated_tokens",
        "idle_expired",
        "last_read_ns",
        "prompt_tokens",
        "reasoning_estimate",
        "reasoning_texts",
        "reasoning_tokens",
        "status",
        "t_first_answer_ns",
        "t_first_ns",
        "t_last_ns",
        "template",
        "template_reasoning",
        "texts",
    )

    def __init__(self, t_send_ns: int, *, collect_text: bool = False) -> None:
        self.last_read_ns = t_send_ns
        self.idle_expired = False
        # Compact int64 arrays: one stream holds thousands of these for the whole step.
        self.chunk_times_ns = array("q")
        self.chunk_tokens: array[int] | None = array("q")
        self.t_first_ns: int | None = None
        self.t_first_answer_ns: int | None = None
        self.t_last_ns: int | None = None
        self.prompt_tokens: int | None = None
        self.cached_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.estimated_tokens = 0
        # Reasoning tokens: the server's count when it gives one, else the estimate.
        self.reasoning_tokens: int | None = None
        self.reasoning_estimate = 0
        self.status: int | None = None
        self.template: tuple[bytes, bytes] | None = None
        self.template_reasoning = False
        # Output text, kept only to count it with a tokenizer when the server sends no usage.
        self.texts: list[str] | None = [] if collect_text else None
        self.reasoning_texts: list[str] | None = [] if collect_text else None


def tokens_out(
    progress: Progress, count_tokens: Callable[[str], int] | None = None
) -> tuple[int, TokensSource]:
    """Output tokens and their source: server usage, else the tokenizer, else the estimate."""
    if progress.completion_tokens is not None:
        return progress.completion_tokens, "server"
    if count_tokens is not None and progress.texts is not None:
        return count_tokens("".join(progress.texts)), "tokenizer"
    return progress.estimated_tokens, "estimate"


def reasoning_tokens(
    progress: Progress, count_tokens: Callable[[str], int] | None = None
) -> int | None:
    """Output tokens that were reasoning (server usage, else counted); None when none came."""
    if progress.reasoning_tokens is not None:
        return progress.reasoning_tokens
    if not progress.reasoning_estimate:
        return None
    if count_tokens is not None and progress.reasoning_texts is not None:
        return count_tokens("".join(progress.reasoning_texts))
    return progress.reasoning_estimate


async def read_stream(
    resp: aiohttp.ClientResponse,
    progress: Progress,
    deadline: asyncio.Timeout,
    total_deadline: float,
    markers: tuple[bytes, ...],
) -> None:
    """Read an SSE stream into `progress`: token chunk times, usage, errors."""
    parser = SSEParser()
    saw_event = False
    async for data in resp.content.iter_any():
        now_ns = perf_counter_ns()
        progress.last_read_ns = now_ns
        template = progress.template
        if template is not None and parser.at_boundary:
            plain = count_template_events(data, template)
            if plain:  # the whole read is plain token chunks: no framing or loop needed
                _on_plain_token_chunks(progress, now_ns, plain)
                continue
        payloads = parser.feed(data)
        if payloads:
            saw_event = True
            if apply_events(payloads, now_ns, progress, markers):
                deadline.reschedule(total_deadline)
    for payload in parser.close():
        saw_event = True
        if _on_event(payload, perf_counter_ns(), progress):
            deadline.reschedule(total_deadline)
    if not saw_event:
        content_type = resp.headers.get("Content-Type", "?")
        raise RequestFailed("bad_stream", f"no server-sent events in the response ({content_type})")


def apply_events(
    payloads: list[bytes], now_ns: int, progress: Progress, markers: tuple[bytes, ...]
) -> bool:
    """Apply the events of one read to `progress`; True when the first token was among them.

    Decoding a chunk costs more than everything else the client does per token, so a chunk
    byte-identical to a decoded token chunk of the same stream except for its text is counted
    without decoding; every other event is decoded in full.
    """
    first = False
    plain = 0
    for payload in payloads:
        template = progress.template
        if template is not None and fits_template(payload, template):
            plain += 1
            continue
        chunks = len(progress.chunk_times_ns)
        first |= _on_event(payload, now_ns, progress)
        # A decoded token chunk did not fit the template: the stream may have gone from
        # reasoning to answer. Text kept for counting needs every chunk decoded: no template.
        if len(progress.chunk_times_ns) > chunks and progress.texts is None:
            _take_template(progress, chunk_template(payload, markers))
    if plain:
        _on_plain_token_chunks(progress, now_ns, plain)
    return first


def _take_template(progress: Progress, template: tuple[bytes, bytes] | None) -> None:
    """Count later chunks that fit `template` without decoding them, as its kind of text."""
    progress.template = template
    progress.template_reasoning = template is not None and is_reasoning_template(template)


def _on_event(payload: bytes, now_ns: int, progress: Progress) -> bool:
    """Apply one SSE payload to `progress`; True when it was the request's first token."""
    if payload == b"[DONE]":
        return False
    try:
        obj: Any = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise RequestFailed("bad_stream", f"malformed event: {payload[:120]!r}") from None
    if not isinstance(obj, dict):
        raise RequestFailed("bad_stream", f"event is not a JSON object: {payload[:120]!r}")
    message = error_of(obj)
    if message is not None:
        raise RequestFailed("bad_stream", f"server error in stream: {message}")
    prompt, completion, reasoning, cached = usage_of(obj)
    if prompt is not None:
        progress.prompt_tokens = prompt
    if reasoning is not None:
        progress.reasoning_tokens = reasoning
    if cached is not None:
        progress.cached_tokens = cached
    answer, thinking = output_parts(obj)
    if answer or thinking:
        _on_text(progress, answer, thinking)
        if answer and progress.t_first_answer_ns is None:
            progress.t_first_answer_ns = now_ns
        return _on_token_chunk(progress, now_ns, completion)
    if completion is not None:
        progress.completion_tokens = completion
    return False


def _on_text(progress: Progress, answer: str, reasoning: str) -> None:
    """Count a chunk's reasoning and keep its text where a tokenizer will count it."""
    if reasoning:
        progress.reasoning_estimate += 1
        if progress.reasoning_texts is not None:
            progress.reasoning_texts.append(reasoning)
    if progress.texts is not None:
        progress.texts.append(reasoning + answer)


def _on_plain_token_chunks(progress: Progress, now_ns: int, count: int) -> None:
    """Record `count` token chunks without usage, all read at `now_ns`."""
    if progress.template_reasoning:
        progress.reasoning_estimate += count
    progress.chunk_times_ns.extend([now_ns] * count)
    progress.t_last_ns = now_ns
    progress.estimated_tokens += count
    progress.chunk_tokens = None


def _on_token_chunk(progress: Progress, now_ns: int, completion: int | None) -> bool:
    """Record a token-carrying chunk; per-chunk counts are kept while every chunk has usage."""
    progress.chunk_times_ns.append(now_ns)
    progress.t_last_ns = now_ns
    progress.estimated_tokens += 1
    if progress.chunk_tokens is not None:
        if completion is None:
            progress.chunk_tokens = None
        else:
            progress.chunk_tokens.append(completion - (progress.completion_tokens or 0))
    if completion is not None:
        progress.completion_tokens = completion
    if progress.t_first_ns is None:
        progress.t_first_ns = now_ns
        return True
    return False


async def read_whole(resp: aiohttp.ClientResponse, progress: Progress) -> None:
    """Read a non-streamed response into `progress`."""
    body = await resp.read()
    progress.t_last_ns = perf_counter_ns()
    try:
        obj: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RequestFailed("bad_stream", f"response is not JSON: {body[:120]!r}") from None
    if not isinstance(obj, dict):
        raise RequestFailed("bad_stream", "response is not a JSON object")
    message = error_of(obj)
    if message is not None:
        raise RequestFailed("bad_stream", f"server error: {message}")
    usage = usage_of(obj)
    progress.prompt_tokens, progress.completion_tokens = usage.prompt, usage.completion
    progress.reasoning_tokens, progress.cached_tokens = usage.reasoning, usage.cached
    answer, reasoning = output_parts(obj)
    progress.reasoning_estimate = estimate_tokens(reasoning)
    progress.estimated_tokens = estimate_tokens(answer) + progress.reasoning_estimate
    if progress.reasoning_texts is not None:
        progress.reasoning_texts.append(reasoning)
    if progress.texts is not None:
        progress.texts.append(reasoning + answer)
