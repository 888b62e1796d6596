"""What the command line prints: one-line errors, exit codes, and a parser that keeps to both."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from rich.console import Console

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    """argparse, with errors as one line and exit code 2."""

    def error(self, message: str) -> Any:
        """Print one line and exit 2, with the usage hint argparse would show."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def fail(console: Console, code: int, message: str) -> int:
    """Print `message` as error lines (one per line of it); returns the exit `code`."""
    for line in message.splitlines() or [""]:
        console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
    return code


def error_text(exc: BaseException) -> str:
    """One line on what went wrong: an OSError's reason and file, else the message."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename or ''}".rstrip(": ")
    return str(exc) or type(exc).__name__


if TYPE_CHECKING:
    # The subcommands of a Parser (argparse's class takes no type argument at run time).
    Commands = argparse._SubParsersAction[Parser]
