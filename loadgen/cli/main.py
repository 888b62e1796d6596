"""`loadgen` and its commands: parse, then hand over to the command (no logic here)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from loadgen.cli.capacity import add_capacity_command, capacity_command
from loadgen.cli.commands import (
    add_config_command,
    add_dataset_command,
    add_report_command,
    add_serve_command,
    add_sim_command,
    add_worker_command,
    config_command,
    describe_command,
    report_command,
    serve_command,
    sim_command,
    worker_command,
)
from loadgen.cli.compare import add_compare_command, compare_command
from loadgen.cli.output import Parser
from loadgen.cli.remote import add_remote_command, remote_command
from loadgen.cli.run import add_run_command, run_command
from loadgen.version import __version__

_DESCRIPTION = (
    "Open-loop load generator for OpenAI-compatible LLM servers (vLLM, DeepSpeed-MII, ...), "
    "with a built-in simulated GPU serving engine."
)
_COMMANDS = {
    "run": run_command,
    "sweep": run_command,
    "simulate": run_command,
    "master": run_command,
    "capacity": capacity_command,
    "worker": worker_command,
    "serve": serve_command,
    "remote": remote_command,
    "sim": sim_command,
    "dataset": describe_command,
    "report": report_command,
    "compare": compare_command,
    "config": config_command,
}


def build_parser() -> argparse.ArgumentParser:
    """The `loadgen` argument parser with all its commands."""
    parser = Parser(prog="loadgen", description=_DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"loadgen {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_run_command(commands, "run", "one step at one request rate")
    add_run_command(commands, "sweep", "one step per request rate, for each target")
    add_run_command(
        commands, "simulate", "a sweep through the simulated engine in virtual time (no server)"
    )
    add_run_command(
        commands,
        "master",
        "a sweep whose load `loadgen worker`s send, from any hosts (a Locust master)",
    )
    add_capacity_command(commands)
    add_worker_command(commands)
    add_serve_command(commands)
    add_remote_command(commands)
    add_sim_command(commands)
    add_dataset_command(commands)
    add_report_command(commands)
    add_compare_command(commands)
    add_config_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `loadgen` command; returns its exit code."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    return _COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
