"""loadgen against real vLLM (CPU build): sweeps through the CLI, checked against vLLM's metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration._helpers import read_jsonl, read_summary, run_cli
from tests.real_servers._servers import Server, settled_totals

OUTPUT_TOKENS = 16
COUNTERS = ("vllm:generation_tokens_total", "vllm:request_success_total")


def sweep(server: Server, out: Path, *flags: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A two-rate sweep of 40 requests per step (trim 5): summary.json and requests.jsonl."""
    argv = [
        "sweep", *server.target(), "--rates", "4,16", "--num-requests", "40", "--trim", "5",
        "--input-len", "32", "--output-len", str(OUTPUT_TOKENS), "--out", str(out), "--quiet",
        *flags,
    ]  # fmt: skip
    assert run_cli(argv) == 0
    return read_summary(out), read_jsonl(out / "requests.jsonl")


def check_accounting(summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Every request sent is recorded, succeeded, and generated exactly the asked-for tokens."""
    assert [step["num_sent"] for step in summary["steps"]] == [40, 40]
    assert len(rows) == 80
    assert all(row["ok"] for row in rows), [row["error"] for row in rows if not row["ok"]]
    assert {row["tokens_out"] for row in rows} == {OUTPUT_TOKENS}
    assert {row["tokens_source"] for row in rows} == {"server"}


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_streamed_sweep_matches_vllms_own_counters(
    vllm_server: Server, tmp_path: Path, endpoint: str
) -> None:
    before = settled_totals(vllm_server, *COUNTERS)
    summary, rows = sweep(vllm_server, tmp_path, "--endpoint", endpoint)
    after = settled_totals(vllm_server, *COUNTERS)

    check_accounting(summary, rows)
    # The server's own view of the same requests: usage and its counters agree with the client.
    generated = after["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"]
    assert generated == sum(row["tokens_out"] for row in rows)
    succeeded = after["vllm:request_success_total"] - before["vllm:request_success_total"]
    assert succeeded == len(rows)
    # vLLM streams a chunk per token, but an API server that falls behind folds several
    # tokens into one chunk: nearly every stream still has one chunk per token.
    assert all(1 <= row["chunks"] <= OUTPUT_TOKENS for row in rows)
    assert sum(row["chunks"] == OUTPUT_TOKENS for row in rows) >= 0.9 * len(rows)
    for row in rows:
        assert row["t_send_s"] < row["t_first_s"] <= row["t_last_s"] <= row["t_done_s"]
    for step in summary["steps"]:
        assert step["ttft_s"]["max"] <= step["e2e_s"]["max"]
        assert step["ttft_s"]["mean"] < step["e2e_s"]["mean"]
        # Equal outputs of one token per chunk make the pooled ITL mean exactly the TPOT mean;
        # a few folded chunks move it by a few percent at most.
        assert step["itl_s"]["mean"] == pytest.approx(step["tpot_s"]["mean"], rel=0.05)
        assert step["itl_s"]["count"] <= step["num_ok"] * (OUTPUT_TOKENS - 1)


def test_whole_responses_count_usage_and_have_no_ttft(vllm_server: Server, tmp_path: Path) -> None:
    before = settled_totals(vllm_server, *COUNTERS)
    summary, rows = sweep(vllm_server, tmp_path, "--no-stream")
    after = settled_totals(vllm_server, *COUNTERS)

    check_accounting(summary, rows)
    generated = after["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"]
    assert generated == 80 * OUTPUT_TOKENS
    assert all(row["t_first_s"] is None for row in rows)
    for step in summary["steps"]:
        assert step["ttft_s"] is None
        assert step["itl_s"] is None
        assert step["e2e_s"]["count"] == step["num_ok"] == 30


def test_prompt_tokens_come_from_vllms_usage(vllm_server: Server, tmp_path: Path) -> None:
    _, rows = sweep(vllm_server, tmp_path)
    # The tiny tokenizer splits the generated words into more than one token each: what is
    # recorded is the server's count, not the workload's word count of 32.
    assert all(row["tokens_in"] > 32 for row in rows)
