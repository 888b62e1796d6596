"""Build the configured workload: generator or dataset, exact lengths, prompt template."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from loadgen.client.protocol import Endpoint
from loadgen.config import WorkloadConfig
from loadgen.core.records import RequestSpec
from loadgen.core.shards import PROMPTS_KEY, Shard, deal, shard_seed
from loadgen.workloads import DatasetError, Workload
from loadgen.workloads.conversations import load_conversations
from loadgen.workloads.exact import ExactLengthWorkload
from loadgen.workloads.loaders import load_dataset
from loadgen.workloads.prefixes import PrefixedWorkload, PrefixSpec, shared_rng
from loadgen.workloads.sampling import DatasetWorkload
from loadgen.workloads.scenarios import SCENARIOS, ScenarioWorkload
from loadgen.workloads.sessions import (
    SESSIONS_SCENARIO,
    ChatSessions,
    RecordedSessions,
    SessionWorkload,
    parse_turns,
)
from loadgen.workloads.synthetic import SyntheticWorkload
from loadgen.workloads.templates import TemplatedWorkload, prompt_template
from loadgen.workloads.text import TextBatch, prose_batch
from loadgen.workloads.tokenizers import ExactCounter, load_counter
from loadgen.workloads.tokens import EstimateCounter, TokenCounter


def _dataset_workload(
    spec: WorkloadConfig, counter: TokenCounter, shard: Shard | None = None
) -> Workload:
    """The dataset file `spec.dataset` as a sampled workload (a shard samples its deal of it)."""
    path = Path(spec.dataset)
    if not path.exists():
        names = ", ".join(("synthetic", *SCENARIOS))
        raise DatasetError(f"--dataset {spec.dataset}: no such file, and not one of {names}")
    requests = load_dataset(
        path,
        counter,
        spec.dataset_format,
        min_input=spec.min_input,
        max_input=spec.max_input,
        max_output=spec.max_output,
    )
    if shard is not None:
        if len(requests) < shard.count:
            raise DatasetError(
                f"--dataset {spec.dataset}: {len(requests)} usable requests cannot be dealt to "
                f"{shard.count} shards (each needs its own)"
            )
        requests = [requests[i] for i in deal(len(requests), shard, 0).tolist()]
    return DatasetWorkload(requests, path.name, shuffle=spec.shuffle, replacement=spec.replacement)


def build_sessions(spec: WorkloadConfig, counter: TokenCounter) -> SessionWorkload:
    """The configured multi-turn sessions: generated, or a dataset's conversations."""
    if spec.dataset == SESSIONS_SCENARIO:
        turns = parse_turns(spec.turns)
        return ChatSessions(turns, spec.input_len, spec.output_len, spec.think_time_s)
    path = Path(spec.dataset)
    if not path.exists():
        raise DatasetError(f"--dataset {spec.dataset}: no such file")
    conversations = load_conversations(path, counter, spec.dataset_format)
    return RecordedSessions(conversations, path.name, spec.think_time_s, spec.shuffle)


def workload_rng(seed: int, step: int) -> np.random.Generator:
    """The generator of step `step`'s requests: fresh prompts at every step, same per seed."""
    return np.random.default_rng([seed, 0, step])


def step_specs(
    workload: Workload, num_requests: int, seed: int, step: int, shard: Shard | None = None
) -> Sequence[RequestSpec]:
    """Step `step`'s `num_requests` requests: the whole step's, or `shard`'s share.

    A shard draws its requests from its own seed, and shared prefixes from the step's, so
    every shard of a step sends the same prefixes.
    """
    if shard is None:
        return workload.specs(num_requests, workload_rng(seed, step))
    rng = np.random.default_rng(shard_seed(seed, shard.index, PROMPTS_KEY, step))
    if isinstance(workload, PrefixedWorkload):
        return workload.step_specs(num_requests, rng, shared_rng(workload_rng(seed, step)))
    return workload.specs(num_requests, rng)


def prefix_spec(spec: WorkloadConfig) -> PrefixSpec | None:
    """The configured shared prefixes, None when off."""
    if not spec.prefix_tokens:
        return None
    return PrefixSpec(spec.prefix_tokens, spec.num_prefixes, spec.prefix_zipf)


def prefix_note(spec: WorkloadConfig) -> str | None:
    """A sentence for results on the shared prefixes (fresh per step), None when off."""
    prefixes = prefix_spec(spec)
    return None if prefixes is None else prefixes.note()


def token_counter(tokenizer: str | None) -> ExactCounter | EstimateCounter:
    """The configured tokenizer's exact counter, else the character estimate."""
    return EstimateCounter() if tokenizer is None else load_counter(tokenizer)


def build_workload(
    spec: WorkloadConfig,
    endpoint: Endpoint,
    counter: ExactCounter | EstimateCounter,
    shard: Shard | None = None,
) -> Workload:
    """The configured workload (DatasetError or ValueError when it cannot be built).

    A shard's generated prompts differ from every other shard's by their seed (plan.py); a
    dataset is dealt round robin, so no two shards send the same request of it.
    """
    workload: Workload
    if spec.dataset == "synthetic":
        workload = SyntheticWorkload(spec.input_len, spec.output_len)
    elif spec.dataset in SCENARIOS:
        workload = SCENARIOS[spec.dataset]
    else:
        workload = _dataset_workload(spec, counter, shard)
    return shape_prompts(workload, spec, endpoint, counter, exact=spec.forced_lengths)


def shape_prompts(
    workload: Workload,
    spec: WorkloadConfig,
    endpoint: Endpoint,
    counter: ExactCounter | EstimateCounter,
    *,
    exact: bool,
) -> Workload:
    """`workload` with prompts cut to exact lengths (if `exact` and a tokenizer), behind the
    shared prefixes (if configured), and templated."""
    tokenizer = None if isinstance(counter, EstimateCounter) or not exact else counter
    template = None
    if spec.prompt_template is not None and endpoint == "completions":
        template = prompt_template(spec.prompt_template)
    prefixes = prefix_spec(spec)
    if prefixes is not None:
        chat = endpoint != "completions"
        texts = _text_batch(workload)
        return PrefixedWorkload(workload, prefixes, texts, chat, tokenizer, template)
    if tokenizer is not None:
        workload = ExactLengthWorkload(workload, tokenizer)
    if template is not None:
        workload = TemplatedWorkload(workload, template)
    return workload


def _text_batch(workload: Workload) -> TextBatch:
    """How `workload`'s prompt text is drawn: its own style, else prose."""
    if isinstance(workload, SyntheticWorkload | ScenarioWorkload):
        return workload.text_batch
    return prose_batch
