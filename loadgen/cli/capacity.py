"""`loadgen capacity`: search each target for the highest rate at which every SLO holds."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from loadgen.cli.flags import add_flags
from loadgen.cli.output import EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, fail
from loadgen.cli.run import (
    CAPACITY_SLOS,
    checked,
    execute,
    finish,
    resolved_run,
    run_flags,
    run_sources,
    with_out_dir,
)
from loadgen.config import ConfigError, RunConfig
from loadgen.core.capacity import capacity_answer
from loadgen.core.events import RunOutcome
from loadgen.report.capacity import capacity_table

if TYPE_CHECKING:
    from loadgen.cli.output import Commands

_FLAGS = run_flags("capacity")
_TEXT = "find the highest request rate at which every SLO holds (bracketing and bisection)"


def add_capacity_command(commands: Commands) -> None:
    """`loadgen capacity --slo ttft_p99=0.5,...`: a search, its steps and its answer."""
    parser = commands.add_parser("capacity", help=_TEXT, description=_TEXT)
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="sweep file with a [capacity] table"
    )
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="search the simulated engine in virtual time (no server; seconds for a search)",
    )
    add_flags(parser, _FLAGS)
    shown = parser.add_argument_group("printing")
    shown.add_argument("--quiet", action="store_true", help="print nothing but errors")
    shown.add_argument("--json", action="store_true", help="print the summaries as JSON")


def capacity_command(args: argparse.Namespace) -> int:
    """Run the search; exit 0 when every target's capacity was found, 1 when one was not."""
    console = Console(stderr=True)
    try:
        if not any(CAPACITY_SLOS in source.values for source in run_sources(args, _FLAGS)):
            raise ConfigError("capacity: give the SLOs to search by (--slo ttft_p99=0.5,...)")
        resolved = resolved_run(args, _FLAGS)
        config = checked("capacity", resolved, simulate=args.simulate)
    except ConfigError as exc:
        return fail(console, EXIT_USAGE, str(exc))
    config = with_out_dir(config)
    outcome = execute(console, config, args, virtual=args.simulate, master=False)
    if isinstance(outcome, int):
        return outcome
    code = finish(console, config, outcome, quiet=args.quiet, print_json=args.json)
    found = _answers(console, config, outcome, quiet=args.quiet)
    return code if code != EXIT_OK or found else EXIT_RUNTIME


def _answers(console: Console, config: RunConfig, outcome: RunOutcome, *, quiet: bool) -> bool:
    """Print each target's steps and capacity; True when every target's was found."""
    found = bool(outcome.swept)
    for target in outcome.swept:
        answer = capacity_answer(target.steps, config.capacity.resolution)
        if not quiet:
            console.print(capacity_table(target.label, target.steps, answer))
        if answer.capacity_rps is None or answer.fails_rps is None:
            found = False
            fail(console, EXIT_RUNTIME, f"{target.label}: {_not_found(answer.capacity_rps)}")
    return found


def _not_found(capacity_rps: float | None) -> str:
    if capacity_rps is None:
        return "no rate met the SLOs (lower --start-rate, or relax the SLOs)"
    return f"every rate held up to {capacity_rps:g} req/s: raise --max-steps or --start-rate"
