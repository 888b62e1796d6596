"""The real-time simulated server (vLLM flavor) on a loopback port of the test's event loop.

Each test serves a SimServer with a small time scale (modelled step times x 0.05 to 0.1), so a
GPU second passes in 50 to 100 ms and timing still has the model's shape. Pass/fail never rests
on a wall-clock figure beyond a generous sanity bound: latencies are compared with each other,
throughputs with the offered rate.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from loadgen.config import (
    LoadConfig,
    OutputConfig,
    RunConfig,
    SimConfig,
    TargetConfig,
    WorkloadConfig,
)
from loadgen.runtime.run import run_config
from tests.integration._helpers import read_jsonl, read_summary
from tests.integration._sim import (
    DONE,
    parse_sse,
    post_sse,
    scrape,
    served,
    serving,
    token_events,
    value,
)

MODEL = "llama-2-7b"
FAST = served(time_scale=0.1, eos_mean_tokens=8)
VLLM_FAMILIES = {
    # family name (prometheus-client drops a counter's _total) -> type
    "vllm:num_requests_running": "gauge",
    "vllm:num_requests_waiting": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
    "vllm:prompt_tokens": "counter",
    "vllm:generation_tokens": "counter",
    "vllm:num_preemptions": "counter",
    "vllm:request_success": "counter",
    "vllm:time_to_first_token_seconds": "histogram",
    "vllm:inter_token_latency_seconds": "histogram",
    "vllm:e2e_request_latency_seconds": "histogram",
}


def completion(max_tokens: int, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "prompt": "say something short", "max_tokens": max_tokens} | extra


# --- a sweep through loadgen's own client ---------------------------------------------------

# Four sequences per batch make the engine saturate at ~16 req/s of modelled time for 32-token
# prompts and 16-token outputs (~160 req/s at time scale 0.1): 30 req/s is light, 240 and 800
# overload it 1.5x and 5x.
SWEEP_RATES = (30.0, 240.0, 800.0)
SWEEP_REQUESTS, SWEEP_TRIM, SWEEP_OUTPUT = 50, 5, 16


@pytest.mark.slow
async def test_sweep_through_the_real_client_saturates(tmp_path: Path) -> None:
    async with serving(SimConfig(max_num_seqs=4), served(time_scale=0.1)) as (_, root):
        config = RunConfig(
            target=TargetConfig(base_url=f"{root}/v1"),
            workload=WorkloadConfig(input_len=32, output_len=SWEEP_OUTPUT),
            load=LoadConfig(
                rates_rps=SWEEP_RATES,
                num_requests=SWEEP_REQUESTS,
                trim=SWEEP_TRIM,
                arrival="constant",  # no arrival noise: the light step's throughput is its rate
            ),
            output=OutputConfig(out_dir=tmp_path),
        )
        outcome = await run_config(config)

    (swept,) = outcome.targets
    assert swept.info is not None
    assert swept.info.model == MODEL
    assert not outcome.interrupted
    steps = read_summary(tmp_path)["steps"]
    assert [step["target_rate_rps"] for step in steps] == list(SWEEP_RATES)
    rows = read_jsonl(tmp_path / "requests.jsonl")
    for step in steps:
        mine = [row for row in rows if row["step"] == step["step"]]
        assert sorted(row["index"] for row in mine) == list(range(SWEEP_REQUESTS))
        assert step["num_kept"] == step["num_ok"] == SWEEP_REQUESTS - 2 * SWEEP_TRIM
        assert step["num_errors"] == 0
        assert step["tokens_source"] == "server"
    assert all(row["ok"] and row["status"] == 200 for row in rows)
    # ignore_eos is on for synthetic workloads: every output is exactly max_tokens long.
    assert {(row["tokens_out"], row["chunks"]) for row in rows} == {(SWEEP_OUTPUT, SWEEP_OUTPUT)}
    assert all(row["t_send_s"] <= row["t_first_s"] <= row["t_last_s"] for row in rows)

    ttft_p50 = [step["ttft_s"]["p50"] for step in steps]
    assert ttft_p50[0] < ttft_p50[1] < ttft_p50[2], ttft_p50
    assert ttft_p50[-1] > 5 * ttft_p50[0], ttft_p50
    for step in steps:
        assert step["ttft_s"]["p50"] <= step["e2e_s"]["p50"]
        assert step["ttft_s"]["max"] <= step["e2e_s"]["max"]

    throughput = [step["sequence_throughput_rps"] for step in steps]
    light, overloaded, heavy = throughput
    assert 0.75 * SWEEP_RATES[0] <= light <= 1.25 * SWEEP_RATES[0], throughput
    assert heavy < 0.5 * SWEEP_RATES[-1], throughput  # far below what was offered
    assert light < overloaded, throughput
    assert 0.67 < heavy / overloaded < 1.5, throughput  # a plateau


# --- /metrics ---------------------------------------------------------------------------------


async def _stream(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], started: asyncio.Event
) -> dict[str, int]:
    """Read one stream; set `started` at its first token; return its usage."""
    usage: dict[str, int] = {}
    async with session.post(url, json=body) as resp:
        assert resp.status == 200
        async for line in resp.content:
            if not line.startswith(b"data: {"):
                continue
            event = parse_sse(line + b"\n")[0]
            if event["choices"]:
                started.set()
            usage = event.get("usage") or usage
    return usage


async def test_metrics_parse_and_move_as_requests_run() -> None:
    count, prompt_words, max_tokens = 6, 200, 600
    body = completion(
        max_tokens,
        prompt="word " * prompt_words,
        stream=True,
        stream_options={"include_usage": True},
        ignore_eos=True,
    )
    async with serving(options=FAST) as (_, root), aiohttp.ClientSession() as session:
        idle = await scrape(session, root)
        for name, kind in VLLM_FAMILIES.items():
            assert idle["families"].get(name) == kind, name
        for name in (
            "vllm:prompt_tokens_total",
            "vllm:generation_tokens_total",
            "vllm:num_preemptions_total",
            "vllm:time_to_first_token_seconds_count",
            "vllm:inter_token_latency_seconds_bucket",
            "vllm:e2e_request_latency_seconds_sum",
        ):
            assert value(idle, name, model_name=MODEL) == 0.0, name

        started = [asyncio.Event() for _ in range(count)]
        url = f"{root}/v1/completions"
        tasks = [asyncio.create_task(_stream(session, url, body, event)) for event in started]
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in started)), 10)
        busy = await scrape(session, root)
        usages = await asyncio.wait_for(asyncio.gather(*tasks), 30)
        after = await scrape(session, root)

    assert value(busy, "vllm:num_requests_running", model_name=MODEL) == count
    assert value(busy, "vllm:num_requests_waiting") == 0
    assert value(busy, "vllm:kv_cache_usage_perc") > 0
    assert 0 < value(busy, "vllm:generation_tokens_total") < count * max_tokens

    assert [usage["completion_tokens"] for usage in usages] == [max_tokens] * count
    assert [usage["prompt_tokens"] for usage in usages] == [prompt_words] * count
    assert value(after, "vllm:num_requests_running") == 0
    assert value(after, "vllm:kv_cache_usage_perc") == 0
    assert value(after, "vllm:generation_tokens_total") == count * max_tokens
    assert value(after, "vllm:prompt_tokens_total") == count * prompt_words
    assert value(after, "vllm:request_success_total", finished_reason="length") == count
    assert value(after, "vllm:request_success_total") == count
    assert value(after, "vllm:num_preemptions_total") == 0
    assert value(after, "vllm:time_to_first_token_seconds_count") == count
    assert value(after, "vllm:e2e_request_latency_seconds_count") == count
    # One inter-token gap per token after the first.
    assert value(after, "vllm:inter_token_latency_seconds_count") == count * (max_tokens - 1)
    assert value(after, "vllm:inter_token_latency_seconds_bucket", le="+Inf") == count * (
        max_tokens - 1
    )
    ttft_sum = value(after, "vllm:time_to_first_token_seconds_sum")
    e2e_sum = value(after, "vllm:e2e_request_latency_seconds_sum")
    assert 0 < ttft_sum < e2e_sum


# --- clients that go away ------------------------------------------------------------------


async def _wait_idle(session: aiohttp.ClientSession, root: str) -> dict[str, Any]:
    """/sim/stats once nothing runs or waits (polled for up to 5 s)."""
    for _ in range(100):
        async with session.get(f"{root}/sim/stats") as stats:
            state: dict[str, Any] = await stats.json()
        if state["running"] == state["waiting"] == 0:
            break
        await asyncio.sleep(0.05)
    return state


async def test_a_client_that_goes_away_frees_its_kv_blocks() -> None:
    body = completion(3000, stream=True, ignore_eos=True)
    async with serving(options=FAST) as (_, root), aiohttp.ClientSession() as session:
        resp = await session.post(f"{root}/v1/completions", json=body)
        seen = 0
        while seen < 3:
            seen += (await resp.content.readline()).startswith(b"data: {")
        async with session.get(f"{root}/sim/stats") as stats:
            assert (await stats.json())["running"] == 1
        resp.close()  # drop the connection mid-stream
        state = await _wait_idle(session, root)  # the whole request would take ~3 s here
        metrics = await scrape(session, root)

    assert state["running"] == state["waiting"] == 0
    assert state["kv_usage"] == 0
    assert 3 <= state["tokens"] < 3000
    assert value(metrics, "vllm:request_success_total", finished_reason="abort") == 1
    assert value(metrics, "vllm:kv_cache_usage_perc") == 0
    assert value(metrics, "vllm:num_requests_running") == 0


async def test_a_non_streamed_request_whose_client_goes_away_is_aborted() -> None:
    max_tokens = 1000  # ~1 s here when left to run
    body = orjson.dumps(completion(max_tokens, ignore_eos=True))
    async with serving(options=FAST) as (_, root), aiohttp.ClientSession() as session:
        host, port = root.removeprefix("http://").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /v1/completions HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        for _ in range(100):
            async with session.get(f"{root}/sim/stats") as stats:
                if (await stats.json())["tokens"] > 0:
                    break
            await asyncio.sleep(0.01)
        writer.close()  # the client gives up before the answer
        await writer.wait_closed()
        state = await _wait_idle(session, root)

    assert state["running"] == 0
    assert state["tokens"] < max_tokens  # aborted, not finished


# --- prefix caching ---------------------------------------------------------------------------

SHARED = " ".join(f"w{i}" for i in range(64))  # four whole 16-token blocks


async def _cached_tokens(root: str, session: aiohttp.ClientSession) -> int:
    """Ask a chat, then a response sharing its first 64 tokens; the response's cached tokens."""
    chat = {"model": MODEL, "messages": [{"role": "user", "content": f"{SHARED} one two"}]}
    async with session.post(f"{root}/v1/chat/completions", json=chat | {"max_tokens": 2}) as r:
        first = (await r.json())["usage"]
    assert (first["prompt_tokens"], first["prompt_tokens_details"]) == (66, {"cached_tokens": 0})
    body = {"model": MODEL, "input": f"{SHARED} three four five six", "max_output_tokens": 2}
    async with session.post(f"{root}/v1/responses", json=body) as resp:
        usage = (await resp.json())["usage"]
    assert usage["input_tokens"] == 68
    return int(usage["input_tokens_details"]["cached_tokens"])


async def test_a_shared_prefix_is_counted_exactly_in_metrics_and_usage() -> None:
    async with serving(options=FAST) as (_, root), aiohttp.ClientSession() as session:
        idle = await scrape(session, root)
        cached = await _cached_tokens(root, session)
        again = {"model": MODEL, "prompt": f"{SHARED} x", "max_tokens": 2, "stream": True}
        again["stream_options"] = {"include_usage": True}
        _, events = await post_sse(session, f"{root}/v1/completions", again)
        after = await scrape(session, root)

    # A completion prompt has no role: its first token is not the chat's, so nothing matches.
    assert events[-2]["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    again_tokens = 65

    for name in ("vllm:prefix_cache_queries", "vllm:prefix_cache_hits"):
        assert idle["families"][name] == "counter"
        assert value(idle, f"{name}_total", model_name=MODEL, engine="0") == 0
    assert cached == 64
    assert value(after, "vllm:prefix_cache_queries_total") == 66 + 68 + again_tokens
    assert value(after, "vllm:prefix_cache_hits_total") == 64
    # Cached tokens are still prompt tokens.
    assert value(after, "vllm:prompt_tokens_total") == 66 + 68 + again_tokens


async def test_without_prefix_caching_nothing_is_cached_or_looked_up() -> None:
    settings = SimConfig(enable_prefix_caching=False)
    async with (
        serving(settings, FAST) as (_, root),
        aiohttp.ClientSession() as session,
    ):
        cached = await _cached_tokens(root, session)
        after = await scrape(session, root)

    assert cached == 0
    assert value(after, "vllm:prefix_cache_queries_total") == 0
    assert value(after, "vllm:prefix_cache_hits_total") == 0


# --- preemption -------------------------------------------------------------------------------


async def test_small_memory_preempts_and_still_completes_every_request() -> None:
    # An RTX 3090 keeps ~1100 KV blocks (~17.8k tokens) for Llama-2-7B; 40 requests of
    # 200 + 600 tokens need 32k, so decodes run out of blocks and preempt by recompute.
    count, max_tokens = 40, 600
    body = completion(
        max_tokens,
        prompt="word " * 200,
        stream=True,
        stream_options={"include_usage": True},
        ignore_eos=True,
    )
    settings = SimConfig(gpu="rtx3090")
    async with (
        serving(settings, served(time_scale=0.05)) as (server, root),
        aiohttp.ClientSession() as session,
    ):
        assert server.setup.build_engine().total_blocks * 16 < count * (200 + max_tokens)
        results = await asyncio.wait_for(
            asyncio.gather(
                *(post_sse(session, f"{root}/v1/completions", body) for _ in range(count))
            ),
            60,
        )
        metrics = await scrape(session, root)

    for status, events in results:
        assert status == 200
        assert len(token_events(events)) == max_tokens
        assert events[-2]["usage"]["completion_tokens"] == max_tokens
        assert events[-1] == DONE
    assert value(metrics, "vllm:num_preemptions_total") > 0
    assert server.loop is not None
    assert value(metrics, "vllm:num_preemptions_total") == server.loop.engine.preemptions
    # Every request looked its prompt up once: a recomputation after preemption is not counted.
    assert value(metrics, "vllm:prefix_cache_queries_total") == count * 200
    # The same prompt: a hit is whole blocks, at most the 12 short of the last token.
    hits = value(metrics, "vllm:prefix_cache_hits_total")
    assert hits == server.loop.engine.cache_hits
    assert hits % 16 == 0
    assert 0 < hits <= (count - 1) * 192
    assert value(metrics, "vllm:request_success_total", finished_reason="length") == count
    assert value(metrics, "vllm:generation_tokens_total") == count * max_tokens
    # Recomputed prompts are not new prompt tokens.
    assert value(metrics, "vllm:prompt_tokens_total") == count * 200
    assert value(metrics, "vllm:kv_cache_usage_perc") == 0
    assert math.isclose(value(metrics, "vllm:time_to_first_token_seconds_count"), count)
