"""A run's live metrics: one registry for all its targets, served on `/metrics` and/or pushed.

`/metrics` stays up for the whole run, and for a while after it, so the last scrape sees the end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from loadgen.config import MetricsEndpoint
from loadgen.export.prometheus import PrometheusExporter, RunLabels
from loadgen.export.push import PushOnStepEnd
from loadgen.runtime.events import Observers, RunObserver

# How often the rolling gauges (dispatch lag, achieved rate, event-loop lag) are refreshed (s).
_TICK_S = 0.5


class LiveMetrics:
    """The registry every target of a run reports to; `watch` labels the next target's events."""

    def __init__(self, pushgateway: str | None, run_id: str) -> None:
        self.registry = CollectorRegistry()
        self._pushgateway = pushgateway
        self.run_id = run_id
        self._exporter: PrometheusExporter | None = None

    def watch(self, labels: RunLabels, observer: RunObserver) -> RunObserver:
        """`observer` joined by the exporter (labelled `labels`) and the pusher, if any."""
        if self._exporter is None:
            self._exporter = PrometheusExporter(self.registry, labels)
        else:
            self._exporter.start_run(labels)
        observers: list[RunObserver] = [observer, self._exporter]
        if self._pushgateway is not None:
            pusher = PushOnStepEnd(
                self.registry, self._pushgateway, self.run_id, observer.on_warning
            )
            observers.append(pusher)
        return Observers(*observers)

    def tick(self, loop_lag_s: float | None = None) -> None:
        """Refresh the rolling gauges, and record the event loop's wake-up delay (s) if given."""
        if self._exporter is None:
            return
        if loop_lag_s is not None:
            self._exporter.set_loop_lag(loop_lag_s)
        self._exporter.refresh()


@contextlib.asynccontextmanager
async def live_metrics(
    endpoint: MetricsEndpoint | None,
    pushgateway: str | None,
    run_id: str,
    on_serving: Callable[[str], None] | None = None,
) -> AsyncIterator[LiveMetrics | None]:
    """The run's LiveMetrics (None when neither served nor pushed), served while inside.

    `on_serving` gets the URL of `/metrics` once it is up.
    """
    if endpoint is None and pushgateway is None:
        yield None
        return
    metrics = LiveMetrics(pushgateway, run_id)
    if endpoint is None:
        yield metrics
        return
    async with serving_metrics(metrics, endpoint) as port:
        if on_serving is not None:
            on_serving(f"http://{endpoint.host}:{port}/metrics")
        yield metrics


@contextlib.asynccontextmanager
async def serving_metrics(metrics: LiveMetrics, endpoint: MetricsEndpoint) -> AsyncIterator[int]:
    """Serve `metrics` at http://host:port/metrics while inside; yields the bound port."""
    app = web.Application()
    app.router.add_get("/metrics", make_aiohttp_handler(metrics.registry))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, endpoint.host, endpoint.port).start()
        ticker = asyncio.create_task(_tick(metrics))
        try:
            yield int(runner.addresses[0][1])
            metrics.tick()
            await asyncio.sleep(endpoint.linger_s)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
    finally:
        await runner.cleanup()


async def _tick(metrics: LiveMetrics) -> None:
    """Refresh the rolling gauges and measure how late the loop wakes a timer."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + _TICK_S
        await asyncio.sleep(_TICK_S)
        metrics.tick(max(loop.time() - due, 0.0))
