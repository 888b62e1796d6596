"""The other commands: `sim` (serve the simulator), `dataset describe`, `report`, `config`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from rich.console import Console

from loadgen.cli.flags import add_flags, command_flags, flag_source
from loadgen.cli.output import EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, Parser, error_text, fail

if TYPE_CHECKING:
    from loadgen.cli.output import Commands
from loadgen.cli.run import resolved_run, run_flags
from loadgen.cluster.master import ClusterError
from loadgen.config import ConfigError, RunConfig, ServeConfig, WorkerConfig, resolve
from loadgen.config.model import DescribeConfig
from loadgen.config.render import public_dump, toml_text
from loadgen.config.service import ServiceConfig
from loadgen.config.sources import Source, env_source
from loadgen.report.html import write_report
from loadgen.report.results import ResultsError, load_results, results_folders
from loadgen.runtime.describe import describe_workload
from loadgen.runtime.loop import run_async
from loadgen.runtime.sim_serve import serve_options, serve_until_stopped
from loadgen.service.serve import serve
from loadgen.sim.presets import PresetError
from loadgen.sim.settings import resolve as resolve_sim
from loadgen.workloads import DatasetError

_SIM_FLAGS = command_flags(ServeConfig, renames={("sim", "model"): ("--model",)})
_DESCRIBE_FLAGS = command_flags(DescribeConfig, lambda path: path != ("workload", "dataset"))
_WORKER_FLAGS = command_flags(WorkerConfig)
_SERVE_FLAGS = command_flags(ServiceConfig)


def add_sim_command(commands: Commands) -> None:
    """`loadgen sim`: serve the simulated engine over HTTP in real time."""
    sim = commands.add_parser("sim", help="serve a simulated GPU engine (OpenAI API, vLLM metrics)")
    add_flags(sim, _SIM_FLAGS)


def sim_command(args: argparse.Namespace) -> int:
    """Run `loadgen sim` until Ctrl-C or SIGTERM; returns the exit code."""
    console = Console(stderr=True)
    try:
        config = resolve([flag_source(args, _SIM_FLAGS)], ServeConfig).config
        setup = resolve_sim(config.sim)
    except (ConfigError, PresetError) as exc:
        return fail(console, EXIT_USAGE, str(exc))

    def announce(url: str) -> None:
        console.print(
            f"simulating {setup.describe()} ({config.api_flavor} API, model id "
            f"{serve_options(config).served_model}, time scale {config.time_scale:g}) on {url}",
            highlight=False,
        )

    try:
        run_async(serve_until_stopped(setup, config, announce))
    except OSError as exc:
        message = f"cannot serve on {config.host}:{config.port}: {exc.strerror or exc}"
        return fail(console, EXIT_RUNTIME, message)
    return EXIT_OK


def add_worker_command(commands: Commands) -> None:
    """`loadgen worker`: one engine shard that sends what a `loadgen master` plans."""
    text = "send a `loadgen master`'s load from this host (a Locust worker with one engine shard)"
    worker = commands.add_parser("worker", help=text, description=text)
    add_flags(worker, _WORKER_FLAGS)


def worker_command(args: argparse.Namespace) -> int:
    """Become the worker's relay process (Locust lives there alone); the exit code on errors."""
    console = Console(stderr=True)
    try:
        config = resolve([env_source(os.environ, WorkerConfig), flag_source(args, _WORKER_FLAGS)],
                         WorkerConfig).config  # fmt: skip
    except ConfigError as exc:
        return fail(console, EXIT_USAGE, str(exc))
    argv = [sys.executable, "-m", "loadgen.cluster.relay", "worker", config.master_host,
            str(config.master_port), str(config.worker_timeout_s)]  # fmt: skip
    os.execv(sys.executable, argv)


def add_serve_command(commands: Commands) -> None:
    """`loadgen serve`: the sweep service (API, queue, results) until Ctrl-C or SIGTERM."""
    text = "run the sweep service: an authenticated API that queues sweeps and keeps results"
    serve = commands.add_parser("serve", help=text, description=text)
    add_flags(serve, _SERVE_FLAGS)


def serve_command(args: argparse.Namespace) -> int:
    """Run `loadgen serve`; the exit code."""
    console = Console(stderr=True)
    sources = [env_source(os.environ, ServiceConfig), flag_source(args, _SERVE_FLAGS)]
    try:
        settings = resolve(sources, ServiceConfig).config
        run_async(serve(settings, lambda text: console.print(text, highlight=False)))
    except ConfigError as exc:
        return fail(console, EXIT_USAGE, str(exc))
    except OSError as exc:
        where = f"{settings.host}:{settings.port}"
        return fail(console, EXIT_RUNTIME, f"cannot serve on {where}: {exc.strerror or exc}")
    except ClusterError as exc:
        return fail(console, EXIT_RUNTIME, f"workers port {settings.workers_port}: {exc}")
    return EXIT_OK


def add_dataset_command(commands: Commands) -> None:
    """`loadgen dataset describe SPEC`: lengths of a workload without sending anything."""
    dataset = commands.add_parser("dataset", help="look at a workload without sending it")
    actions = dataset.add_subparsers(dest="action", required=True, parser_class=Parser)
    describe = actions.add_parser("describe", help="count and token-length statistics")
    describe.add_argument("spec", metavar="SPEC", help="as given to --dataset")
    add_flags(describe, _DESCRIBE_FLAGS)
    describe.add_argument("--json", action="store_true", help="print the statistics as JSON")
    describe.add_argument("--plot", type=Path, metavar="FILE", help="draw length histograms")


def describe_command(args: argparse.Namespace) -> int:
    """Run `loadgen dataset describe`; returns the exit code."""
    console = Console(stderr=True)
    source = flag_source(args, _DESCRIBE_FLAGS)
    dataset = ("workload", "dataset")
    spec_source = Source({dataset: args.spec}, {dataset: f"SPEC {args.spec}"})
    try:
        config = resolve([spec_source, source], DescribeConfig).config
        text = describe_workload(
            config.workload,
            config.tokenizer,
            config.num_requests,
            config.seed,
            args.plot,
            as_json=args.json,
        )
    except (ConfigError, DatasetError, ValueError) as exc:
        return fail(console, EXIT_USAGE, str(exc))
    except (OSError, RuntimeError) as exc:
        return fail(console, EXIT_RUNTIME, error_text(exc))
    sys.stdout.write(text)
    return EXIT_OK


def add_report_command(commands: Commands) -> None:
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


def report_command(args: argparse.Namespace) -> int:
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
    return EXIT_OK


def add_config_command(commands: Commands) -> None:
    """`loadgen config schema|show`: the configuration model, and a resolved configuration."""
    config = commands.add_parser("config", help="the configuration model, and what a run would use")
    actions = config.add_subparsers(dest="action", required=True, parser_class=Parser)
    actions.add_parser(
        "schema", help="the JSON Schema of sweep files (and of the service API's sweep body)"
    )
    show = actions.add_parser(
        "show", help="the configuration `loadgen sweep` would run with these flags, and sources"
    )
    show.add_argument("--config", type=Path, metavar="FILE", help="sweep file, as for sweep")
    add_flags(show, run_flags("sweep"))
    show.add_argument("--format", choices=("toml", "json"), default="toml", help="how to print")


def config_command(args: argparse.Namespace) -> int:
    """Run `loadgen config schema|show`; returns the exit code."""
    console = Console(stderr=True)
    if args.action == "schema":
        schema = RunConfig.model_json_schema()
        sys.stdout.write(orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_OK
    try:
        resolved = resolved_run(args, run_flags("sweep"))
        data = public_dump(resolved.config, with_output=True)
        if args.format == "json":
            sources = {".".join(path): label for path, label in resolved.labels.items()}
            text = orjson.dumps({"config": data, "sources": sources}, option=orjson.OPT_INDENT_2)
            sys.stdout.write(text.decode() + "\n")
        else:
            sys.stdout.write(toml_text(data, resolved.labels))
    except (ConfigError, ValueError) as exc:
        return fail(console, EXIT_USAGE, str(exc))
    return EXIT_OK
