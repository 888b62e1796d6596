"""Tests for loadgen.config.types: each field type parses flag text and file values alike."""

from __future__ import annotations

import math
from typing import Annotated, Any

import pytest
from pydantic import Field, TypeAdapter

from loadgen.config.sources import ConfigError, data_source, env_source, resolve
from loadgen.config.types import (
    BaseUrl,
    Choice,
    Headers,
    HttpUrl,
    JsonObject,
    Opt,
    Rates,
    Section,
    Slos,
    merge_headers,
)

INF = math.inf


class Probe(Section):
    """A model holding one field of each type, so errors come with a source label."""

    rates: Rates = ()
    slos: Slos = Field(default_factory=dict)
    headers: Annotated[Headers, Opt(name="header")] = Field(default_factory=dict)
    body: JsonObject = Field(default_factory=dict)
    url: BaseUrl | None = None
    gateway: HttpUrl | None = None
    color: Annotated[str, Choice(("red", "blue"), "color")] = "red"


def from_env(**variables: str) -> Probe:
    """The Probe that LOADGEN_<NAME>=value variables make."""
    environ = {f"LOADGEN_{name.upper()}": value for name, value in variables.items()}
    return resolve([env_source(environ, Probe)], Probe).config


def from_file(**values: Any) -> Probe:
    """The Probe that a file holding `values` makes."""
    return resolve([data_source(values, "probe.toml", Probe)], Probe).config


def env_error(name: str, value: str) -> list[str]:
    """The lines of the ConfigError that LOADGEN_<NAME>=value must raise."""
    with pytest.raises(ConfigError) as caught:
        from_env(**{name: value})
    return str(caught.value).splitlines()


def file_error(name: str, value: Any) -> list[str]:
    """The lines of the ConfigError that a file with `name = value` must raise."""
    with pytest.raises(ConfigError) as caught:
        from_file(**{name: value})
    return str(caught.value).splitlines()


# --- Rates --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,2,inf", (1.0, 2.0, INF)),
        (" 1 , 2.5 ", (1.0, 2.5)),
        ("1:2:0.5", (1.0, 1.5, 2.0)),
        ("1:1:1", (1.0,)),
        ("3", (3.0,)),
        ("inf", (INF,)),
        ("INF", (INF,)),
    ],
)
def test_rates_from_text(text: str, expected: tuple[float, ...]) -> None:
    assert from_env(rates=text).rates == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([1, 2, 4], (1.0, 2.0, 4.0)),
        ([1, "2", "inf"], (1.0, 2.0, INF)),
        ([0.5, INF], (0.5, INF)),
        (3, (3.0,)),
        (2.5, (2.5,)),
        (INF, (INF,)),
        ("2:6:2", (2.0, 4.0, 6.0)),
        ([1, "3:4:1"], (1.0, 3.0, 4.0)),
    ],
)
def test_rates_from_file_values(value: Any, expected: tuple[float, ...]) -> None:
    assert from_file(rates=value).rates == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "invalid rate '0': a rate must be > 0 requests per second (or 'inf')"),
        ("-1", "invalid rate '-1': a rate must be > 0 requests per second (or 'inf')"),
        ("nan", "invalid rate 'nan': a rate must be > 0 requests per second (or 'inf')"),
        ("1,,2", "invalid rate list '1,,2': empty entry between commas"),
        ("6:2:2", "invalid rate range '6:2:2': STOP (2.0) is below START (6.0)"),
        ("1:2:0", "invalid rate range '1:2:0': STEP must be > 0, got 0.0"),
        ("1:3", "invalid rate range '1:3': expected START:STOP:STEP, such as 1:10:0.5"),
    ],
)
def test_bad_rate_text_names_the_variable(text: str, message: str) -> None:
    assert env_error("rates", text) == [f"LOADGEN_RATES: {message}"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([1, 0], "invalid rate '0': a rate must be > 0 requests per second (or 'inf')"),
        (True, "a rate must be a number of requests per second or 'inf'"),
        ([True], "a rate must be a number of requests per second or 'inf'"),
        ({"a": 1}, "rates must be a list such as [1, 2, 'inf'] or text such as '1,2,inf'"),
    ],
)
def test_bad_rate_values_name_the_file(value: Any, message: str) -> None:
    assert file_error("rates", value) == [f"probe.toml: rates: {message}"]


def test_rates_dump_inf_as_text_in_json_only() -> None:
    adapter = TypeAdapter(Rates)
    rates = adapter.validate_python("0.5,2,inf")
    assert adapter.dump_python(rates, mode="json") == [0.5, 2.0, "inf"]
    assert adapter.dump_json(rates) == b'[0.5,2.0,"inf"]'
    assert adapter.dump_python(rates) == (0.5, 2.0, INF)


def test_rates_dumped_as_json_read_back_the_same() -> None:
    adapter = TypeAdapter(Rates)
    assert adapter.validate_json(b'[0.5,2.0,"inf"]') == (0.5, 2.0, INF)


# --- Slos ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ttft=0.5,tpot=0.05", {"ttft": 0.5, "tpot": 0.05}),
        ({"ttft": 0.5}, {"ttft": 0.5}),
        ({"e2e": 3, "per_token": 1}, {"e2e": 3.0, "per_token": 1.0}),
    ],
)
def test_slos(value: Any, expected: dict[str, float]) -> None:
    assert from_file(slos=value).slos == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("bogus=1", "unknown SLO key 'bogus'; known keys are ttft, tpot, e2e, per_token"),
        ({"ttft": "soon"}, "SLO 'ttft': 'soon' is not a number of seconds"),
        ({"e2e": 0}, "SLO 'e2e': limit must be a finite number of seconds > 0, got '0'"),
        (5, "SLOs must be a table such as {ttft = 0.5} or text such as 'ttft=0.5'"),
    ],
)
def test_bad_slos_name_the_file(value: Any, message: str) -> None:
    assert file_error("slos", value) == [f"probe.toml: slos: {message}"]


def test_bad_slo_text_names_the_variable() -> None:
    assert env_error("slos", "ttft=-1") == [
        "LOADGEN_SLOS: SLO 'ttft': limit must be a finite number of seconds > 0, got '-1'"
    ]


# --- Headers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"X-A": "1"}, {"X-A": "1"}),
        ("X-A: 1", {"X-A": "1"}),
        (["X-A: 1", "X-B: x:y"], {"X-A": "1", "X-B": "x:y"}),
        ([{"X-A": "1"}, {"X-B": "2"}], {"X-A": "1", "X-B": "2"}),
        ("X-Empty:", {"X-Empty": ""}),
        ([], {}),
    ],
)
def test_headers_forms(value: Any, expected: dict[str, str]) -> None:
    assert from_file(headers=value).headers == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("no colon", "a header must look like 'Name: value'"),
        (": x", "a header must look like 'Name: value'"),
        ({"X-A": 1}, "header X-A: its value must be text"),
        (5, "headers must be a table of names to values"),
        (
            {"X-A": "***"},
            "header X-A: its value was not written to results; give it again",
        ),
    ],
)
def test_bad_headers_name_the_file(value: Any, message: str) -> None:
    assert file_error("headers", value) == [f"probe.toml: headers: {message}"]


def test_bad_header_text_names_the_variable() -> None:
    assert env_error("header", "no colon") == [
        "LOADGEN_HEADER: a header must look like 'Name: value'"
    ]


def test_header_values_are_hidden_in_every_dump() -> None:
    probe = from_file(headers={"Authorization": "Bearer tok-9f2c", "X-Team": "blue"})
    assert probe.headers == {"Authorization": "Bearer tok-9f2c", "X-Team": "blue"}
    hidden = {"Authorization": "***", "X-Team": "***"}
    assert probe.model_dump()["headers"] == hidden
    assert probe.model_dump(mode="json")["headers"] == hidden
    assert b"tok-9f2c" not in probe.model_dump_json().encode()
    assert "blue" not in probe.model_dump_json()


def test_merge_headers_compares_names_without_case() -> None:
    lower = {"X-Team": "perf", "X-Mode": "shared", "Accept": "a"}
    higher = {"x-mode": "own", "X-Extra": "yes"}
    assert merge_headers(lower, higher) == {
        "X-Team": "perf",
        "Accept": "a",
        "x-mode": "own",
        "X-Extra": "yes",
    }


def test_merge_headers_leaves_its_arguments_alone() -> None:
    lower = {"A": "1"}
    higher = {"a": "2"}
    assert merge_headers(lower, higher) == {"a": "2"}
    assert lower == {"A": "1"}
    assert higher == {"a": "2"}


# --- JsonObject ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('{"z": [1, {"y": null}]}', {"z": [1, {"y": None}]}),
        ({"a": [1]}, {"a": [1]}),
        ({}, {}),
    ],
)
def test_json_object(value: Any, expected: dict[str, Any]) -> None:
    assert from_file(body=value).body == expected


def test_json_object_from_bytes() -> None:
    assert TypeAdapter(JsonObject).validate_python(b'{"a": 1}') == {"a": 1}


@pytest.mark.parametrize(
    ("value", "message"), [("[1]", "must be a JSON object"), ("5", "must be a JSON object")]
)
def test_bad_json_object_text_names_the_variable(value: str, message: str) -> None:
    assert env_error("body", value) == [f"LOADGEN_BODY: {message}"]


def test_invalid_json_text_is_one_line_naming_the_variable() -> None:
    (line,) = env_error("body", "{bad")
    assert line.startswith("LOADGEN_BODY: not valid JSON: ")


def test_json_object_from_a_list_names_the_file() -> None:
    assert file_error("body", [1]) == ["probe.toml: body: must be a JSON object"]


# --- Choice -------------------------------------------------------------------------------------


def test_choice_accepts_its_values() -> None:
    assert from_env(color="blue").color == "blue"


def test_choice_names_the_values_it_takes() -> None:
    assert env_error("color", "green") == [
        "LOADGEN_COLOR: unknown color 'green'; choose from red, blue"
    ]


def test_choice_json_schema_lists_the_values() -> None:
    schema = TypeAdapter(Annotated[str, Choice(("red", "blue"), "color")]).json_schema()
    assert schema == {"type": "string", "enum": ["red", "blue"]}


# --- BaseUrl, HttpUrl ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://h:8000", "http://h:8000/v1"),
        ("http://h:8000/", "http://h:8000/v1"),
        ("http://h:8000/v1/", "http://h:8000/v1"),
        ("https://h/custom/", "https://h/custom"),
        (" http://h ", "http://h/v1"),
    ],
)
def test_base_url_is_normalised(given: str, expected: str) -> None:
    assert from_env(url=given).url == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://h:8000", "base URL must start with http:// or https://, got 'ftp://h:8000'"),
        ("h:8000", "base URL must start with http:// or https://, got 'h:8000'"),
        ("http://", "base URL has no host: 'http://'"),
        ("http://h:nope", "base URL has an invalid port: 'http://h:nope'"),
        ("http://h:99999", "base URL has an invalid port: 'http://h:99999'"),
        (
            "http://h:8000/v1?x=1",
            "base URL must not have a query or fragment: 'http://h:8000/v1?x=1'",
        ),
        ("http://h/v1#top", "base URL must not have a query or fragment: 'http://h/v1#top'"),
        (
            "http://user:pw@h/v1",
            "base URL must not hold credentials (they would be logged); "
            "use --api-key-env or --header instead",
        ),
    ],
)
def test_bad_base_url_names_the_variable(url: str, message: str) -> None:
    assert env_error("url", url) == [f"LOADGEN_URL: {message}"]


@pytest.mark.parametrize("url", ["http://pg:9091", "https://pg.example.com"])
def test_http_url_is_kept_as_given(url: str) -> None:
    assert from_file(gateway=url).gateway == url


@pytest.mark.parametrize("url", ["ftp://pg", "pg:9091"])
def test_http_url_needs_http(url: str) -> None:
    assert file_error("gateway", url) == ["probe.toml: gateway: must be an http:// or https:// URL"]


def test_several_bad_values_give_one_line_each() -> None:
    environ = {"LOADGEN_RATES": "0", "LOADGEN_COLOR": "green", "LOADGEN_URL": "ftp://h"}
    with pytest.raises(ConfigError) as caught:
        resolve([env_source(environ, Probe)], Probe)
    assert str(caught.value).splitlines() == [
        "LOADGEN_RATES: invalid rate '0': a rate must be > 0 requests per second (or 'inf')",
        "LOADGEN_URL: base URL must start with http:// or https://, got 'ftp://h'",
        "LOADGEN_COLOR: unknown color 'green'; choose from red, blue",
    ]
    assert len(caught.value.problems) == 3
