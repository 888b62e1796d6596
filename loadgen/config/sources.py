"""Fill the config model from its sources, lowest first: defaults, a file, LOADGEN_*, flags.

Each source gives raw values by field path (`("load", "trim")`) and says where each came from
(`--trim`, `LOADGEN_TRIM`, `sweep.toml: load.trim`); a sweep file's `targets` entries then win
over all of them for their own target. Validation errors name the field by that source.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from loadgen.config.model import EXCLUSIVE, RunConfig
from loadgen.config.types import Opt, Section, merge_headers, parse_headers, parse_json_object

FieldPath = tuple[str, ...]
ENV_PREFIX = "LOADGEN_"
M = TypeVar("M", bound=BaseModel)
# Errors about the value's type, form or range, where echoing a short input helps.
_ECHO_TYPES = frozenset(
    {
        "int_parsing",
        "float_parsing",
        "bool_parsing",
        "int_from_float",
        "literal_error",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "finite_number",
    }
)
_SECRET_FIELDS = frozenset({"headers"})
_INHERITED = " (for targets["


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a configuration is unusable: the field, where its value came from, and why."""

    path: tuple[str | int, ...]
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class ConfigError(Exception):
    """A configuration a run cannot start with; each line names the field and its source."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)

    @classmethod
    def of(cls, problems: Sequence[Problem]) -> ConfigError:
        """One error holding every problem, one line each."""
        return cls("\n".join(map(str, problems)), problems)


@dataclass(frozen=True, slots=True)
class OptionField:
    """A leaf field that flags and variables can set: its path, option names and metadata."""

    path: FieldPath
    names: tuple[str, ...]
    opt: Opt
    info: FieldInfo

    @property
    def env_names(self) -> tuple[str, ...]:
        """Its LOADGEN_* variables."""
        return tuple(ENV_PREFIX + name.upper() for name in self.names)


def option_fields(model: type[BaseModel] = RunConfig, prefix: FieldPath = ()) -> list[OptionField]:
    """Every leaf field of `model` with an option (flag and variable), in definition order."""
    found: list[OptionField] = []
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, Section):
            found += option_fields(kind, (*prefix, name))
            continue
        opt = next((m for m in info.metadata if isinstance(m, Opt)), Opt())
        if opt.cli:
            names = (opt.name or name, *opt.aliases)
            found.append(OptionField((*prefix, name), names, opt, info))
    return found


@dataclass(frozen=True, slots=True)
class Source:
    """Raw values from one place by field path, and the words that say where each came from.

    `targets` are a file's raw `targets` entries (labelled `targets_label`); `unknown` holds
    top-level keys that are no section, for validation to name.
    """

    values: Mapping[FieldPath, Any]
    labels: Mapping[FieldPath, str]
    targets: tuple[Any, ...] | None = None
    targets_label: str = ""
    unknown: Mapping[str, Any] = field(default_factory=dict)


def env_source(environ: Mapping[str, str], model: type[BaseModel] = RunConfig) -> Source:
    """The LOADGEN_* variables of `environ` that name a field of `model` (empty ones ignored)."""
    values: dict[FieldPath, Any] = {}
    labels: dict[FieldPath, str] = {}
    for option in option_fields(model):
        given = [name for name in option.env_names if environ.get(name, "").strip()]
        if len(given) > 1:
            raise ConfigError(f"{' and '.join(given)} set the same thing: give one of them")
        if given:
            values[option.path] = environ[given[0]]
            labels[option.path] = given[0]
    return Source(values, labels)


def data_source(data: Any, label: str, model: type[BaseModel] = RunConfig) -> Source:
    """The settings of a document shaped like `model` (a sweep file, an API body)."""
    if data is None:
        data = {}  # an empty (or comments-only) YAML file, as an empty TOML file gives
    if not isinstance(data, Mapping):
        raise ConfigError(f"{label}: must hold a table of settings, not {type(data).__name__}")
    sections = {
        name
        for name, info in model.model_fields.items()
        if isinstance(info.annotation, type) and issubclass(info.annotation, Section)
    }
    values: dict[FieldPath, Any] = {}
    labels: dict[FieldPath, str] = {}
    unknown: dict[str, Any] = {}
    targets = None
    for key, value in data.items():
        if key in sections and isinstance(value, Mapping):
            for name, raw in value.items():
                values[(key, str(name))] = raw
                labels[(key, str(name))] = f"{label}: {key}.{name}"
        elif key == "targets" and "targets" in model.model_fields:
            if not isinstance(value, list) or not all(isinstance(t, Mapping) for t in value):
                raise ConfigError(f"{label}: targets must be a list of tables ([[targets]])")
            targets = tuple(dict(entry) for entry in value)
        else:
            unknown[str(key)] = value
            labels[(str(key),)] = f"{label}: {key}"
    return Source(values, labels, targets, label, unknown)


@dataclass(frozen=True, slots=True)
class Resolved(Generic[M]):
    """A validated configuration, and where each value that is not a default came from."""

    config: M
    labels: Mapping[FieldPath, str]

    def source_of(self, path: FieldPath) -> str:
        """Where the value at `path` came from ("load.trim (default)" when from no source)."""
        return self.labels.get(path) or f"{'.'.join(path)} (default)"


def resolve(
    sources: Sequence[Source], model: type[M], unset: Mapping[FieldPath, str] | None = None
) -> Resolved[M]:
    """Merge `sources` (lowest first) and validate them as `model` (else ConfigError).

    `unset` names what would set a field no source set, for its errors ("--rates").
    """
    merged: dict[FieldPath, Any] = {}
    labels: dict[FieldPath, str] = {}
    targets: Source | None = None
    unknown: dict[str, Any] = {}
    for source in sources:
        for path, value in source.values.items():
            _drop_exclusive(path, source, merged, labels)
            lower = (merged.get(path), labels.get(path, ""))
            merged[path] = _merged(path, lower, (value, source.labels[path]))
            labels[path] = source.labels[path]
        if source.targets is not None:
            targets = source
        unknown.update(source.unknown)
        labels.update({key: text for key, text in source.labels.items() if len(key) == 1})
    document = _nested(merged) | unknown
    if targets is not None and targets.targets is not None:
        document["targets"] = list(targets.targets)
        for i, entry in enumerate(targets.targets):
            labels[("targets", str(i))] = f"{targets.targets_label}: targets[{i}]"
            for name in entry:
                labels[("targets", str(i), name)] = f"{targets.targets_label}: targets[{i}].{name}"
    try:
        config = model.model_validate(document)
    except ValidationError as exc:
        named = {**(unset or {}), **labels}
        problems = [_problem(error, named, model) for error in exc.errors()]
        raise ConfigError.of(_distinct(problems)) from None
    return Resolved(config, labels)


def _distinct(problems: list[Problem]) -> list[Problem]:
    """`problems` less those a shared setting repeats for each target that inherits it."""
    seen = {(p.where, p.message) for p in problems}
    return [
        p
        for p in problems
        if p.where.partition(_INHERITED)[0] == p.where
        or (p.where.partition(_INHERITED)[0], p.message) not in seen
    ]


def _drop_exclusive(
    path: FieldPath, source: Source, merged: dict[FieldPath, Any], labels: dict[FieldPath, str]
) -> None:
    """A source setting one of a group of exclusive fields unsets the others set below it."""
    if source.values[path] is None:
        return  # an unset value leaves the others as they are
    for group in EXCLUSIVE:
        if path not in group:
            continue
        for other in group - {path}:
            if source.values.get(other) is not None:
                raise ConfigError(
                    f"{source.labels[path]} and {source.labels[other]} exclude each other"
                )
            merged.pop(other, None)
            labels.pop(other, None)


def _merged(path: FieldPath, lower: tuple[Any, str], higher: tuple[Any, str]) -> Any:
    """The higher (value, label) over the lower: replaced, or added up key by key (headers,
    body fields); a value that cannot be read is named by its own source."""
    if lower[0] is None or path[-1] not in ("headers", "extra_body"):
        return higher[0]
    parse = _merge_parsers[path[-1]]
    values = []
    for value, label in (lower, higher):
        try:
            values.append(parse(value))
        except ValueError as exc:
            raise ConfigError(f"{label}: {exc}") from None
    if path[-1] == "headers":
        return merge_headers(*values)
    return {**values[0], **values[1]}


# Hidden header values may pass a merge: what is still hidden after it is refused then.
_merge_parsers = {
    "headers": lambda value: parse_headers(value, hidden_ok=True),
    "extra_body": parse_json_object,
}


def _nested(flat: Mapping[FieldPath, Any]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for path, value in flat.items():
        node = document
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return document


def _problem(
    error: ErrorDetails, labels: Mapping[FieldPath, str], model: type[BaseModel]
) -> Problem:
    """One validation error as a Problem named by the source of its field."""
    loc = tuple(error["loc"])
    ctx = error.get("ctx") or {}
    if error["type"] == "loadgen_field":
        loc += tuple(int(p) if p.isdigit() else p for p in str(ctx["field"]).split("."))
    keys = tuple(str(part) for part in loc)
    where, rest = _where(keys, labels)
    message = str(error["msg"]).removeprefix("Value error, ").replace("Input should be", "must be")
    if error["type"] == "extra_forbidden":
        message = "unknown key" + _suggestion(keys, model)
    elif _echoes(error, keys):
        message += f" (got {error['input']!r})"
    if rest:
        message = f"{'.'.join(rest)}: {message}"
    return Problem(loc, where, message)


def _echoes(error: ErrorDetails, keys: tuple[str, ...]) -> bool:
    """Whether to quote the input: a short text of a form error, in a field with no secrets."""
    given = error.get("input")
    short = isinstance(given, str | int | float) and len(str(given)) <= 60
    return short and error["type"] in _ECHO_TYPES and not _SECRET_FIELDS & set(keys)


def _where(keys: tuple[str, ...], labels: Mapping[FieldPath, str]) -> tuple[str, tuple[str, ...]]:
    """The label of the longest known prefix of `keys`, and what is left of them."""
    if len(keys) >= 3 and keys[0] == "targets":
        own = labels.get(keys[:3])
        if own is not None:
            return own, keys[3:]
        shared = labels.get(("target", keys[2]))
        if shared is not None:
            return f"{shared}{_INHERITED}{keys[1]}])", keys[3:]
        entry = labels.get(keys[:2])
        if entry is not None:
            return f"{entry}.{keys[2]}", keys[3:]
    for size in range(len(keys), 0, -1):
        if keys[:size] in labels:
            return labels[keys[:size]], keys[size:]
    return f"{'.'.join(keys)} (default)" if keys else "configuration", ()


def _suggestion(keys: tuple[str, ...], model: type[BaseModel]) -> str:
    """' (did you mean X?)' for an unknown key: a field nearby, or the field an option names."""
    key = keys[-1].replace("-", "_")
    siblings = {name: name for name in _field_names(model, keys[:-1])}
    if key in siblings:
        return f" (did you mean {key}?)"
    options = {name: option.path for option in option_fields(model) for name in option.names}
    if key in options and keys[0] != "targets":
        return f" (did you mean {'.'.join(options[key])}?)"
    section = "target" if keys[0] == "targets" else keys[0] if len(keys) == 2 else None
    siblings |= {
        name: option.path[-1]
        for option in option_fields(model)
        if option.path[0] == section
        for name in option.names
    }
    close = difflib.get_close_matches(key, list(siblings), n=1)
    return f" (did you mean {siblings[close[0]]}?)" if close else ""


def _field_names(model: type[BaseModel], parents: tuple[str, ...]) -> Iterator[str]:
    """The field names of the section at `parents` (a targets entry counts as a target)."""
    current: Any = model
    for part in parents:
        if part.isdigit():
            continue
        info = current.model_fields.get(part) if current is not None else None
        kind = info.annotation if info is not None else None
        if part == "targets":
            kind = current.model_fields["target"].annotation
        current = kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None
    if current is not None:
        yield from current.model_fields
