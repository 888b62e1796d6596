"""What the client ceiling prints: the rung table, the verdict lines, the machine it ran on."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from time import perf_counter_ns
from typing import Any

import aiohttp

from benchmarks.ceiling_ladder import Rung, ceiling, never_failed
from benchmarks.stream_server import StreamShape

_SHORT_LATENESS_AIM_MS = 1.0
_TARGET_RPS = 600.0
_TARGET_RATIO = 0.7
_VERDICTS = {True: "MET", False: "NOT MET", None: "undecided (a ladder never failed)"}

HEADER = (
    f"{'client':<8} {'tokens':>6} {'target':>7} {'achieved':>8} {'cv':>6} {'late p50':>8} "
    f"{'late p99':>8} {'late max':>8} {'completed':>11} {'tok/s':>8} {'cli cpu':>7} "
    f"{'srv cpu':>7} {'preempt':>7}  result"
)


def shape_title(tokens: int, shape: StreamShape) -> str:
    """The heading of one stream shape's table."""
    return f"{tokens}-token streams in {shape.writes} writes {shape.gap_ms:g} ms apart"


def format_row(rung: Rung) -> str:
    """One table row (lateness in ms, CPU in % of one core)."""
    verdict = "pass" if rung.passed else "FAIL " + ",".join(rung.failures)
    if rung.errors:
        verdict += " " + " ".join(f"{kind}={count}" for kind, count in rung.errors.items())
    if rung.attempt > 1:
        verdict += f" (try {rung.attempt})"
    return (
        f"{rung.client:<8} {rung.tokens:>6} {rung.target_rps:>7.0f} {rung.achieved_rps:>8.1f} "
        f"{rung.send_gap_cv:>6.3f} {rung.lateness_p50_ms:>8.3f} {rung.lateness_p99_ms:>8.3f} "
        f"{rung.lateness_max_ms:>8.2f} {f'{rung.completed}/{rung.requests}':>11} "
        f"{rung.token_throughput_tps:>8.0f} {rung.client_cpu:>7.0%} {rung.server_cpu:>7.0%} "
        f"{rung.preemptions:>7}  "
        f"{verdict}"
    )


def summary_of(rungs: Sequence[Rung], tokens: int, shape: StreamShape) -> dict[str, Any]:
    """One shape's ceilings (req/s), their ratio, and whether the targets were met."""
    ours, bare = ceiling(rungs, "loadgen"), ceiling(rungs, "bare")
    ours_open, bare_open = never_failed(rungs, "loadgen"), never_failed(rungs, "bare")
    ratio = ours / bare if ours and bare else None
    met: bool | None = bool(ours and ours >= _TARGET_RPS and ratio and ratio >= _TARGET_RATIO)
    if ours_open or bare_open:
        met = None  # a ceiling is only a lower bound: the ladder must go higher to decide
    return {
        "tokens": tokens,
        "writes": shape.writes,
        "gap_ms": shape.gap_ms,
        "loadgen_ceiling_rps": ours,
        "loadgen_ceiling_tokens_per_s": ours * tokens if ours else None,
        "loadgen_lower_bound": ours_open,
        "bare_ceiling_rps": bare,
        "bare_lower_bound": bare_open,
        "ratio": ratio,
        "target_rps": _TARGET_RPS,
        "target_ratio": _TARGET_RATIO,
        "target_met": met,
    }


def summary_line(summary: dict[str, Any]) -> str:
    """One shape's one-line verdict."""

    def rate(client: str) -> str:
        value = summary[f"{client}_ceiling_rps"]
        if value is None:
            return "none passed"
        at_least = ">= " if summary[f"{client}_lower_bound"] else ""
        return f"{at_least}{value:.0f} req/s"

    ratio = summary["ratio"]
    return (
        f"{summary['tokens']}-token streams in {summary['writes']} writes: "
        f"loadgen {rate('loadgen')}, bare {rate('bare')}, "
        f"ratio {'n/a' if ratio is None else f'{ratio:.2f}'}"
        f"; target >= {_TARGET_RPS:.0f} req/s and >= {_TARGET_RATIO}: "
        f"{_VERDICTS[summary['target_met']]}"
    )


def short_lines(rungs: Sequence[Rung]) -> list[str]:
    """Pacer lateness of short requests, against the 1 ms aim."""
    return [
        f"short {r.tokens}-token requests at {r.target_rps:.0f} req/s: lateness p50 "
        f"{r.lateness_p50_ms:.3f} ms, p99 {r.lateness_p99_ms:.3f} ms "
        f"(aim < {_SHORT_LATENESS_AIM_MS:g} ms: "
        f"{'yes' if r.lateness_p99_ms < _SHORT_LATENESS_AIM_MS else 'no'}), cv "
        f"{r.send_gap_cv:.3f}, on schedule: {'yes' if r.passed else 'no'}"
        for r in rungs
    ]


def python_speed_ms() -> float:
    """Best of 7 timings of `sum(range(10**6))` (ms): tells a slow machine from a slow client."""
    timings = []
    for _ in range(7):
        start = perf_counter_ns()
        sum(range(1_000_000))
        timings.append((perf_counter_ns() - start) / 1e6)
    return min(timings)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as info:
            model = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                model,
            )
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "load_average": os.getloadavg(),
        "python_speed_ms": python_speed_ms(),
    }
