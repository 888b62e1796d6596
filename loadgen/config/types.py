"""Field types of the config model: each parses what flags, variables and files give it.

A flag or a LOADGEN_* variable arrives as text; a sweep file brings TOML/YAML/JSON values. The
types below take both (`"1,2,inf"` and `[1, 2, "inf"]`), so parsing lives in one place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError, core_schema

from loadgen.client.protocol import normalize_base_url
from loadgen.core.capacity import parse_capacity_slos
from loadgen.core.stats import SLO_KEYS, parse_slos
from loadgen.core.sweep import AUTO, parse_rate, parse_rate_range, parse_rates

HIDDEN = "***"


def field_error(field: str, message: str) -> PydanticCustomError:
    """A model-level problem reported at `field` (a dotted path below the failing model)."""
    return PydanticCustomError("loadgen_field", message, {"field": field})


class Section(BaseModel):
    """A part of the configuration: unknown keys are errors, values never change after."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class Opt:
    """How a field is set from the command line and the environment.

    `name` is its option name: flag `--name-with-dashes`, variable `LOADGEN_NAME` (default: the
    field's name); `aliases` are more option names for the same field; `metavar` shows its value
    in --help; `merge` makes a mapping add up key by key across sources instead of replacing;
    `repeat` lets its flag be given many times; `cli` False keeps the field out of flags and
    variables (files only).
    """

    name: str | None = None
    aliases: tuple[str, ...] = ()
    metavar: str | None = None
    merge: bool = False
    repeat: bool = False
    cli: bool = True


@dataclass(frozen=True, slots=True)
class RequestBodyField:
    """Marks an optional request-body field: sent under the field's name whenever it is set."""


BODY = RequestBodyField()


def _rates(value: Any) -> tuple[float, ...] | str:
    """Rates (req/s) from "1,2,inf", "START:STOP:STEP", one number, or a list of them; or
    "auto", for rates measured by the sweep itself."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    if isinstance(value, str):
        return tuple(parse_rate_range(value) if ":" in value else parse_rates(value))
    if isinstance(value, bool):
        raise ValueError("a rate must be a number of requests per second or 'inf'")
    if isinstance(value, int | float):
        return (parse_rate(str(value)),)
    if isinstance(value, Sequence):
        rates: list[float] = []
        for entry in value:
            part = _rates(entry)
            if isinstance(part, str):
                raise ValueError("'auto' stands alone: it is no entry of a list of rates")
            rates += part
        return tuple(rates)
    raise ValueError("rates must be a list such as [1, 2, 'inf'] or text such as '1,2,inf'")


def _rates_json(rates: tuple[float, ...] | str) -> list[float | str] | str:
    if isinstance(rates, str):
        return rates
    return [rate if math.isfinite(rate) else "inf" for rate in rates]


_RATE_SCHEMA = {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"const": "inf"}]}
Rates = Annotated[
    tuple[float, ...] | Literal["auto"],
    BeforeValidator(_rates),
    PlainSerializer(_rates_json, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "array", "items": _RATE_SCHEMA},
                _RATE_SCHEMA,
                {"type": "string", "description": "'1,2,4,inf' or a range START:STOP:STEP"},
                {"const": AUTO, "description": "a synchronous step, inf, then --steps between"},
            ]
        }
    ),
]


def _slos(value: Any) -> dict[str, float]:
    """SLO limits (s) from "ttft=0.5,tpot=0.05" or a table of them."""
    if isinstance(value, str):
        return parse_slos(value)
    if isinstance(value, Mapping):
        if not value:
            return {}  # no SLOs, as a dump of the default writes them
        return parse_slos(",".join(f"{key}={limit}" for key, limit in value.items()))
    raise ValueError("SLOs must be a table such as {ttft = 0.5} or text such as 'ttft=0.5'")


Slos = Annotated[
    dict[str, float],
    BeforeValidator(_slos),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {
                        key: {"type": "number", "exclusiveMinimum": 0} for key in SLO_KEYS
                    },
                    "additionalProperties": False,
                },
                {"type": "string", "description": "'ttft=0.5,tpot=0.05' (seconds)"},
            ]
        }
    ),
]


def _capacity_slos(value: Any) -> dict[str, float]:
    """Capacity SLOs from "ttft_p99=0.5,error_rate=0.01" or a table of them."""
    if isinstance(value, Mapping):
        if not value:
            return {}
        value = ",".join(f"{key}={limit}" for key, limit in value.items())
    if isinstance(value, str):
        return parse_capacity_slos(value)
    raise ValueError("SLOs must be a table such as {ttft_p99 = 0.5} or text 'ttft_p99=0.5'")


CapacitySlos = Annotated[
    dict[str, float],
    BeforeValidator(_capacity_slos),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
                {"type": "string", "description": "'ttft_p99=0.5,tpot_p99=0.05,error_rate=0.01'"},
            ]
        }
    ),
]


def parse_share(value: Any) -> float:
    """A share in (0, 1) from "5%", "0.05" or 0.05."""
    if isinstance(value, str):
        text = value.strip()
        try:
            share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a share such as 5% or 0.05") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        share = float(value)
    else:
        raise ValueError("expected a share such as 5% or 0.05")
    if not 0 < share < 1:
        raise ValueError(f"{value!r}: a share must lie between 0 and 100% (exclusive)")
    return share


Share = Annotated[
    float,
    BeforeValidator(parse_share),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                {"type": "string", "description": "a percentage such as '5%'"},
            ]
        }
    ),
]


def parse_headers(value: Any, *, hidden_ok: bool = False) -> dict[str, str]:
    """Headers from a table, "Name: value" texts, or a list of one-entry tables (YAML).

    A value hidden in results ("***") is refused unless `hidden_ok` (a higher source may still
    give it again before the headers are checked).
    """
    items = value if isinstance(value, list | tuple) else [value]
    headers: dict[str, str] = {}
    for item in items:
        if isinstance(item, str):
            name, sep, text = item.partition(":")
            if not sep or not name.strip():
                raise ValueError("a header must look like 'Name: value'")
            pairs = [(name.strip(), text.strip())]
        elif isinstance(item, Mapping):
            pairs = [(str(name), text) for name, text in item.items()]
        else:
            raise ValueError("headers must be a table of names to values")
        for name, text in pairs:
            if text == HIDDEN and not hidden_ok:
                raise ValueError(
                    f"header {name}: its value was not written to results; give it again"
                )
            if not isinstance(text, str):
                raise ValueError(f"header {name}: its value must be text")
            headers[name] = text
    return headers


def merge_headers(lower: Mapping[str, str], higher: Mapping[str, str]) -> dict[str, str]:
    """`lower` with `higher` on top; names compare without case, as HTTP does."""
    names = {name.lower() for name in higher}
    return {**{k: v for k, v in lower.items() if k.lower() not in names}, **higher}


def _hidden(headers: dict[str, str]) -> dict[str, str]:
    return dict.fromkeys(headers, HIDDEN)


Headers = Annotated[
    dict[str, str],
    BeforeValidator(parse_headers),
    # Header values may be secrets: no dump of the model ever holds them.
    PlainSerializer(_hidden),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "object", "additionalProperties": {"type": "string"}},
                {
                    "type": "array",
                    "items": {
                        "anyOf": [
                            {"type": "string", "description": "'Name: value'"},
                            {"type": "object", "additionalProperties": {"type": "string"}},
                        ]
                    },
                },
                {"type": "string", "description": "'Name: value'"},
            ]
        }
    ),
]


def parse_json_object(value: Any) -> dict[str, Any]:
    """A JSON object from its text, or a table as it is."""
    if isinstance(value, str | bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(value, Mapping):
        raise ValueError("must be a JSON object")
    return dict(value)


JsonObject = Annotated[
    dict[str, Any],
    BeforeValidator(parse_json_object),
    WithJsonSchema(
        {"anyOf": [{"type": "object"}, {"type": "string", "description": "a JSON object"}]}
    ),
]


@dataclass(frozen=True, slots=True)
class Choice:
    """Field metadata: the text must be one of `values` (`what` names them in errors)."""

    values: tuple[str, ...]
    what: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        json_schema: dict[str, Any] = handler(schema)
        json_schema["enum"] = list(self.values)
        return json_schema

    def _check(self, value: str) -> str:
        if value not in self.values:
            raise ValueError(f"unknown {self.what} {value!r}; choose from {', '.join(self.values)}")
        return value


def _base_url(value: str) -> str:
    return normalize_base_url(value)


BaseUrl = Annotated[str, AfterValidator(_base_url)]


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]


def _server_metrics(value: str) -> str:
    if value in ("auto", "off"):
        return value
    try:
        url = _http_url(value)
    except ValueError:
        raise ValueError("must be 'auto', 'off' or an http:// or https:// URL") from None
    if "@" in urlsplit(url).netloc:
        raise ValueError("must not hold credentials (they would be written to the results)")
    return url


ServerMetrics = Annotated[str, AfterValidator(_server_metrics)]
