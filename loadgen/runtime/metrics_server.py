"""A run's live metrics: one registry for all its targets, served on `/metrics` and/or pushed.

`/metrics` stays up for the whole run, and for a while after it, so the last scrape sees the end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from loadgen.config import MetricsConfig
from loadgen.core.events import RunObserver
from loadgen.export.prometheus import PrometheusExporter
from loadgen.export.push import PushOnStepEnd
from loadgen.runtime.runner import StopSignal

# How often the rolling gauges (dispatch lag, achieved rate, event-loop lag) are refreshed (s).
_TICK_S = 0.5


@contextlib.asynccontextmanager
async def live_metrics(
    config: MetricsConfig, run_id: str, user: RunObserver, stop: StopSignal
) -> AsyncIterator[list[RunObserver]]:
    """The observers that export the run (none when neither served nor pushed), served inside,
    and for `config.linger_s` after, unless a stop was requested (SIGTERM, Ctrl-C).

    `user` hears where `/metrics` is, and about pushes that fail.
    """
    if config.port is None and config.pushgateway is None:
        yield []
        return
    registry = CollectorRegistry()
    exporter = PrometheusExporter(registry, run_id)
    observers: list[RunObserver] = [exporter]
    if config.pushgateway is not None:
        # After the exporter, so each push carries the step that just ended.
        observers.append(PushOnStepEnd(registry, config.pushgateway, run_id, user.on_warning))
    if config.port is None:
        yield observers
        return
    async with _serving(registry, exporter, config, stop) as port:
        user.on_notice(f"metrics at http://{config.host}:{port}/metrics")
        yield observers


@contextlib.asynccontextmanager
async def _serving(
    registry: CollectorRegistry,
    exporter: PrometheusExporter,
    config: MetricsConfig,
    stop: StopSignal,
) -> AsyncIterator[int]:
    """Serve `registry` at http://host:port/metrics while inside; yields the bound port."""
    app = web.Application()
    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port).start()
        ticker = asyncio.create_task(tick(exporter))
        try:
            yield int(runner.addresses[0][1])
            exporter.refresh()
            # A stop asked for at any time (Ctrl-C, docker stop's SIGTERM) means: no lingering.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.stop_sending.wait(), config.linger_s)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
    finally:
        await runner.cleanup()


async def tick(exporter: PrometheusExporter) -> None:
    """Refresh the rolling gauges and measure how late the loop wakes a timer."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + _TICK_S
        await asyncio.sleep(_TICK_S)
        exporter.set_loop_lag(max(loop.time() - due, 0.0))
        exporter.refresh()
