"""The client ceiling's stream server: raw asyncio.Protocol on uvloop, in a child process.

Every response is vLLM's /v1/completions stream (one token per SSE event, then a usage event
and [DONE]), built in advance and sent in `writes` socket writes `gap_ms` apart, so the server
costs little and the client, not the server, sets the ceiling.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import re
import socket
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import cast

from loadgen.runtime.loop import run_async

PROMPT = "hello " * 8
PROMPT_TOKENS = 8

_EVENT_HEAD = b'data: {"id":"cmpl-1","object":"text_completion","created":0,"model":"m",'
_TOKEN_EVENT = _EVENT_HEAD + (
    b'"choices":[{"index":0,"text":" tok","logprobs":null,"finish_reason":%s}]}\n\n'
)
_USAGE_EVENT = _EVENT_HEAD + (
    b'"choices":[],"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d}}\n\n'
)
_DONE_EVENT = b"data: [DONE]\n\n"
_RESPONSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
)
_LAST_CHUNK = b"0\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_MAX_TOKENS = re.compile(rb'"max_tokens"\s*:\s*(\d+)')
_DEFAULT_TOKENS = 16


@dataclass(frozen=True, slots=True)
class StreamShape:
    """How the server spreads one response: `writes` socket writes, `gap_ms` (ms) apart."""

    writes: int = 8
    gap_ms: float = 1.0


def sse_events(tokens: int) -> list[bytes]:
    """Every SSE event of one response: `tokens` token events, the usage event, [DONE]."""
    events = [_TOKEN_EVENT % b"null"] * (tokens - 1) + [_TOKEN_EVENT % b'"length"']
    usage = _USAGE_EVENT % (PROMPT_TOKENS, PROMPT_TOKENS + tokens, tokens)
    return [*events, usage, _DONE_EVENT]


def sse_body_bytes(tokens: int) -> int:
    """Length (bytes) of the de-chunked response body for `tokens` tokens (what a client reads)."""
    return sum(len(event) for event in sse_events(tokens))


@functools.cache
def response_parts(tokens: int, writes: int) -> tuple[bytes, ...]:
    """The bytes of each socket write: HTTP head + one chunked-encoding chunk per write."""
    events = sse_events(tokens)
    writes = max(1, min(writes, tokens))
    # Token events split evenly over the writes; usage and [DONE] ride with the last tokens.
    bounds = [round(i * tokens / writes) for i in range(writes)] + [len(events)]
    parts = []
    for i in range(writes):
        payload = b"".join(events[bounds[i] : bounds[i + 1]])
        parts.append(b"%x\r\n%s\r\n" % (len(payload), payload))
    parts[0] = _RESPONSE_HEAD + parts[0]
    parts[-1] += _LAST_CHUNK
    return tuple(parts)


class _StreamProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive: every request gets the pre-built stream for its max_tokens."""

    def __init__(self, shape: StreamShape) -> None:
        self._writes = shape.writes
        self._gap_s = shape.gap_ms / 1000
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._busy_until = 0.0
        self._pending: deque[bytes] = deque()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (body := self._next_body()) is not None:
            match = _MAX_TOKENS.search(body)
            self._respond(int(match.group(1)) if match else _DEFAULT_TOKENS)

    def _next_body(self) -> bytes | None:
        """The body of the next complete request in the buffer (consumed), else None."""
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        match = _CONTENT_LENGTH.search(self._buffer, 0, end + 2)
        total = end + 4 + (int(match.group(1)) if match else 0)
        if len(self._buffer) < total:
            return None
        body = bytes(self._buffer[end + 4 : total])
        del self._buffer[:total]
        return body

    def _respond(self, tokens: int) -> None:
        """Write the first part now, the rest `gap_s` apart (after any earlier response)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, self._busy_until)
        parts = response_parts(max(tokens, 1), self._writes)
        self._pending.extend(parts)
        # Each callback writes the oldest pending part: uvloop may run a due timer before an
        # earlier call_soon, so a callback must not be bound to one particular part.
        for i in range(len(parts)):
            at = start + i * self._gap_s
            if at <= now:
                self._write_next()
            else:
                loop.call_at(at, self._write_next)
        self._busy_until = start + (len(parts) - 1) * self._gap_s

    def _write_next(self) -> None:
        part = self._pending.popleft()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(part)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


async def _serve_forever(conn: Connection, shape: StreamShape) -> None:
    """Listen on a free loopback port, send the port down `conn`, serve until killed."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _StreamProtocol(shape), "127.0.0.1", 0, backlog=4096)
    conn.send(server.sockets[0].getsockname()[1])
    conn.close()
    await server.serve_forever()


def _serve(conn: Connection, core: int | None, shape: StreamShape) -> None:
    """Child process entry: pin to `core`, serve on a free loopback port, send the port back."""
    if core is not None:
        os.sched_setaffinity(0, {core})
    run_async(_serve_forever(conn, shape))


@dataclass(frozen=True, slots=True)
class ServerHandle:
    """A running stream server: its OpenAI base URL and process id."""

    base_url: str
    pid: int


@contextmanager
def stream_server(shape: StreamShape, core: int | None) -> Iterator[ServerHandle]:
    """Run the stream server in a child process for the duration of the block."""
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_serve, args=(sender, core, shape), daemon=True)
    process.start()
    try:
        port = _await_port(receiver, process)
        assert process.pid is not None
        yield ServerHandle(f"http://127.0.0.1:{port}/v1", process.pid)
    finally:
        process.terminate()
        process.join(5)


def _await_port(receiver: Connection, process: BaseProcess, timeout_s: float = 30.0) -> int:
    """The port the server process reports, or RuntimeError when it dies or stays silent."""
    deadline = time.monotonic() + timeout_s
    while not receiver.poll(0.1):
        if not process.is_alive():
            raise RuntimeError(f"the stream server exited with code {process.exitcode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the stream server did not start within {timeout_s:g} s")
    return int(receiver.recv())
