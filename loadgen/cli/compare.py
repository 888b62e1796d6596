"""`loadgen compare BASE NEW`: is the new run significantly worse than the base? (exit 1 if so)"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from rich.console import Console

from loadgen.cli.output import EXIT_OK, EXIT_USAGE, fail
from loadgen.core.compare import THRESHOLD, CompareError, parse_threshold
from loadgen.report.compare import compare_folders, comparison_json, console_table, unmatched_text
from loadgen.report.results import ResultsError

if TYPE_CHECKING:
    from loadgen.cli.output import Commands

# Any figure significantly worse beyond the threshold: the status CI fails a release on.
EXIT_WORSE = 1
_LOG_WIDTH = 120
_HELP = "compare two results folders step by step: change, 95% interval and verdict per figure"


def add_compare_command(commands: Commands) -> None:
    """`loadgen compare BASE NEW [--threshold 5%] [--json] [--seed N]`."""
    compare = commands.add_parser(
        "compare",
        help=_HELP.replace("%", "%%"),
        description=f"{_HELP}; exits 1 when any figure is significantly worse".replace("%", "%%"),
    )
    where = "results folder (a sweep file's --out folder: its targets pair by name)"
    compare.add_argument("base", type=Path, metavar="BASE", help=f"the base {where}")
    compare.add_argument("new", type=Path, metavar="NEW", help=f"the new {where}")
    compare.add_argument(
        "--threshold",
        default=f"{THRESHOLD:.0%}",
        metavar="SHARE",
        help="smallest relative change that counts, as 5%% or 0.05 (default %(default)s)",
    )
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    compare.add_argument(
        "--seed", type=int, default=0, metavar="N", help="bootstrap seed (default 0)"
    )


def compare_command(args: argparse.Namespace) -> int:
    """Run `loadgen compare`; 0 when nothing is worse, 1 when something is, 2 on bad input."""
    errors = Console(stderr=True)
    try:
        threshold = parse_threshold(args.threshold)
    except ValueError as exc:
        return fail(errors, EXIT_USAGE, f"--threshold: {exc}")
    if args.seed < 0:
        return fail(errors, EXIT_USAGE, f"--seed must be >= 0, got {args.seed}")
    try:
        result = compare_folders(args.base, args.new, threshold=threshold, seed=args.seed)
    except (ResultsError, CompareError) as exc:
        return fail(errors, EXIT_USAGE, str(exc))
    if args.json:
        document = orjson.dumps(comparison_json(result), option=orjson.OPT_INDENT_2)
        sys.stdout.write(document.decode() + "\n")
    else:
        # CI logs are not terminals: rich would wrap the table at 80 columns there.
        out = Console() if sys.stdout.isatty() else Console(width=_LOG_WIDTH)
        out.print(console_table(result))
        for line in unmatched_text(result.comparison):
            out.print(line, highlight=False)
    return EXIT_WORSE if result.comparison.worse else EXIT_OK
