"""The simulator as an OpenAI-compatible aiohttp server (vLLM's or DeepSpeed-MII's behaviour).

Routes: `POST /v1/completions`, `POST /v1/chat/completions` (streamed per token as engine steps
finish, or whole), `GET /v1/models`, `GET /health`, and for the vLLM flavor `POST /v1/responses`
(the Responses API; DeepSpeed-MII has none) and `GET /metrics` with vLLM's metric names.
`GET /sim/stats` tells how well the engine loop keeps real time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from loadgen.sim.metrics import VllmMetrics
from loadgen.sim.realtime import EngineLoop, Job, Sink
from loadgen.sim.requests import (
    BadRequest,
    Endpoint,
    Flavor,
    ParsedRequest,
    parse_request,
    parse_responses_request,
)
from loadgen.sim.responses import DONE, ChunkEncoder, error_body, whole_response
from loadgen.sim.responses_api import (
    ResponseFacts,
    ResponseOutcome,
    ResponsesEncoder,
)
from loadgen.sim.responses_api import (
    whole_response as whole_responses_api,
)
from loadgen.sim.settings import SimSetup
from loadgen.sim.virtual import OutputPolicy


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """How the server presents itself: API flavor, model id, speed, EOS draw (s, tokens)."""

    flavor: Flavor
    served_model: str
    time_scale: float
    eos_mean_tokens: float
    seed: int


class TokenEncoder(Protocol):
    """What writes a stream's token events: chat and completions chunks, or Responses events."""

    def tokens(
        self,
        rid: int,
        start: int,
        stop: int,
        finish_reason: str | None,
        reasoning: int | None = None,
    ) -> bytes:
        """Events for output tokens `start .. stop - 1` of request `rid`."""
        ...


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


class SimServer:
    """One simulated engine behind the OpenAI HTTP API."""

    def __init__(self, setup: SimSetup, options: ServeOptions) -> None:
        self.setup = setup
        self.options = options
        self.registry = CollectorRegistry()
        max_len = setup.model.max_model_len
        self._metrics = VllmMetrics(self.registry, options.served_model, max_model_len=max_len)
        self._engine = setup.build_engine()
        self._rng = np.random.default_rng(options.seed)
        # Reasoning lengths from a stream of their own: output lengths stay those without.
        self._thinking = self._rng.spawn(1)[0]
        self.loop: EngineLoop | None = None

    def app(self) -> web.Application:
        """The aiohttp application; its startup starts the engine loop, cleanup stops it."""
        app = web.Application()
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/sim/stats", self._stats)
        app.router.add_get("/health", self._health)
        if self.options.flavor == "vllm":
            app.router.add_post("/v1/responses", self._responses)
            app.router.add_get("/metrics", self._metrics_page)
        app.cleanup_ctx.append(self._engine_loop)
        return app

    async def _engine_loop(self, app: web.Application) -> AsyncIterator[None]:
        self.loop = EngineLoop(
            self._engine,
            time_scale=self.options.time_scale,
            metrics=self._metrics if self.options.flavor == "vllm" else None,
        )
        task = asyncio.create_task(self.loop.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response()

    async def _metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _models(self, request: web.Request) -> web.Response:
        name = self.options.served_model
        entry = {
            "id": name,
            "object": "model",
            "owned_by": "vllm" if self.options.flavor == "vllm" else "deepspeed-mii",
            "root": name,
            "max_model_len": self.setup.model.max_model_len,
        }
        return _json({"object": "list", "data": [entry]})

    async def _stats(self, request: web.Request) -> web.Response:
        if self.loop is None:
            return _json({"error": "engine loop not started"}, status=503)
        engine = self.loop.engine
        state = {
            "running": len(engine.running),
            "waiting": len(engine.waiting),
            "kv_usage": engine.kv_usage,
        }
        return _json(asdict(self.loop.stats()) | state)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "completions")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "chat")

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "responses")

    async def _generate(self, request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
        """Validate, queue in the engine, then stream or wait for the whole answer."""
        if self.loop is None:
            return _json(error_body("server is starting", 503), status=503)
        try:
            parsed = self._parse(await request.read(), endpoint)
            job = self._submit(self.loop, parsed)
        except BadRequest as exc:
            return _json(error_body(str(exc), exc.status), status=exc.status)
        try:
            if parsed.stream:
                return await self._stream(request, job, parsed)
            return await self._whole(request, job, parsed)
        finally:
            self.loop.abort(job)  # a no-op once the job finished

    def _parse(self, raw: bytes, endpoint: Endpoint) -> ParsedRequest:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise BadRequest("request body is not valid JSON") from None
        model = self.options.served_model
        if endpoint == "responses":
            return parse_responses_request(body, served_model=model)
        chat = endpoint == "chat"
        return parse_request(body, chat=chat, flavor=self.options.flavor, served_model=model)

    def _submit(self, loop: EngineLoop, parsed: ParsedRequest) -> Job:
        """Check the lengths against the model, draw the output length, queue the request.

        A reasoning model's reasoning tokens are drawn too; DeepSpeed-MII's API has no
        reasoning field, so there the model's whole output is its answer.
        """
        limit = self.setup.model.max_model_len
        max_tokens = parsed.max_tokens or max(limit - parsed.prompt_tokens, 1)
        refusal = self._engine.refusal(parsed.prompt_tokens, max_tokens)
        if refusal is not None:
            raise BadRequest(refusal)
        outputs = OutputPolicy(parsed.ignore_eos, parsed.min_tokens, self.options.eos_mean_tokens)
        length = outputs.length(max_tokens, self._rng)
        phase = self.setup.reasoning if self.options.flavor == "vllm" else None
        return loop.submit(
            parsed.prompt_tokens,
            length,
            max_tokens,
            prompt=parsed.prompt,
            role=None if parsed.endpoint == "completions" else "assistant",
            reasoning=None if phase is None else phase.draw(length, self._thinking),
        )

    def _encoder(self, parsed: ParsedRequest, job: Job) -> ChunkEncoder | ResponsesEncoder:
        """The stream's encoder: chat or completions chunks, or Responses API events."""
        options = self.options
        if parsed.endpoint == "responses":
            return ResponsesEncoder(self._facts(parsed, job))
        return ChunkEncoder(chat=parsed.chat, model=options.served_model, flavor=options.flavor)

    def _facts(self, parsed: ParsedRequest, job: Job) -> ResponseFacts:
        return ResponseFacts(
            self.options.served_model, job.max_tokens, parsed.temperature, parsed.instructions
        )

    def _opening(self, parsed: ParsedRequest, encoder: ChunkEncoder | ResponsesEncoder) -> bytes:
        """What a stream sends before its tokens: the chat role chunk, the response's start."""
        if isinstance(encoder, ResponsesEncoder):
            return encoder.opening()
        return encoder.role() if parsed.chat else b""

    def _closing(
        self, parsed: ParsedRequest, job: Job, encoder: ChunkEncoder | ResponsesEncoder
    ) -> bytes:
        """What a stream sends after its tokens: usage (if asked) and [DONE], or the response."""
        if isinstance(encoder, ResponsesEncoder):
            return encoder.closing(job.seq.rid, _outcome(parsed, job))
        if not parsed.include_usage:
            return DONE
        reasoning, cached = _reasoning_tokens(parsed, job), self._cached_tokens(job)
        usage = encoder.usage(parsed.prompt_tokens, job.written, reasoning=reasoning, cached=cached)
        return usage + DONE

    def _cached_tokens(self, job: Job) -> int | None:
        """The prompt tokens found in the prefix cache, for vLLM's usage details (not MII's).

        vLLM reports them with --enable-prompt-tokens-details; the simulator always does.
        """
        return job.seq.cache_hits if self.options.flavor == "vllm" else None

    async def _stream(
        self, request: web.Request, job: Job, parsed: ParsedRequest
    ) -> web.StreamResponse:
        """Write each step's tokens as SSE events, between the opening and the closing ones."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        direct = request.version >= (1, 1)
        if direct:
            response.enable_chunked_encoding()  # what aiohttp picks anyway; the sink relies on it
        await response.prepare(request)
        encoder = self._encoder(parsed, job)
        sink = _direct_sink(request, encoder) if direct else None
        try:
            opening = self._opening(parsed, encoder)
            if opening:
                await response.write(opening)
            while True:
                # aiohttp writes the first token (and the headers with it), then the sink
                # takes over until it hands back for flow control.
                if job.sink is None and job.written:
                    job.sink = sink
                await job.changed()
                if job.produced > job.written:
                    await response.write(_take(job, encoder))
                if job.finished and job.written == job.produced:
                    break
            await response.write(self._closing(parsed, job, encoder))
        except ConnectionError:
            pass  # the client went away; the caller aborts the job
        return response

    async def _whole(self, request: web.Request, job: Job, parsed: ParsedRequest) -> web.Response:
        """Wait for every token, then answer with the whole completion and usage."""

        def client_gone() -> bool:
            transport = request.transport
            return transport is None or transport.is_closing()

        def count_unless_gone(job: Job) -> bool:
            """Take the step's tokens silently; wake the task only if the client left."""
            if client_gone():
                return False
            job.written = job.produced
            return True

        job.sink = count_unless_gone
        while not job.finished:
            await job.changed()
            if client_gone():  # nothing will read an answer; the caller aborts the job
                return web.Response(status=499, text="client closed the request")
        if parsed.endpoint == "responses":
            outcome = _outcome(parsed, job)
            return _json(whole_responses_api(self._facts(parsed, job), job.seq.rid, outcome))
        body = whole_response(
            chat=parsed.chat,
            model=self.options.served_model,
            rid=job.seq.rid,
            tokens=(parsed.prompt_tokens, job.seq.generated),
            finish_reason=job.finish_reason,
            reasoning=job.reasoning,
            cached=self._cached_tokens(job),
        )
        return _json(body)


def _outcome(parsed: ParsedRequest, job: Job) -> ResponseOutcome:
    """How a Responses API request ended (tokens)."""
    return ResponseOutcome(
        input_tokens=parsed.prompt_tokens,
        output_tokens=job.seq.generated,
        cached_tokens=job.seq.cache_hits,
        reasoning=job.reasoning,
        finish_reason=job.finish_reason,
    )


def _reasoning_tokens(parsed: ParsedRequest, job: Job) -> int | None:
    """A chat's reasoning tokens for its usage (None: no reasoning phase, or not a chat)."""
    if not parsed.chat or job.reasoning is None:
        return None
    return min(job.reasoning, job.written)


def _take(job: Job, encoder: TokenEncoder) -> bytes:
    """The events of the job's unwritten tokens, marked written."""
    start, job.written = job.written, job.produced
    reason = job.finish_reason if job.last_token_out else None
    return encoder.tokens(job.seq.rid, start, job.written, reason, job.reasoning)


# Past this many unsent bytes a stream stops taking writes from the engine loop (bytes).
_SINK_BUFFER_LIMIT = 64 * 1024


def _direct_sink(request: web.Request, encoder: TokenEncoder) -> Sink:
    """A sink writing a job's new tokens as HTTP chunks straight to the socket.

    One socket write per stream per step, with no task switch: this is what lets one core
    stream tens of thousands of tokens per second. aiohttp has sent the headers by then and
    frames the rest (usage, [DONE], the last chunk) itself.
    """

    def write(job: Job) -> bool:
        transport = request.transport
        if (
            transport is None
            or transport.is_closing()
            or transport.get_write_buffer_size() > _SINK_BUFFER_LIMIT
        ):
            job.sink = None  # the stream's task takes over, with flow control
            return False
        data = _take(job, encoder)
        transport.write(b"%x\r\n%b\r\n" % (len(data), data))
        return True

    return write


async def start_server(server: SimServer, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve `server` on host:port (0 picks a free port); returns the runner and the port."""
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, int(runner.addresses[0][1])
