"""Command line: parse flags (and LOADGEN_* environment defaults) into a RunConfig, then run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, replace
from typing import Any

from rich.console import Console

from loadgen import __version__
from loadgen.cli_config import (
    add_config_option,
    apply_sweep_file,
    execute_targets,
    sweep_file_of,
    targets_from_args,
)
from loadgen.cli_options import (
    EXIT_INTERRUPTED,
    EXIT_RUNTIME,
    EXIT_USAGE,
    Parser,
    add_dataset_command,
    add_load_options,
    add_output_length_options,
    add_output_options,
    add_report_command,
    add_run_options,
    add_target_options,
    announcer,
    apply_env_defaults,
    default_out_dir,
    error_text,
    fail,
    typed,
    workload_from_args,
)
from loadgen.cli_sim import add_engine_options, add_sim_command, serve_from_args, settings_from_args
from loadgen.client.openai import ServerProbeError, Timeouts
from loadgen.config import ConfigError, MetricsEndpoint, RunConfig, check_workload
from loadgen.config_file import SweepFile
from loadgen.core.sweep import parse_rate, parse_rate_range, parse_rates
from loadgen.report.console import ConsoleReporter
from loadgen.report.html import write_report
from loadgen.report.results import ResultsError, load_results, results_folders
from loadgen.runtime.describe import describe_workload
from loadgen.runtime.loop import run_async
from loadgen.runtime.simulate import run_simulation
from loadgen.runtime.sweep_run import SweepOutcome, run_sweep
from loadgen.sim.embedded import EmbeddedSim
from loadgen.sim.presets import PresetError
from loadgen.sim.server import ServeOptions
from loadgen.sim.settings import SimSettings, resolve
from loadgen.workloads import DatasetError

__all__ = ["EXIT_INTERRUPTED", "EXIT_RUNTIME", "EXIT_USAGE", "build_parser", "main"]

_DESCRIPTION = (
    "Open-loop load generator for OpenAI-compatible LLM servers (vLLM, DeepSpeed-MII, ...), "
    "with a built-in simulated GPU serving engine."
)
_RATE_FLAGS = {
    "run": "--rate (or --arrival trace)",
    "sweep": "--rates or --rate-range (or rates in the --config file)",
    "simulate": "--rates or --rate-range",
}
# What `simulate` has no flag for: no server, no HTTP, so no headers, keys or timeouts.
_SIMULATE_DEFAULTS: dict[str, Any] = {
    "base_url": None,
    "model": None,
    "api_key_env": None,
    "header": [],
    "stream": True,
    "temperature": None,
    "top_k": None,
    "top_p": None,
    "extra_body": {},
    "connect_timeout": Timeouts().connect_s,
    "ttft_timeout": Timeouts().ttft_s,
    "idle_timeout": Timeouts().idle_s,
    "request_timeout": Timeouts().total_s,
    "drain_timeout": 30.0,
    "metrics_port": None,
    "metrics_host": "127.0.0.1",
    "metrics_linger": 0.0,
    "pushgateway": None,
}


def build_parser(sweep_file: SweepFile | None = None) -> argparse.ArgumentParser:
    """The `loadgen` argument parser with all its commands; `sweep` defaults from `sweep_file`.

    ConfigError when the sweep file's options do not fit `loadgen sweep`.
    """
    parser = Parser(prog="loadgen", description=_DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"loadgen {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    run = commands.add_parser("run", help="one step at one request rate")
    # Not `required`: a replayed trace brings its own schedule; config_from_args checks.
    run.add_argument("--rate", type=typed(parse_rate), help="req/s or inf")
    sweep = commands.add_parser("sweep", help="one step per request rate")
    simulate = commands.add_parser(
        "simulate", help="a sweep through the simulated engine in virtual time (no server)"
    )
    for command in (sweep, simulate):
        # Not `required`: LOADGEN_RATES may supply the rates; config_from_args checks.
        rates = command.add_mutually_exclusive_group()
        rates.add_argument("--rates", type=typed(parse_rates), help="e.g. 1,2,4,8,inf")
        rates.add_argument("--rate-range", type=typed(parse_rate_range), metavar="START:STOP:STEP")
    add_config_option(sweep)
    sweep.set_defaults(targets=[], file_rates=None)
    for command in (run, sweep):
        add_target_options(command)
        add_load_options(command)
        add_run_options(command)
    if sweep_file is not None:
        apply_sweep_file(sweep, sweep_file)
    for command in (run, sweep):
        apply_env_defaults(command)
    add_output_length_options(simulate.add_argument_group("requests"))
    add_load_options(simulate)
    add_output_options(simulate)
    add_engine_options(simulate)
    simulate.set_defaults(**_SIMULATE_DEFAULTS)
    add_sim_command(commands)
    add_dataset_command(commands)
    add_report_command(commands)
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig the parsed flags describe (ConfigError when inconsistent)."""
    rates: list[float] | None
    if args.command == "run":
        rates = [args.rate]
    else:  # flags first, then LOADGEN_RATES or LOADGEN_RATE_RANGE, then the sweep file's
        rates = args.rates or args.rate_range or getattr(args, "env_rates", None)
        rates = rates or getattr(args, "file_rates", None)
    if args.arrival == "trace" and args.command != "sweep" and rates in (None, [None]):
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
        metrics=None
        if args.metrics_port is None
        else MetricsEndpoint(args.metrics_host, args.metrics_port, args.metrics_linger),
        pushgateway=args.pushgateway,
    )


def execute(config: RunConfig, *, quiet: bool, print_json: bool) -> int:
    """Run `config` against its server, or the built-in simulator; returns the exit code."""
    console = Console(stderr=True)
    out_dir = config.out_dir or default_out_dir()
    reporter = ConsoleReporter(console, quiet=quiet)
    if config.base_url is not None:

        def announce(model: str) -> None:
            if not quiet:
                console.print(f"target {config.base_url}  model {model}  results {out_dir}")

        sweep = run_sweep(
            config, reporter, out_dir, on_model=announce, on_metrics=announcer(console, quiet)
        )
        return _run(console, lambda: sweep, quiet=quiet, print_json=print_json)
    settings = SimSettings()
    setup = resolve(settings)
    # Serve under --model when one is given, so the run asks for what the server has.
    served = ServeOptions(served_model=config.model or settings.model)
    with EmbeddedSim(setup, served) as sim:
        if not quiet:
            console.print(
                f"no --base-url: sweeping the built-in simulator ({setup.describe()}) at "
                f"{sim.base_url}; results {out_dir}",
                highlight=False,
            )
        embedded = replace(config, base_url=sim.base_url)
        notes = {"simulator": asdict(setup) | {"label": settings.label}}
        sweep = run_sweep(
            embedded,
            reporter,
            out_dir,
            label=settings.label,
            notes=notes,
            on_metrics=announcer(console, quiet),
        )
        return _run(console, lambda: sweep, quiet=quiet, print_json=print_json)


def _simulate(args: argparse.Namespace) -> int:
    """Run `loadgen simulate`; returns the exit code."""
    console = Console(stderr=True)
    try:
        config = config_from_args(args)
        if config.max_concurrency is not None:
            raise ConfigError("--max-concurrency is not modelled in virtual time")
        settings = settings_from_args(args)
        setup = resolve(settings)
    except (ConfigError, PresetError) as exc:
        return fail(console, EXIT_USAGE, str(exc))
    out_dir = config.out_dir or default_out_dir()
    if not args.quiet:
        console.print(f"simulating {setup.describe()} in virtual time; results {out_dir}")
    reporter = ConsoleReporter(console, quiet=args.quiet)

    def simulation() -> Coroutine[Any, Any, SweepOutcome]:
        return run_simulation(
            config,
            setup,
            reporter,
            out_dir,
            label=settings.label,
            eos_mean_tokens=settings.eos_mean_tokens,
        )

    return _run(console, simulation, quiet=args.quiet, print_json=args.json)


def _run(
    console: Console,
    work: Callable[[], Coroutine[Any, Any, SweepOutcome]],
    *,
    quiet: bool,
    print_json: bool,
) -> int:
    """Run a sweep coroutine, turning known failures into one line and an exit code."""
    try:
        outcome = run_async(work())
    except (ConfigError, DatasetError, PresetError, ValueError) as exc:
        return fail(console, EXIT_USAGE, str(exc))
    except ServerProbeError as exc:
        return fail(console, EXIT_RUNTIME, str(exc))
    except OSError as exc:
        return fail(console, EXIT_RUNTIME, error_text(exc))
    except KeyboardInterrupt:
        return fail(console, EXIT_INTERRUPTED, "interrupted before the first step started")
    _finish(console, outcome, quiet=quiet, print_json=print_json)
    return EXIT_INTERRUPTED if outcome.interrupted else 0


def _finish(console: Console, outcome: SweepOutcome, *, quiet: bool, print_json: bool) -> None:
    summary_path = outcome.out_dir / "summary.json"
    if print_json and summary_path.exists():
        sys.stdout.write(summary_path.read_text())
    if not quiet:
        state = "stopped early" if outcome.interrupted else "done"
        console.print(f"{state}: {len(outcome.steps)} step(s) written to {outcome.out_dir}")
        plot = outcome.out_dir / "sweep.png"
        if plot.exists():
            console.print(f"sweep plot: {plot}", highlight=False)


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
        return fail(console, EXIT_USAGE, str(exc))
    except (OSError, RuntimeError) as exc:
        return fail(console, EXIT_RUNTIME, str(exc))
    sys.stdout.write(text)
    return 0


def _report(args: argparse.Namespace) -> int:
    """Run `loadgen report`; returns the exit code."""
    console = Console(stderr=True)
    try:
        runs = [load_results(path) for path in results_folders(args.dirs)]
    except ResultsError as exc:
        return fail(console, EXIT_USAGE, str(exc))
    out = args.out or args.dirs[0] / "report.html"
    try:
        write_report(runs, out)
    except OSError as exc:
        return fail(console, EXIT_RUNTIME, f"{out}: cannot write ({exc.strerror or exc})")
    console.print(f"report: {out}", highlight=False)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `loadgen` command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(sweep_file_of(argv))
    except ConfigError as exc:
        return fail(Console(stderr=True), EXIT_USAGE, str(exc))
    args = parser.parse_args(argv)
    if args.command == "dataset":
        return _describe(args)
    if args.command == "sim":
        return serve_from_args(args, parser)
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "report":
        return _report(args)
    try:
        if args.command == "sweep" and args.targets:
            targets = targets_from_args(args, config_from_args)
            return execute_targets(targets, quiet=args.quiet, print_json=args.json)
        config = config_from_args(args)
    except ConfigError as exc:
        return fail(Console(stderr=True), EXIT_USAGE, str(exc))
    return execute(config, quiet=args.quiet, print_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
