"""The API's OpenAPI 3.1 document: every route as api.py answers it, built once.

The sweep body's schema is the config model's own JSON Schema (what `loadgen config schema`
prints, its `$defs` moved to `components/schemas`), so the API, the CLI and sweep files cannot
disagree. tests/unit/service/test_openapi.py fails when the routes and this document part ways.
"""

from __future__ import annotations

import functools
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web

from loadgen.config import RunConfig
from loadgen.service.security import SESSION_COOKIE
from loadgen.version import __version__

JSON = "application/json"
SWEEP_ID = "^[0-9]{8}-[0-9]{6}-[0-9a-f]{8}$"
# What each problem status means, wherever an operation answers it.
_PROBLEMS = {
    400: 'the body is not JSON (or, to log in, no {"token": "..."})',
    401: "no valid token: `Authorization: Bearer TOKEN`, or the page's session cookie",
    403: "a target or an API key variable name that the operator did not allow",
    404: "no such sweep, or no such file of it (yet)",
    409: "the sweep's status does not allow it",
    413: "the body is larger than the service's max_body_bytes",
    422: "invalid: `errors` names each problem",
    429: "the queue is full: retry later",
}
# A sweep file as a body: the paper's short-prompt scenario on a vLLM server, three rates.
SWEEP_EXAMPLE = {
    "target": {"base_url": "http://vllm:8000/v1", "model": "meta-llama/Llama-2-7b-chat-hf"},
    "load": {"rates_rps": [1, 2, 4], "num_requests": 600, "trim": 100},
    "workload": {"dataset": "s2s"},
}
_STATUSES = ["queued", "running", "cancelling", "succeeded", "failed", "cancelled"]
_FILE_CONTENTS = {
    "summary.json": "each finished step's summary, and the configuration",
    "summary.csv": "one row per finished step",
    "requests.jsonl": "one JSON line per request sent",
}
_TEXT = {"type": "string"}
_OBJECT = {"type": "object"}
_COUNT = {"type": "integer", "minimum": 0}


async def openapi_document(request: web.Request) -> web.Response:
    """GET /v1/openapi.json (no token)."""
    return web.Response(body=_document_bytes(), content_type=JSON)


@functools.cache
def _document_bytes() -> bytes:
    return orjson.dumps(document())


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the service (built once: do not change it)."""
    # Imported here: api.py imports this module for its route, and holds what is described.
    from loadgen.service import api

    paths = _service_paths() | _sweep_paths() | _file_paths(api.FILES)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "loadgen service",
            "version": __version__,
            "description": "Queue load sweeps against the servers an operator allows, watch "
            "them, fetch their results. Every error is an RFC 9457 problem document.",
        },
        "security": [{"bearer": []}, {"cookie": []}],
        "paths": paths,
        "components": {
            "schemas": {**body_schemas(), **_schemas()},
            "responses": {
                _name(status): _problem(api.PROBLEM_TYPE, status) for status in _PROBLEMS
            },
            "parameters": _parameters(api.PAGE_LIMIT),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
            },
        },
    }


def body_schemas() -> dict[str, Any]:
    """The config model's JSON Schema, as `loadgen config schema` prints it, as components:
    `RunConfig` (the sweep body) and the sections it refers to."""
    schema = RunConfig.model_json_schema(ref_template="#/components/schemas/{model}")
    sections = schema.pop("$defs", {})
    return {**sections, "RunConfig": schema}


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _name(status: int) -> str:
    """The name of a status's reusable response: its phrase in one word (`NotFound`)."""
    return "".join(word.capitalize() for word in HTTPStatus(status).phrase.split())


def _problem(media_type: str, status: int) -> dict[str, Any]:
    """The response of a problem `status`."""
    response: dict[str, Any] = {
        "description": _PROBLEMS[status],
        "content": {media_type: {"schema": _ref("schemas", "Problem")}},
    }
    if status == 401:
        response["headers"] = {"WWW-Authenticate": _header("the scheme to use", required=True)}
    elif status == 429:
        # api.py does not send it yet; a client that gets one should honour it.
        response["headers"] = {
            "Retry-After": _header("seconds to wait", required=True, integer=True)
        }
    return response


def _header(description: str, *, required: bool = False, integer: bool = False) -> dict[str, Any]:
    schema = _COUNT if integer else _TEXT
    return {"description": description, "required": required, "schema": schema}


def _answer(description: str, media_type: str = JSON, schema: Any = "") -> dict[str, Any]:
    """A success response with a body: `schema` a component's name or a schema."""
    shown = _ref("schemas", schema) if isinstance(schema, str) else schema
    return {"description": description, "content": {media_type: {"schema": shown}}}


def _operation(
    name: str,
    summary: str,
    answers: dict[str, dict[str, Any]],
    problems: tuple[int, ...] = (),
    *,
    secured: bool = True,
    **more: Any,
) -> dict[str, Any]:
    """An operation: its success `answers`, then its `problems` (and 401 when `secured`)."""
    statuses = sorted({*problems, 401} if secured else set(problems))
    responses = answers | {str(s): _ref("responses", _name(s)) for s in statuses}
    operation = {"operationId": name, "summary": summary, "responses": responses, **more}
    if not secured:
        operation["security"] = []
    return operation


def _body(schema: str, **example: Any) -> dict[str, Any]:
    """A required JSON body of the component `schema` (and an example, when given)."""
    content = {"schema": _ref("schemas", schema)} | ({"example": example} if example else {})
    return {"required": True, "content": {JSON: content}}


def _service_paths() -> dict[str, Any]:
    """The routes about the service itself, and the page's login."""
    metrics = _answer("the Prometheus text exposition", "text/plain", _TEXT)
    return {
        "/healthz": {"get": _operation(
            "healthz", "the service answers", {"200": _answer("ok", schema="Health")},
            secured=False,
        )},
        "/v1/openapi.json": {"get": _operation(
            "openapi", "this document", {"200": _answer("it", schema=_OBJECT)}, secured=False,
        )},
        "/v1/service": {"get": _operation(
            "getService", "what the operator allows", {"200": _answer("", schema="Service")},
        )},
        "/v1/workers": {"get": _operation(
            "listWorkers", "the workers that joined, lost ones included",
            {"200": _answer("", schema="Workers")},
        )},
        "/metrics": {"get": _operation("metrics", "the service's metrics", {"200": metrics})},
        "/v1/session": _session_item(),
    }  # fmt: skip


def _session_item() -> dict[str, Any]:
    """/v1/session: the web page's login, a session cookie that holds the token (all open)."""
    cookie = _header(f"{SESSION_COOKIE}=TOKEN; HttpOnly; SameSite=Strict (none when the "
                     "service has no tokens)")  # fmt: skip
    gone = _header(f"{SESSION_COOKIE} expired", required=True)
    return {
        "get": _operation(
            "getSession", "whether a login is needed, and whether this browser has one",
            {"200": _answer("", schema="Session")}, secured=False,
        ),
        "post": _operation(
            "login", "log in: the token in a session cookie",
            {"204": {"description": "logged in", "headers": {"Set-Cookie": cookie}}},
            (400, 401, 413), secured=False, requestBody=_body("Login"),
        ),
        "delete": _operation(
            "logout", "log out: the browser forgets the cookie",
            {"204": {"description": "logged out", "headers": {"Set-Cookie": gone}}},
            secured=False,
        ),
    }  # fmt: skip


def _sweeps_item() -> dict[str, Any]:
    """/v1/sweeps: submit one, list them."""
    accepted = _answer("queued (or, for a repeated Idempotency-Key, the first one's)",
                       schema="SweepRef")  # fmt: skip
    accepted["headers"] = {"Location": _header("the sweep's URL path", required=True)}
    return {
        "post": _operation(
            "submitSweep", "queue a sweep", {"202": accepted}, (400, 403, 413, 422, 429),
            parameters=[_ref("parameters", "IdempotencyKey")],
            requestBody=_body("RunConfig", **SWEEP_EXAMPLE),
        ),
        "get": _operation(
            "listSweeps", "the sweeps, newest first", {"200": _answer("", schema="SweepPage")},
            (422,), parameters=[_ref("parameters", "Limit"), _ref("parameters", "Offset")],
        ),
    }  # fmt: skip


def _sweep_paths() -> dict[str, Any]:
    """One sweep's routes: show, delete, cancel, report, events."""
    by_id = {"parameters": [_ref("parameters", "SweepId")]}
    events = _answer("server-sent events until the sweep ends (and `: ping` comments while it "
                     "is quiet)", "text/event-stream", "Event")  # fmt: skip
    return {
        "/v1/sweeps": _sweeps_item(),
        "/v1/sweeps/{id}": by_id | {
            "get": _operation(
                "getSweep", "a sweep: its state, progress and finished steps",
                {"200": _answer("", schema="Sweep")}, (404,),
            ),
            "delete": _operation(
                "deleteSweep", "forget a finished sweep and remove its files",
                {"204": {"description": "deleted"}}, (404, 409),
            ),
        },
        "/v1/sweeps/{id}/cancel": by_id | {"post": _operation(
            "cancelSweep", "cancel a queued sweep, or stop a running one (its steps stay)",
            {"202": _answer("cancelled, or cancelling", schema="SweepRef")}, (404, 409),
        )},
        "/v1/sweeps/{id}/report.html": by_id | {"get": _operation(
            "getSweepReport", "the report of its finished steps",
            {"200": _answer("a page", "text/html", _TEXT)}, (404,),
        )},
        "/v1/sweeps/{id}/events": by_id | {"get": _operation(
            "getSweepEvents", "its events, live", {"200": events}, (404,),
        )},
    }  # fmt: skip


def _file_paths(files: dict[str, str]) -> dict[str, Any]:
    """A path for each result file a sweep's folder holds (`files`: name -> media type)."""
    return {
        f"/v1/sweeps/{{id}}/{name}": {
            "parameters": [_ref("parameters", "SweepId")],
            "get": _operation(
                "getSweep" + "".join(part.capitalize() for part in name.split(".")),
                f"its {name}: {_FILE_CONTENTS[name]}",
                {"200": _answer(_FILE_CONTENTS[name], media_type, _file_schema(media_type))},
                (404,),
            ),
        }
        for name, media_type in files.items()
    }


def _file_schema(media_type: str) -> dict[str, Any]:
    return _OBJECT if media_type == JSON else _TEXT


def _parameters(page_limit: int) -> dict[str, Any]:
    retry = "the same key again: the first submission's sweep comes back, nothing is queued"
    return {
        "SweepId": {"name": "id", "in": "path", "required": True,
                    "schema": {"type": "string", "pattern": SWEEP_ID}},
        "Limit": {"name": "limit", "in": "query", "description": "sweeps on the page",
                  "schema": {"type": "integer", "minimum": 1, "maximum": page_limit,
                             "default": 20}},
        "Offset": {"name": "offset", "in": "query", "description": "sweeps skipped",
                   "schema": {"type": "integer", "minimum": 0, "default": 0}},
        "IdempotencyKey": {"name": "Idempotency-Key", "in": "header", "description": retry,
                           "schema": _TEXT},
    }  # fmt: skip


def _object(properties: dict[str, Any], **optional: Any) -> dict[str, Any]:
    """An object schema: `properties` required, `optional` ones not, and no others (so an
    answer that grew a field fails the fuzz test until the field is described here)."""
    return {
        "type": "object",
        "required": list(properties),
        "properties": properties | optional,
        "additionalProperties": False,
    }


def _schemas() -> dict[str, Any]:
    """The schemas of the answers (those of the sweep body come from the config model)."""
    texts = {"type": "array", "items": _TEXT}
    maybe_text = {"type": ["string", "null"]}
    return _sweep_schemas(texts, maybe_text) | {
        "Problem": _object(
            {"type": _TEXT, "title": _TEXT, "status": {"type": "integer"}, "detail": _TEXT},
            errors=texts,
        ) | {"additionalProperties": True},  # RFC 9457 allows extension members
        "Health": _object({"status": {"const": "ok"}}),
        "Service": _object({
            "version": _TEXT, "allowed_targets": texts, "allowed_key_names": texts,
            "max_rate_rps": {"type": ["number", "null"], "description": "req/s"},
            "grafana_url": maybe_text, "queue_size": {"type": "integer", "minimum": 1},
        }),
        "Workers": _object({"workers": {"type": "array", "items": _object({
            "id": _TEXT, "host": _TEXT, "pid": {"type": "integer"},
            "lost": maybe_text | {"description": "why it was lost; null: still there"},
        })}}),
        "Login": _object({"token": _TEXT | {"minLength": 1, "maxLength": 4096}}),
        "Session": _object({"login_required": {"type": "boolean"},
                            "signed_in": {"type": "boolean"}}),
    }  # fmt: skip


def _sweep_schemas(texts: dict[str, Any], maybe_text: dict[str, Any]) -> dict[str, Any]:
    """The schemas of the answers about sweeps."""
    sweep_id = {"type": "string", "pattern": SWEEP_ID}
    status = _ref("schemas", "SweepStatus")
    created = {"type": "string", "format": "date-time"}
    maybe_number = {"type": ["number", "null"]}
    progress = _object(
        {
            "step": _COUNT,
            "rate_rps": maybe_number | {"description": "req/s; null: all at once"},
            "planned": _COUNT,
            "sent": _COUNT,
            "done": _COUNT,
            "errors": _COUNT,
            "lateness_p99_s": maybe_number
            | {"description": "the pacer's lateness p99 over the step's recent sends (s)"},
        }
    )
    config = _OBJECT | {"description": "the sweep file it runs (RunConfig; secrets by name)"}
    event_data = _TEXT | {
        "contentMediaType": JSON,
        "description": "JSON: {status} or {status, error} (status); {step} (step_start, step_end)",
    }
    return {
        "SweepStatus": {"type": "string", "enum": _STATUSES},
        "SweepRef": _object({"id": sweep_id, "status": status}),
        "SweepPage": _object({
            "sweeps": {"type": "array",
                       "items": _object({"id": sweep_id, "status": status, "created": created})},
            "total": _COUNT,
            "next": maybe_text | {"description": "the next page's URL path"},
        }),
        "Sweep": _object(
            {"id": sweep_id, "status": status, "created": created, "config": config,
             "error": maybe_text, "finished": maybe_text, "notes": texts,
             "steps": {"type": "array", "items": _OBJECT}},
            progress=progress | {"description": "the step running now (only while it runs)"},
        ),
        # OpenAPI 3.1: an event stream's `schema` describes each event.
        "Event": {"type": "object", "required": ["event", "data"], "properties": {
            "event": {"enum": ["status", "step_start", "step_end"]}, "data": event_data,
        }},
    }  # fmt: skip
