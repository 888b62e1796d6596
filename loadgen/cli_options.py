"""Command-line options shared by loadgen's commands, and the parser that prints one-line errors."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import orjson
from rich.console import Console

from loadgen.client.openai import Timeouts
from loadgen.config import DATASET_FORMATS, ConfigError, WorkloadConfig
from loadgen.core.arrivals import ARRIVAL_KINDS
from loadgen.core.stats import parse_slos
from loadgen.workloads.templates import PROMPT_TEMPLATES

# The options of a sweep's rates, which exclude each other.
RATE_DESTS = ("rates", "rate_range")
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
_DEFAULT_TIMEOUTS = Timeouts()


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        """Print one line and exit 2, with the usage hint argparse would show."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def fail(console: Console, code: int, message: str) -> int:
    """Print `message` as one error line; returns the exit `code`."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return code


def error_text(exc: Exception) -> str:
    """One line on what went wrong: an OSError's reason and file, else the message."""
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}: {exc.filename or ''}"
    return str(exc)


def default_out_dir() -> Path:
    """results/<local time>/, where a run writes unless given --out."""
    return Path("results") / datetime.now().strftime("%Y%m%d-%H%M%S")


def announcer(console: Console, quiet: bool) -> Callable[[str], None]:
    """Prints where /metrics is served (unless quiet)."""

    def announce(url: str) -> None:
        if not quiet:
            console.print(f"metrics at {url}", highlight=False)

    return announce


def typed(parse: Any) -> Any:
    """An argparse type from a parser raising ValueError, with the message kept."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def _json_object(text: str) -> dict[str, Any]:
    value = orjson.loads(text)
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    return value


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"header must look like 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """The server, the request fields, and the API key."""
    group = parser.add_argument_group("target")
    group.add_argument(
        "--base-url",
        help="server URL, e.g. http://host:8000/v1 (default: start the built-in simulator)",
    )
    group.add_argument("--model", help="model id (default: the first from GET /v1/models)")
    group.add_argument("--api-key-env", metavar="VAR", help="env variable holding the API key")
    group.add_argument(
        "--header",
        action="append",
        type=typed(_header),
        default=[],
        metavar="'NAME: VALUE'",
        help="extra HTTP header (repeatable)",
    )
    add_output_length_options(group)
    group.add_argument(
        "--no-stream",
        dest="stream",
        action="store_false",
        help="ask for whole responses (no TTFT, TPOT or ITL)",
    )
    group.add_argument("--temperature", type=float)
    group.add_argument("--top-k", type=int)
    group.add_argument("--top-p", type=float)
    group.add_argument(
        "--extra-body",
        type=typed(_json_object),
        default={},
        metavar="JSON",
        help="JSON object merged into every request body",
    )


def add_output_length_options(group: argparse._ActionsContainer) -> None:
    """The endpoint and the fields that decide output lengths."""
    group.add_argument("--endpoint", choices=("completions", "chat"), default="completions")
    group.add_argument(
        "--ignore-eos",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="force max_tokens outputs (default: on for generated workloads)",
    )
    group.add_argument("--min-tokens", type=int)


def add_workload_options(group: argparse._ArgumentGroup) -> None:
    """What requests look like: dataset format and filters, sampling, lengths, tokenizer."""
    group.add_argument(
        "--dataset-format",
        choices=DATASET_FORMATS,
        default="auto",
        help="file format (default: detected from the first entry)",
    )
    group.add_argument("--min-input", type=int, help="drop dataset prompts under N tokens")
    group.add_argument("--max-input", type=int, help="drop dataset prompts over N tokens")
    group.add_argument("--max-output", type=int, help="drop dataset answers over N tokens")
    group.add_argument("--shuffle", action="store_true", help="seeded random order")
    group.add_argument(
        "--replacement", action="store_true", help="draw dataset requests with replacement (seeded)"
    )
    group.add_argument("--input-len", type=int, default=128, help="synthetic prompt tokens")
    group.add_argument("--output-len", type=int, default=128, help="synthetic max_tokens")
    group.add_argument("--num-requests", type=int, default=1000, help="requests per step")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument(
        "--tokenizer",
        metavar="PATH|tiktoken:NAME",
        help="tokenizer.json (or its folder), a .tiktoken file or tiktoken:NAME: exact counts",
    )


def add_load_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("load")
    group.add_argument(
        "--dataset",
        default="synthetic",
        help="'synthetic', a paper scenario (s2s, s2l, l2s, s16k) or a dataset file",
    )
    group.add_argument(
        "--prompt-template",
        choices=sorted(PROMPT_TEMPLATES),
        help="wrap completions prompts in a chat template",
    )
    add_workload_options(group)
    group.add_argument(
        "--trim",
        type=int,
        default=100,
        help="requests left out at each end of a step, by send order",
    )
    group.add_argument("--arrival", choices=(*ARRIVAL_KINDS, "trace"), default="poisson")
    group.add_argument(
        "--trace",
        metavar="FILE",
        help="with --arrival trace: BurstGPT CSV or JSONL {timestamp, input_tokens, output_tokens}",
    )
    group.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiply the trace's times (0.5 replays it twice as fast)",
    )
    group.add_argument(
        "--burstiness", type=float, default=1.0, help="gamma shape: 1 = Poisson, < 1 burstier"
    )
    group.add_argument("--max-concurrency", type=int, help="cap on requests in flight")
    group.add_argument(
        "--slo",
        type=typed(parse_slos),
        default={},
        metavar="K=V,...",
        help="goodput SLOs in seconds: ttft, tpot, e2e, per_token",
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Request timeouts, then the output options."""
    group = parser.add_argument_group("timeouts")
    group.add_argument("--connect-timeout", type=float, default=_DEFAULT_TIMEOUTS.connect_s)
    group.add_argument("--ttft-timeout", type=float, default=_DEFAULT_TIMEOUTS.ttft_s)
    group.add_argument(
        "--idle-timeout",
        type=float,
        default=_DEFAULT_TIMEOUTS.idle_s,
        help="longest gap between stream reads",
    )
    group.add_argument("--request-timeout", type=float, default=_DEFAULT_TIMEOUTS.total_s)
    group.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="how long a stop waits for in-flight requests",
    )
    add_metrics_options(parser)
    add_output_options(parser)


def add_metrics_options(parser: argparse.ArgumentParser) -> None:
    """Live Prometheus metrics of the run."""
    group = parser.add_argument_group("live metrics")
    group.add_argument(
        "--metrics-port", type=int, metavar="PORT", help="serve Prometheus /metrics on PORT"
    )
    group.add_argument("--metrics-host", default="127.0.0.1", help="address for /metrics")
    group.add_argument(
        "--metrics-linger",
        type=float,
        default=15.0,
        metavar="S",
        help="keep serving /metrics S seconds after the run, for the last scrape",
    )
    group.add_argument(
        "--pushgateway",
        metavar="URL",
        help="push the metrics to this Pushgateway after every step (job loadgen, by run_id)",
    )


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """Where results go and what is printed."""
    group = parser.add_argument_group("output")
    group.add_argument("--out", type=Path, help="results folder (default results/<time>/)")
    group.add_argument("--quiet", action="store_true", help="print nothing but errors")
    group.add_argument("--json", action="store_true", help="print summary.json to stdout")


def add_dataset_command(commands: Any) -> None:
    """`loadgen dataset describe SPEC`: lengths of a workload without sending anything."""
    dataset = commands.add_parser("dataset", help="look at a workload without sending it")
    actions = dataset.add_subparsers(dest="action", required=True, parser_class=Parser)
    describe = actions.add_parser("describe", help="count and token-length statistics")
    describe.add_argument("spec", metavar="SPEC", help="as given to --dataset")
    add_workload_options(describe.add_argument_group("workload"))
    describe.add_argument("--json", action="store_true", help="print the statistics as JSON")
    describe.add_argument("--plot", type=Path, metavar="FILE", help="draw length histograms")


def apply_env_defaults(parser: argparse.ArgumentParser) -> None:
    """Let LOADGEN_<OPTION> set any single-valued option's default (flags still win).

    ConfigError for a bad LOADGEN_RATES or LOADGEN_RATE_RANGE, or both.
    """
    env_rates = None
    for action in parser._actions:
        name = f"LOADGEN_{action.dest.upper()}"
        env = os.environ.get(name)
        repeatable = isinstance(action, argparse._AppendAction)
        if env is None or not action.option_strings or action.nargs == 0 or repeatable:
            continue
        if action.dest in RATE_DESTS:
            # Kept apart, as --rates and --rate-range exclude each other: a variable for one
            # must not shadow the other's flag. config_from_args looks here after the flags.
            if env_rates is not None:
                raise ConfigError("LOADGEN_RATES and LOADGEN_RATE_RANGE exclude each other")
            try:
                env_rates = cast(Callable[[str], Any], action.type)(env)
            except (argparse.ArgumentTypeError, ValueError) as exc:
                raise ConfigError(f"{name}: {exc}") from None
            continue
        action.default = env
        action.required = False
    if env_rates is not None:
        parser.set_defaults(env_rates=env_rates)


def workload_from_args(
    args: argparse.Namespace, dataset: str, template: str | None = None
) -> WorkloadConfig:
    """The WorkloadConfig the parsed workload flags describe."""
    return WorkloadConfig(
        dataset=dataset,
        input_len=args.input_len,
        output_len=args.output_len,
        dataset_format=args.dataset_format,
        min_input=args.min_input,
        max_input=args.max_input,
        max_output=args.max_output,
        shuffle=args.shuffle,
        replacement=args.replacement,
        prompt_template=template,
        tokenizer=args.tokenizer,
    )


def add_report_command(commands: Any) -> None:
    """`loadgen report DIR...`: report.html from results folders."""
    report = commands.add_parser("report", help="report.html from one or more results folders")
    report.add_argument(
        "dirs",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="results folders (a sweep file's --out folder stands for all its targets)",
    )
    report.add_argument(
        "--out", type=Path, metavar="FILE", help="where to write (default DIR/report.html)"
    )
