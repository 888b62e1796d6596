"""aiohttp client for OpenAI-compatible servers: one shared session, a record per request."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any

import aiohttp
import orjson

from loadgen import __version__
from loadgen.client.idle import IdleWatchdog
from loadgen.client.protocol import (
    ENDPOINT_PATHS,
    TEXT_MARKERS,
    RequestOptions,
    build_body,
    choice_text,
    chunk_template,
    error_of,
    estimate_tokens,
    fits_template,
    model_ids,
    redact,
    usage_of,
)
from loadgen.client.sse import SSEParser
from loadgen.core.records import ErrorKind, RequestRecord, RequestSpec, TokensSource

_READ_BUFFER_BYTES = 1 << 18
_ERROR_BODY_BYTES = 512
# An error body is read up to this size and redacted before being cut to _ERROR_BODY_BYTES, so
# a secret the server echoes across the cut is still redacted whole.
_ERROR_READ_BYTES = 1 << 16


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-request limits (s): connect, first token after send, idle gap between reads, total."""

    connect_s: float = 10.0
    ttft_s: float = 600.0
    idle_s: float = 120.0
    total_s: float = 3600.0


class RequestFailed(Exception):
    """A request ended in an error of a known kind."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind


class ServerProbeError(Exception):
    """The server could not be reached, or does not answer like an OpenAI server."""


class _Progress:
    """What a request has seen so far; turned into a RequestRecord when it ends."""

    __slots__ = (
        "chunk_times_ns",
        "chunk_tokens",
        "completion_tokens",
        "estimated_tokens",
        "idle_expired",
        "last_read_ns",
        "prompt_tokens",
        "status",
        "t_first_ns",
        "t_last_ns",
        "template",
    )

    def __init__(self, t_send_ns: int) -> None:
        self.last_read_ns = t_send_ns
        self.idle_expired = False
        self.chunk_times_ns: list[int] = []
        self.chunk_tokens: list[int] | None = []
        self.t_first_ns: int | None = None
        self.t_last_ns: int | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.estimated_tokens = 0
        self.status: int | None = None
        self.template: tuple[bytes, bytes] | None = None


class OpenAIClient:
    """Sends requests to one OpenAI-compatible server over one tuned aiohttp session."""

    def __init__(
        self,
        base_url: str,
        options: RequestOptions,
        *,
        timeouts: Timeouts | None = None,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = base_url
        self.options = options
        self.timeouts = timeouts or Timeouts()
        self._secrets = tuple(s for s in (api_key, *(headers or {}).values()) if s)
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": f"loadgen/{__version__}",
            **(headers or {}),
        }
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._session: aiohttp.ClientSession | None = None
        self._watchdog = IdleWatchdog(self.timeouts.idle_s)

    async def __aenter__(self) -> OpenAIClient:
        connector = aiohttp.TCPConnector(
            limit=0, ttl_dns_cache=300, keepalive_timeout=75, enable_cleanup_closed=True
        )
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.timeouts.connect_s,
            connect=self.timeouts.connect_s,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers=self._headers,
            read_bufsize=_READ_BUFFER_BYTES,
        )
        self._watchdog.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._watchdog.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared session (only inside `async with`)."""
        if self._session is None:
            raise RuntimeError("OpenAIClient is used outside 'async with'")
        return self._session

    async def list_models(self) -> list[str]:
        """Model ids from `GET /models`; ServerProbeError when unreachable or not OpenAI-like."""
        url = f"{self.base_url}/models"
        try:
            async with self.session.get(url) as resp:
                body = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServerProbeError(f"cannot reach {url}: {self._describe(exc)}") from None
        if resp.status != 200:
            raise ServerProbeError(
                f"GET {url} answered HTTP {resp.status}; is this an OpenAI-compatible server? "
                "(pass --model if it has no model list)"
            )
        try:
            return model_ids(orjson.loads(body))
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
            raise ServerProbeError(
                f"GET {url} did not return an OpenAI model list ({exc}); is this an "
                "OpenAI-compatible server?"
            ) from None

    async def send(
        self, spec: RequestSpec, index: int, t_sched_ns: int, slot_wait_ns: int = 0
    ) -> RequestRecord:
        """Send one request now and wait for its end; never raises for server or network faults."""
        body = build_body(spec, self.options)
        t_send_ns = perf_counter_ns()
        progress = _Progress(t_send_ns)
        kind: ErrorKind | None = None
        message: str | None = None
        try:
            await self._exchange(body, progress)
        except RequestFailed as exc:
            kind, message = exc.kind, str(exc)
        except asyncio.CancelledError:
            if not progress.idle_expired:
                kind, message = "cancelled", "stopped before the response ended"
            else:
                _uncancel_current_task()  # the watchdog's cancel ends this request only
                kind, message = "timeout", f"no data for {self.timeouts.idle_s:g} s"
        except Exception as exc:  # every other fault of one request is data, not a crash
            kind, message = _classify(exc), self._describe(exc)
        return self._record(
            spec, index, t_sched_ns, t_send_ns, slot_wait_ns, progress, kind, message
        )

    async def _exchange(self, body: bytes, progress: _Progress) -> None:
        """POST `body` and read the response (status, chunks, usage) into `progress`."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        limits = self.timeouts
        url = self.base_url + ENDPOINT_PATHS[self.options.endpoint]
        # A whole (non-streamed) response has no first token to wait for: only the total limit.
        first_s = min(limits.ttft_s, limits.total_s) if self.options.stream else limits.total_s
        # Only streams go quiet between reads; a whole response is bounded by the total limit.
        watch = self._watchdog.watching(progress) if self.options.stream else nullcontext()
        try:
            with watch:
                async with (
                    asyncio.timeout_at(start + first_s) as deadline,
                    self.session.post(url, data=body) as resp,
                ):
                    progress.status = resp.status
                    if resp.status >= 400:
                        await _raise_http_error(resp)
                    if self.options.stream:
                        markers = TEXT_MARKERS[self.options.endpoint]
                        await _read_stream(
                            resp, progress, deadline, start + limits.total_s, markers
                        )
                    else:
                        await _read_whole(resp, progress)
        except TimeoutError as exc:
            raise RequestFailed("timeout", self._timeout_message(exc, progress)) from None

    def _timeout_message(self, exc: BaseException, progress: _Progress) -> str:
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return f"no connection within {self.timeouts.connect_s:g} s"
        if progress.t_first_ns is None and self.options.stream:
            return f"no first token within {self.timeouts.ttft_s:g} s"
        return f"request took longer than {self.timeouts.total_s:g} s"

    def _describe(self, exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        return redact(f"{type(exc).__name__}: {text}", self._secrets)[:_ERROR_BODY_BYTES]

    def _record(
        self,
        spec: RequestSpec,
        index: int,
        t_sched_ns: int,
        t_send_ns: int,
        slot_wait_ns: int,
        progress: _Progress,
        kind: ErrorKind | None,
        message: str | None,
    ) -> RequestRecord:
        tokens_out, source = _tokens_out(progress)
        chunk_tokens = progress.chunk_tokens
        if chunk_tokens is not None and len(chunk_tokens) != len(progress.chunk_times_ns):
            chunk_tokens = None
        return RequestRecord(
            index=index,
            t_sched_ns=t_sched_ns,
            t_send_ns=t_send_ns,
            slot_wait_ns=slot_wait_ns,
            t_done_ns=perf_counter_ns(),
            t_first_ns=progress.t_first_ns,
            t_last_ns=progress.t_last_ns,
            tokens_in=spec.tokens_in if progress.prompt_tokens is None else progress.prompt_tokens,
            tokens_out=tokens_out,
            tokens_source=source,
            chunk_times_ns=progress.chunk_times_ns,
            chunk_tokens=chunk_tokens,
            error_kind=kind,
            error=redact(message, self._secrets)[:_ERROR_BODY_BYTES] if message else None,
            status=progress.status,
        )


def _uncancel_current_task() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


def _tokens_out(progress: _Progress) -> tuple[int, TokensSource]:
    if progress.completion_tokens is not None:
        return progress.completion_tokens, "server"
    return progress.estimated_tokens, "estimate"


async def _raise_http_error(resp: aiohttp.ClientResponse) -> None:
    body = bytearray()
    while len(body) < _ERROR_READ_BYTES:
        part = await resp.content.read(_ERROR_READ_BYTES - len(body))
        if not part:
            break
        body += part
    detail = body.decode("utf-8", "replace").strip()
    kind: ErrorKind = "http_5xx" if resp.status >= 500 else "http_4xx"
    raise RequestFailed(kind, f"HTTP {resp.status}: {detail}")


async def _read_stream(
    resp: aiohttp.ClientResponse,
    progress: _Progress,
    deadline: asyncio.Timeout,
    total_deadline: float,
    markers: tuple[bytes, bytes],
) -> None:
    """Read an SSE stream into `progress`: token chunk times, usage, errors."""
    parser = SSEParser()
    saw_event = False
    async for data in resp.content.iter_any():
        now_ns = perf_counter_ns()
        progress.last_read_ns = now_ns
        payloads = parser.feed(data)
        if payloads:
            saw_event = True
            if _on_events(payloads, now_ns, progress, markers):
                deadline.reschedule(total_deadline)
    for payload in parser.close():
        saw_event = True
        if _on_event(payload, perf_counter_ns(), progress):
            deadline.reschedule(total_deadline)
    if not saw_event:
        content_type = resp.headers.get("Content-Type", "?")
        raise RequestFailed("bad_stream", f"no server-sent events in the response ({content_type})")


def _on_events(
    payloads: list[bytes], now_ns: int, progress: _Progress, markers: tuple[bytes, bytes]
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
        if template is None and len(progress.chunk_times_ns) > chunks:
            progress.template = chunk_template(payload, markers)
    if plain:
        _on_plain_token_chunks(progress, now_ns, plain)
    return first


def _on_event(payload: bytes, now_ns: int, progress: _Progress) -> bool:
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
    prompt, completion = usage_of(obj)
    if prompt is not None:
        progress.prompt_tokens = prompt
    text = choice_text(obj)
    if text:
        return _on_token_chunk(progress, now_ns, completion)
    if completion is not None:
        progress.completion_tokens = completion
    return False


def _on_plain_token_chunks(progress: _Progress, now_ns: int, count: int) -> None:
    """Record `count` token chunks without usage, all read at `now_ns`."""
    progress.chunk_times_ns.extend([now_ns] * count)
    progress.t_last_ns = now_ns
    progress.estimated_tokens += count
    progress.chunk_tokens = None


def _on_token_chunk(progress: _Progress, now_ns: int, completion: int | None) -> bool:
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


async def _read_whole(resp: aiohttp.ClientResponse, progress: _Progress) -> None:
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
    progress.prompt_tokens, progress.completion_tokens = usage_of(obj)
    progress.estimated_tokens = estimate_tokens(choice_text(obj))


def _classify(exc: BaseException) -> ErrorKind:
    """The error kind of an exception raised while sending or reading."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect"
    if isinstance(
        exc,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientPayloadError
        | aiohttp.ClientOSError
        | ConnectionError,
    ):
        return "disconnect"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "bad_stream"
