"""A configuration written out: as results keep it (a recipe), and as TOML that says its sources.

Header values never appear (they may be secrets); API keys are only ever named by variable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from loadgen.config.model import RunConfig, TargetConfig
from loadgen.config.types import HIDDEN

FieldPath = tuple[str, ...]
_ALWAYS_OWN = ("name", "base_url")


def public_dump(config: RunConfig, *, with_output: bool = False) -> dict[str, Any]:
    """The configuration as plain JSON data that, read back, makes the same run.

    Each `targets` entry holds only what differs from `target` (so flags given to a replay
    still reach every target); the results folder is left out unless `with_output`, so a
    replay never writes over the results it was read from.
    """
    data = config.model_dump(mode="json")
    if not with_output:
        data["output"].pop("out_dir")
    if config.load.duration_s is not None:
        data["load"].pop("num_requests")  # a step's size is its duration
    data["targets"] = [_own_settings(entry, config.target) for entry in config.targets]
    return data


def _own_settings(entry: TargetConfig, shared: TargetConfig) -> dict[str, Any]:
    """The dumped fields of `entry` that differ from `shared`'s (headers and bodies by key)."""
    dumped = entry.model_dump(mode="json")
    own = {
        name: value
        for name, value in dumped.items()
        if name in _ALWAYS_OWN or getattr(entry, name) != getattr(shared, name)
    }
    if "headers" in own:
        inherited = {name.lower(): value for name, value in shared.headers.items()}
        own["headers"] = {
            name: HIDDEN
            for name, value in entry.headers.items()
            if inherited.get(name.lower()) != value
        }
    if "extra_body" in own:
        own["extra_body"] = {
            key: value
            for key, value in entry.extra_body.items()
            if key not in shared.extra_body or shared.extra_body[key] != value
        }
    return own


def toml_text(data: Mapping[str, Any], labels: Mapping[FieldPath, str]) -> str:
    """`data` (a public dump) as a sweep file, each value from a source marked with it.

    ValueError when a value has no TOML form (a null inside a request body, say).
    """
    lines = ["# loadgen configuration; a comment says where a value that is no default came from"]
    for section, values in data.items():
        if section == "targets" or not isinstance(values, Mapping):
            continue
        lines += ["", f"[{section}]"]
        lines += _table_lines(values, lambda key, s=section: labels.get((s, key)))
    for i, entry in enumerate(data.get("targets", ())):
        lines += ["", "[[targets]]"]
        lines += _table_lines(entry, lambda key, i=i: labels.get(("targets", str(i), key)))
    return "\n".join(lines) + "\n"


def _table_lines(values: Mapping[str, Any], label_of: Any) -> list[str]:
    lines = []
    for key, value in values.items():
        if value is None:
            continue  # TOML has no null: an unset optional value is left out
        label = label_of(key)
        comment = f"  # {label}" if label else ""
        try:
            lines.append(f"{key} = {toml_value(value)}{comment}")
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    return lines


def toml_value(value: Any) -> str:
    """One TOML value: a string, number, boolean, array or inline table."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        # JSON's string escapes are a subset of TOML's basic-string escapes.
        return orjson.dumps(value).decode()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        pairs = (f"{orjson.dumps(str(k)).decode()} = {toml_value(v)}" for k, v in value.items())
        return "{ " + ", ".join(pairs) + " }" if value else "{}"
    raise ValueError(f"{value!r} has no TOML form; use --format json")
