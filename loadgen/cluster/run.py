"""A run on a cluster: the same run as in one process, its steps sent by the cluster's shards."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from loadgen.cluster.executor import ClusterDistributor
from loadgen.cluster.master import started
from loadgen.config import ConfigError, RunConfig
from loadgen.core.events import RunObserver, RunOutcome
from loadgen.runtime.loop import run_async
from loadgen.runtime.run import Distributor, run_config
from loadgen.runtime.runner import StopSignal


def shard_count(config: RunConfig) -> int:
    """How many shards the run's load is split into."""
    return config.cluster.processes or config.cluster.expect_workers


def check_split(config: RunConfig) -> None:
    """ConfigError when a step's load cannot give every shard something to send."""
    shards, load = shard_count(config), config.load
    if config.workload.sessions:
        raise ConfigError(
            "--dataset: multi-turn sessions run in one process for now (no --processes, no "
            "master): a session's turns must come from the process that holds its history"
        )
    if load.duration_s is not None:
        least_rps = shards / load.duration_s
        for rate_rps in load.fixed_rates_rps:
            if rate_rps < least_rps:
                raise ConfigError(
                    f"--rates: {rate_rps:g} req/s over {shards} shards for {load.duration_s:g} s "
                    f"steps gives a shard {rate_rps * load.duration_s / shards:.2g} requests a "
                    f"step; every shard needs at least one, so the lowest rate is "
                    f"{least_rps:g} req/s ({shards} shards / {load.duration_s:g} s), or use "
                    f"fewer processes"
                )
    elif load.num_requests < shards:
        raise ConfigError(
            f"--num-requests: {load.num_requests} requests a step cannot be split over {shards} "
            f"shards (each needs at least one): use at least {shards}, or fewer processes"
        )


def run(
    config: RunConfig, observer: RunObserver | None = None, *, virtual: bool = False
) -> RunOutcome:
    """Run `config` to its end on a fresh event loop; its outcome.

    In this process (`virtual`: through the simulated engine in virtual time, no waiting), or,
    when `config.cluster.processes` is set, on that many shard processes of this host.
    """
    return run_async(run_anywhere(config, observer, virtual=virtual))


async def run_anywhere(
    config: RunConfig,
    observer: RunObserver | None = None,
    *,
    virtual: bool = False,
    master: bool = False,
    stop: StopSignal | None = None,
) -> RunOutcome:
    """`config` in this process, or on a cluster: `processes` local shards, or (`master`) the
    workers that join it. With `stop`, the caller stops it (no signal handlers are set)."""
    if master or config.cluster.processes is not None:
        return await run_on_cluster(config, observer or RunObserver(), stop)
    return await run_config(
        config, observer, virtual=virtual, stop=stop, handle_signals=stop is None
    )


async def run_on_cluster(
    config: RunConfig, observer: RunObserver, stop: StopSignal | None = None
) -> RunOutcome:
    """Run `config` with its steps sent by `--processes` local shards or the master's workers.

    ConfigError before anything starts when the load cannot be split; ClusterError when the
    workers do not come.
    """
    check_split(config)

    @contextlib.asynccontextmanager
    async def distributing(hub: RunObserver) -> AsyncIterator[Distributor]:
        async with started(config, hub) as cluster:
            yield ClusterDistributor(cluster)

    return await run_config(
        config, observer, stop=stop, handle_signals=stop is None, distributing=distributing
    )
