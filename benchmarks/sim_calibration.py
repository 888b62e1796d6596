"""The simulator against the paper's batch-inference tables (A100 80GB): figures and the fit.

Every row is one `loadgen simulate --rates inf --trim 0 --num-requests 1000` step (the whole
dataset sent at once and counted, as the paper's Table 3 did), through the virtual-time engine.
The default prints Llama-2-7B, Llama-2-13B and Mistral-7B under the vllm policy, and
Llama-2-7B under splitfuse beside the paper's DeepSpeed-MII column. `--fit` repeats the grid
search that chose the calibrated overheads (Llama-2-7B, vllm, A100 only): its targets are the
three Table 3 figures and the paper's fitted decoding step at b=8, s=512 (12.4 ms, which the
table alone cannot separate from per-step overhead).

Run from the repository root (docs/simulator.md holds the figures):

    .venv/bin/python -m benchmarks.sim_calibration [--fit]
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from dataclasses import replace

import numpy as np

from loadgen.runtime.workload import workload_rng
from loadgen.sim.cost_model import BatchShape, Overheads, RooflineCost
from loadgen.sim.engine import Engine, EngineConfig, Policy
from loadgen.sim.presets import GPUS, MODELS
from loadgen.sim.virtual import OutputPolicy, simulate_requests
from loadgen.workloads.scenarios import SCENARIOS

SCENARIO_NAMES = ("s2s", "s2l", "l2s")
# Paper Tables 2 and 3 (output tokens/s, A100 80GB).
PAPER_TPS = {
    ("llama-2-7b", "vllm"): (2167.77, 2771.10, 331.19),
    ("llama-2-13b", "vllm"): (1515.21, 1797.52, 254.89),
    ("mistral-7b", "vllm"): (1682.80, 2175.36, 616.57),
    ("llama-2-7b", "splitfuse"): (1596.45, 808.82, 232.79),
}
_REQUESTS = 1000
# The paper's Eq. 7 for vLLM at b=8, s=512 (ms): the low-load anchor of the fit.
PAPER_DECODE_B8_S512_MS = 12.4


def batch_run(
    model: str, policy: Policy, scenario: str, overheads: Overheads, *, caching: bool = True
) -> tuple[float, Engine]:
    """Output tokens/s of one whole-dataset batch of `scenario` on an A100, and its engine."""
    spec, gpu = MODELS[model], GPUS["a100"]
    config = EngineConfig(policy=policy, enable_prefix_caching=caching)
    engine = Engine(spec, gpu, config, RooflineCost(spec, gpu, overheads))
    specs = SCENARIOS[scenario].specs(_REQUESTS, workload_rng(0, 0))
    outputs = OutputPolicy(ignore_eos=True, min_tokens=0, eos_mean_tokens=256.0)
    records = simulate_requests(
        engine, specs, np.zeros(_REQUESTS), outputs, np.random.default_rng(0)
    )
    end_s = max(record.t_done_ns for record in records) / 1e9
    return sum(record.tokens_out for record in records) / end_s, engine


def batch_tps(model: str, policy: Policy, scenario: str, overheads: Overheads) -> float:
    """Output tokens/s of one whole-dataset batch of `scenario` on an A100."""
    return batch_run(model, policy, scenario, overheads)[0]


def print_table(overheads: Overheads, *, caching: bool = True) -> None:
    """Simulated against paper throughput for every model and policy the paper reports.

    Also: the prefix-cache hit rate of first lookups (prompt tokens found over looked up) and
    the preemptions of each batch.
    """
    print(
        "model / policy          | scenario | simulated tok/s | paper tok/s | ratio | "
        "cache hits | preemptions"
    )
    for (model, policy), paper in PAPER_TPS.items():
        for scenario, paper_tps in zip(SCENARIO_NAMES, paper, strict=True):
            tps, engine = batch_run(model, policy, scenario, overheads, caching=caching)
            label, ratio = f"{model} / {policy}", tps / paper_tps
            hits = engine.cache_hits / max(engine.cache_queries, 1)
            print(
                f"{label:23} | {scenario:8} | {tps:15.0f} | {paper_tps:11.0f} | {ratio:5.2f} | "
                f"{hits:10.2%} | {engine.preemptions:11d}"
            )


def decode_ratio(overheads: Overheads) -> float:
    """The roofline's b=8, s=512 Llama-2-7B decoding step over the paper's fitted 12.4 ms."""
    cost = RooflineCost(MODELS["llama-2-7b"], GPUS["a100"], overheads)
    batch = BatchShape(decode_seqs=8, decode_context_tokens=8 * 512, sampled=8)
    return cost.step_time_s(batch) * 1e3 / PAPER_DECODE_B8_S512_MS


def fit() -> None:
    """The grid search behind the calibrated overheads: squared log-ratio error, best first."""
    paper = PAPER_TPS[("llama-2-7b", "vllm")]
    results = []
    grid = itertools.product(
        (1, 2, 3, 4, 6, 8, 10, 15, 20), (0, 40, 80, 120, 160, 200, 240), (0.4, 0.5, 0.6)
    )
    for step_ms, seq_us, compute in grid:
        overheads = replace(
            Overheads(), step_s=step_ms / 1e3, seq_s=seq_us / 1e6, compute_efficiency=compute
        )
        ratios = [
            batch_tps("llama-2-7b", "vllm", scenario, overheads) / paper_tps
            for scenario, paper_tps in zip(SCENARIO_NAMES, paper, strict=True)
        ]
        ratios.append(decode_ratio(overheads))
        error = sum(math.log(ratio) ** 2 for ratio in ratios)
        results.append((error, step_ms, seq_us, compute, ratios))
    print("error  | step ms | seq us | compute eff | s2s / s2l / l2s / decode b8 ratio")
    for error, step_ms, seq_us, compute, ratios in sorted(results)[:12]:
        shown = " / ".join(f"{ratio:.2f}" for ratio in ratios)
        print(f"{error:.4f} | {step_ms:7g} | {seq_us:6g} | {compute:11g} | {shown}")


def main(argv: list[str] | None = None) -> int:
    """Print the table with the calibrated overheads, or the fit with --fit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="rerun the overhead grid search")
    parser.add_argument(
        "--no-prefix-caching", action="store_true", help="run the engine without prefix caching"
    )
    args = parser.parse_args(argv)
    if args.fit:
        fit()
    else:
        print_table(Overheads(), caching=not args.no_prefix_caching)
    return 0


if __name__ == "__main__":
    sys.exit(main())
