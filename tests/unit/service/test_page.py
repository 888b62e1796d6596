"""The page's routes (loadgen/service/page.py) behind the API's own middlewares, over loopback."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from loadgen.config.service import ServiceConfig
from loadgen.service.api import (
    SETTINGS_KEY,
    TOKENS_KEY,
    authenticated,
    problems,
    service_info,
)
from loadgen.service.page import STATIC, add_page_routes
from loadgen.service.security import SESSION_COOKIE, Tokens
from loadgen.service.sweeps import BUILT_IN_DATASETS
from loadgen.workloads.scenarios import SCENARIOS

TOKEN = "page-unit-token-0123"
PROBLEM = "application/problem+json"
MakeClient = Callable[[tuple[str, ...]], Coroutine[Any, Any, TestClient[Any, Any]]]


def page_app(tokens: tuple[str, ...]) -> web.Application:
    """The page's routes and GET /v1/service (a route that needs a token), with the API's
    middlewares: the sign-in is checked by the API's own authentication."""
    app = web.Application(middlewares=[problems, authenticated])
    app[TOKENS_KEY] = Tokens.of(tokens)
    app[SETTINGS_KEY] = ServiceConfig()
    app.router.add_get("/v1/service", service_info)
    add_page_routes(app)
    return app


@pytest.fixture
async def client() -> AsyncIterator[MakeClient]:
    """Makes clients of the page's app with the given tokens (none: an open service)."""
    clients: list[TestClient[Any, Any]] = []

    async def make(tokens: tuple[str, ...]) -> TestClient[Any, Any]:
        made = TestClient(TestServer(page_app(tokens)))
        await made.start_server()
        clients.append(made)
        return made

    yield make
    for made in clients:
        await made.close()


def set_cookie(response: Any) -> str:
    """The response's one Set-Cookie header."""
    headers: list[str] = response.headers.getall("Set-Cookie", [])
    assert len(headers) == 1, headers
    return headers[0]


async def test_the_shell_lists_every_workload_the_service_accepts(client: MakeClient) -> None:
    app = await client((TOKEN,))
    response = await app.get("/")  # no token: the shell holds no data
    assert response.status == 200
    assert response.content_type == "text/html"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    page = await response.text()
    options = re.findall(r'<option value="([^"]+)">', page)
    assert options[0] == "synthetic"
    assert set(options) == set(BUILT_IN_DATASETS) >= set(SCENARIOS)
    assert '<script src="/static/page.js"' in page


@pytest.mark.parametrize(
    ("name", "media_type"), [("page.js", "text/javascript"), ("page.css", "text/css")]
)
async def test_static_files_have_their_media_types(
    client: MakeClient, name: str, media_type: str
) -> None:
    app = await client((TOKEN,))
    response = await app.get(f"/static/{name}")
    assert response.status == 200
    assert response.content_type == media_type
    assert await response.read() == (STATIC / name).read_bytes()


@pytest.mark.parametrize("name", ["index.html", "missing.js", "..%2Fpage.py", "PAGE.JS"])
async def test_nothing_else_is_served_as_static(client: MakeClient, name: str) -> None:
    app = await client((TOKEN,))
    response = await app.get(f"/static/{name}")
    assert response.status == 404
    assert response.content_type == PROBLEM


async def test_the_right_token_sets_a_strict_httponly_cookie(client: MakeClient) -> None:
    app = await client((TOKEN, "another-token"))
    assert (await app.get("/v1/service")).status == 401
    assert await (await app.get("/v1/session")).json() == {
        "login_required": True,
        "signed_in": False,
    }
    response = await app.post("/v1/session", json={"token": TOKEN})
    assert response.status == 204
    cookie = set_cookie(response)
    assert cookie.startswith(f"{SESSION_COOKIE}={TOKEN};")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/"):
        assert attribute in cookie
    # The client keeps the cookie: the API lets it in now.
    assert (await app.get("/v1/service")).status == 200
    assert (await (await app.get("/v1/session")).json())["signed_in"] is True


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"token": "wrong"}, 401),
        ({"token": ""}, 400),
        ({"token": 7}, 400),
        (["token"], 400),
        (b"not json", 400),
    ],
)
async def test_a_wrong_sign_in_is_a_problem_and_sets_nothing(
    client: MakeClient, body: Any, status: int
) -> None:
    app = await client((TOKEN,))
    sent = {"data": body} if isinstance(body, bytes) else {"json": body}
    response = await app.post("/v1/session", **sent)
    assert response.status == status
    assert response.content_type == PROBLEM
    assert "Set-Cookie" not in response.headers
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await app.get("/v1/service")).status == 401


async def test_sign_out_forgets_the_cookie(client: MakeClient) -> None:
    app = await client((TOKEN,))
    assert (await app.post("/v1/session", json={"token": TOKEN})).status == 204
    response = await app.delete("/v1/session")
    assert response.status == 204
    assert set_cookie(response).startswith(f'{SESSION_COOKIE}="";')
    assert (await app.get("/v1/service")).status == 401


async def test_an_open_service_needs_no_sign_in(client: MakeClient) -> None:
    app = await client(())
    assert await (await app.get("/v1/session")).json() == {
        "login_required": False,
        "signed_in": True,
    }
    response = await app.post("/v1/session", json={"token": "anything"})
    assert response.status == 204
    assert "Set-Cookie" not in response.headers
