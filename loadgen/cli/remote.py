"""`loadgen remote submit|status|cancel|fetch`: the service's API from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from loadgen.cli.output import EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, Parser, fail
from loadgen.config import ConfigError
from loadgen.config.files import read_document
from loadgen.service.remote import Remote, RemoteError, fetch, submit, wait

if TYPE_CHECKING:
    from loadgen.cli.output import Commands

SERVER_ENV = "LOADGEN_SERVER"


def add_remote_command(commands: Commands) -> None:
    """`loadgen remote ACTION`: submit, status, cancel, fetch."""
    remote = commands.add_parser(
        "remote",
        help="ask a `loadgen serve` for sweeps (token: $LOADGEN_API_TOKEN or the file "
        "$LOADGEN_API_TOKEN_FILE names)",
    )
    remote.add_argument(
        "--server",
        default=os.environ.get(SERVER_ENV),
        help=f"the service's URL, e.g. http://loadgen:8089 (default: ${SERVER_ENV})",
    )
    actions = remote.add_subparsers(dest="action", required=True, parser_class=Parser)
    submit_parser = actions.add_parser(
        "submit", help="queue a sweep file and wait for its end: exit 0 only if it succeeded"
    )
    submit_parser.add_argument("file", type=Path, help="sweep file (.toml, .yaml, .json)")
    submit_parser.add_argument("--no-wait", action="store_true", help="return once queued")
    submit_parser.add_argument("--idempotency-key", help="a retry with the same key is one sweep")
    for name, text in (("status", "a sweep's state"), ("cancel", "stop a sweep")):
        actions.add_parser(name, help=text).add_argument("id", help="the sweep's id")
    fetch_parser = actions.add_parser("fetch", help="download a sweep's results")
    fetch_parser.add_argument("id", help="the sweep's id")
    fetch_parser.add_argument("--out", type=Path, help="folder (default: results/ID)")


def remote_command(args: argparse.Namespace) -> int:
    """Run `loadgen remote ACTION`; the exit code (1: the sweep failed or the call did)."""
    console = Console(stderr=True)
    if not args.server:
        return fail(console, EXIT_USAGE, f"--server (or ${SERVER_ENV}) is needed")
    remote = Remote.from_env(args.server)
    try:
        return _act(args, remote, console)
    except ConfigError as exc:
        return fail(console, EXIT_USAGE, str(exc))
    except RemoteError as exc:
        code = EXIT_USAGE if 400 <= exc.status < 500 else EXIT_RUNTIME
        return fail(console, code, str(exc))


def _act(args: argparse.Namespace, remote: Remote, console: Console) -> int:
    def say(text: str) -> None:
        console.print(text, highlight=False)

    if args.action == "submit":
        sweep_id = submit(remote, read_document(args.file), args.idempotency_key)
        print(sweep_id)
        if args.no_wait:
            return EXIT_OK
        state = wait(remote, sweep_id, say)
        if state["status"] != "succeeded":
            return fail(console, EXIT_RUNTIME, f"sweep {sweep_id} {state['status']}: "
                        f"{state.get('error') or 'no error given'}")  # fmt: skip
        return EXIT_OK
    if args.action == "status":
        sys.stdout.write(json.dumps(remote.json("GET", f"/v1/sweeps/{args.id}"), indent=2) + "\n")
    elif args.action == "cancel":
        state = remote.json("POST", f"/v1/sweeps/{args.id}/cancel")
        say(f"{args.id}: {state['status']}")
    else:
        for path in fetch(remote, args.id, args.out or Path("results") / args.id):
            say(str(path))
    return EXIT_OK
