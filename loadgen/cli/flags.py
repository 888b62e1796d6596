"""Flags made from the config model: each maps to one field, and its help is the field's.

argparse only collects what was given (every default is SUPPRESS): the model parses and checks
the values, so a flag, a LOADGEN_* variable and a sweep file are read by the same code.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from loadgen.config.sources import FieldPath, OptionField, Source, option_fields
from loadgen.config.types import Choice

# Sections shown as --help groups, by their model field names.
GROUP_TITLES = {
    "target": "target",
    "load": "load",
    "workload": "workload",
    "output": "output",
    "metrics": "live metrics",
    "sim": "simulated engine",
    "cluster": "scale-out (Locust)",
}

# Flags that share a field but take its value in a form of their own.
_METAVARS = {"--rate": "R", "--rates": "R,R,...", "--rate-range": "START:STOP:STEP"}


@dataclass(frozen=True, slots=True)
class Flag:
    """One command-line flag and the field it sets."""

    flag: str
    option: OptionField


def command_flags(
    model: type[BaseModel],
    include: Callable[[FieldPath], bool] = lambda path: True,
    renames: Mapping[FieldPath, tuple[str, ...]] | None = None,
) -> list[Flag]:
    """The flags of a command: one per included field (`renames` gives some others or more)."""
    flags = []
    for option in option_fields(model):
        if not include(option.path):
            continue
        names = (renames or {}).get(option.path) or _flag_names(option)
        flags += [Flag(name, option) for name in names]
    return flags


def _flag_names(option: OptionField) -> tuple[str, ...]:
    """`--name`; `--no-name` for a switch on by default; both for a yes/no/unset switch."""
    name = "--" + option.names[0].replace("_", "-")
    negative = name.replace("--", "--no-", 1)
    if _kind(option) is not bool:
        return (name,)
    if option.info.annotation is not bool:
        return (name, negative)
    return (negative,) if option.info.default is True else (name,)


def _kind(option: OptionField) -> Any:
    """The field's type without None: `bool | None` gives bool."""
    kind = option.info.annotation
    if get_origin(kind) in (Union, UnionType):
        args = [arg for arg in get_args(kind) if arg is not NoneType]
        kind = args[0] if len(args) == 1 else kind
    return kind


def add_flags(parser: argparse.ArgumentParser, flags: Sequence[Flag]) -> None:
    """Add `flags` to `parser`, in --help groups by section; fields with two flags exclude."""
    groups: dict[str, Any] = {}
    by_path: dict[FieldPath, list[Flag]] = {}
    for flag in flags:
        by_path.setdefault(flag.option.path, []).append(flag)
    for path, same in by_path.items():
        section = path[0] if len(path) > 1 else ""
        group = groups.get(section)
        if group is None:
            title = GROUP_TITLES.get(section, section) or "options"
            group = groups[section] = parser.add_argument_group(title)
        target = group.add_mutually_exclusive_group() if len(same) > 1 else group
        for flag in same:
            target.add_argument(
                flag.flag, dest=flag.flag, default=argparse.SUPPRESS, **_kwargs(flag)
            )


def _kwargs(flag: Flag) -> dict[str, Any]:
    """argparse settings of one flag: its action, metavar and help."""
    option = flag.option
    info = option.info
    help_text = (info.description or "").replace("%", "%%") + _default_text(info.default)
    path = ".".join(option.path)
    help_text += f" [{path}]"
    kind = _kind(option)
    if kind is bool:
        negative = flag.flag.startswith("--no-")
        if negative and info.annotation is not bool:  # the off side of a yes/no/unset switch
            help_text = f"the opposite of --{flag.flag.removeprefix('--no-')} [{path}]"
        elif negative:
            help_text = "do not " + help_text
        return {"action": "store_const", "const": not negative, "help": help_text}
    action = "append" if option.opt.repeat else "store"
    metavar = _METAVARS.get(flag.flag) or option.opt.metavar or _choices(option)
    return {"action": action, "metavar": metavar or option.names[0].upper(), "help": help_text}


def _default_text(default: Any) -> str:
    if default in (None, PydanticUndefined, (), {}) or isinstance(default, bool):
        return ""
    if isinstance(default, Enum):
        default = default.value
    return f" (default: {default})"


def _choices(option: OptionField) -> str | None:
    # A Choice on the field, or on the type inside `... | None`.
    inner = [get_args(arg)[1:] for arg in get_args(option.info.annotation) if get_args(arg)]
    for meta in [*option.info.metadata, *(m for found in inner for m in found)]:
        if isinstance(meta, Choice):
            return "{" + ",".join(meta.values) + "}"
    kind = _kind(option)
    if get_origin(kind) is Literal:
        return "{" + ",".join(map(str, get_args(kind))) + "}"
    return None


def flag_source(args: argparse.Namespace, flags: Sequence[Flag]) -> Source:
    """The values the command line gave, labelled by their flags."""
    given = vars(args)
    values: dict[FieldPath, Any] = {}
    labels: dict[FieldPath, str] = {}
    for flag in flags:
        if flag.flag in given:
            values[flag.option.path] = given[flag.flag]
            labels[flag.option.path] = flag.flag
    return Source(values, labels)
