"""Command-line options of the simulated engine, and `loadgen sim` (the real-time server)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

from rich.console import Console

from loadgen.cli_options import EXIT_RUNTIME, EXIT_USAGE
from loadgen.runtime.loop import run_async
from loadgen.sim.engine import POLICIES
from loadgen.sim.presets import GPUS, MODELS, PresetError
from loadgen.sim.requests import FLAVORS
from loadgen.sim.server import ServeOptions, SimServer, start_server
from loadgen.sim.settings import COST_MODELS, SimSettings, SimSetup, resolve


def add_engine_options(parser: argparse.ArgumentParser, *, model_flag: str = "--model") -> None:
    """GPU, model, scheduler and cost-model flags (`model_flag` names the model preset flag)."""
    group = parser.add_argument_group("simulated engine")
    group.add_argument("--gpu", choices=tuple(GPUS), default="a100", help="GPU preset")
    group.add_argument(model_flag, dest="sim_model", choices=tuple(MODELS), default="llama-2-7b")
    group.add_argument("--policy", choices=POLICIES, default="vllm", help="scheduler")
    group.add_argument(
        "--cost-model",
        choices=COST_MODELS,
        default="roofline",
        help="roofline (any GPU) or the paper's fitted A100 equations",
    )
    group.add_argument(
        "--sim-config",
        type=Path,
        metavar="FILE",
        help="TOML with [gpu], [model], [engine], [overheads] values over the presets",
    )
    group.add_argument("--max-num-seqs", type=int, help="sequences per batch (256)")
    group.add_argument(
        "--max-num-batched-tokens", type=int, help="prompt tokens per vllm step (model length)"
    )
    group.add_argument("--token-budget", type=int, help="tokens per splitfuse step (512)")
    group.add_argument("--gpu-memory-utilization", type=float, help="fraction for the engine (0.9)")
    group.add_argument(
        "--eos-mean-tokens",
        type=float,
        default=256.0,
        help="mean output length when a request does not set ignore_eos",
    )


def settings_from_args(args: argparse.Namespace) -> SimSettings:
    """The SimSettings the parsed engine flags describe."""
    return SimSettings(
        gpu=args.gpu,
        model=args.sim_model,
        policy=args.policy,
        cost_model=args.cost_model,
        config_file=args.sim_config,
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens,
        token_budget=args.token_budget,
        gpu_memory_utilization=args.gpu_memory_utilization,
        eos_mean_tokens=args.eos_mean_tokens,
    )


def add_sim_command(commands: Any) -> None:
    """`loadgen sim`: serve the simulated engine over HTTP in real time."""
    sim = commands.add_parser("sim", help="serve a simulated GPU engine (OpenAI API, vLLM metrics)")
    sim.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: all)")
    sim.add_argument("--port", type=int, default=8000)
    sim.add_argument("--api-flavor", choices=FLAVORS, default="vllm", help="server behaviour")
    sim.add_argument("--served-model-name", help="model id in the API (default: the preset)")
    sim.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiply modelled step times (0.1 runs ten times faster than the GPU)",
    )
    sim.add_argument("--seed", type=int, default=0, help="seeds output lengths at EOS")
    add_engine_options(sim)


def serve_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run `loadgen sim` until Ctrl-C or SIGTERM; returns the exit code."""
    console = Console(stderr=True)
    if not (args.time_scale > 0) or args.time_scale == float("inf"):
        parser.error("--time-scale must be a finite number > 0")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be in 0..65535")
    settings = settings_from_args(args)
    try:
        setup = resolve(settings)
    except PresetError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    options = ServeOptions(
        flavor=args.api_flavor,
        served_model=args.served_model_name or settings.model,
        time_scale=args.time_scale,
        eos_mean_tokens=args.eos_mean_tokens,
        seed=args.seed,
    )
    try:
        run_async(_serve(setup, options, args.host, args.port, console))
    except OSError as exc:
        console.print(
            f"[bold red]error:[/] cannot serve on {args.host}:{args.port}: {exc.strerror}"
        )
        return EXIT_RUNTIME
    return 0


async def _serve(
    setup: SimSetup, options: ServeOptions, host: str, port: int, console: Console
) -> None:
    """Serve until a signal asks to stop."""
    runner, bound = await start_server(SimServer(setup, options), host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    console.print(
        f"simulating {setup.describe()} ({options.flavor} API, model id {options.served_model}, "
        f"time scale {options.time_scale:g}) on http://{host}:{bound}/v1",
        highlight=False,
    )
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
