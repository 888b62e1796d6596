"""The service's OpenAPI document (loadgen/service/openapi.py): valid, the sweep body the config
model's own schema, and in step with the routes api.py registers."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate
from prometheus_client import CollectorRegistry

from loadgen.cli.main import main
from loadgen.config.files import read_document
from loadgen.config.service import ServiceConfig
from loadgen.export.prometheus import PrometheusExporter
from loadgen.service import api
from loadgen.service.openapi import SWEEP_EXAMPLE, SWEEP_ID, document
from loadgen.service.security import AllowList, Tokens, valid_sweep_id
from loadgen.service.store import Store, new_sweep_id
from loadgen.service.sweeps import Limits, Sweeps, checked_config
from loadgen.service.workers import Senders

SWEEP_FILES = sorted((Path(__file__).parents[3] / "docker" / "sweeps").glob("*.toml"))
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# The page's routes: a shell and its assets, no API.
PAGE_PATHS = re.compile(r"^/$|^/static(/|$)")


def make_app(tmp_path: Path) -> web.Application:
    """The service's application with one token, made as serve.py makes it (never started)."""
    settings = ServiceConfig(results_dir=tmp_path)
    tokens = Tokens.of(["a-token"])
    registry = CollectorRegistry()
    senders = Senders(settings, tokens, lambda text: None)
    limits = Limits(AllowList(()), (), None)
    exporter = PrometheusExporter(registry, "")
    sweeps = Sweeps(Store(tmp_path), limits, settings.queue_size, senders, exporter)
    return api.make_app(sweeps, tokens, settings, registry)


def body_validator() -> jsonschema.Draft202012Validator:
    """A validator of POST /v1/sweeps bodies, by the document's own schema."""
    body = document()["paths"]["/v1/sweeps"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"] | {
        "components": document()["components"]
    }
    return jsonschema.Draft202012Validator(schema)


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    """Every (method, path, operation) of the document."""
    return [
        (method.upper(), path, item[method])
        for path, item in document()["paths"].items()
        for method in METHODS
        if method in item
    ]


def resolved(node: dict[str, Any]) -> dict[str, Any]:
    """`node`, or what its `$ref` points at in the document."""
    ref = node.get("$ref")
    if ref is None:
        return node
    found: Any = document()
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    result: dict[str, Any] = found
    return result


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(document())
    assert document()["openapi"].startswith("3.1")


def test_the_sweep_body_is_the_schema_loadgen_config_schema_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["config", "schema"]) == 0
    printed = orjson.loads(capsys.readouterr().out)
    schemas = document()["components"]["schemas"]
    as_printed = orjson.loads(
        orjson.dumps(schemas["RunConfig"]).replace(b"#/components/schemas/", b"#/$defs/")
    )
    assert as_printed == {key: value for key, value in printed.items() if key != "$defs"}
    for name, section in printed["$defs"].items():
        rewritten = orjson.dumps(schemas[name]).replace(b"#/components/schemas/", b"#/$defs/")
        assert orjson.loads(rewritten) == section


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda path: path.name)
def test_the_sweep_body_schema_accepts_the_repos_sweep_files(path: Path) -> None:
    body_validator().validate(read_document(path))


def test_the_body_example_is_a_sweep_the_service_accepts_for_an_allowed_target() -> None:
    body_validator().validate(SWEEP_EXAMPLE)
    config = checked_config(SWEEP_EXAMPLE, Limits(AllowList(("http://vllm:8000",)), (), None))
    assert config.load.rates_rps == (1, 2, 4)


def test_there_are_sweep_files_to_check() -> None:
    assert len(SWEEP_FILES) >= 2


@pytest.mark.parametrize(
    "body",
    [
        {"load": {"num_requests": "many"}},
        {"target": {"stream": "sometimes"}},
        {"load": {"rates_rps": [-1]}},
        {"lode": {}},
        ["not", "a", "table"],
    ],
    ids=["text-for-int", "text-for-bool", "negative-rate", "unknown-section", "list"],
)
def test_the_sweep_body_schema_refuses_what_the_model_refuses(body: Any) -> None:
    with pytest.raises(jsonschema.ValidationError):
        body_validator().validate(body)


def test_every_route_is_described_and_every_description_is_routed(tmp_path: Path) -> None:
    routed = set()
    for route in make_app(tmp_path).router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method == "HEAD" or PAGE_PATHS.match(path):
            continue  # aiohttp answers HEAD for each GET itself; the page is no API
        if path == "/v1/sweeps/{id}/{name}":
            routed |= {(route.method, f"/v1/sweeps/{{id}}/{name}") for name in api.FILES}
        else:
            routed.add((route.method, path))
    assert {(method, path) for method, path, _ in operations()} == routed


def test_open_operations_are_those_the_middleware_lets_in() -> None:
    open_paths = {path for _, path, operation in operations() if operation.get("security") == []}
    assert open_paths == {path for path in api.OPEN_PATHS if not PAGE_PATHS.match(path)}
    for _, path, operation in operations():
        assert path in open_paths or "401" in operation["responses"], path


def test_every_problem_is_a_problem_document() -> None:
    for method, path, operation in operations():
        for status, response in operation["responses"].items():
            content = resolved(response).get("content", {})
            if int(status) >= 400:
                assert list(content) == [api.PROBLEM_TYPE], (method, path, status)
                assert content[api.PROBLEM_TYPE]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }


def test_the_page_limit_and_file_types_are_those_of_the_api() -> None:
    limit = document()["components"]["parameters"]["Limit"]["schema"]
    assert limit["maximum"] == api.PAGE_LIMIT
    for name, media_type in api.FILES.items():
        answer = document()["paths"][f"/v1/sweeps/{{id}}/{name}"]["get"]["responses"]["200"]
        assert list(answer["content"]) == [media_type]


@pytest.mark.parametrize(
    "text", ["20200101-000000-0123abcd", "2020-01-01", "../etc", "20200101-000000-0123ABCD"]
)
def test_the_sweep_id_pattern_agrees_with_the_service(text: str) -> None:
    assert (re.search(SWEEP_ID, text) is not None) == valid_sweep_id(text)
    made = new_sweep_id(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert re.search(SWEEP_ID, made) is not None


async def test_the_service_serves_the_document_without_a_token(tmp_path: Path) -> None:
    async with TestClient(TestServer(make_app(tmp_path))) as client:
        response = await client.get("/v1/openapi.json")
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.json() == orjson.loads(orjson.dumps(document()))
        refused = await client.get("/v1/service")
        assert refused.status == 401
