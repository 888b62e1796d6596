"""Sweep files (TOML or YAML): `loadgen sweep` options under their long names, and targets.

Top-level keys are options as on the command line (`num_requests` or `num-requests`); each
`[[targets]]` entry names an endpoint (`name`, `base_url`) and may override the request options
in TARGET_KEYS for that endpoint. Values are checked by the CLI, which knows each option's type.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from loadgen.config import ConfigError

# What may differ between targets: where to send, and how each request is made. The load itself
# (workload, rates, arrivals, trimming) is the same for every target, or they can't be compared.
TARGET_KEYS = frozenset(
    {
        "base_url",
        "model",
        "api_key_env",
        "header",
        "endpoint",
        "stream",
        "ignore_eos",
        "min_tokens",
        "temperature",
        "top_k",
        "top_p",
        "extra_body",
        "tokenizer",
        "connect_timeout",
        "ttft_timeout",
        "idle_timeout",
        "request_timeout",
    }
)
# A target's name labels its metrics and names its results folder.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ALIASES = {"headers": "header", "slos": "slo"}


@dataclass(frozen=True, slots=True)
class TargetEntry:
    """One `[[targets]]` entry: its name and the options it sets (by option name)."""

    name: str
    options: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SweepFile:
    """A parsed sweep file: options for every target, and the targets (maybe none)."""

    path: Path
    options: Mapping[str, Any]
    targets: tuple[TargetEntry, ...]


def read_sweep_file(path: Path) -> SweepFile:
    """The sweep file at `path` (.toml, .yaml or .yml); ConfigError says what is wrong."""
    data = _load(path)
    options = _options(data, f"{path}")
    raw_targets = options.pop("targets", [])
    if not isinstance(raw_targets, list) or not all(isinstance(t, dict) for t in raw_targets):
        raise ConfigError(f"{path}: targets must be a list of tables ([[targets]] in TOML)")
    targets = tuple(_target(entry, f"{path}: targets[{i}]") for i, entry in enumerate(raw_targets))
    if targets and "base_url" in options:
        raise ConfigError(f"{path}: give base_url in each target, not beside [[targets]]")
    names = [target.name for target in targets]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{path}: two targets are named {name!r}; names must differ")
    return SweepFile(path, options, targets)


def _load(path: Path) -> Any:
    """The file's data; ConfigError when unreadable, of unknown kind, or not parseable."""
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise ConfigError(f"{path}: a sweep file must end in .toml, .yaml or .yml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        return tomllib.loads(text) if suffix == ".toml" else yaml.safe_load(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _options(data: Any, where: str) -> dict[str, Any]:
    """`data`'s keys as option names (dashes become underscores, `headers` becomes `header`)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must hold a table of options, not {type(data).__name__}")
    options: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        name = _ALIASES.get(name, name)
        if name in options:
            raise ConfigError(f"{where}: {key} is given twice")
        options[name] = value
    return options


def _target(data: dict[str, Any], where: str) -> TargetEntry:
    """One target entry, its name and keys checked."""
    options = _options(data, where)
    name = options.pop("name", None)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            f"{where}: needs a name of letters, digits, '.', '_' or '-' (it labels metrics "
            "and names the results folder)"
        )
    where = f"{where} ({name})"
    if "base_url" not in options:
        raise ConfigError(f"{where}: needs a base_url")
    for key in options:
        if key not in TARGET_KEYS:
            raise ConfigError(
                f"{where}: {key} cannot differ between targets; a target may set name, "
                f"{', '.join(sorted(TARGET_KEYS))}"
            )
    return TargetEntry(name, options)
