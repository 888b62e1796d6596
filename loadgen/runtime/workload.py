"""Build the configured workload: generator or dataset, exact lengths, prompt template."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from loadgen.client.protocol import Endpoint
from loadgen.config import WorkloadConfig
from loadgen.core.shards import Shard, deal
from loadgen.workloads import DatasetError, Workload
from loadgen.workloads.exact import ExactLengthWorkload
from loadgen.workloads.loaders import load_dataset
from loadgen.workloads.sampling import DatasetWorkload
from loadgen.workloads.scenarios import SCENARIOS
from loadgen.workloads.synthetic import SyntheticWorkload
from loadgen.workloads.templates import TemplatedWorkload, prompt_template
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


def workload_rng(seed: int, step: int) -> np.random.Generator:
    """The generator of step `step`'s requests: fresh prompts at every step, same per seed."""
    return np.random.default_rng([seed, 0, step])


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
    """`workload` with prompts cut to exact lengths (if `exact` and a tokenizer) and templated."""
    if exact and not isinstance(counter, EstimateCounter):
        workload = ExactLengthWorkload(workload, counter)
    if spec.prompt_template is not None and endpoint == "completions":
        workload = TemplatedWorkload(workload, prompt_template(spec.prompt_template))
    return workload
