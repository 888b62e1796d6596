"""Scale-out settings: shard processes on this host, a master and its workers (Locust)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from loadgen.config.types import Choice, Opt, Section

WORKER_LOSS = ("stop", "continue")
# Locust's own default port for its master.
LOCUST_PORT = 5557

_WAIT = "how long a master waits for its workers, and a worker for its master (s)"


class ClusterConfig(Section):
    """One load from many processes: `--processes N` here, or `loadgen master` and workers."""

    processes: int | None = Field(
        None,
        ge=1,
        description="send from N shard processes on this host (a Locust master and N workers "
        "on loopback); unset: from this process alone",
    )
    expect_workers: int = Field(
        1, ge=1, description="loadgen master: workers to wait for before the first step"
    )
    worker_timeout_s: Annotated[float, Opt(name="worker_timeout", metavar="S")] = Field(
        60.0, gt=0, allow_inf_nan=False, description=_WAIT
    )
    master_bind_host: str = Field(
        "*", description="loadgen master: the address workers connect to (*: every address)"
    )
    master_bind_port: int = Field(
        LOCUST_PORT, ge=0, le=65535, description="loadgen master: the port workers connect to"
    )
    locust_web_port: Annotated[int | None, Opt(metavar="PORT")] = Field(
        None,
        ge=0,
        le=65535,
        description="serve Locust's web UI on PORT (0: any free port): live request counts and "
        "latencies; loadgen's results hold the exact figures",
    )
    locust_web_host: str = Field("127.0.0.1", description="address of Locust's web UI")
    on_worker_loss: Annotated[str, Choice(WORKER_LOSS, "worker-loss policy")] = Field(
        "stop",
        description="a worker lost mid-step makes that step invalid; then stop, or continue "
        "over the workers left",
    )


class WorkerConfig(Section):
    """`loadgen worker`: one engine shard that sends what its master plans."""

    master_host: str = Field("127.0.0.1", description="the master's host name or address")
    master_port: int = Field(LOCUST_PORT, ge=1, le=65535, description="the master's port")
    worker_timeout_s: Annotated[float, Opt(name="worker_timeout", metavar="S")] = Field(
        60.0, gt=0, allow_inf_nan=False, description=_WAIT
    )
