"""Command line: parse flags (and LOADGEN_* environment defaults) into a RunConfig, then run."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from loadgen import __version__
from loadgen.client.openai import ServerProbeError, Timeouts
from loadgen.config import (
    DATASET_FORMATS,
    ConfigError,
    RunConfig,
    WorkloadConfig,
    check_workload,
)
from loadgen.core.arrivals import ARRIVAL_KINDS
from loadgen.core.stats import parse_slos
from loadgen.core.sweep import parse_rate, parse_rate_range, parse_rates
from loadgen.report.console import ConsoleReporter
from loadgen.runtime.describe import describe_workload
from loadgen.runtime.loop import run_async
from loadgen.runtime.sweep_run import SweepOutcome, run_sweep
from loadgen.workloads import DatasetError
from loadgen.workloads.templates import PROMPT_TEMPLATES

EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
_DEFAULT_TIMEOUTS = Timeouts()
_RATE_FLAGS = {"run": "--rate (or --arrival trace)", "sweep": "--rates or --rate-range"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        """Print one line and exit 2, with the usage hint argparse would show."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _typed(parse: Any) -> Any:
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


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("target")
    group.add_argument("--base-url", required=True, help="server URL, e.g. http://host:8000/v1")
    group.add_argument("--endpoint", choices=("completions", "chat"), default="completions")
    group.add_argument("--model", help="model id (default: the first from GET /v1/models)")
    group.add_argument("--api-key-env", metavar="VAR", help="env variable holding the API key")
    group.add_argument(
        "--header",
        action="append",
        type=_typed(_header),
        default=[],
        metavar="'NAME: VALUE'",
        help="extra HTTP header (repeatable)",
    )
    group.add_argument(
        "--no-stream",
        dest="stream",
        action="store_false",
        help="ask for whole responses (no TTFT, TPOT or ITL)",
    )
    group.add_argument(
        "--ignore-eos",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="force max_tokens outputs (default: on for synthetic)",
    )
    group.add_argument("--min-tokens", type=int)
    group.add_argument("--temperature", type=float)
    group.add_argument("--top-k", type=int)
    group.add_argument("--top-p", type=float)
    group.add_argument(
        "--extra-body",
        type=_typed(_json_object),
        default={},
        metavar="JSON",
        help="JSON object merged into every request body",
    )


def _add_workload_options(group: argparse._ArgumentGroup) -> None:
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


def _add_load_options(parser: argparse.ArgumentParser) -> None:
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
    _add_workload_options(group)
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
        type=_typed(parse_slos),
        default={},
        metavar="K=V,...",
        help="goodput SLOs in seconds: ttft, tpot, e2e, per_token",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("timeouts and output")
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
    group.add_argument("--out", type=Path, help="results folder (default results/<time>/)")
    group.add_argument("--quiet", action="store_true", help="print nothing but errors")
    group.add_argument("--json", action="store_true", help="print summary.json to stdout")


def build_parser() -> argparse.ArgumentParser:
    """The `loadgen` argument parser with its `run` and `sweep` commands."""
    parser = _Parser(prog="loadgen", description=__doc__)
    parser.add_argument("--version", action="version", version=f"loadgen {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser("run", help="one step at one request rate")
    # Not `required`: a replayed trace brings its own schedule; config_from_args checks.
    run.add_argument("--rate", type=_typed(parse_rate), help="req/s or inf")
    sweep = commands.add_parser("sweep", help="one step per request rate")
    # Not `required`: LOADGEN_RATES may supply the rates; config_from_args checks.
    rates = sweep.add_mutually_exclusive_group()
    rates.add_argument("--rates", type=_typed(parse_rates), help="e.g. 1,2,4,8,inf")
    rates.add_argument("--rate-range", type=_typed(parse_rate_range), metavar="START:STOP:STEP")
    for command in (run, sweep):
        _add_target_options(command)
        _add_load_options(command)
        _add_run_options(command)
        _apply_env_defaults(command)
    _add_dataset_command(commands)
    return parser


def _add_dataset_command(commands: Any) -> None:
    """`loadgen dataset describe SPEC`: lengths of a workload without sending anything."""
    dataset = commands.add_parser("dataset", help="look at a workload without sending it")
    actions = dataset.add_subparsers(dest="action", required=True, parser_class=_Parser)
    describe = actions.add_parser("describe", help="count and token-length statistics")
    describe.add_argument("spec", metavar="SPEC", help="as given to --dataset")
    _add_workload_options(describe.add_argument_group("workload"))
    describe.add_argument("--json", action="store_true", help="print the statistics as JSON")
    describe.add_argument("--plot", type=Path, metavar="FILE", help="draw length histograms")


def _apply_env_defaults(parser: argparse.ArgumentParser) -> None:
    """Let LOADGEN_<OPTION> set any single-valued option's default (flags still win)."""
    for action in parser._actions:
        env = os.environ.get(f"LOADGEN_{action.dest.upper()}")
        repeatable = isinstance(action, argparse._AppendAction)
        if env is not None and action.option_strings and action.nargs != 0 and not repeatable:
            action.default = env
            action.required = False


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


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig the parsed flags describe (ConfigError when inconsistent)."""
    rates = [args.rate] if args.command == "run" else (args.rates or args.rate_range)
    if args.arrival == "trace" and args.command == "run" and args.rate is None:
        rates = []
    elif not rates or rates == [None]:
        raise ConfigError(f"{args.command} needs {_RATE_FLAGS[args.command]}")
    return RunConfig(
        base_url=args.base_url,
        rates_rps=tuple(rates),
        endpoint=args.endpoint,
        model=args.model,
        api_key_env=args.api_key_env,
        headers=dict(args.header),
        stream=args.stream,
        ignore_eos=args.ignore_eos,
        min_tokens=args.min_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        extra_body=args.extra_body,
        workload=workload_from_args(args, args.dataset, args.prompt_template),
        num_requests=args.num_requests,
        trim=args.trim,
        arrival=args.arrival,
        burstiness=args.burstiness,
        trace=args.trace,
        time_scale=args.time_scale,
        seed=args.seed,
        max_concurrency=args.max_concurrency,
        slos=args.slo,
        timeouts=Timeouts(
            args.connect_timeout, args.ttft_timeout, args.idle_timeout, args.request_timeout
        ),
        drain_timeout_s=args.drain_timeout,
        out_dir=args.out,
    )


def _default_out_dir() -> Path:
    return Path("results") / datetime.now().strftime("%Y%m%d-%H%M%S")


def _fail(console: Console, code: int, message: str) -> int:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return code


def execute(config: RunConfig, *, quiet: bool, print_json: bool) -> int:
    """Run `config`; returns the process exit code."""
    console = Console(stderr=True)
    out_dir = config.out_dir or _default_out_dir()
    reporter = ConsoleReporter(console, quiet=quiet)

    def announce(model: str) -> None:
        if not quiet:
            console.print(f"target {config.base_url}  model {model}  results {out_dir}")

    try:
        outcome = run_async(run_sweep(config, reporter, out_dir, on_model=announce))
    except (ConfigError, DatasetError, ValueError) as exc:
        return _fail(console, EXIT_USAGE, str(exc))
    except ServerProbeError as exc:
        return _fail(console, EXIT_RUNTIME, str(exc))
    except OSError as exc:
        return _fail(console, EXIT_RUNTIME, f"{exc.strerror or exc}: {exc.filename or ''}")
    except KeyboardInterrupt:
        return _fail(console, EXIT_INTERRUPTED, "interrupted before the first step started")
    _finish(console, outcome, quiet=quiet, print_json=print_json)
    return EXIT_INTERRUPTED if outcome.interrupted else 0


def _finish(console: Console, outcome: SweepOutcome, *, quiet: bool, print_json: bool) -> None:
    summary_path = outcome.out_dir / "summary.json"
    if print_json and summary_path.exists():
        sys.stdout.write(summary_path.read_text())
    if not quiet:
        state = "stopped early" if outcome.interrupted else "done"
        console.print(f"{state}: {len(outcome.steps)} step(s) written to {outcome.out_dir}")


def _describe(args: argparse.Namespace) -> int:
    """Run `loadgen dataset describe`; returns the exit code."""
    console = Console(stderr=True)
    try:
        spec = workload_from_args(args, args.spec)
        check_workload(spec)
        if args.num_requests < 1:
            raise ConfigError("--num-requests must be >= 1")
        text = describe_workload(spec, args.num_requests, args.seed, args.plot, as_json=args.json)
    except (ConfigError, DatasetError, ValueError) as exc:
        return _fail(console, EXIT_USAGE, str(exc))
    except (OSError, RuntimeError) as exc:
        return _fail(console, EXIT_RUNTIME, str(exc))
    sys.stdout.write(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `loadgen` command."""
    args = build_parser().parse_args(argv)
    if args.command == "dataset":
        return _describe(args)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        return _fail(Console(stderr=True), EXIT_USAGE, str(exc))
    return execute(config, quiet=args.quiet, print_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
