"""A shard's plan (runtime/plan.py): its own prompts, its deal of a dataset or a trace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

from loadgen.config import RunConfig
from loadgen.core.shards import Shard
from loadgen.core.sweep import StepOrder
from loadgen.runtime.plan import plan_target

SHARDS = 3


def config(**load: object) -> RunConfig:
    """A run of `load` settings against no server."""
    return RunConfig.model_validate({"load": {"rates_rps": [10.0], "trim": 0, **load}})


def shard_steps(run: RunConfig, step: int = 0) -> list[tuple[list[str], np.ndarray]]:
    """Every shard's prompts and offsets of `step`."""
    out = []
    for index in range(SHARDS):
        plan = plan_target(run, run.run_targets()[0], Shard(index, SHARDS))
        specs, offsets = plan.step(step, StepOrder(10.0))
        out.append(([spec.prompt for spec in specs], offsets))
    return out


def test_generated_prompts_never_repeat_across_shards_or_steps() -> None:
    run = config(num_requests=300)
    prompts = [p for step in (0, 1) for shard, _ in shard_steps(run, step) for p in shard]
    assert len(prompts) == 600
    assert len(set(prompts)) == 600


def test_the_shards_send_the_step_s_count_between_them() -> None:
    parts = shard_steps(config(num_requests=301))
    assert sum(len(prompts) for prompts, _ in parts) == 301
    for prompts, offsets in parts:
        assert len(prompts) == len(offsets)


def test_a_dataset_is_dealt_so_no_request_goes_to_two_shards(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    rows = [orjson.dumps({"prompt": f"request {i}", "max_tokens": 4}) for i in range(30)]
    path.write_bytes(b"\n".join(rows) + b"\n")
    run = RunConfig.model_validate(
        {"load": {"rates_rps": [10.0], "num_requests": 30, "trim": 0},
         "workload": {"dataset": str(path)}}
    )  # fmt: skip
    seen = [set(prompts) for prompts, _ in shard_steps(run)]
    assert all(seen)
    for i in range(SHARDS):
        for j in range(i + 1, SHARDS):
            assert not seen[i] & seen[j]


def test_a_trace_is_dealt_round_robin_with_its_times(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    rows = [
        orjson.dumps({"timestamp": i * 0.5, "input_tokens": 5 + i, "output_tokens": 3})
        for i in range(12)
    ]
    path.write_bytes(b"\n".join(rows) + b"\n")
    run = RunConfig.model_validate(
        {"load": {"arrival": "trace", "trace": str(path), "trim": 0, "num_requests": 12}}
    )
    parts = shard_steps(run)
    for index, (_, offsets) in enumerate(parts):
        assert offsets.tolist() == [i * 0.5 for i in range(index, 12, SHARDS)]
