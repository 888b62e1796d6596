"""2026 traffic against real vLLM (CPU build): the Responses API, the step scrape of vLLM's own
/metrics, and multi-turn sessions served from its prefix cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration._helpers import read_jsonl, read_summary, run_cli
from tests.real_servers._servers import Server, settled_totals
from tests.real_servers.test_vllm import COUNTERS, OUTPUT_TOKENS, check_accounting, sweep

PROMPT_COUNTERS = ("vllm:prompt_tokens_total", "vllm:prefix_cache_queries_total")


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_responses_api_sweep_matches_vllms_own_counters(
    vllm_server: Server, tmp_path: Path, stream: bool
) -> None:
    before = settled_totals(vllm_server, *COUNTERS)
    flags = ["--endpoint", "responses", *([] if stream else ["--no-stream"])]
    summary, rows = sweep(vllm_server, tmp_path, *flags)
    after = settled_totals(vllm_server, *COUNTERS)

    check_accounting(summary, rows)
    generated = after["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"]
    assert generated == 80 * OUTPUT_TOKENS
    assert after["vllm:request_success_total"] - before["vllm:request_success_total"] == 80
    if stream:  # one output_text delta event per token, timed
        assert all(row["t_send_s"] < row["t_first_s"] <= row["t_last_s"] for row in rows)
        assert sum(row["chunks"] == OUTPUT_TOKENS for row in rows) >= 0.9 * len(rows)
    else:
        assert all(row["t_first_s"] is None for row in rows)


def test_the_step_scrape_sees_what_vllm_counted(vllm_server: Server, tmp_path: Path) -> None:
    before = settled_totals(vllm_server, *COUNTERS, *PROMPT_COUNTERS)
    summary, rows = sweep(vllm_server, tmp_path, "--endpoint", "chat")
    after = settled_totals(vllm_server, *COUNTERS, *PROMPT_COUNTERS)

    check_accounting(summary, rows)
    servers = [step["server"] for step in summary["steps"]]
    assert all(server is not None for server in servers), "auto mode found vLLM's /metrics"
    for step, server in zip(summary["steps"], servers, strict=True):
        # Each step's own counter deltas: exactly what the client counted from usage.
        assert server["generation_tokens"] == server["client_generation_tokens"] == 40 * 16
        assert server["prompt_tokens"] == server["client_prompt_tokens"]
        assert server["tokens_mismatch"] is None
        assert server["scrapes"] >= 2
        assert server["prefix_cache_queries"] == server["prompt_tokens"]
        # Gauges are sampled at the scrapes: a fast step may show them idle.
        assert server["running_max"] is not None
        assert 0 <= server["kv_cache_usage_max"] <= 1
        # vLLM's own latency mean, from histogram deltas, near the client's: vLLM times from
        # a request's arrival to its end, the client from its send to the last token.
        assert server["e2e_mean_s"] == pytest.approx(step["e2e_s"]["mean"], rel=0.25)
    # Together the steps' deltas are the whole sweep's.
    for name, key in (("vllm:generation_tokens_total", "generation_tokens"),
                      ("vllm:prompt_tokens_total", "prompt_tokens")):  # fmt: skip
        assert after[name] - before[name] == sum(server[key] for server in servers)


def sessions_run(server: Server, out: Path, turns: int, seed: int) -> dict[str, Any]:
    """One step of 12 chat sessions of `turns` turns (trim 2): its summary.json step."""
    argv = [
        "run", *server.target(), "--endpoint", "chat", "--dataset", "chat-sessions",
        "--turns", str(turns), "--rate", "4", "--num-requests", "12", "--trim", "2",
        "--input-len", "256", "--output-len", "8", "--seed", str(seed), "--out", str(out),
        "--quiet",
    ]  # fmt: skip
    assert run_cli(argv) == 0
    rows = read_jsonl(out / "requests.jsonl")
    assert len(rows) == 12 * turns
    assert all(row["ok"] for row in rows), [row["error"] for row in rows if not row["ok"]]
    (step,) = read_summary(out)["steps"]
    return dict(step)


def test_multi_turn_sessions_hit_vllms_prefix_cache_more_with_every_turn(
    vllm_server: Server, tmp_path: Path
) -> None:
    # Fresh prompts per run (a seed each): only a session's own history can be cached.
    hit_rates = []
    for turns, seed in ((1, 101), (2, 102), (4, 104)):
        step = sessions_run(vllm_server, tmp_path / f"turns-{turns}", turns, seed)
        server = step["server"]
        assert server["tokens_mismatch"] is None
        hit_rates.append(server["prefix_cache_hit_rate"])
        by_turn = step["sessions"]["turns"]
        # vLLM's own per-request count (prompt_tokens_details): turn 1 finds next to nothing
        # cached, every later turn more, as more of its prompt is history (vLLM caches whole
        # blocks only: a 1100-token turn 2 measured 0.45 on this machine).
        shares = [turn["cached_share"] for turn in by_turn]
        assert all(share is not None for share in shares)
        assert shares == sorted(shares)
        assert shares[0] < 0.05
        if turns > 1:
            assert shares[-1] > 0.3
    # The step scrape of vLLM's /metrics: the more turns resend history, the more hits.
    assert hit_rates[0] < hit_rates[1] < hit_rates[2], hit_rates
    assert hit_rates[2] > 0.3
