"""Helpers for tests of the simulated server: serve it on the test's loop, read SSE and /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
from prometheus_client.parser import text_string_to_metric_families

from loadgen.config import ServeConfig, SimConfig
from loadgen.runtime.sim_serve import serve_options
from loadgen.sim.server import ServeOptions, SimServer, start_server
from loadgen.sim.settings import SimSetup, resolve

DONE = "[DONE]"


def served(flavor: str = "vllm", **serve: Any) -> ServeOptions:
    """The simulated server's options: the configuration's defaults with `serve` changed.

    `eos_mean_tokens` goes to the engine's settings, the rest to the server's.
    """
    sim = SimConfig(eos_mean_tokens=serve.pop("eos_mean_tokens", SimConfig().eos_mean_tokens))
    return serve_options(ServeConfig(api_flavor=flavor, sim=sim, **serve))


@asynccontextmanager
async def serving(
    setup: SimSetup | SimConfig | None = None, options: ServeOptions | None = None
) -> AsyncIterator[tuple[SimServer, str]]:
    """A SimServer on a free loopback port of the running loop; yields it and its root URL."""
    if not isinstance(setup, SimSetup):
        setup = resolve(setup or SimConfig())
    server = SimServer(setup, options or served())
    runner, port = await start_server(server, "127.0.0.1", 0)
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def parse_sse(raw: bytes) -> list[Any]:
    """Every `data:` payload of an SSE body: JSON objects, and "[DONE]" as the string."""
    events: list[Any] = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        if not block.strip():
            continue
        assert block.startswith(b"data: "), block
        payload = block.removeprefix(b"data: ")
        events.append(DONE if payload == b"[DONE]" else orjson.loads(payload))
    return events


async def post_sse(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any]
) -> tuple[int, list[Any]]:
    """POST `body` and read the whole event stream (status, events)."""
    async with session.post(url, json=body) as resp:
        raw = await resp.read()
        if resp.status != 200:
            return resp.status, [orjson.loads(raw)]
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        return resp.status, parse_sse(raw)


def token_events(events: list[Any]) -> list[dict[str, Any]]:
    """Chunks that carry output text (not the role chunk, not the usage chunk)."""
    out = []
    for event in events:
        if event == DONE or not event["choices"]:
            continue
        choice = event["choices"][0]
        text = choice["delta"].get("content") if "delta" in choice else choice["text"]
        if text:
            out.append(event)
    return out


def chunk_text(event: dict[str, Any]) -> str:
    """The output text of one token chunk."""
    choice = event["choices"][0]
    return str(choice["delta"]["content"] if "delta" in choice else choice["text"])


async def scrape(session: aiohttp.ClientSession, root: str) -> dict[str, Any]:
    """GET /metrics, parsed with prometheus-client: {"families": {name: type}, "samples": [...]}."""
    async with session.get(f"{root}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    families = list(text_string_to_metric_families(text))
    return {
        "families": {family.name: family.type for family in families},
        "samples": [sample for family in families for sample in family.samples],
    }


def value(metrics: dict[str, Any], name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels`."""
    found = [
        sample.value
        for sample in metrics["samples"]
        if sample.name == name and labels.items() <= sample.labels.items()
    ]
    assert found, f"no sample {name} {labels}"
    return float(sum(found))
