"""The simulated server in DeepSpeed-MII's flavor, and loadgen's client coping with it.

MII streams no usage (even when asked), opens chat streams with a role-only chunk, rejects
temperature 0, has /health but no /metrics, and ignores ignore_eos: outputs end at EOS. The
client must then count output tokens itself: one per chunk ("estimate"), or with --tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
import tokenizers

from loadgen.config import LoadConfig, OutputConfig, RunConfig, TargetConfig, WorkloadConfig
from loadgen.runtime.run import run_config
from loadgen.sim.tokens import WORDS
from tests.integration._helpers import read_jsonl, read_summary
from tests.integration._sim import DONE, post_sse, served, serving, token_events
from tests.support.tokenizer import build_bpe_tokenizer

MODEL = "llama-2-7b"
MII = served("mii", time_scale=0.1, eos_mean_tokens=8)


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bpe_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.mark.parametrize("chat", [False, True])
async def test_streams_carry_no_usage_even_when_asked(chat: bool) -> None:
    body: dict[str, Any] = {"model": MODEL}
    if chat:
        path, body["messages"] = "chat/completions", [{"role": "user", "content": "hi you"}]
    else:
        path, body["prompt"] = "completions", "hi you"
    body |= {"max_tokens": 30, "stream": True}
    body["stream_options"] = {"include_usage": True}
    async with serving(options=MII) as (_, root), aiohttp.ClientSession() as session:
        status, events = await post_sse(session, f"{root}/v1/{path}", body)

    assert status == 200
    assert events[-1] == DONE
    assert not any(event.get("usage") for event in events[:-1])
    assert all(event["choices"] for event in events[:-1])  # no usage-only chunk either
    tokens = token_events(events)
    assert len(events) == len(tokens) + 1 + chat
    assert all("stop_reason" not in event["choices"][0] for event in tokens)
    assert tokens[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    if chat:
        assert events[0]["choices"][0]["delta"] == {"role": "assistant"}  # no content key


async def test_temperature_zero_is_rejected() -> None:
    body = {"model": MODEL, "prompt": "hi", "max_tokens": 4, "temperature": 0}
    async with serving(options=MII) as (_, root), aiohttp.ClientSession() as session:
        async with session.post(f"{root}/v1/completions", json=body) as resp:
            assert resp.status == 400
            error = await resp.json()
        async with session.post(f"{root}/v1/completions", json=body | {"temperature": 0.7}) as resp:
            assert resp.status == 200
    assert "temperature" in error["message"]


async def test_no_metrics_but_health() -> None:
    async with serving(options=MII) as (_, root), aiohttp.ClientSession() as session:
        async with session.get(f"{root}/metrics") as resp:
            assert resp.status == 404
        async with session.get(f"{root}/health") as resp:
            assert resp.status == 200
        async with session.get(f"{root}/v1/models") as resp:
            assert resp.status == 200
            assert [entry["id"] for entry in (await resp.json())["data"]] == [MODEL]


async def test_ignore_eos_is_ignored() -> None:
    body = {"model": MODEL, "prompt": "hi", "max_tokens": 40, "ignore_eos": True}
    body |= {"min_tokens": 40}  # MII does not force min_tokens either
    async with serving(options=MII) as (_, root), aiohttp.ClientSession() as session:
        answers = []
        for _ in range(20):
            async with session.post(f"{root}/v1/completions", json=body) as resp:
                assert resp.status == 200
                answers.append(await resp.json())

    lengths = [answer["usage"]["completion_tokens"] for answer in answers]
    assert min(lengths) < 40, lengths  # EOS with mean 8 tokens
    assert len(set(lengths)) > 1, lengths
    for answer, length in zip(answers, lengths, strict=True):
        assert answer["choices"][0]["finish_reason"] == ("length" if length == 40 else "stop")


# --- loadgen's client against MII -------------------------------------------------------------

NUM_REQUESTS, TRIM, OUTPUT_LEN = 30, 5, 24


async def _sweep(out: Path, tokenizer: str | None, endpoint: str = "completions") -> Any:
    async with serving(options=MII) as (server, root):
        config = RunConfig(
            target=TargetConfig(
                base_url=f"{root}/v1", endpoint=endpoint, temperature=0.5, tokenizer=tokenizer
            ),
            load=LoadConfig(rates_rps=(60.0,), num_requests=NUM_REQUESTS, trim=TRIM),
            workload=WorkloadConfig(input_len=32, output_len=OUTPUT_LEN),
            output=OutputConfig(out_dir=out),
        )
        await run_config(config)
        assert server.loop is not None
        return server.loop.stats()


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
async def test_client_counts_chunks_without_usage(tmp_path: Path, endpoint: str) -> None:
    stats = await _sweep(tmp_path, None, endpoint)

    rows = read_jsonl(tmp_path / "requests.jsonl")
    assert len(rows) == NUM_REQUESTS
    assert all(row["ok"] for row in rows)
    assert {row["tokens_source"] for row in rows} == {"estimate"}
    assert all(row["tokens_out"] == row["chunks"] >= 1 for row in rows)
    # Every token the engine emitted was streamed and counted: one token per chunk.
    assert sum(row["tokens_out"] for row in rows) == stats.tokens
    lengths = {row["tokens_out"] for row in rows}
    assert max(lengths) <= OUTPUT_LEN
    assert len(lengths) > 1  # EOS lengths despite ignore_eos
    step = read_summary(tmp_path)["steps"][0]
    assert step["tokens_source"] == "estimate"
    assert step["num_ok"] == step["num_kept"] == NUM_REQUESTS - 2 * TRIM
    assert step["ttft_s"]["p50"] <= step["e2e_s"]["p50"]


async def test_client_counts_with_a_tokenizer(tmp_path: Path, tokenizer_json: Path) -> None:
    stats = await _sweep(tmp_path, str(tokenizer_json))

    rows = read_jsonl(tmp_path / "requests.jsonl")
    assert all(row["ok"] for row in rows)
    assert {row["tokens_source"] for row in rows} == {"tokenizer"}
    assert read_summary(tmp_path)["steps"][0]["tokens_source"] == "tokenizer"
    assert sum(row["chunks"] for row in rows) == stats.tokens
    # The server streams one word per chunk; this tokenizer gives a word one token or more.
    encoder = tokenizers.Tokenizer.from_file(str(tokenizer_json))
    per_word = [len(encoder.encode(word, add_special_tokens=False).ids) for word in WORDS]
    assert all(
        row["chunks"] * min(per_word) <= row["tokens_out"] <= row["chunks"] * max(per_word)
        for row in rows
    )


async def test_there_is_no_responses_api() -> None:
    # DeepSpeed-MII's OpenAI server has completions, chat completions and models only.
    body = {"model": MODEL, "input": "hi"}
    async with (
        serving(options=MII) as (_, root),
        aiohttp.ClientSession() as session,
        session.post(f"{root}/v1/responses", json=body) as resp,
    ):
        assert resp.status == 404
