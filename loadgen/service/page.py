"""The service's web page: its shell at /, its static files, and the login that sets the cookie.

The page holds no data of its own: its script asks the API, which the session cookie
authenticates (HttpOnly, so the script never sees the token; SameSite=Strict, so no other site
can send a request that carries it).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiohttp import web

from loadgen.service.security import SESSION_COOKIE, Tokens
from loadgen.service.sweeps import BUILT_IN_DATASETS

STATIC = Path(__file__).parent / "static"
# The only files served under /static/, and their media types.
STATIC_FILES = {
    "page.js": "text/javascript; charset=utf-8",
    "page.css": "text/css; charset=utf-8",
}
WORKLOADS_MARK = "<!-- workloads -->"
# The page runs its own script and style only: injected markup could load nothing, run nothing.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_MAX_TOKEN_CHARS = 4096


def workload_options() -> str:
    """The workload select's options: synthetic first, then the scenarios by name."""
    names = sorted(BUILT_IN_DATASETS, key=lambda name: (name != "synthetic", name))
    return "".join(
        f'<option value="{html.escape(name)}">{html.escape(name)}</option>' for name in names
    )


def render_index(template: str) -> str:
    """index.html with the workloads the service accepts filled in."""
    return template.replace(WORKLOADS_MARK, workload_options())


def _tokens(request: web.Request) -> Tokens:
    # Imported here: api.py imports this module while it loads.
    from loadgen.service.api import TOKENS_KEY

    return request.app[TOKENS_KEY]


def signed_in(request: web.Request, tokens: Tokens) -> bool:
    """Whether `request` may call the API: no tokens, a bearer token, or the session cookie."""
    return (
        not tokens
        or tokens.admits(request.headers.get("Authorization"))
        or tokens.admits_token(request.cookies.get(SESSION_COOKIE))
    )


@dataclass(frozen=True, slots=True)
class PageFiles:
    """The page's files, read once when the app is made (no disk reads in the event loop)."""

    index: str
    static: Mapping[str, bytes]

    @classmethod
    def read(cls, folder: Path = STATIC) -> PageFiles:
        """From `folder`: index.html (workloads filled in) and the static files."""
        index = render_index((folder / "index.html").read_text(encoding="utf-8"))
        return cls(index, {name: (folder / name).read_bytes() for name in STATIC_FILES})


_FILES_KEY = web.AppKey("page_files", PageFiles)


async def index(request: web.Request) -> web.Response:
    """GET /: the page's shell (no data: its script asks the API)."""
    page = request.app[_FILES_KEY].index
    return web.Response(text=page, content_type="text/html", headers=PAGE_HEADERS)


async def static_file(request: web.Request) -> web.Response:
    """GET /static/{name}: the page's script and style sheet, nothing else."""
    name = request.match_info["name"]
    body = request.app[_FILES_KEY].static.get(name)
    if body is None:
        raise web.HTTPNotFound(text=f"no static file {name!r}")
    headers = {**PAGE_HEADERS, "Content-Type": STATIC_FILES[name]}
    return web.Response(body=body, headers=headers)


async def session_state(request: web.Request) -> web.Response:
    """GET /v1/session: whether the service needs a login, and whether this browser has one."""
    tokens = _tokens(request)
    state = {"login_required": bool(tokens), "signed_in": signed_in(request, tokens)}
    return web.Response(body=orjson.dumps(state), content_type="application/json")


async def sign_in(request: web.Request) -> web.Response:
    """POST /v1/session {"token": ...}: 204 with the session cookie; 401 for a wrong token."""
    token = await _posted_token(request)
    tokens = _tokens(request)
    response = web.Response(status=204)
    if not tokens:
        return response  # nothing to sign in to: every request is let in
    if not tokens.admits_token(token):
        raise web.HTTPUnauthorized(
            text="that token is not one of the service's API tokens",
            headers={"WWW-Authenticate": 'Bearer realm="loadgen"'},
        )
    response.set_cookie(
        SESSION_COOKIE,
        token.strip(),
        httponly=True,
        samesite="Strict",
        path="/",
        secure=request.secure or None,
    )
    return response


async def _posted_token(request: web.Request) -> str:
    """The token of a sign-in body (400 for anything but {"token": "..."})."""
    try:
        document = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise web.HTTPBadRequest(text='the body is not JSON: send {"token": "..."}') from None
    token = document.get("token") if isinstance(document, dict) else None
    if not isinstance(token, str) or not token.strip() or len(token) > _MAX_TOKEN_CHARS:
        raise web.HTTPBadRequest(text='send {"token": "..."} with the API token as text')
    return token


async def sign_out(request: web.Request) -> web.Response:
    """DELETE /v1/session: 204, and the browser forgets the session cookie."""
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def add_page_routes(app: web.Application) -> None:
    """Add the page's routes to `app`: /, /static/{name}, and /v1/session."""
    app[_FILES_KEY] = PageFiles.read()
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_get("/v1/session", session_state)
    app.router.add_post("/v1/session", sign_in)
    app.router.add_delete("/v1/session", sign_out)
