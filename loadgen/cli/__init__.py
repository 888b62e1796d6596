"""The `loadgen` command line: flags map to the config model; the runtime does the rest."""

from loadgen.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
