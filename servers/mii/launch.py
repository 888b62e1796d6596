#!/usr/bin/env python3
"""Start DeepSpeed-MII's OpenAI-compatible server (deepspeed-mii 0.3.3) for loadgen.

Builds the command line of ``python -m mii.entrypoints.openai_api_server`` from flags (each
defaulting to an environment variable), checks that MII and the server's extra runtime packages
can be imported, then replaces this process with the server (``os.execv``), so Ctrl-C and
SIGTERM reach the server itself. Arguments after ``--`` go to the server unchanged, for example
``-- --chat-template FILE`` or ``-- --replica-num 2``. See README.md beside this file.
"""

import argparse
import importlib.util
import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence

SERVER_MODULE = "mii.entrypoints.openai_api_server"
REQUIREMENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "requirements.txt")
# Import name -> the pip requirement that provides it. MII 0.3.3 declares fastapi, shortuuid and
# fastchat, but its OpenAI server also imports uvicorn and pydantic_settings, which it does not.
RUNTIME_MODULES: dict[str, str] = {
    "mii": "deepspeed-mii==0.3.3",
    "fastchat": "fastchat",
    "shortuuid": "shortuuid",
    "uvicorn": "uvicorn",
    "fastapi": "fastapi",
    "pydantic_settings": "pydantic-settings",
}


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value

    return parse


# Server flag, environment variable, default, argparse type, help.
OPTIONS: tuple[tuple[str, str, str, Callable[[str], object], str], ...] = (
    ("--model", "MODEL", "meta-llama/Llama-2-7b-chat-hf", str,
     "Hugging Face id or local folder; also the model name the API answers to"),
    ("--host", "HOST", "127.0.0.1", str, "address to listen on (0.0.0.0 for remote clients)"),
    ("--port", "PORT", "8001", _bounded_int(1, 65535), "HTTP port"),
    ("--max-length", "MAX_LENGTH", "4096", _bounded_int(2, 1 << 20),
     "longest sequence in tokens, prompt plus output (MII's own default: 32768)"),
    ("--tensor-parallel", "TENSOR_PARALLEL", "1", _bounded_int(1, 64),
     "GPUs the model is split across"),
    ("--deployment-name", "DEPLOYMENT_NAME", "deepspeed-mii", str, "MII deployment name"),
)  # fmt: skip


def parse_args(argv: Sequence[str], environ: Mapping[str, str]) -> argparse.Namespace:
    """Flags, with defaults from `environ`; `server_args` holds what followed ``--``."""
    argv = list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="launch.py", description=__doc__.splitlines()[0])
    for flag, var, default, kind, text in OPTIONS:
        # argparse applies `type` to a string default too, so a bad $PORT fails like a bad --port.
        parser.add_argument(
            flag, type=kind, default=environ.get(var, default), help=f"{text} (${var}, {default})"
        )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the server command line; check nothing"
    )
    args = parser.parse_args(argv[:split])
    args.server_args = argv[split + 1 :]
    return args


def server_argv(args: argparse.Namespace, python: str) -> list[str]:
    """The server's full command line; argv[0] is the Python interpreter `python`."""
    command = [python, "-m", SERVER_MODULE]
    for flag, *_ in OPTIONS:
        command += [flag, str(getattr(args, flag[2:].replace("-", "_")))]
    return command + list(args.server_args)


def missing_modules(
    names: Sequence[str], find: Callable[[str], object] = importlib.util.find_spec
) -> list[str]:
    """The top-level modules among `names` that cannot be found (none is imported)."""

    def absent(name: str) -> bool:
        try:
            return find(name) is None
        except (ImportError, ValueError):
            return True

    return [name for name in names if absent(name)]


def install_hint(missing: Sequence[str], python: str) -> str:
    """The one pip command (for interpreter `python`) that installs what is missing."""
    wanted = ["-r", REQUIREMENTS] if "mii" in missing else [RUNTIME_MODULES[m] for m in missing]
    return shlex.join([python, "-m", "pip", "install", *wanted])


def main(argv: Sequence[str] | None = None) -> int:
    """Check and exec the server; returns 2 (after one line on stderr) when packages are missing."""
    args = parse_args(sys.argv[1:] if argv is None else argv, os.environ)
    command = server_argv(args, sys.executable)
    if args.dry_run:
        print(shlex.join(command))
        return 0
    missing = missing_modules(list(RUNTIME_MODULES))
    if missing:
        print(
            f"launch.py: cannot import {', '.join(missing)}; run: "
            + install_hint(missing, sys.executable),
            file=sys.stderr,
        )
        return 2
    print(f"launch.py: exec {shlex.join(command)}", file=sys.stderr, flush=True)
    os.execv(command[0], command)  # replaces this process; never returns


if __name__ == "__main__":
    sys.exit(main())
