"""The two clients the ceiling compares, as step functions, and the CPU meter of a step.

- `loadgen`: OpenAIClient + StepRunner + the precise pacer, exactly as a sweep uses them;
- `bare`: the same pacer, schedule and request body, but each request only `session.post(...)`
  and drains `resp.content.iter_any()` (the aiohttp ceiling on this machine).
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from time import perf_counter_ns

import aiohttp
import numpy as np
import numpy.typing as npt

from benchmarks.stream_server import PROMPT, PROMPT_TOKENS, sse_body_bytes
from loadgen.client.openai import OpenAIClient
from loadgen.client.protocol import RequestOptions, build_body
from loadgen.config import LoadConfig, TargetConfig
from loadgen.core.events import RunObserver, StepProgress
from loadgen.core.records import RequestRecord, RequestSpec
from loadgen.runtime.pacer import make_pacer
from loadgen.runtime.runner import StepRunner, StopSignal
from loadgen.runtime.targets import timeouts


@dataclass(frozen=True, slots=True)
class StepPlan:
    """One step: `tokens` per request, sent at `t_start_ns + offsets_s` (perf_counter_ns)."""

    rate_rps: float
    tokens: int
    trim: int
    offsets_s: npt.NDArray[np.float64]
    t_start_ns: int


StepFn = Callable[[StepPlan], Awaitable[list[RequestRecord]]]
_OPTIONS = RequestOptions(model="m", optional={"ignore_eos": True})
# The timeouts a default target has (TargetConfig's), so the benchmark runs what a user runs.
_TIMEOUTS = timeouts(TargetConfig())
_DRAIN_S = LoadConfig().drain_timeout_s


def request_spec(tokens: int) -> RequestSpec:
    """The request every step sends: a short prompt asking for `tokens` tokens."""
    return RequestSpec(prompt=PROMPT, max_tokens=tokens, tokens_in=PROMPT_TOKENS)


@asynccontextmanager
async def loadgen_client(base_url: str) -> AsyncIterator[StepFn]:
    """Steps run by loadgen itself: OpenAIClient + StepRunner + the precise pacer."""
    pacer = make_pacer(asyncio.get_running_loop())
    client = OpenAIClient(base_url, _OPTIONS, timeouts=_TIMEOUTS)
    runner = StepRunner(
        client, pacer, RunObserver(), max_concurrency=None, drain_timeout_s=_DRAIN_S
    )

    async def step(plan: StepPlan) -> list[RequestRecord]:
        num = len(plan.offsets_s)
        progress = StepProgress(0, plan.rate_rps, num, plan.trim, plan.t_start_ns)
        specs = [request_spec(plan.tokens)] * num
        result = await runner.run(progress, specs, plan.offsets_s, StopSignal())
        return result.records

    try:
        async with client:
            yield step
    finally:
        pacer.close()


@asynccontextmanager
async def bare_client(base_url: str) -> AsyncIterator[StepFn]:
    """Steps run by a bare aiohttp read loop on the same pacer, schedule and request body."""
    loop = asyncio.get_running_loop()
    pacer = make_pacer(loop)
    url = base_url + "/completions"
    connector = aiohttp.TCPConnector(limit=0)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def step(plan: StepPlan) -> list[RequestRecord]:
            body = build_body(request_spec(plan.tokens), _OPTIONS)
            expected = sse_body_bytes(plan.tokens)
            deadlines_ns = np.rint(plan.offsets_s * 1e9).astype(np.int64) + plan.t_start_ns
            tasks = []
            for index, deadline_ns in enumerate(deadlines_ns.tolist()):
                if perf_counter_ns() < deadline_ns:
                    await pacer.wait_until(deadline_ns)
                request = _bare_request(
                    session, url, body, index, deadline_ns, expected, plan.tokens
                )
                tasks.append(loop.create_task(request))
            return list(await asyncio.gather(*tasks))

        try:
            yield step
        finally:
            pacer.close()


async def _bare_request(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    index: int,
    t_sched_ns: int,
    expected_bytes: int,
    tokens: int,
) -> RequestRecord:
    """POST and read the stream without parsing it; complete when every byte arrived."""
    t_send_ns = perf_counter_ns()
    t_first_ns = None
    received = 0
    error = None
    try:
        async with session.post(url, data=body) as resp:
            async for chunk in resp.content.iter_any():
                if t_first_ns is None:
                    t_first_ns = perf_counter_ns()
                received += len(chunk)
    except (aiohttp.ClientError, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    t_end_ns = perf_counter_ns()
    if error is None and received != expected_bytes:
        error = f"got {received} bytes of {expected_bytes}"
    return RequestRecord(
        index=index,
        t_sched_ns=t_sched_ns,
        t_send_ns=t_send_ns,
        slot_wait_ns=0,
        t_done_ns=t_end_ns,
        t_first_ns=t_first_ns,
        t_last_ns=t_end_ns,
        tokens_in=PROMPT_TOKENS,
        tokens_out=0 if error else tokens,
        tokens_source="server",
        error_kind="bad_stream" if error else None,
        error=error,
    )


CLIENTS: dict[str, Callable[[str], AbstractAsyncContextManager[StepFn]]] = {
    "loadgen": loadgen_client,
    "bare": bare_client,
}


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds that process `pid` has used (from /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Usage:
    """What a step cost: wall time (s), CPU of client and server (fraction of one core), and
    how often another process preempted the client (involuntary context switches)."""

    wall_s: float
    client_cpu: float
    server_cpu: float
    preemptions: int


@asynccontextmanager
async def metered(server_pid: int) -> AsyncIterator[list[Usage]]:
    """Measure the block; its Usage is appended to the yielded list when it ends."""
    out: list[Usage] = []
    preempted0 = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
    cpu0, server0, wall0 = time.process_time(), process_cpu_s(server_pid), perf_counter_ns()
    yield out
    wall_s = (perf_counter_ns() - wall0) / 1e9
    out.append(
        Usage(
            wall_s=wall_s,
            client_cpu=(time.process_time() - cpu0) / wall_s,
            server_cpu=(process_cpu_s(server_pid) - server0) / wall_s,
            preemptions=resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - preempted0,
        )
    )
