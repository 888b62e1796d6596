"""Serve `/metrics` for the whole run, and for a while after it, so the last scrape sees the end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from loadgen.config import MetricsEndpoint
from loadgen.export.prometheus import PrometheusExporter

# How often the rolling gauges (dispatch lag, achieved rate, event-loop lag) are refreshed (s).
_TICK_S = 0.5


@contextlib.asynccontextmanager
async def serving_metrics(
    registry: CollectorRegistry, exporter: PrometheusExporter, endpoint: MetricsEndpoint
) -> AsyncIterator[int]:
    """Serve `registry` at http://host:port/metrics while inside; yields the bound port."""
    app = web.Application()
    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, endpoint.host, endpoint.port).start()
        ticker = asyncio.create_task(_tick(exporter))
        try:
            yield int(runner.addresses[0][1])
            exporter.refresh()
            await asyncio.sleep(endpoint.linger_s)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
    finally:
        await runner.cleanup()


async def _tick(exporter: PrometheusExporter) -> None:
    """Refresh the rolling gauges and measure how late the loop wakes a timer."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + _TICK_S
        await asyncio.sleep(_TICK_S)
        exporter.set_loop_lag(max(loop.time() - due, 0.0))
        exporter.refresh()
