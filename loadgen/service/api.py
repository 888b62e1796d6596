"""The service's HTTP API under /v1 (aiohttp, in the master's own event loop).

Errors are `application/problem+json` (RFC 9457). Every route but /healthz needs a bearer token
when the service has tokens; without any it listens on loopback only (see serve.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from loadgen.report.html import render_report
from loadgen.report.results import ResultsError, load_results
from loadgen.service.security import Tokens, valid_sweep_id
from loadgen.service.store import SweepState
from loadgen.service.sweeps import SubmitError, Sweeps

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SWEEPS_KEY = web.AppKey("sweeps", Sweeps)
TOKENS_KEY = web.AppKey("tokens", Tokens)
PROBLEM_TYPE = "application/problem+json"
OPEN_PATHS = frozenset({"/healthz"})
PAGE_LIMIT = 100
# Result files a sweep's folder holds, and their media types.
FILES = {
    "summary.json": "application/json",
    "summary.csv": "text/csv",
    "requests.jsonl": "application/jsonl",
}
_EVENT_PING_S = 15.0


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
        return problem(exc.status, exc.title, exc.detail, errors=exc.errors)
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
    tokens = request.app[TOKENS_KEY]
    if (
        tokens
        and request.path not in OPEN_PATHS
        and not tokens.admits(request.headers.get("Authorization"))
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
    progress = sweeps.progress(state.id)
    if progress is not None:
        document["progress"] = {
            "step": progress.step,
            "rate_rps": progress.target_rate_rps,
            "planned": progress.num_planned,
            "sent": progress.sent,
            "done": progress.done,
            "errors": progress.errors,
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
    return render_report([load_results(folder)])


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


def make_app(sweeps: Sweeps, tokens: Tokens, max_body_bytes: int) -> web.Application:
    """The API as an aiohttp application."""
    app = web.Application(middlewares=[problems, authenticated], client_max_size=max_body_bytes)
    app[SWEEPS_KEY] = sweeps
    app[TOKENS_KEY] = tokens
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/v1/sweeps", submit)
    app.router.add_get("/v1/sweeps", list_sweeps)
    app.router.add_get("/v1/sweeps/{id}", get_sweep)
    app.router.add_post("/v1/sweeps/{id}/cancel", cancel_sweep)
    app.router.add_delete("/v1/sweeps/{id}", delete_sweep)
    app.router.add_get("/v1/sweeps/{id}/report.html", sweep_report)
    app.router.add_get("/v1/sweeps/{id}/events", sweep_events)
    app.router.add_get("/v1/sweeps/{id}/{name}", sweep_file)
    return app
