"""Client ceiling: the highest Poisson rate loadgen's client sustains on schedule, on one core.

A minimal streaming server (benchmarks/stream_server.py) runs in a child process pinned to one
core; the clients (benchmarks/ceiling_clients.py) run in this process, pinned to another:
`loadgen` (OpenAIClient + StepRunner + the precise pacer) and `bare` (the same pacer and
schedule, but a bare aiohttp read loop: the aiohttp ceiling on this machine).

Each stream shape (`--writes`, default 8 and 64 socket writes per response) gets its own
server and the full search (benchmarks/ceiling_ladder.py): both clients climb a ladder of
rates, interleaved rate by rate so both see the same machine, until a step is no longer on
schedule; a failed step is re-run (`--retries`); then each bisects to 50 req/s between its last
pass and its first failure. The writes go `--write-gap-ms` apart; without it, 1 ms for shapes of
up to 8 writes and 2 ms above (so 8 writes span 7 ms, 64 writes 126 ms). The short-request
lateness steps (16 tokens at 200 and 1000 req/s) run once, with the first shape.

Run from the repository root (docs/performance.md holds the figures); a default run takes
about 5 minutes on a 2-core machine, `--quick` about 45 s:

    .venv/bin/python -m benchmarks.client_ceiling [--quick] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.ceiling_clients import CLIENTS, StepFn, loadgen_client
from benchmarks.ceiling_ladder import (
    Bench,
    Ladder,
    Rung,
    StepSettings,
    climb,
    run_rung,
    schedule_cv,
    step_offsets_s,
)
from benchmarks.ceiling_report import (
    HEADER,
    format_row,
    machine,
    shape_title,
    short_lines,
    summary_line,
    summary_of,
)
from benchmarks.stream_server import StreamShape, stream_server
from loadgen.runtime.loop import run_async

# Coarse steps: the bisection refines between the last passing and the first failing rate.
_FULL_LADDER: tuple[float, ...] = (
    *(200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0, 1000.0, 1200.0, 1400.0, 1600.0),
    *(2000.0, 2400.0, 2800.0, 3200.0, 4000.0),
)
_QUICK_LADDER = (200.0, 400.0)


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything the run does, from the command line."""

    clients: tuple[str, ...]
    ladder: Ladder
    short_rates: tuple[float, ...]
    short_tokens: int
    profile_out: Path | None
    profile_rate: float


@dataclass(frozen=True, slots=True)
class Setup:
    """Per-step settings, stream shapes and placement, from the command line."""

    settings: StepSettings
    shapes: tuple[StreamShape, ...]
    client_core: int | None
    server_core: int | None


@dataclass(frozen=True, slots=True)
class ShapeResult:
    """One stream shape's ladder rungs, and the short-request rungs (first shape only)."""

    shape: StreamShape
    ladder: list[Rung]
    short: list[Rung]


def print_rung(rung: Rung) -> None:
    """Print a finished rung as a table row, at once (the table is live)."""
    print(format_row(rung), flush=True)


async def measure(
    bench: Bench, plan: Plan, base_url: str, first: bool
) -> tuple[list[Rung], list[Rung]]:
    """Every ladder; with `first`, then the short-request steps and any profiled step."""
    async with AsyncExitStack() as stack:
        steps = {
            client: await stack.enter_async_context(CLIENTS[client](base_url))
            for client in plan.clients
        }
        ladder = await climb(steps, bench, plan.ladder)
    short: list[Rung] = []
    if not first:
        return ladder, short
    async with loadgen_client(base_url) as step:
        for rate in plan.short_rates:
            rung = await run_rung(step, "loadgen", bench, rate, plan.short_tokens, 1)
            bench.on_rung(rung)
            short.append(rung)
        if plan.profile_out is not None:
            await profile_step(step, bench, plan, plan.profile_out)
    return ladder, short


async def profile_step(step: StepFn, bench: Bench, plan: Plan, out: Path) -> None:
    """One loadgen step under cProfile; stats to `out`, the top functions to stdout."""
    profiler = cProfile.Profile()
    profiler.enable()
    rung = await run_rung(step, "loadgen", bench, plan.profile_rate, plan.ladder.tokens, 1)
    profiler.disable()
    print(format_row(rung) + "  (under cProfile)")
    profiler.dump_stats(out)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def run_shape(setup: Setup, plan: Plan, shape: StreamShape, first: bool) -> ShapeResult:
    """Start a server streaming in `shape` and measure against it."""
    with stream_server(shape, setup.server_core) as server:
        bench = Bench(setup.settings, server.pid, print_rung)
        print(f"\n{shape_title(plan.ladder.tokens, shape)}\n{HEADER}", flush=True)
        ladder, short = run_async(measure(bench, plan, server.base_url, first))
    return ShapeResult(shape, ladder, short)


def pin(core: int) -> int | None:
    """Pin this process to `core`; returns it, or None when the core is not available."""
    if core not in os.sched_getaffinity(0):
        return None
    os.sched_setaffinity(0, {core})
    return core


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (`--help` lists it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="smoke run: two rates, 1000 requests, no bisection")
    add("--rates", help="comma-separated ladder (req/s) instead of 200,300,...,4000")
    add("--tokens", type=int, default=256, help="output tokens per ladder request (256)")
    add("--requests", type=int, help="requests per step (3000; --quick: 1000)")
    add("--trim", type=int, help="requests trimmed at each end of a step (requests / 10)")
    add("--resolution", type=float, default=50.0, help="bisection resolution, req/s (50)")
    add("--retries", type=int, default=1, help="re-runs of a failed rung (1)")
    add("--clients", default="loadgen,bare", help="which ladders to run (loadgen,bare)")
    add("--short-rates", default="200,1000", help="rates of the short-request steps")
    add("--short-tokens", type=int, default=16, help="tokens of a short request (16)")
    add("--writes", default="8,64", help="socket writes per response, one shape each (8,64)")
    add("--write-gap-ms", type=float, help="ms between writes (1 up to 8 writes, else 2)")
    add("--client-core", type=int, default=0, help="CPU core of this (client) process (0)")
    add("--server-core", type=int, default=1, help="CPU core of the server process (1)")
    add("--seed", type=int, default=1, help="seed of the arrival schedule (1)")
    add("--json-out", type=Path, help="also write every figure as JSON here")
    add("--profile-out", type=Path, help="profile one loadgen step; cProfile stats here")
    add("--profile-rate", type=float, default=500.0, help="rate of the profiled step (500)")
    return parser.parse_args(argv)


def rates_of(text: str) -> tuple[float, ...]:
    """Comma-separated rates (req/s), each a finite number > 0."""
    try:
        rates = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise SystemExit(f"rates must be comma-separated numbers, got {text!r}") from None
    if not all(0 < rate < float("inf") for rate in rates):
        raise SystemExit(f"rates must be finite and > 0 req/s, got {text!r}")
    return rates


def shapes_of(writes_text: str, gap_ms: float | None) -> tuple[StreamShape, ...]:
    """One shape per comma-separated write count, `gap_ms` apart (else the default gap)."""
    try:
        writes = tuple(int(part) for part in writes_text.split(",") if part.strip())
    except ValueError:
        raise SystemExit(
            f"--writes must be comma-separated integers, got {writes_text!r}"
        ) from None
    if not writes or min(writes) < 1:
        raise SystemExit(f"--writes must list integers >= 1, got {writes_text!r}")
    if gap_ms is not None and not 0 <= gap_ms < float("inf"):
        raise SystemExit(f"--write-gap-ms must be finite and >= 0, got {gap_ms}")
    return tuple(StreamShape(n, default_gap_ms(n) if gap_ms is None else gap_ms) for n in writes)


def default_gap_ms(writes: int) -> float:
    """The write gap (ms) of a shape without --write-gap-ms: 1 up to 8 writes, else 2."""
    # 8 writes 1 ms apart span 7 ms; 64 writes 2 ms apart span 126 ms, a slow decode's pace.
    return 1.0 if writes <= 8 else 2.0


def plan_of(args: argparse.Namespace) -> Plan:
    """What to run, from `args`."""
    default = _QUICK_LADDER if args.quick else _FULL_LADDER
    rates = rates_of(args.rates) if args.rates else default
    clients = tuple(name.strip() for name in args.clients.split(",") if name.strip())
    unknown = set(clients) - set(CLIENTS)
    if unknown:
        raise SystemExit(f"unknown client(s) {sorted(unknown)}; known: {sorted(CLIENTS)}")
    resolution = float("inf") if args.quick else args.resolution
    return Plan(
        clients=clients,
        ladder=Ladder(rates, resolution, args.tokens),
        short_rates=rates_of(args.short_rates),
        short_tokens=args.short_tokens,
        profile_out=args.profile_out,
        profile_rate=args.profile_rate,
    )


def setup_of(args: argparse.Namespace) -> Setup:
    """Settings from `args`; pins this process to the client core."""
    requests = args.requests or (1000 if args.quick else 3000)
    trim = requests // 10 if args.trim is None else args.trim
    if trim < 0 or requests <= 2 * trim:
        raise SystemExit(f"--requests ({requests}) must exceed twice --trim ({trim}), trim >= 0")
    if min(args.tokens, args.short_tokens) < 1 or args.retries < 0:
        raise SystemExit("--tokens and --short-tokens must be >= 1, --retries >= 0")
    shapes = shapes_of(args.writes, args.write_gap_ms)
    available = os.sched_getaffinity(0)
    client_core = pin(args.client_core)
    return Setup(
        settings=StepSettings(requests, trim, args.seed, args.retries),
        shapes=shapes,
        client_core=client_core,
        server_core=args.server_core if args.server_core in available - {client_core} else None,
    )


def scheduled_cv(settings: StepSettings) -> float:
    """The scheduled gap CV of the trimmed requests (the same at every rate: one scaled draw)."""
    return schedule_cv(step_offsets_s(settings, 1.0), settings.trim)


def preamble(info: dict[str, Any], setup: Setup) -> str:
    """What runs where, printed before the tables."""
    settings = setup.settings
    shapes = ", ".join(f"{s.writes} writes {s.gap_ms:g} ms apart" for s in setup.shapes)
    return (
        f"{info['cpus']} CPUs ({info['cpu_model']}), load average "
        f"{info['load_average'][0]:.2f}, sum(range(10**6)) in {info['python_speed_ms']:.1f} ms; "
        f"client on core {setup.client_core}, server on core {setup.server_core}; "
        f"stream shapes: {shapes}\n{settings.requests} requests per step, trim "
        f"{settings.trim}, seed {settings.seed} (scheduled gap CV {scheduled_cv(settings):.3f})"
        f"; lateness in ms, cpu in % of one core, preempt = involuntary context switches"
    )


def document(
    info: dict[str, Any],
    setup: Setup,
    results: Sequence[ShapeResult],
    summaries: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """Every figure of the run, for --json-out."""
    first = results[0]
    return {
        "machine": info | {"load_average_end": os.getloadavg()},
        "settings": asdict(setup.settings)
        | {
            "scheduled_gap_cv": scheduled_cv(setup.settings),
            "client_core": setup.client_core,
            "server_core": setup.server_core,
        },
        "shapes": [
            asdict(r.shape) | {"summary": summary, "ladder": [asdict(rung) for rung in r.ladder]}
            for r, summary in zip(results, summaries, strict=True)
        ],
        "short": asdict(first.shape) | {"rungs": [asdict(rung) for rung in first.short]},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every stream shape, print the verdicts, write the JSON; returns the exit code."""
    args = parse_args(argv)
    plan = plan_of(args)
    setup = setup_of(args)
    info = machine()
    print(preamble(info, setup))
    results = [run_shape(setup, plan, shape, i == 0) for i, shape in enumerate(setup.shapes)]
    summaries = [summary_of(r.ladder, plan.ladder.tokens, r.shape) for r in results]
    print("\n".join(["", *short_lines(results[0].short), *map(summary_line, summaries)]))
    if args.json_out:
        text = json.dumps(document(info, setup, results, summaries), indent=2)
        args.json_out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
