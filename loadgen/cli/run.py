"""`loadgen run`, `sweep` and `simulate`: a config from file, env and flags; one run; one finish."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from rich.console import Console

from loadgen.cli.flags import Flag, add_flags, command_flags, flag_source
from loadgen.cli.output import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUNTIME,
    EXIT_USAGE,
    error_text,
    fail,
)
from loadgen.cluster.master import ClusterError
from loadgen.cluster.run import run_anywhere
from loadgen.config import ConfigError, Resolved, RunConfig, resolve
from loadgen.config.files import CONFIG_ENV, file_source
from loadgen.config.sources import FieldPath, Source, env_source
from loadgen.core.events import RunOutcome
from loadgen.export.files import summary_document
from loadgen.report.console import ConsoleReporter
from loadgen.runtime.loop import run_async
from loadgen.runtime.run import virtual_problems
from loadgen.sim.presets import PresetError
from loadgen.workloads import DatasetError

if TYPE_CHECKING:
    from loadgen.cli.output import Commands

RATES: FieldPath = ("load", "rates_rps")
SIM_MODEL: FieldPath = ("sim", "model")
# What `simulate` takes of a target: how requests ask for outputs; it sends to no server.
_SIMULATED_TARGET = frozenset({"endpoint", "ignore_eos", "min_tokens", "tokenizer"})
# The scale-out settings of `run` and `sweep` (shards on this host), and of `master`.
_LOCAL_CLUSTER = frozenset(
    {"processes", "worker_timeout_s", "on_worker_loss", "locust_web_port", "locust_web_host"}
)
_MASTER_CLUSTER = _LOCAL_CLUSTER - {"processes"} | {
    "expect_workers",
    "master_bind_host",
    "master_bind_port",
}
PROCESSES: FieldPath = ("cluster", "processes")
CAPACITY_SLOS: FieldPath = ("capacity", "slos")
# What a capacity search picks itself, or has no use for: rates, repeats, goodput SLOs.
_NOT_SEARCHED = frozenset({RATES, ("load", "auto_steps"), ("load", "repeats"), ("load", "slos")})


def run_flags(command: str) -> list[Flag]:
    """The model's flags as `command` (run, sweep, simulate, master, capacity) offers them."""
    if command == "simulate":
        return command_flags(
            RunConfig,
            lambda path: (
                path[0] not in ("target", "cluster", "capacity")
                or (path[0] == "target" and path[1] in _SIMULATED_TARGET)
            ),
            {RATES: ("--rates", "--rate-range"), SIM_MODEL: ("--model",)},
        )
    if command == "capacity":
        return command_flags(
            RunConfig,
            lambda path: (
                path not in _NOT_SEARCHED and (path[0] != "cluster" or path[1] in _LOCAL_CLUSTER)
            ),
            {CAPACITY_SLOS: ("--slo",)},
        )
    rates = ("--rate",) if command == "run" else ("--rates", "--rate-range")
    cluster = _MASTER_CLUSTER if command == "master" else _LOCAL_CLUSTER
    return command_flags(
        RunConfig,
        lambda path: path[0] != "capacity" and (path[0] != "cluster" or path[1] in cluster),
        {RATES: rates},
    )


def add_run_command(commands: Commands, name: str, text: str) -> None:
    """A run-like command: the model's flags, a sweep file, and what to print."""
    parser = commands.add_parser(name, help=text, description=text)
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"sweep file (.toml, .yaml, .json) or a results summary.json to run again; flags "
        f"and LOADGEN_* variables win (default: ${CONFIG_ENV})",
    )
    add_flags(parser, run_flags(name))
    shown = parser.add_argument_group("printing")
    shown.add_argument("--quiet", action="store_true", help="print nothing but errors")
    shown.add_argument("--json", action="store_true", help="print the summaries as JSON")


def run_sources(args: argparse.Namespace, flags: Sequence[Flag]) -> list[Source]:
    """Where a run's settings come from: the file (--config or $LOADGEN_CONFIG), LOADGEN_*
    variables and flags, lowest first (ConfigError for an unreadable file)."""
    sources: list[Source] = []
    path = args.config or os.environ.get(CONFIG_ENV) or None
    if path is not None:
        sources.append(file_source(Path(path)))
    return [*sources, env_source(os.environ), flag_source(args, flags)]


def resolved_run(args: argparse.Namespace, flags: Sequence[Flag]) -> Resolved[RunConfig]:
    """The run the file (--config or $LOADGEN_CONFIG), LOADGEN_* and flags describe."""
    sources = run_sources(args, flags)
    rate_flags = " or ".join(flag.flag for flag in flags if flag.option.path == RATES)
    return resolve(sources, RunConfig, unset={RATES: rate_flags})


def run_command(args: argparse.Namespace) -> int:
    """`loadgen run|sweep|simulate`: resolve, run, and say how it went; the exit code."""
    console = Console(stderr=True)
    try:
        resolved = resolved_run(args, run_flags(args.command))
        config = checked(args.command, resolved)
    except ConfigError as exc:
        return fail(console, EXIT_USAGE, str(exc))
    config = with_out_dir(config)
    virtual = args.command == "simulate"
    outcome = execute(console, config, args, virtual=virtual, master=args.command == "master")
    if isinstance(outcome, int):
        return outcome
    return finish(console, config, outcome, quiet=args.quiet, print_json=args.json)


def with_out_dir(config: RunConfig) -> RunConfig:
    """`config`, writing to results/<local time>/ unless it names its own folder."""
    if config.output.out_dir is not None:
        return config
    out_dir = Path("results") / datetime.now().strftime("%Y%m%d-%H%M%S")
    output = config.output.model_copy(update={"out_dir": out_dir})
    return config.model_copy(update={"output": output})


def execute(
    console: Console, config: RunConfig, args: argparse.Namespace, *, virtual: bool, master: bool
) -> RunOutcome | int:
    """Run `config` with the console reporter; its outcome, or the exit code of a failure."""
    reporter = ConsoleReporter(console, quiet=args.quiet)
    try:
        return run_async(run_anywhere(config, reporter, virtual=virtual, master=master))
    except (ConfigError, DatasetError, PresetError, ValueError) as exc:
        return fail(console, EXIT_USAGE, str(exc))
    except (OSError, ClusterError) as exc:
        return fail(console, EXIT_RUNTIME, error_text(exc))
    except KeyboardInterrupt:
        return fail(console, EXIT_INTERRUPTED, "interrupted before the first step started")


def checked(command: str, resolved: Resolved[RunConfig], *, simulate: bool = False) -> RunConfig:
    """The config, less what the command cannot do (ConfigError naming the source)."""
    config = resolved.config
    if command != "capacity" and config.capacity.searching:
        where = resolved.source_of(CAPACITY_SLOS)
        raise ConfigError(f"{where}: capacity SLOs ask for a search: use loadgen capacity")
    if command == "run" and len(config.load.rates_rps) > 1:
        raise ConfigError(f"{resolved.source_of(RATES)}: run takes one rate; sweep takes several")
    if command == "simulate" or simulate:
        for path, why in virtual_problems(config):
            raise ConfigError(f"{resolved.source_of(path)}: {why}")
    if command == "master" and config.cluster.processes is not None:
        raise ConfigError(
            f"{resolved.source_of(PROCESSES)}: a master's shards are its workers, from any host; "
            "for shards on this host alone, use sweep --processes"
        )
    return config


def finish(
    console: Console, config: RunConfig, outcome: RunOutcome, *, quiet: bool, print_json: bool
) -> int:
    """Report failed targets, print what was asked for; the exit code."""
    for failed in outcome.failures:
        where = f"target {failed.name}: " if failed.name is not None else ""
        fail(console, EXIT_RUNTIME, where + error_text(failed.error or RuntimeError()))
    invalid = [(done, step) for done in outcome.targets for step in done.steps if step.invalid]
    for done, step in invalid:
        where = f"target {done.name}: " if done.name is not None else ""
        fail(console, EXIT_RUNTIME, f"{where}step {step.step} is invalid: {step.invalid}")
    if print_json:
        sys.stdout.write(summaries_json(config, outcome))
    if not quiet:
        _print_done(console, config, outcome)
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_RUNTIME if outcome.failures or invalid else EXIT_OK


def summaries_json(config: RunConfig, outcome: RunOutcome) -> str:
    """A single target's summary.json, or {"targets": {name: summary}} for named targets."""
    documents = {
        done.label: summary_document(done.info, done.steps)
        for done in outcome.swept
        if done.info is not None and done.steps
    }
    if config.targets:
        data: object = {"targets": documents}
    elif documents:
        data = next(iter(documents.values()))
    else:
        return ""
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n"


def _print_done(console: Console, config: RunConfig, outcome: RunOutcome) -> None:
    out_dir = config.output.out_dir
    state = "stopped early" if outcome.interrupted else "done"
    if not config.targets:
        steps = sum(len(target.steps) for target in outcome.targets)
        console.print(f"{state}: {steps} step(s) written to {out_dir}", highlight=False)
        if out_dir is not None and (out_dir / "sweep.png").exists():
            console.print(f"sweep plot: {out_dir / 'sweep.png'}", highlight=False)
        return
    swept, failed = len(outcome.swept), len(outcome.failures)
    where = f"; results in {out_dir}" if swept else ""
    console.print(f"{state}: {swept} target(s) swept, {failed} failed{where}", highlight=False)
    if out_dir is not None and (out_dir / "sweep.png").exists():
        console.print(f"sweep plot of all targets: {out_dir / 'sweep.png'}", highlight=False)
    if swept:
        console.print(f"compare them: loadgen report {out_dir}", highlight=False)
