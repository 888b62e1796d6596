"""`loadgen dataset describe`: a workload's count and token lengths, printed and plotted."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson

from loadgen.config import WorkloadConfig
from loadgen.core.records import RequestSpec
from loadgen.report.lengths_plot import plot_lengths
from loadgen.runtime.workload import build_sessions, build_workload, token_counter, workload_rng
from loadgen.workloads.describe import describe, describe_text, token_lengths
from loadgen.workloads.tokenizers import ExactCounter
from loadgen.workloads.tokens import EstimateCounter


def _first_step(
    spec: WorkloadConfig, counter: ExactCounter | EstimateCounter, count: int, seed: int
) -> tuple[Sequence[RequestSpec], str]:
    """The first step's requests and the workload's name: every turn of `count` sessions, when
    the workload sends sessions, else `count` requests."""
    rng = workload_rng(seed, 0)
    if spec.sessions:
        sessions = build_sessions(spec, counter)
        drawn = sessions.sessions(count, rng)
        turns = [session.request(k) for session in drawn for k in range(len(session.turns))]
        return turns, f"{sessions.name} (every turn of {count} sessions)"
    workload = build_workload(spec, "completions", counter)
    return workload.specs(count, rng), workload.name


def describe_workload(
    spec: WorkloadConfig,
    tokenizer: str | None,
    num_requests: int,
    seed: int,
    plot: Path | None,
    *,
    as_json: bool,
) -> str:
    """The statistics of the first step's requests as text (or JSON); draws them if `plot`."""
    counter = token_counter(tokenizer)
    specs, name = _first_step(spec, counter, num_requests, seed)
    summary = describe(specs, counter)
    if plot is not None:
        inputs, outputs = token_lengths(specs, counter)
        plot_lengths(inputs, outputs, plot, f"{name}: {len(specs)} requests")
    if as_json:
        return orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n"
    return describe_text(summary)
