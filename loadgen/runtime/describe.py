"""`loadgen dataset describe`: a workload's count and token lengths, printed and plotted."""

from __future__ import annotations

from pathlib import Path

import orjson

from loadgen.config import WorkloadConfig
from loadgen.report.lengths_plot import plot_lengths
from loadgen.runtime.workload import build_workload, token_counter, workload_rng
from loadgen.workloads.describe import describe, describe_text, token_lengths


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
    workload = build_workload(spec, "completions", counter)
    specs = workload.specs(num_requests, workload_rng(seed, 0))
    summary = describe(specs, counter)
    if plot is not None:
        inputs, outputs = token_lengths(specs, counter)
        plot_lengths(inputs, outputs, plot, f"{workload.name}: {len(specs)} requests")
    if as_json:
        return orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n"
    return describe_text(summary)
