"""Cluster costs: a shard's ceiling under the master against one process's, and the merge cost.

1. **Shard ceiling.** The stream server (benchmarks/stream_server.py) runs pinned to core 1. Two
   clients climb the same ladder of Poisson rates, interleaved rate by rate
   (benchmarks/ceiling_ladder.py), each on core 0:
   - `single`: loadgen's own client in this process (OpenAIClient + StepRunner + pacer);
   - `shard`: one engine shard under a master (`sweep --processes 1`'s machinery: this process
     as the master, Locust's relays, the shard child). The shard is pinned to core 0; the master
     and the relays share core 1 with the server.
   A step passes when it keeps its schedule (lateness p99 < 5 ms, send-gap CV 0.95-1.05) and
   every request completes. The ratio of the two ceilings is the cost of running as a shard.
2. **Merge cost.** Records of 256-token streams, packed as shards send them, then unpacked,
   merged by schedule and summed up as the master does, on one core: records per second.

Run from the repository root (docs/performance.md holds the figures); about 6 minutes on a
2-core machine, `--quick` about 2:

    .venv/bin/python -m benchmarks.cluster_ceiling [--quick] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.ceiling_clients import StepFn, StepPlan, loadgen_client, process_cpu_s
from benchmarks.ceiling_ladder import Bench, Ladder, StepSettings, ceiling, climb
from benchmarks.ceiling_report import HEADER, format_row, machine
from benchmarks.stream_server import PROMPT_TOKENS, StreamShape, stream_server
from loadgen.cluster.executor import ClusterDistributor
from loadgen.cluster.master import Cluster, started
from loadgen.cluster.wire import pack_records, unpack_records
from loadgen.config import RunConfig
from loadgen.core.events import RunObserver, StepProgress
from loadgen.core.records import RequestRecord, StepSummary
from loadgen.core.shards import Shard, merge_records
from loadgen.core.stats import summarize_step
from loadgen.runtime.loop import run_async
from loadgen.runtime.run import Distributor, run_config

CLIENT_CORE, SERVER_CORE = 0, 1
_TOKENS = 256


class _Records(RunObserver):
    """Keeps the records of the last step."""

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    def on_step_end(
        self, progress: StepProgress, summary: StepSummary, records: list[RequestRecord]
    ) -> None:
        """Keep them."""
        self.records = records


def step_config(base_url: str, plan: StepPlan) -> RunConfig:
    """A one-step run like the ladder's: `plan.tokens`-token streams at `plan.rate_rps`."""
    return RunConfig.model_validate(
        {
            "target": {"base_url": base_url, "model": "m", "ignore_eos": True},
            "load": {
                "rates_rps": [plan.rate_rps],
                "num_requests": len(plan.offsets_s),
                "trim": plan.trim,
                "seed": 1,
            },
            "workload": {
                "dataset": "synthetic",
                "input_len": PROMPT_TOKENS,
                "output_len": plan.tokens,
            },
            "cluster": {"processes": 1},
        }
    )


def pin(pid: int, core: int) -> None:
    """Keep process `pid` on `core`."""
    os.sched_setaffinity(pid, {core})


@contextlib.asynccontextmanager
async def shard_client(base_url: str, cpu: dict[str, list[float]]) -> AsyncIterator[StepFn]:
    """Steps sent by one shard under a master; the shard on CLIENT_CORE, the rest beside the
    server. `cpu` gets each step's CPU (fraction of a core) of the shard and of the master."""
    placeholder = step_config(base_url, StepPlan(1.0, _TOKENS, 0, np.zeros(1), 0))
    async with started(placeholder, RunObserver()) as cluster:
        worker = cluster.live[0]
        pin(worker.pid, CLIENT_CORE)
        for pid in (worker.relay_pid, _relay_pid(cluster)):
            pin(pid, SERVER_CORE)

        async def step(plan: StepPlan) -> list[RequestRecord]:
            pin(0, SERVER_CORE)
            config = step_config(base_url, plan)
            cluster.use(config)
            kept = _Records()

            @contextlib.asynccontextmanager
            async def distributing(hub: RunObserver) -> AsyncIterator[Distributor]:
                yield ClusterDistributor(cluster)

            pids = {
                "shard": worker.pid,
                "worker relay": worker.relay_pid,
                "master relay": _relay_pid(cluster),
            }
            before = {name: process_cpu_s(pid) for name, pid in pids.items()}
            master0, wall0 = time.process_time(), time.time()
            await run_config(config, kept, distributing=distributing, handle_signals=False)
            wall_s = time.time() - wall0
            for name, pid in pids.items():
                cpu.setdefault(name, []).append((process_cpu_s(pid) - before[name]) / wall_s)
            cpu["master"].append((time.process_time() - master0) / wall_s)
            cpu["records_per_s"].append(len(kept.records) / wall_s)
            return kept.records

        yield step


def _relay_pid(cluster: Cluster) -> int:
    relay = cluster._relay  # the benchmark pins it; nothing else needs its pid
    assert relay is not None
    return relay.pid


@contextlib.asynccontextmanager
async def single_client(base_url: str) -> AsyncIterator[StepFn]:
    """loadgen's client in this process, on CLIENT_CORE."""
    async with loadgen_client(base_url) as inner:

        async def step(plan: StepPlan) -> list[RequestRecord]:
            pin(0, CLIENT_CORE)
            return await inner(plan)

        yield step


async def ceilings(args: argparse.Namespace) -> dict[str, Any]:
    """Both clients up the same ladder; every rung, the ceilings and their ratio."""
    settings = StepSettings(requests=args.requests, trim=args.requests // 10, seed=1, retries=1)
    ladder = Ladder(tuple(args.rates), args.resolution, _TOKENS)
    cpu: dict[str, list[float]] = {"master": [], "records_per_s": []}
    with stream_server(StreamShape(args.writes, args.write_gap_ms), SERVER_CORE) as server:
        bench = Bench(settings, server.pid, lambda rung: print(format_row(rung), flush=True))
        print(HEADER, flush=True)
        async with (
            single_client(server.base_url) as single,
            shard_client(server.base_url, cpu) as shard,
        ):
            rungs = await climb({"single": single, "shard": shard}, bench, ladder)
    single_rps, shard_rps = ceiling(rungs, "single"), ceiling(rungs, "shard")
    ratio = shard_rps / single_rps if single_rps and shard_rps else None
    return {
        "rungs": [asdict(rung) for rung in rungs],
        "single_rps": single_rps,
        "shard_rps": shard_rps,
        "ratio": ratio,
        "cpu": cpu,
    }


def merge_cost(count: int, shards: int) -> dict[str, float]:
    """Records/s one core unpacks and merges (and sums up) of `count` 256-token records."""
    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(shards):
        times = np.sort(rng.uniform(0, 60e9, count // shards)).astype(np.int64)
        records = [_record(local, int(t_ns)) for local, t_ns in enumerate(times.tolist())]
        blobs.append(pack_records(records))
    t0 = time.process_time()
    unpacked = [
        record
        for index, blob in enumerate(blobs)
        for record in unpack_records(blob, Shard(index, shards))
    ]
    merged = merge_records(unpacked)
    t1 = time.process_time()
    summarize_step(
        merged,
        step=0,
        target_rate_rps=100.0,
        num_sent=len(merged),
        trim=100,
        slos={},
        interrupted=False,
        duration_s=60.0,
    )
    t2 = time.process_time()
    return {
        "records": len(merged),
        "merge_rps": len(merged) / (t1 - t0),
        "merge_and_summary_rps": len(merged) / (t2 - t0),
    }


def _record(index: int, t_ns: int) -> RequestRecord:
    """A finished 256-token stream sent at `t_ns`, a token every 10 ms."""
    from array import array

    chunks = array("q", range(t_ns + 20_000_000, t_ns + 20_000_000 + 256 * 10_000_000, 10_000_000))
    return RequestRecord(
        index=index,
        t_sched_ns=t_ns,
        t_send_ns=t_ns + 100_000,
        slot_wait_ns=0,
        t_done_ns=chunks[-1] + 1000,
        t_first_ns=chunks[0],
        t_last_ns=chunks[-1],
        tokens_in=PROMPT_TOKENS,
        tokens_out=256,
        tokens_source="server",
        chunk_times_ns=chunks,
        status=200,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (`--help` lists it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and rungs")
    parser.add_argument("--writes", type=int, default=64, help="socket writes per response")
    parser.add_argument("--write-gap-ms", type=float, default=2.0, help="ms between writes")
    parser.add_argument("--json-out", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    args.requests = 1500 if args.quick else 3000
    args.rates = (300, 500, 700, 900) if args.quick else (300, 400, 500, 600, 700, 800, 900)
    args.resolution = 100 if args.quick else 50
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print, write the JSON; the exit code."""
    args = parse_args(argv)
    info = machine()
    print(f"machine: {info}", flush=True)
    result = run_async(ceilings(args))
    merge = merge_cost(60_000, 8)
    cpu = result["cpu"]
    print(
        f"single-process ceiling: {result['single_rps']} req/s; one shard under the master: "
        f"{result['shard_rps']} req/s; ratio {result['ratio']}"
    )
    for name, shares in cpu.items():
        if name != "records_per_s":
            print(f"{name} CPU over a step, max: {max(shares):.3f} of a core")
    print(
        f"merge: {merge['merge_rps']:,.0f} records/s unpacked and merged on one core; "
        f"{merge['merge_and_summary_rps']:,.0f} records/s with the step summary"
    )
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        document = {"machine": info, **result, "merge": merge}
        args.json_out.write_text(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
