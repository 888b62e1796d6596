"""`loadgen sim`: the simulated engine served over HTTP in real time until a signal stops it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable

from loadgen.config import ServeConfig
from loadgen.sim.server import ServeOptions, SimServer, start_server
from loadgen.sim.settings import SimSetup


def serve_options(config: ServeConfig) -> ServeOptions:
    """How the server presents itself, from its configuration."""
    return ServeOptions(
        flavor=config.api_flavor,
        served_model=config.served_model_name or config.sim.model,
        time_scale=config.time_scale,
        eos_mean_tokens=config.sim.eos_mean_tokens,
        seed=config.seed,
    )


async def serve_until_stopped(
    setup: SimSetup, config: ServeConfig, on_serving: Callable[[str], None]
) -> None:
    """Serve `setup` as `config` says until SIGINT or SIGTERM; `on_serving` gets the base URL."""
    runner, port = await start_server(
        SimServer(setup, serve_options(config)), config.host, config.port
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    on_serving(f"http://{config.host}:{port}/v1")
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
