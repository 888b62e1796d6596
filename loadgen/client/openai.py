"""aiohttp client for OpenAI-compatible servers: one shared session, a record per request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, replace
from time import perf_counter_ns

import aiohttp
import orjson

from loadgen.client.idle import IdleWatchdog
from loadgen.client.protocol import (
    ENDPOINT_PATHS,
    TEXT_MARKERS,
    RequestOptions,
    build_body,
    model_ids,
    redact,
    rejected_field,
)
from loadgen.client.responses import (
    Progress,
    RequestFailed,
    read_stream,
    read_whole,
    reasoning_tokens,
    tokens_out,
)
from loadgen.core.records import ErrorKind, RequestRecord, RequestSpec
from loadgen.version import __version__

_READ_BUFFER_BYTES = 1 << 18
_ERROR_BODY_BYTES = 512
# An error body is read up to this size and redacted before being cut to _ERROR_BODY_BYTES, so
# a secret the server echoes across the cut is still redacted whole.
_ERROR_READ_BYTES = 1 << 16


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-request limits (s): connect, first token after send, idle gap between reads, total."""

    connect_s: float
    ttft_s: float
    idle_s: float
    total_s: float


class ServerProbeError(Exception):
    """The server could not be reached, or does not answer like an OpenAI server."""


class OpenAIClient:
    """Sends requests to one OpenAI-compatible server over one tuned aiohttp session."""

    def __init__(
        self,
        base_url: str,
        options: RequestOptions,
        *,
        timeouts: Timeouts,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        count_tokens: Callable[[str], int] | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        self.base_url = base_url
        self.options = options
        self.timeouts = timeouts
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
        # Counts output text when the server sends no usage; off once a server's usage is seen.
        self._count_tokens = count_tokens
        self._usage_seen = False
        self._on_warning = on_warning

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
            async with self.session.get(url, allow_redirects=False) as resp:
                body = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServerProbeError(f"cannot reach {url}: {self._describe(exc)}") from None
        if 300 <= resp.status < 400:
            raise ServerProbeError(
                f"GET {url} answered HTTP {resp.status}, a redirect to "
                f"{resp.headers.get('Location', 'nowhere')}: loadgen follows none (give the "
                "address it names, if you mean it)"
            )
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
        collect = self._count_tokens is not None and not self._usage_seen
        progress = Progress(t_send_ns, collect_text=collect)
        kind: ErrorKind | None = None
        message: str | None = None
        try:
            await self._exchange(body, progress)
        except RequestFailed as exc:
            kind, message = exc.kind, str(exc)
            if kind == "http_4xx" and progress.status is not None:
                self._drop_rejected_field(progress.status, message, body)
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

    async def _exchange(self, body: bytes, progress: Progress) -> None:
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
                    self.session.post(url, data=body, allow_redirects=False) as resp,
                ):
                    progress.status = resp.status
                    if resp.status >= 300:
                        await _raise_http_error(resp)
                    if self.options.stream:
                        markers = TEXT_MARKERS[self.options.endpoint]
                        await read_stream(resp, progress, deadline, start + limits.total_s, markers)
                    else:
                        await read_whole(resp, progress)
        except TimeoutError as exc:
            raise RequestFailed("timeout", self._timeout_message(exc, progress)) from None

    def _drop_rejected_field(self, status: int, detail: str, body: bytes) -> None:
        """Stop sending an optional field the server refused (the failed request stays failed)."""
        name = rejected_field(status, detail, body)
        if name is None or name in self.options.omit:
            return
        self.options = replace(self.options, omit=self.options.omit | {name})
        if self._on_warning is not None:
            self._on_warning(
                f"the server refused the optional field {name!r} (HTTP {status}); "
                "later requests are sent without it"
            )

    def _timeout_message(self, exc: BaseException, progress: Progress) -> str:
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
        progress: Progress,
        kind: ErrorKind | None,
        message: str | None,
    ) -> RequestRecord:
        count, source = tokens_out(progress, self._count_tokens)
        self._usage_seen |= source == "server"
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
            tokens_out=count,
            tokens_source=source,
            chunk_times_ns=progress.chunk_times_ns,
            chunk_tokens=chunk_tokens,
            error_kind=kind,
            error=redact(message, self._secrets)[:_ERROR_BODY_BYTES] if message else None,
            status=progress.status,
            t_first_answer_ns=progress.t_first_answer_ns,
            reasoning_tokens=reasoning_tokens(progress, self._count_tokens),
            cached_tokens=progress.cached_tokens,
        )


def _uncancel_current_task() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


async def _raise_http_error(resp: aiohttp.ClientResponse) -> None:
    body = bytearray()
    while len(body) < _ERROR_READ_BYTES:
        part = await resp.content.read(_ERROR_READ_BYTES - len(body))
        if not part:
            break
        body += part
    detail = body.decode("utf-8", "replace").strip()
    if resp.status < 400:  # redirects are not followed: load goes only where it was pointed
        where = resp.headers.get("Location", "nowhere")
        raise RequestFailed("http_3xx", f"HTTP {resp.status}: a redirect to {where}, not followed")
    kind: ErrorKind = "http_5xx" if resp.status >= 500 else "http_4xx"
    raise RequestFailed(kind, f"HTTP {resp.status}: {detail}")


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
