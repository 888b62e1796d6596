"""The service's HTTP API under /v1 (aiohttp, in the master's own event loop).

Errors are `application/problem+json` (RFC 9457). Every route but the open ones (OPEN_PATHS: the
health check, the OpenAPI document, the page's shell and its login) needs a bearer token or the
page's session cookie when the service has tokens; without any it listens on loopback only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from loadgen.config.service import ServiceConfig
from loadgen.report.html import render_report
from loadgen.report.results import ResultsError, load_results
from loadgen.service.openapi import openapi_document
from loadgen.service.page import add_page_routes, signed_in
from loadgen.service.security import Tokens, valid_sweep_id
from loadgen.service.store import SweepState
from loadgen.service.sweeps import SubmitError, Sweeps
from loadgen.version import __version__

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SWEEPS_KEY = web.AppKey("sweeps", Sweeps)
TOKENS_KEY = web.AppKey("tokens", Tokens)
SETTINGS_KEY = web.AppKey("settings", ServiceConfig)
PROBLEM_TYPE = "application/problem+json"
# Open without a token: the health check, the API's description, the page's shell (it holds no
# data: it asks the API, with the session cookie) and the login that sets that cookie.
OPEN_PATHS = frozenset({"/healthz", "/v1/openapi.json", "/", "/v1/session"})
OPEN_PREFIXES = ("/static/",)
PAGE_LIMIT = 100
# Result files a sweep's folder holds, and their media types.
FILES = {
    "summary.json": "application/json",
    "summary.csv": "text/csv",
    "requests.jsonl": "application/jsonl",
}
_EVENT_PING_S = 15.0
# When a client told the queue is full may try again (s): about a short sweep's length.
RETRY_AFTER_S = 30


def problem(status: int, title: str, detail: str, **more: Any) -> web.Response:
    """An RFC 9457 problem response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **more}
    return web.Response(status=status, body=orjson.dumps(body), content_type=PROBLEM_TYPE)


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as a problem document; nothing about the service's insides leaks out."""
    try:
        return await handler(request)
    except SubmitError as exc:
        response = problem(exc.status, exc.title, exc.detail, errors=exc.errors)
        if exc.status == 429:
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = problem(exc.status, exc.reason, exc.text or exc.reason)
        for name in ("WWW-Authenticate", "Retry-After", "Allow"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response


@web.middleware
async def authenticated(request: web.Request, handler: Handler) -> web.StreamResponse:
    """401 without one of the service's bearer tokens (when it has any)."""
    if (
        request.path not in OPEN_PATHS
        and not request.path.startswith(OPEN_PREFIXES)
        and not signed_in(request, request.app[TOKENS_KEY])
    ):
        raise web.HTTPUnauthorized(
            text="a bearer token is needed: Authorization: Bearer TOKEN",
            headers={"WWW-Authenticate": 'Bearer realm="loadgen"'},
        )
    return await handler(request)


def _sweep(request: web.Request) -> SweepState:
    """The sweep the path names (404 for an unknown id, or one that is no id at all)."""
    sweep_id = request.match_info["id"]
    state = request.app[SWEEPS_KEY].get(sweep_id) if valid_sweep_id(sweep_id) else None
    if state is None:
        raise web.HTTPNotFound(text=f"no sweep {sweep_id!r}")
    return state


def sweep_document(sweeps: Sweeps, state: SweepState) -> dict[str, Any]:
    """A sweep as GET shows it: its state, its live progress, its finished steps."""
    document = asdict(state)
    document.pop("idempotency_key")
    running = sweeps.progress(state.id)
    if running is not None:
        progress, lateness_p99_s = running
        document["progress"] = {
            "step": progress.step,
            "rate_rps": progress.target_rate_rps,
            "planned": progress.num_planned,
            "sent": progress.sent,
            "done": progress.done,
            "errors": progress.errors,
            "lateness_p99_s": lateness_p99_s,
        }
    summary = sweeps.store.folder(state.id) / "summary.json"
    document["steps"] = orjson.loads(summary.read_bytes())["steps"] if summary.exists() else []
    return document


def _json(data: Any, status: int = 200, **headers: str) -> web.Response:
    body = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


async def submit(request: web.Request) -> web.Response:
    """POST /v1/sweeps: queue a sweep file (JSON); 202 with its id and Location."""
    try:
        document = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise SubmitError(400, "body is not JSON", str(exc)) from None
    state, _ = request.app[SWEEPS_KEY].submit(document, request.headers.get("Idempotency-Key"))
    location = f"/v1/sweeps/{state.id}"
    return _json({"id": state.id, "status": state.status}, 202, Location=location)


async def list_sweeps(request: web.Request) -> web.Response:
    """GET /v1/sweeps?limit=N&offset=M: the newest first."""
    try:
        limit = int(request.query.get("limit", "20"))
        offset = int(request.query.get("offset", "0"))
    except ValueError:
        raise SubmitError(422, "invalid paging", "limit and offset are whole numbers") from None
    if not (1 <= limit <= PAGE_LIMIT and offset >= 0):
        raise SubmitError(422, "invalid paging", f"limit in 1..{PAGE_LIMIT}, offset >= 0")
    everything = request.app[SWEEPS_KEY].newest_first()
    page = [
        {"id": state.id, "status": state.status, "created": state.created}
        for state in everything[offset : offset + limit]
    ]
    more = offset + limit < len(everything)
    following = f"/v1/sweeps?limit={limit}&offset={offset + limit}" if more else None
    return _json({"sweeps": page, "total": len(everything), "next": following})


async def get_sweep(request: web.Request) -> web.Response:
    """GET /v1/sweeps/{id}."""
    return _json(sweep_document(request.app[SWEEPS_KEY], _sweep(request)))


async def cancel_sweep(request: web.Request) -> web.Response:
    """POST /v1/sweeps/{id}/cancel: 202; a finished sweep is 409."""
    state = _sweep(request)
    if state.done:
        raise web.HTTPConflict(text=f"sweep {state.id} is {state.status} already")
    request.app[SWEEPS_KEY].cancel(state)
    return _json({"id": state.id, "status": state.status}, 202)


async def delete_sweep(request: web.Request) -> web.Response:
    """DELETE /v1/sweeps/{id}: only a finished sweep (else 409)."""
    state = _sweep(request)
    if not state.done:
        raise web.HTTPConflict(text=f"sweep {state.id} is {state.status}: cancel it first")
    request.app[SWEEPS_KEY].delete(state)
    return web.Response(status=204)


async def sweep_file(request: web.Request) -> web.StreamResponse:
    """GET /v1/sweeps/{id}/{summary.json|summary.csv|requests.jsonl}."""
    state, name = _sweep(request), request.match_info["name"]
    path = request.app[SWEEPS_KEY].store.folder(state.id) / name
    if name not in FILES or not path.exists():
        raise web.HTTPNotFound(text=f"sweep {state.id} has no {name} (yet)")
    return web.FileResponse(path, headers={"Content-Type": FILES[name]})


async def sweep_report(request: web.Request) -> web.Response:
    """GET /v1/sweeps/{id}/report.html: the report of its finished steps."""
    state = _sweep(request)
    folder = request.app[SWEEPS_KEY].store.folder(state.id)
    try:
        page = await asyncio.to_thread(_report, folder)
    except ResultsError:
        raise web.HTTPNotFound(text=f"sweep {state.id} has no finished step yet") from None
    return web.Response(text=page, content_type="text/html")


def _report(folder: Path) -> str:
    # The sweep's id, not where the service keeps it on its disk.
    return render_report([replace(load_results(folder), path=Path(folder.name))])


async def sweep_events(request: web.Request) -> web.StreamResponse:
    """GET /v1/sweeps/{id}/events: server-sent events of status, step starts and step ends."""
    state, sweeps = _sweep(request), request.app[SWEEPS_KEY]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})  # fmt: skip
    await response.prepare(request)
    await _event(response, "status", {"status": state.status, "error": state.error})
    with sweeps.subscribed(state.id) as events:
        while not state.done:
            try:
                name, data = await asyncio.wait_for(events.get(), _EVENT_PING_S)
            except TimeoutError:
                await response.write(b": ping\n\n")
                continue
            await _event(response, name, data)
    return response


async def _event(response: web.StreamResponse, name: str, data: dict[str, Any]) -> None:
    await response.write(b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz (no token): the service answers."""
    return _json({"status": "ok"})


async def service_info(request: web.Request) -> web.Response:
    """GET /v1/service: what the operator allows, for the page's form and for clients."""
    settings = request.app[SETTINGS_KEY]
    return _json(
        {
            "version": __version__,
            "allowed_targets": list(settings.allowed_targets),
            "allowed_key_names": list(settings.allowed_key_names),
            "max_rate_rps": settings.max_rate_rps,
            "grafana_url": settings.grafana_url,
            "queue_size": settings.queue_size,
        }
    )


async def list_workers(request: web.Request) -> web.Response:
    """GET /v1/workers: the workers that joined, and why each lost one was lost."""
    return _json({"workers": request.app[SWEEPS_KEY].senders.workers()})


def make_app(
    sweeps: Sweeps, tokens: Tokens, settings: ServiceConfig, registry: CollectorRegistry
) -> web.Application:
    """The API and the page as an aiohttp application."""
    app = web.Application(
        middlewares=[problems, authenticated], client_max_size=settings.max_body_bytes
    )
    app[SWEEPS_KEY] = sweeps
    app[TOKENS_KEY] = tokens
    app[SETTINGS_KEY] = settings
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/openapi.json", openapi_document)
    app.router.add_get("/v1/service", service_info)
    app.router.add_get("/v1/workers", list_workers)
    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    app.router.add_post("/v1/sweeps", submit)
    app.router.add_get("/v1/sweeps", list_sweeps)
    app.router.add_get("/v1/sweeps/{id}", get_sweep)
    app.router.add_post("/v1/sweeps/{id}/cancel", cancel_sweep)
    app.router.add_delete("/v1/sweeps/{id}", delete_sweep)
    app.router.add_get("/v1/sweeps/{id}/report.html", sweep_report)
    app.router.add_get("/v1/sweeps/{id}/events", sweep_events)
    app.router.add_get("/v1/sweeps/{id}/{name}", sweep_file)
    add_page_routes(app)
    return app
