"""A real aiohttp OpenAI-style server with scripted timing and faults, for integration tests.

Timing is injected with `asyncio.sleep` on the server, so every latency the client measures is
at least the injected one: tests bound measured figures from below exactly and from above with
a stated tolerance. `serve(fake)` runs it on the caller's loop; `ServerThread(fake)` runs it on a
loop of its own in a background thread, for code under test that owns its event loop (the CLI)
or lives in another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from tests.support import fake_wire as wire
from tests.support.ports import free_port

Fault = Literal[
    "http_500",  # 500 with a JSON error body, before any byte of a stream
    "http_400",  # 400 with a JSON error body
    "http_401_echo",  # 401 whose body echoes the request's Authorization and X-Api-Key headers
    "reset",  # stream: abort the TCP connection after `fault_after_chunks` token chunks
    "malformed",  # stream: a `data: {not json` event after `fault_after_chunks` token chunks
    "error_event",  # stream: an OpenAI error object after `fault_after_chunks` token chunks
    "stall_first",  # stream: headers (and chat role chunk), then silence for `stall_s`
    "stall_mid",  # stream: silence for `stall_s` after `fault_after_chunks` token chunks
    "plain_text",  # 200 text/plain with no server-sent events at all
]
ModelsMode = Literal["json", "html_404", "html_200"]

_TAG = re.compile(r"#(\d+)\b")
# An `http_401_echo` body has the key of "Authorization: Bearer KEY" start at this byte, so the
# key straddles byte 512: an error message cut there before it is redacted keeps part of it.
ECHO_KEY_OFFSET = 500


@dataclass(frozen=True)
class Behaviour:
    """How the fake answers one request; every time is in seconds.

    A stream is: headers, then (chat, `role_chunk`) a role-only chunk and (`empty_first_chunk`)
    a chunk with empty text, both sent at once; then `ttft_s` of silence, then the token chunks
    `gap_s` apart, each with `tokens_per_chunk` tokens (the last may carry fewer), `max_tokens`
    tokens in all; then a usage-only chunk (when `send_usage` and the client asked with
    `stream_options.include_usage`) and `data: [DONE]` (when `send_done`). A body holding any
    of `refused_fields` gets HTTP 422 naming them, in pydantic's words. The first
    `reasoning_tokens` tokens are reasoning (chat: in the delta's `reasoning_field`; usage says
    how many when `reasoning_usage`); chunks never mix reasoning and answer. The Responses API
    (`/v1/responses`) streams the same tokens as typed events, usage in `response.completed`.
    """

    ttft_s: float = 0.0
    gap_s: float = 0.0
    tokens_per_chunk: int = 1
    send_usage: bool = True
    chunk_usage: bool = False  # cumulative usage on every token chunk (vLLM continuous usage)
    send_done: bool = True
    role_chunk: bool = True
    empty_first_chunk: bool = False
    crlf: bool = False
    fault: Fault | None = None
    fault_after_chunks: int = 1
    stall_s: float = 30.0
    refused_fields: tuple[str, ...] = ()  # answered with 422, as transformers serve does
    reasoning_tokens: int = 0
    reasoning_field: str = "reasoning_content"
    reasoning_usage: bool = True


@dataclass(frozen=True)
class Incoming:
    """One completion request as the server received it."""

    number: int  # arrival order at the server, from 0
    endpoint: str  # "completions", "chat" or "responses"
    body: Mapping[str, Any]
    headers: Mapping[str, str]
    tag: int | None  # the number N of a "#N" marker in the prompt, when there is one


@dataclass
class Seen:
    """What the server received (mutated only on the server's loop)."""

    requests: list[Incoming] = field(default_factory=list)
    models_headers: list[dict[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    finished: int = 0  # streams or bodies sent to the end (not aborted, not cancelled)

    @property
    def tags(self) -> list[int | None]:
        """The tag of every completion request, in arrival order."""
        return [incoming.tag for incoming in self.requests]


def _tag_of(body: Mapping[str, Any]) -> int | None:
    text = body.get("prompt", body.get("input"))
    if not isinstance(text, str):
        messages = text or body.get("messages") or []
        text = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, Mapping))
    match = _TAG.search(str(text))
    return int(match.group(1)) if match else None


def _error_json(message: str, status: int) -> web.Response:
    body = {"object": "error", "message": message, "type": "BadRequestError", "code": status}
    return web.json_response(body, status=status)


class FakeOpenAI:
    """The app and its state.

    `behaviour` answers every request unless `script` is given: then `script(incoming)` picks
    the Behaviour of each request (e.g. a fault for every 5th tag). Both may be replaced
    between requests.

    `max_streams` makes a server of known capacity: it answers at most that many completion
    requests at once, and queues the others in arrival order until one ends (or, with
    `refuse_beyond`, answers them at once with HTTP 429).
    """

    def __init__(
        self,
        behaviour: Behaviour | None = None,
        *,
        script: Callable[[Incoming], Behaviour] | None = None,
        models: tuple[str, ...] = ("fake-model",),
        models_mode: ModelsMode = "json",
        max_streams: int | None = None,
        refuse_beyond: bool = False,
    ) -> None:
        self.behaviour = behaviour or Behaviour()
        self.script = script
        self.models = models
        self.models_mode = models_mode
        self.max_streams = max_streams
        self.refuse_beyond = refuse_beyond
        self._streams: asyncio.Semaphore | None = None  # made on the server's loop
        self.seen = Seen()
        self._waiters: list[tuple[int, asyncio.Event]] = []
        self.app = web.Application()
        self.app.router.add_get("/v1/models", self._models)
        self.app.router.add_post("/v1/completions", self._completions)
        self.app.router.add_post("/v1/chat/completions", self._chat)
        self.app.router.add_post("/v1/responses", self._responses)

    async def wait_for_requests(self, count: int) -> None:
        """Return once `count` completion requests have arrived (on the server's own loop)."""
        if len(self.seen.requests) >= count:
            return
        arrived = asyncio.Event()
        self._waiters.append((count, arrived))
        await arrived.wait()

    async def _models(self, request: web.Request) -> web.Response:
        self.seen.models_headers.append(dict(request.headers))
        if self.models_mode == "html_404":
            html = "<html><body><h1>404 Not Found</h1></body></html>"
            return web.Response(text=html, status=404, content_type="text/html")
        if self.models_mode == "html_200":
            html = "<html><body>Welcome to nginx!</body></html>"
            return web.Response(text=html, content_type="text/html")
        data = [{"id": name, "object": "model"} for name in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, "completions")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, "chat")

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, wire.RESPONSES)

    async def _answer(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        body = await request.json()
        incoming = Incoming(
            number=len(self.seen.requests),
            endpoint=endpoint,
            body=body,
            headers=dict(request.headers),
            tag=_tag_of(body),
        )
        self.seen.requests.append(incoming)
        for count, arrived in self._waiters:
            if len(self.seen.requests) >= count:
                arrived.set()
        behaviour = self.script(incoming) if self.script else self.behaviour
        self.seen.in_flight += 1
        self.seen.max_in_flight = max(self.seen.max_in_flight, self.seen.in_flight)
        done = _Done(self.seen)
        try:
            if self.max_streams is None:
                return await self._respond(request, incoming, behaviour, done)
            if self._streams is None:
                self._streams = asyncio.Semaphore(self.max_streams)
            if self.refuse_beyond and self._streams.locked():
                done.leave()
                return _error_json(f"more than {self.max_streams} streams at once", 429)
            # asyncio's semaphore wakes its waiters first come, first served.
            async with self._streams:
                return await self._respond(request, incoming, behaviour, done)
        finally:
            done.leave(finished=False)

    async def _respond(
        self, request: web.Request, incoming: Incoming, b: Behaviour, done: _Done
    ) -> web.StreamResponse:
        body = incoming.body
        if b.fault == "http_500":
            done.leave()
            return web.json_response({"error": {"message": "injected failure"}}, status=500)
        if b.fault == "http_400":
            done.leave()
            return _error_json("injected bad request", 400)
        if b.fault == "http_401_echo":
            done.leave()
            return web.Response(text=_echo_401_body(incoming.headers), status=401)
        refused = sorted(name for name in b.refused_fields if name in body)
        if refused:
            done.leave()
            detail = "Unexpected fields in the request: {" + ", ".join(map(repr, refused)) + "}"
            return web.json_response({"detail": detail}, status=422)
        if b.fault == "plain_text":
            done.leave()
            return web.Response(text="hello from a plain web server\n", content_type="text/plain")
        if body.get("model") not in self.models:
            done.leave()
            return _error_json(f"The model `{body.get('model')}` does not exist.", 404)
        tokens = wire.max_tokens(body, incoming.endpoint)
        if not isinstance(tokens, int) or tokens < 1:
            done.leave()
            return _error_json("max_tokens must be at least 1", 400)
        if not body.get("stream"):
            await asyncio.sleep(b.ttft_s + b.gap_s * (tokens - 1))
            done.leave()
            return web.json_response(self._whole(incoming, b, tokens))
        return await self._stream(request, incoming, b, tokens, done)

    def _whole(self, incoming: Incoming, b: Behaviour, tokens: int) -> dict[str, Any]:
        thinking = min(b.reasoning_tokens, tokens)
        answer = wire.whole(
            incoming.endpoint, " tok" * (tokens - thinking), " hmm" * thinking, b.reasoning_field
        )
        if b.send_usage:
            answer["usage"] = self._usage(incoming, b, tokens)
        return answer

    @staticmethod
    def _usage(incoming: Incoming, b: Behaviour, tokens: int) -> dict[str, Any]:
        """The usage of a request that produced `tokens` output tokens so far."""
        reasoning = min(b.reasoning_tokens, tokens) if b.reasoning_usage else None
        return wire.usage(incoming.body, incoming.endpoint, tokens, reasoning)

    async def _stream(
        self, request: web.Request, incoming: Incoming, b: Behaviour, tokens: int, done: _Done
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        # A client that went away (it gave up, or was stopped) leaves nothing to answer.
        with contextlib.suppress(ConnectionResetError):
            await self._events(request, response, incoming, b, tokens, done)
        return response

    async def _events(
        self,
        request: web.Request,
        response: web.StreamResponse,
        incoming: Incoming,
        b: Behaviour,
        tokens: int,
        done: _Done,
    ) -> None:
        end = b"\r\n\r\n" if b.crlf else b"\n\n"
        endpoint = incoming.endpoint
        numbers = iter(range(1 << 30))

        async def event(obj: Any) -> None:
            await response.write(wire.sse(obj, next(numbers), end))

        if endpoint == wire.RESPONSES:
            await event(
                {
                    "type": "response.created",
                    "response": wire.response_object("in_progress", "", ""),
                }
            )
        if endpoint == "chat" and b.role_chunk:
            await event({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
        if b.empty_first_chunk:
            await event(wire.chunk(endpoint, ""))
        if b.fault == "stall_first":
            await asyncio.sleep(b.stall_s)
        await asyncio.sleep(b.ttft_s)
        sent = chunks = 0
        while sent < tokens:
            if chunks and b.gap_s:
                await asyncio.sleep(b.gap_s)
            if chunks == b.fault_after_chunks and b.fault is not None:
                if b.fault == "reset":
                    assert request.transport is not None
                    request.transport.abort()
                    return
                if b.fault == "malformed":
                    await event(b"{not json")
                elif b.fault == "error_event" and endpoint == wire.RESPONSES:
                    await event({"type": "error", "message": "injected engine failure"})
                elif b.fault == "error_event":
                    await event({"error": {"message": "injected engine failure", "code": 500}})
                elif b.fault == "stall_mid":
                    await asyncio.sleep(b.stall_s)
            thinking = sent < b.reasoning_tokens
            limit = b.reasoning_tokens if thinking else tokens
            count = min(b.tokens_per_chunk, limit - sent, tokens - sent)
            sent += count
            chunks += 1
            field = b.reasoning_field if thinking and endpoint != "completions" else None
            obj = wire.chunk(
                endpoint, (" hmm" if thinking else " tok") * count, reasoning_field=field
            )
            if b.chunk_usage:
                obj["usage"] = self._usage(incoming, b, sent)
            await event(obj)
        await self._end_events(incoming, b, tokens, event)
        # Leave before the end is written: the client cannot see the end (and free a
        # concurrency slot) before the server stops counting this request as in flight.
        done.leave()
        await response.write_eof()

    async def _end_events(
        self, incoming: Incoming, b: Behaviour, tokens: int, event: Callable[[Any], Any]
    ) -> None:
        """Usage (when asked for and sent) and the end of the stream, in the endpoint's API."""
        usage = self._usage(incoming, b, tokens) if b.send_usage else None
        if incoming.endpoint == wire.RESPONSES:
            final = wire.response_object("completed", "", "") | {"usage": usage}
            await event({"type": "response.completed", "response": final})
            return
        if usage is not None and (incoming.body.get("stream_options") or {}).get("include_usage"):
            await event({"choices": [], "usage": usage})
        if b.send_done:
            await event(b"[DONE]")


def _echo_401_body(headers: Mapping[str, str]) -> str:
    """A 401 body that echoes X-Api-Key, then Authorization with its key at ECHO_KEY_OFFSET."""
    head = f"invalid credentials; X-Api-Key: {headers.get('X-Api-Key')}; "
    authorization = f"Authorization: {headers.get('Authorization')}"
    # Everything here is ASCII: characters are bytes.
    filler = "x" * (ECHO_KEY_OFFSET - len(head) - len("Authorization: Bearer "))
    return f"{head}{filler}{authorization} (rejected)"


class _Done:
    """Takes one request out of the in-flight count, once."""

    def __init__(self, seen: Seen) -> None:
        self._seen = seen
        self._left = False

    def leave(self, *, finished: bool = True) -> None:
        if self._left:
            return
        self._left = True
        self._seen.in_flight -= 1
        if finished:
            self._seen.finished += 1


@contextlib.asynccontextmanager
async def serve(fake: FakeOpenAI) -> AsyncIterator[str]:
    """Run `fake` on a free loopback port; yields its base URL (with /v1)."""
    runner = web.AppRunner(fake.app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sockets = getattr(site._server, "sockets", None)
    assert sockets
    port = sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


class ServerThread:
    """`fake` served from a background thread with its own event loop.

    `with ServerThread(fake) as url:` gives the base URL (with /v1). Read `fake.seen` only after
    the client is done (or for plain counts, which are safe to poll).
    """

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake
        self._ready = threading.Event()
        self._url: str | None = None
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="fake-openai", daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("fake server did not start within 30 s")
        if self._error is not None or self._url is None:
            raise RuntimeError("fake server failed to start") from self._error
        return self._url

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self.fake) as url:
            self._url = url
            self._ready.set()
            await self._stop.wait()


def closed_port_url() -> str:
    """A loopback base URL on which nothing listens (a port just released by the OS)."""
    return f"http://127.0.0.1:{free_port()}/v1"
