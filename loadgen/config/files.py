"""Sweep files: TOML, YAML or JSON shaped like the config model, or a results summary.json.

A summary.json holds the configuration that produced it under `config`, so a result is its
own recipe: `loadgen sweep --config results/X/summary.json` runs it again.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import orjson
import yaml

from loadgen.config.sources import ConfigError, Source, data_source

CONFIG_ENV = "LOADGEN_CONFIG"
SUFFIXES = (".toml", ".yaml", ".yml", ".json")


def file_source(path: Path) -> Source:
    """The settings of the sweep file (or summary.json) at `path`; ConfigError if unusable."""
    data = read_document(path)
    if isinstance(data, dict) and data.get("tool") == "loadgen" and "config" in data:
        data = data["config"]  # a results summary.json
    return data_source(data, str(path))


def read_document(path: Path) -> Any:
    """The parsed contents of `path` by its suffix; ConfigError when unreadable or unparseable."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(f"{path}: a sweep file must end in {', '.join(SUFFIXES)}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix == ".json":
            return orjson.loads(text)
        return yaml.safe_load(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
