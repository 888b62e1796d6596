"""`loadgen simulate` through cli.main: virtual-time sweeps, their files, and bad input.

Virtual time makes every figure here deterministic: no tolerance is about timing noise.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration._helpers import read_jsonl, read_summary, run_cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = (
    "sequence_throughput_rps",
    "output_token_throughput_tps",
    "ttft_s",
    "e2e_s",
    "per_token_latency_s",
    "window_s",
)


def simulate(out: Path, *flags: str) -> dict[str, Any]:
    """Run `loadgen simulate FLAGS` quietly into `out`; its summary.json."""
    code = run_cli(["simulate", *flags, "--quiet", "--out", str(out)])
    assert code == 0
    return read_summary(out)


def batch_tps(out: Path, *flags: str, dataset: str = "s2s", requests: int = 300) -> float:
    """Output token throughput (tok/s) of one batch-inference step (rate inf, nothing trimmed)."""
    argv = ["--rates", "inf", "--trim", "0", "--num-requests", str(requests)]
    summary = simulate(out, *argv, "--dataset", dataset, *flags)
    (step,) = summary["steps"]
    assert step["num_ok"] == requests
    return float(step["output_token_throughput_tps"])


# The paper's Table 3 is batch inference over the whole dataset (every request sent at once,
# every one counted), hence --rates inf with --trim 0: A100 80GB, Llama-2-7B, vLLM.
@pytest.mark.parametrize(("dataset", "paper_tps"), [("s2s", 2168), ("s2l", 2771), ("l2s", 331)])
def test_batch_throughput_matches_the_papers_table_3(
    tmp_path: Path, dataset: str, paper_tps: float
) -> None:
    tps = batch_tps(
        tmp_path, "--gpu", "a100", "--model", "llama-2-7b", "--policy", "vllm",
        dataset=dataset, requests=1000,
    )  # fmt: skip
    assert 0.65 * paper_tps <= tps <= 1.35 * paper_tps, (dataset, tps, paper_tps)


def test_sweep_writes_its_files_and_throughput_grows_with_rate(tmp_path: Path) -> None:
    summary = simulate(
        tmp_path, "--rates", "10,40,inf", "--num-requests", "300", "--trim", "30",
        "--dataset", "s2s", "--gpu", "h100", "--model", "mistral-7b",
    )  # fmt: skip

    for name in ("summary.json", "summary.csv", "requests.jsonl", "sweep.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert (tmp_path / "sweep.png").read_bytes()[:8] == PNG_SIGNATURE
    assert len((tmp_path / "summary.csv").read_text().strip().splitlines()) == 1 + 3
    simulator = summary["simulator"]
    assert simulator["gpu"]["name"] == "H100 SXM"
    assert simulator["model"]["name"] == "Mistral-7B"
    assert simulator["engine"]["policy"] == "vllm"
    assert simulator["label"] == "sim h100/mistral-7b/vllm"
    assert summary["target"]["model"] == "Mistral-7B"

    steps = summary["steps"]
    assert [step["target_rate_rps"] for step in steps] == [10.0, 40.0, "inf"]
    throughput = [step["sequence_throughput_rps"] for step in steps]
    assert throughput == sorted(throughput), throughput
    assert all(step["num_ok"] == step["num_kept"] == 240 for step in steps)
    assert all(step["tokens_source"] == "server" for step in steps)
    rows = read_jsonl(tmp_path / "requests.jsonl")
    assert len(rows) == 3 * 300
    assert all(row["ok"] and row["t_first_s"] <= row["t_last_s"] for row in rows)
    assert all(row["tokens_out"] == row["chunks"] >= 1 for row in rows)


def _figures(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [{name: step[name] for name in FIGURES} for step in summary["steps"]]


def test_same_seed_same_figures_other_policy_other_figures(tmp_path: Path) -> None:
    flags = ("--rates", "20,inf", "--num-requests", "200", "--trim", "20", "--dataset", "s2l")
    first = simulate(tmp_path / "a", *flags, "--seed", "7")
    again = simulate(tmp_path / "b", *flags, "--seed", "7")
    fused = simulate(tmp_path / "c", *flags, "--seed", "7", "--policy", "splitfuse")

    assert first["steps"] == again["steps"]
    assert read_jsonl(tmp_path / "a" / "requests.jsonl") == read_jsonl(
        tmp_path / "b" / "requests.jsonl"
    )
    assert _figures(fused) != _figures(first)
    assert fused["simulator"]["engine"]["policy"] == "splitfuse"


def test_faster_hardware_and_smaller_models_give_more_tokens(tmp_path: Path) -> None:
    # Consequences of the formulas (nothing is tuned per GPU or model): more bandwidth and
    # FLOP/s give more, fewer give less; a model with twice the weights to read gives less.
    a100 = batch_tps(tmp_path / "a100", "--gpu", "a100")
    h100 = batch_tps(tmp_path / "h100", "--gpu", "h100")
    rtx3090 = batch_tps(tmp_path / "rtx3090", "--gpu", "rtx3090")
    llama13 = batch_tps(tmp_path / "13b", "--gpu", "a100", "--model", "llama-2-13b")

    assert rtx3090 < a100 < h100, (rtx3090, a100, h100)
    assert llama13 < a100, (llama13, a100)


def test_sim_config_file_changes_the_hardware(tmp_path: Path) -> None:
    config = tmp_path / "half.toml"
    config.write_text("[gpu]\nmemory_gib = 40\n")
    full = batch_tps(tmp_path / "full", dataset="s2l")
    half = batch_tps(tmp_path / "half", "--sim-config", str(config), dataset="s2l")

    summary = read_summary(tmp_path / "half")
    assert summary["simulator"]["gpu"]["memory_gib"] == 40
    assert half < full  # a smaller KV cache batches fewer long sequences


# --- bad input ---------------------------------------------------------------------------------

BASE = ("simulate", "--rates", "inf", "--num-requests", "20", "--trim", "0", "--quiet")


@pytest.mark.parametrize(
    ("extra", "config_text", "needle"),
    [
        (("--gpu", "v100"), None, "--gpu"),
        (("--model", "gpt-5"), None, "--model"),
        (("--policy", "fifo"), None, "--policy"),
        (("--sim-config", "{missing}"), None, "cannot read"),
        (("--sim-config", "{config}"), "[gpu\nmemory_gib = 4", "not valid TOML"),
        (("--sim-config", "{config}"), "[gpu]\nmemory_gb = 40\n", "unknown field 'memory_gb'"),
        (("--sim-config", "{config}"), "[gpus]\nmemory_gib = 40\n", "unknown table"),
        (("--sim-config", "{config}"), "[engine]\nmax_num_seqs = 'x'\n", "must be a number"),
        (("--max-concurrency", "4"), None, "--max-concurrency"),
        (("--max-num-batched-tokens", "100"), None, "max_num_batched_tokens 100"),
        (("--gpu", "rtx3090", "--model", "llama-2-13b"), None, "no room for a KV cache"),
        (("--gpu-memory-utilization", "1.5"), None, "--gpu-memory-utilization"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    config_text: str | None,
    needle: str,
) -> None:
    config = tmp_path / "sim.toml"
    if config_text is not None:
        config.write_text(config_text)
    paths = {"missing": str(tmp_path / "no-such.toml"), "config": str(config)}
    argv = [*BASE, "--out", str(tmp_path / "out"), *(arg.format(**paths) for arg in extra)]

    code = run_cli(argv)
    out, err = capfd.readouterr()

    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert "error" in err, err
    assert needle in err, err
    assert out == ""
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.parametrize(
    "extra",
    [("--max-num-batched-tokens", "100"), ("--gpu", "rtx3090", "--model", "llama-2-13b")],
)
def test_impossible_engine_is_refused_before_the_notice(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], extra: tuple[str, ...]
) -> None:
    argv = [*BASE, "--out", str(tmp_path / "out"), *extra]
    argv.remove("--quiet")

    code = run_cli(argv)
    _, err = capfd.readouterr()

    assert code == 2, err
    assert "Traceback" not in err
    assert err.startswith("error:"), err  # as for every other bad flag: no notice first
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "extra",
    [("--max-num-batched-tokens", "100"), ("--gpu", "rtx3090", "--model", "llama-2-13b")],
)
def test_sim_server_with_an_impossible_engine_exits_2(extra: tuple[str, ...]) -> None:
    # A subprocess with a timeout: if the server started anyway, it would serve forever.
    argv = [sys.executable, "-m", "loadgen", "sim", "--port", "0", *extra]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)

    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
