"""Tests for loadgen.runtime.plan: each step's requests and send times, from the config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loadgen.config import RunConfig
from loadgen.core.sweep import StepOrder
from loadgen.runtime.plan import plan_target, plot_title
from loadgen.workloads import DatasetError


def config(**load: object) -> RunConfig:
    return RunConfig.model_validate({"load": {"rates_rps": [10], **load}})


def test_a_counted_step_has_its_requests_and_a_seeded_schedule() -> None:
    run = config(num_requests=300, trim=10, seed=4)
    plan = plan_target(run, run.target)
    specs, offsets = plan.step(0, StepOrder(10.0))
    again_specs, again_offsets = plan.step(0, StepOrder(10.0))
    assert len(specs) == len(offsets) == 300
    assert np.array_equal(offsets, again_offsets)
    assert [s.prompt for s in specs] == [s.prompt for s in again_specs]
    # Fresh prompts at the next step, the same arrival stream scaled by the rate.
    next_specs, next_offsets = plan.step(1, StepOrder(20.0))
    assert [s.prompt for s in next_specs] != [s.prompt for s in specs]
    assert np.allclose(next_offsets, offsets / 2)


def test_a_timed_step_sends_what_its_duration_holds() -> None:
    run = config(duration_s=20.0, trim=10, arrival="constant")
    specs, offsets = plan_target(run, run.target).step(0, StepOrder(10.0))
    assert len(specs) == 200
    assert offsets[-1] == pytest.approx(19.9)


def test_a_replayed_trace_is_cut_at_the_duration(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    rows = [f'{{"timestamp": {t}, "input_tokens": 8, "output_tokens": 4}}' for t in range(40)]
    trace.write_text("\n".join(rows) + "\n")
    run = RunConfig.model_validate(
        {"load": {"arrival": "trace", "trace": str(trace), "duration_s": 30, "trim": 5}}
    )
    plan = plan_target(run, run.target)
    specs, offsets = plan.step(0, StepOrder(plan.rates_rps[0]))
    assert offsets.tolist() == [float(t) for t in range(30)]
    assert [s.max_tokens for s in specs] == [4] * 30
    assert plan.scenario == "trace:trace.jsonl"
    assert plan.forced_lengths


def test_a_trace_too_short_for_its_trim_is_a_dataset_error(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    row = '{"timestamp": 0, "input_tokens": 8, "output_tokens": 4}\n'
    trace.write_text(row * 2)
    run = RunConfig.model_validate({"load": {"arrival": "trace", "trace": str(trace), "trim": 1}})
    with pytest.raises(DatasetError, match="2 usable requests; trimming 1 from each end"):
        plan_target(run, run.target)


def test_the_plot_title_says_the_step_size() -> None:
    assert plot_title(config(num_requests=500, trim=50)) == (
        "synthetic workload, poisson arrivals, 500 requests per step (trim 50)"
    )
    assert plot_title(config(duration_s=60, trim=50)) == (
        "synthetic workload, poisson arrivals, 60 s per step (trim 50)"
    )
