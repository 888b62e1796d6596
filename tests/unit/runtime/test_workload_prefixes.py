"""Shared prefixes through runtime/workload.py and plan.py: per step, the same in every shard."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from loadgen.config import RunConfig, WorkloadConfig
from loadgen.core.records import RequestSpec
from loadgen.core.shards import Shard
from loadgen.core.sweep import StepOrder
from loadgen.runtime.describe import describe_workload
from loadgen.runtime.plan import plan_target
from loadgen.runtime.workload import build_workload, prefix_note, token_counter, workload_rng

SHARDS = 3


def run_config(endpoint: str = "chat", **workload: Any) -> RunConfig:
    """A one-target run with shared prefixes unless `workload` says otherwise."""
    shared = {"dataset": "synthetic", "input_len": 12, "prefix_tokens": 16, "num_prefixes": 4}
    return RunConfig.model_validate(
        {
            "load": {"rates_rps": [10.0], "num_requests": 300, "trim": 0, "seed": 5},
            "target": {"endpoint": endpoint},
            "workload": shared | workload,
        }
    )


def step_specs(run: RunConfig, step: int, shard: Shard | None = None) -> Sequence[RequestSpec]:
    return plan_target(run, run.target, shard).step(step, StepOrder(10.0))[0]


def parts(specs: Sequence[RequestSpec]) -> tuple[set[str], list[str]]:
    """The distinct system prompts and every user message of chat specs."""
    systems, users = set(), []
    for spec in specs:
        assert spec.messages is not None
        system, user = spec.messages
        assert system["role"] == "system"
        assert user["role"] == "user"
        systems.add(system["content"])
        users.append(user["content"])
    return systems, users


def test_every_shard_of_a_step_sends_the_one_process_prefixes() -> None:
    run = run_config()
    whole, _ = parts(step_specs(run, 0))
    assert len(whole) == 4
    fresh: list[str] = []
    for index in range(SHARDS):
        systems, users = parts(step_specs(run, 0, Shard(index, SHARDS)))
        assert systems == whole
        fresh += users
    assert len(fresh) == 300
    assert len(set(fresh)) == 300  # each shard's fresh parts are its own


def test_no_step_sends_another_step_s_prefixes() -> None:
    run = run_config()
    steps = [parts(step_specs(run, step, Shard(1, SHARDS)))[0] for step in range(3)]
    assert all(len(systems) == 4 for systems in steps)
    assert not steps[0] & steps[1]
    assert not steps[1] & steps[2]
    assert not steps[0] & steps[2]


def test_a_shard_s_fresh_parts_are_what_it_sends_without_prefixes() -> None:
    with_prefixes = step_specs(run_config(), 1, Shard(2, SHARDS))
    plain = RunConfig.model_validate(
        run_config().model_dump() | {"workload": {"dataset": "synthetic", "input_len": 12}}
    )
    without = step_specs(plain, 1, Shard(2, SHARDS))
    assert parts(with_prefixes)[1] == [spec.prompt for spec in without]
    assert [s.tokens_in for s in with_prefixes] == [16 + (s.tokens_in or 0) for s in without]


def test_responses_endpoint_also_gets_a_system_message() -> None:
    systems, users = parts(step_specs(run_config("responses"), 0))
    assert len(systems) == 4
    assert len(users) == 300


def test_completions_prompts_start_with_a_prefix_inside_the_template() -> None:
    chat = step_specs(run_config("chat"), 0)
    completions = step_specs(run_config("completions", prompt_template="llama2"), 0)
    for c, p in zip(chat, completions, strict=True):
        assert c.messages is not None
        system, user = (m["content"] for m in c.messages)
        assert p.prompt == f"[INST] {system} {user} [/INST]"


def test_scenario_prefixes_are_written_in_its_style() -> None:
    spec = WorkloadConfig(dataset="l2s", prefix_tokens=40, num_prefixes=2)
    workload = build_workload(spec, "chat", token_counter(None))
    systems, _ = parts(workload.specs(50, workload_rng(0, 0)))
    # l2s is prose: sentences with capitals and end marks, unlike synthetic's bare words.
    assert len(systems) == 2
    assert all(any(mark in text for mark in ".?!") for text in systems)


def test_a_replayed_trace_gets_prefixes_in_front_of_its_lengths(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    rows = [f'{{"timestamp": {t}, "input_tokens": {8 + t}, "output_tokens": 4}}' for t in range(30)]
    trace.write_text("\n".join(rows) + "\n")
    run = RunConfig.model_validate(
        {
            "load": {"arrival": "trace", "trace": str(trace), "trim": 5},
            "target": {"endpoint": "chat"},
            "workload": {"prefix_tokens": 16, "num_prefixes": 2},
        }
    )
    specs = step_specs(run, 0)
    systems, users = parts(specs)
    assert len(systems) == 2
    assert [len(u.split()) for u in users] == [8 + t for t in range(30)]
    assert [s.tokens_in for s in specs] == [24 + t for t in range(30)]


def test_prefix_note_says_they_are_fresh_per_step() -> None:
    assert prefix_note(WorkloadConfig()) is None
    note = prefix_note(WorkloadConfig(prefix_tokens=512, num_prefixes=8, prefix_zipf=1.1))
    assert note == (
        "prompts share 8 prefixes of 512 tokens (Zipf s=1.1), drawn fresh at every step; "
        "the text behind each prefix is fresh per request"
    )


def test_describe_shows_the_sharing() -> None:
    spec = WorkloadConfig(dataset="synthetic", input_len=48, prefix_tokens=16, num_prefixes=4)
    text = describe_workload(spec, None, 200, 0, None, as_json=False)
    # 16 prefix words of 64 per prompt: 25%; 4 first uses of 200 are not reusable: 24.5%.
    assert "shared prefixes: 4 used, 16 tokens each; 25.0% of input tokens are prefix" in text
    assert "24.5% reusable" in text


def test_too_many_prefixes_fail_when_the_plan_is_built() -> None:
    with pytest.raises(ValueError, match=r"--num-prefixes must be in 1\.\."):
        plan_target(run_config(num_prefixes=5000), run_config().target)
