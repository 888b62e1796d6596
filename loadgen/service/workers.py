"""Where the service's sweeps are sent from: the workers that joined it, or this host.

The service is a Locust master for as long as it runs (with `workers_port`): `loadgen worker`s
join it at any time, proving they hold one of its API tokens, and every sweep that starts while
any is joined is sent by them. Without workers a sweep runs here: in the service's process, or
in `processes` local shard processes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from loadgen.cluster.executor import ClusterDistributor
from loadgen.cluster.master import Cluster
from loadgen.cluster.run import check_split, run_anywhere
from loadgen.config import RunConfig
from loadgen.config.cluster import ClusterConfig
from loadgen.config.service import ServiceConfig
from loadgen.core.events import RunObserver, RunOutcome
from loadgen.runtime.run import Distributor, run_config
from loadgen.runtime.runner import StopSignal
from loadgen.service.security import Tokens


class _Say(RunObserver):
    """The cluster's notices and warnings, told as the service tells anything."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say

    def on_notice(self, message: str) -> None:
        """A worker joined."""
        self._say(message)

    def on_warning(self, message: str) -> None:
        """A worker was refused."""
        self._say(f"warning: {message}")


class Senders:
    """The service's workers (when it takes any) and how a sweep is sent."""

    def __init__(self, settings: ServiceConfig, tokens: Tokens, say: Callable[[str], None]):
        self._settings, self._tokens, self._say = settings, tokens, say
        self._cluster: Cluster | None = None

    async def start(self, host: str) -> None:
        """Listen for workers on `host` (when the settings ask for workers)."""
        port = self._settings.workers_port
        if port is None:
            return
        admits = self._tokens.admits_digest if self._tokens else None
        # No sweep yet (a RunConfig needs rates): each sweep gives the workers its own (use()).
        self._cluster = Cluster(RunConfig.model_construct(), _Say(self._say), admits)
        await self._cluster.start(host, port)
        self._say(f"workers join on port {self._cluster.port} (loadgen worker --master-port)")

    async def close(self) -> None:
        """Let the workers go and end the relay."""
        if self._cluster is not None:
            await self._cluster.close()

    def workers(self) -> list[dict[str, Any]]:
        """Every worker that joined, in order, and why it was lost (null: it is live)."""
        joined = self._cluster.workers if self._cluster is not None else []
        return [{"id": w.id, "host": w.host, "pid": w.pid, "lost": w.lost} for w in joined]

    async def run(self, config: RunConfig, observer: RunObserver, stop: StopSignal) -> RunOutcome:
        """Send the sweep `config`: from the live workers, or from this host."""
        cluster = self._cluster
        if cluster is not None and cluster.live:
            return await _on_workers(cluster, config, observer, stop)
        if self._settings.processes is not None:
            local = ClusterConfig(processes=self._settings.processes)
            config = config.model_copy(update={"cluster": local})
        return await run_anywhere(config, observer, stop=stop)


async def _on_workers(
    cluster: Cluster, config: RunConfig, observer: RunObserver, stop: StopSignal
) -> RunOutcome:
    """Run `config` with its load split among the workers live now (ConfigError when it cannot
    give each of them a request)."""
    shards = ClusterConfig(expect_workers=len(cluster.live))
    config = config.model_copy(update={"cluster": shards})
    check_split(config)
    while not cluster.inbox.empty():  # what workers said between sweeps is of no step
        cluster.inbox.get_nowait()

    @contextlib.asynccontextmanager
    async def distributing(hub: RunObserver) -> AsyncIterator[Distributor]:
        cluster.use(config)
        yield ClusterDistributor(cluster)

    return await run_config(
        config, observer, stop=stop, handle_signals=False, distributing=distributing
    )
