"""`loadgen serve`: the sweep service, until SIGINT or SIGTERM.

The API runs on aiohttp in the process that runs the sweeps (the cluster's master), not in
Locust's Flask app: Flask lives under gevent in the relay process, while the sweeps, their
queue and their live state live in this asyncio process. Serving the API here means no second
copy of any of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from loadgen.config import ConfigError
from loadgen.config.files import read_document
from loadgen.config.service import TOKEN_ENV, ServiceConfig
from loadgen.export.prometheus import PrometheusExporter
from loadgen.runtime.metrics_server import tick
from loadgen.service.api import make_app
from loadgen.service.security import AllowList, Tokens, parse_tokens
from loadgen.service.store import Store
from loadgen.service.sweeps import Limits, SubmitError, Sweeps
from loadgen.service.workers import Senders

LOOPBACK = "127.0.0.1"


def api_tokens(settings: ServiceConfig) -> Tokens:
    """The tokens from LOADGEN_API_TOKEN and the token file (ConfigError if unreadable)."""
    texts = parse_tokens(os.environ.get(TOKEN_ENV, ""))
    if settings.api_token_file is not None:
        try:
            texts += parse_tokens(settings.api_token_file.read_text())
        except OSError as exc:
            raise ConfigError(
                f"api_token_file {settings.api_token_file}: cannot read it ({exc.strerror})"
            ) from None
    return Tokens.of(texts)


def bound_host(settings: ServiceConfig, tokens: Tokens) -> str:
    """Where to listen: as configured, or loopback alone when there is no token."""
    return settings.host if tokens else LOOPBACK


async def serve(settings: ServiceConfig, say: Callable[[str], None]) -> None:
    """Run the service as `settings` say until SIGINT or SIGTERM; `say` tells what happens."""
    tokens = api_tokens(settings)
    host = bound_host(settings, tokens)
    if not tokens:
        say(f"no API token ({TOKEN_ENV} or api_token_file): listening on {LOOPBACK} only")
    limits = Limits(
        AllowList(settings.allowed_targets), settings.allowed_key_names, settings.max_rate_rps
    )
    registry = CollectorRegistry()
    exporter = PrometheusExporter(registry, "")
    senders = Senders(settings, tokens, say)
    sweeps = Sweeps(Store(settings.results_dir), limits, settings.queue_size, senders, exporter)
    runner = web.AppRunner(make_app(sweeps, tokens, settings, registry), access_log=None)
    await runner.setup()
    ticker = asyncio.create_task(tick(exporter))
    try:
        await senders.start(settings.workers_host if tokens else LOOPBACK)
        await sweeps.start()
        site = web.TCPSite(runner, host, settings.port)
        await site.start()
        port = runner.addresses[0][1]
        say(f"loadgen service on http://{host}:{port} (results in {settings.results_dir})")
        if settings.boot_sweep is not None:
            _queue_boot_sweep(sweeps, settings.boot_sweep, say)
        await _until_stopped()
    finally:
        await sweeps.close()
        await senders.close()
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        await runner.cleanup()


def _queue_boot_sweep(sweeps: Sweeps, path: Path, say: Callable[[str], None]) -> None:
    """Queue the boot sweep file, checked like any submission."""
    try:
        document = read_document(path)
    except ConfigError as exc:
        say(f"boot sweep {path}: {exc}")
        return
    try:
        state, _ = sweeps.submit(document, None)
    except SubmitError as exc:
        say(f"boot sweep {path}: refused: {exc.detail}")
        return
    say(f"boot sweep {path}: {state.id}")


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    await stop.wait()
