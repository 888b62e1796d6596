"""`loadgen sweep --config FILE`: the file's options become defaults, its targets RunConfigs.

Precedence, lowest first: built-in defaults, the file's top-level options, LOADGEN_* variables,
flags; then each target's own options, for that target only.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import orjson
from rich.console import Console

from loadgen.cli_options import (
    EXIT_INTERRUPTED,
    EXIT_RUNTIME,
    RATE_DESTS,
    announcer,
    default_out_dir,
    error_text,
    fail,
)
from loadgen.config import ConfigError, RunConfig
from loadgen.config_file import SweepFile, TargetEntry, read_sweep_file
from loadgen.report.console import ConsoleReporter
from loadgen.runtime.events import RunObserver
from loadgen.runtime.loop import run_async
from loadgen.runtime.targets import TargetsOutcome, run_targets

CONFIG_ENV = "LOADGEN_CONFIG"
_FLAG_ACTIONS = (
    argparse._StoreTrueAction,
    argparse._StoreFalseAction,
    argparse.BooleanOptionalAction,
)
# Options that say nothing about the sweep itself.
_NOT_IN_FILES = frozenset({"help", "config"})


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """The `--config FILE` option (its reading happens before parsing: see sweep_file_of)."""
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="sweep file (.toml, .yaml): options and the [[targets]] to compare; flags win",
    )


def sweep_file_of(argv: Sequence[str]) -> SweepFile | None:
    """The sweep file `loadgen sweep` is given in `argv` (or LOADGEN_CONFIG), read and parsed."""
    if not argv or argv[0] != "sweep":
        return None
    pre = argparse.ArgumentParser(add_help=False)
    add_config_option(pre)
    known, _ = pre.parse_known_args(argv[1:])
    path = known.config or os.environ.get(CONFIG_ENV) or None
    return None if path is None else read_sweep_file(Path(path))


def apply_sweep_file(parser: argparse.ArgumentParser, sweep: SweepFile) -> None:
    """Make the file's options `parser`'s defaults, and its targets the `targets` default."""
    actions = _file_actions(parser)
    file_rates = None
    for key, raw in sweep.options.items():
        action = _action(actions, key, f"{sweep.path}")
        value = option_value(action, raw, f"{sweep.path}: {key}")
        if key in RATE_DESTS:
            if file_rates is not None:
                raise ConfigError(f"{sweep.path}: give rates or rate_range, not both")
            file_rates = value
        else:
            action.default = value
            action.required = False
    targets = [_target_values(actions, entry, f"{sweep.path}") for entry in sweep.targets]
    # Rates apart: --rates and --rate-range exclude each other, so a file's rates are the
    # fallback for whichever a flag or variable does not set.
    parser.set_defaults(targets=targets, file_rates=file_rates)


def _file_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        action.dest: action
        for action in parser._actions
        if action.option_strings and action.dest not in _NOT_IN_FILES
    }


def _action(actions: Mapping[str, argparse.Action], key: str, where: str) -> argparse.Action:
    action = actions.get(key)
    if action is None:
        close = difflib.get_close_matches(key, list(actions), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"{where}: unknown option {key!r}{hint}")
    return action


def _target_values(
    actions: Mapping[str, argparse.Action], entry: TargetEntry, where: str
) -> tuple[str, dict[str, Any]]:
    where = f"{where}: target {entry.name}"
    values = {
        key: option_value(_action(actions, key, where), raw, f"{where}: {key}")
        for key, raw in entry.options.items()
    }
    return entry.name, values


def option_value(action: argparse.Action, raw: Any, where: str) -> Any:
    """`raw` (a TOML/YAML value) as the parsed value of `action`'s option; ConfigError if bad."""
    if isinstance(action, _FLAG_ACTIONS):
        if not isinstance(raw, bool):
            raise ConfigError(f"{where}: must be true or false")
        return raw
    if raw is None or isinstance(raw, bool):
        raise ConfigError(f"{where}: needs a value, not {raw!r}")
    if isinstance(action, argparse._AppendAction):
        return [_typed(action, item, where) for item in _entries(raw)]
    if isinstance(raw, dict):
        return _mapping_value(action, raw, where)
    text = ",".join(map(str, raw)) if isinstance(raw, list) else str(raw)
    return _typed(action, text, where)


def _entries(raw: Any) -> list[str]:
    """A repeatable option's values: `{name = value}` tables become "name: value" entries."""
    items = raw if isinstance(raw, list) else [raw]
    entries: list[str] = []
    for item in items:
        if isinstance(item, dict):
            entries += [f"{name}: {value}" for name, value in item.items()]
        else:
            entries.append(str(item))
    return entries


def _mapping_value(action: argparse.Action, raw: dict[str, Any], where: str) -> Any:
    """A table: the JSON body fields as they are, or SLOs as `name=seconds` pairs."""
    if action.dest == "extra_body":
        return raw
    if action.dest == "slo":
        return _typed(action, ",".join(f"{k}={v}" for k, v in raw.items()), where)
    raise ConfigError(f"{where}: must be a single value, not a table")


def _typed(action: argparse.Action, text: str, where: str) -> Any:
    convert = cast(Callable[[str], Any] | None, action.type)
    try:
        value = text if convert is None else convert(text)
    except (argparse.ArgumentTypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ConfigError(f"{where}: {value!r} is not one of {choices}")
    return value


def targets_from_args(
    args: argparse.Namespace, make_config: Callable[[argparse.Namespace], RunConfig]
) -> list[tuple[str, RunConfig]]:
    """Each target's (name, RunConfig): the parsed options with the target's own on top."""
    if args.base_url is not None:
        raise ConfigError(
            "--base-url (or LOADGEN_BASE_URL) and the sweep file's targets exclude each other"
        )
    configs = []
    for name, values in args.targets:
        target_args = copy.copy(args)
        vars(target_args).update(values)
        # Headers and body fields add to the common ones; a target's own win (header names
        # compared without case, as HTTP does).
        own_headers = values.get("header", [])
        own_names = {header_name.lower() for header_name, _ in own_headers}
        common = [header for header in args.header if header[0].lower() not in own_names]
        target_args.header = [*common, *own_headers]
        target_args.extra_body = {**args.extra_body, **values.get("extra_body", {})}
        try:
            configs.append((name, make_config(target_args)))
        except ConfigError as exc:
            raise ConfigError(f"target {name}: {exc}") from None
    return configs


def execute_targets(
    targets: Sequence[tuple[str, RunConfig]], *, quiet: bool, print_json: bool
) -> int:
    """Sweep each target in turn; returns the exit code (1 when any target could not be swept)."""
    console = Console(stderr=True)
    for name, config in targets:
        try:
            config.api_key()  # a missing key fails now, not after the first target's sweep
        except ConfigError as exc:
            raise ConfigError(f"target {name}: {exc}") from None
    out_dir = targets[0][1].out_dir or default_out_dir()
    base_urls = {name: config.base_url for name, config in targets}

    def observer(name: str) -> RunObserver:
        if not quiet:
            console.rule(f"target {name}")
        return ConsoleReporter(console, quiet=quiet)

    def announce(name: str, model: str) -> None:
        if not quiet:
            console.print(
                f"target {name}: {base_urls[name]}  model {model}  results {out_dir / name}",
                highlight=False,
            )

    sweeps = run_targets(
        targets, observer, out_dir, on_model=announce, on_metrics=announcer(console, quiet)
    )
    try:
        outcome = run_async(sweeps)
    except OSError as exc:
        return fail(console, EXIT_RUNTIME, error_text(exc))
    except KeyboardInterrupt:
        return fail(console, EXIT_INTERRUPTED, "interrupted before the first step started")
    for failure in outcome.failures:
        fail(console, EXIT_RUNTIME, f"target {failure.name}: {error_text(failure.error)}")
    if print_json:
        sys.stdout.write(_summaries_json(outcome))
    if not quiet:
        _print_done(console, outcome, out_dir)
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_RUNTIME if outcome.failures else 0


def _summaries_json(outcome: TargetsOutcome) -> str:
    """{"targets": {name: summary.json}} for every swept target that wrote one."""
    summaries = {
        done.label: orjson.loads((done.out_dir / "summary.json").read_bytes())
        for done in outcome.swept
        if (done.out_dir / "summary.json").exists()
    }
    return orjson.dumps({"targets": summaries}, option=orjson.OPT_INDENT_2).decode() + "\n"


def _print_done(console: Console, outcome: TargetsOutcome, out_dir: Path) -> None:
    state = "stopped early" if outcome.interrupted else "done"
    where = f"; results in {out_dir}" if outcome.swept else ""
    console.print(
        f"{state}: {len(outcome.swept)} target(s) swept, {len(outcome.failures)} failed{where}",
        highlight=False,
    )
    if (out_dir / "sweep.png").exists():
        console.print(f"sweep plot of all targets: {out_dir / 'sweep.png'}", highlight=False)
    if outcome.swept:
        console.print(f"compare them: loadgen report {out_dir}", highlight=False)
