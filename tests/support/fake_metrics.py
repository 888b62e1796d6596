"""A vLLM-style `/metrics` page on a FakeOpenAI app, its counters moved by the requests it serves.

Every completion request the fake receives adds, on two engines of one model: its prompt words
(the fake's prompt tokens, split half and half) and its `max_tokens` (+ `extra_generation`) to
the token counters; `PREFIX_HITS_PER_REQUEST` prefix-cache hits out of its prompt words; one
preemption when its arrival number is a multiple of `PREEMPT_EVERY`; and `TTFT_S`, `ITL_S`
(under vLLM's old name, `time_per_output_token_seconds`) and `E2E_S` to the histograms. The
gauges: running requests are the fake's requests in flight; waiting are `WAITING_PER_ENGINE`
on each engine; KV-cache usage is `KV_USAGE` per engine. Counters start from `BASE`, not 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.fake_openai import FakeOpenAI

BASE = 10_000
PREFIX_HITS_PER_REQUEST = 2
PREEMPT_EVERY = 5
TTFT_S = 0.05
ITL_S = 0.01
E2E_S = 0.2
WAITING_PER_ENGINE = 2
KV_USAGE = (0.25, 0.5)
_ENGINES = ("0", "1")


@dataclass
class MetricsSeen:
    """Every GET of the page: its headers (mutated only on the server's loop)."""

    gets: list[dict[str, str]] = field(default_factory=list)


class FakeMetrics:
    """Serves the page on `fake.app` (add it before the app starts).

    `extra_generation` tokens are counted for every request beyond those it generated;
    `fail(n)` True answers GET number n (0: the first, a run's probe) with HTTP 500;
    `vllm=False` serves a Prometheus page with no vllm:* family.
    """

    def __init__(
        self,
        fake: FakeOpenAI,
        *,
        extra_generation: int = 0,
        fail: Callable[[int], bool] | None = None,
        vllm: bool = True,
    ) -> None:
        self.fake = fake
        self.extra_generation = extra_generation
        self.fail = fail
        self.vllm = vllm
        self.seen = MetricsSeen()
        fake.app.router.add_get("/metrics", self._page)

    async def _page(self, request: web.Request) -> web.Response:
        number = len(self.seen.gets)
        self.seen.gets.append(dict(request.headers))
        if self.fail is not None and self.fail(number):
            return web.Response(text="scrape failed on purpose", status=500)
        text = self.page() if self.vllm else "# TYPE process_cpu_seconds counter\n"
        if not self.vllm:
            text += "process_cpu_seconds_total 1.5\n"
        return web.Response(text=text, content_type="text/plain")

    def page(self) -> str:
        """The exposition now, as prometheus-client would write vLLM's."""
        bodies = [incoming.body for incoming in self.fake.seen.requests]
        requests = len(bodies)
        prompt = sum(_words(body) for body in bodies)
        generation = sum(int(body.get("max_tokens", 16)) + self.extra_generation for body in bodies)
        lines: list[str] = []
        _gauge(lines, "vllm:num_requests_running", (self.fake.seen.in_flight, 0))
        _gauge(lines, "vllm:num_requests_waiting", (WAITING_PER_ENGINE,) * 2)
        _gauge(lines, "vllm:kv_cache_usage_perc", KV_USAGE)
        _counter(lines, "vllm:prompt_tokens", BASE + prompt)
        _counter(lines, "vllm:generation_tokens", BASE + generation)
        _counter(lines, "vllm:prefix_cache_queries", BASE + prompt)
        _counter(lines, "vllm:prefix_cache_hits", BASE + PREFIX_HITS_PER_REQUEST * requests)
        preemptions = sum(1 for n in range(requests) if n % PREEMPT_EVERY == 0)
        _counter(lines, "vllm:num_preemptions", BASE + preemptions)
        _histogram(lines, "vllm:time_to_first_token_seconds", requests, TTFT_S)
        itl_count = sum(max(int(body.get("max_tokens", 16)) - 1, 0) for body in bodies)
        _histogram(lines, "vllm:time_per_output_token_seconds", itl_count, ITL_S)
        _histogram(lines, "vllm:e2e_request_latency_seconds", requests, E2E_S)
        return "\n".join(lines) + "\n"


def _words(body: Mapping[str, Any]) -> int:
    """The fake's prompt tokens: words of the prompt (as FakeOpenAI's usage counts them)."""
    if "prompt" in body:
        return len(str(body["prompt"]).split())
    return sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or [])


def _labels(engine: str, **more: str) -> str:
    pairs = {"engine": engine, **more, "model_name": "fake-model"}
    return "{" + ",".join(f'{k}="{v}"' for k, v in pairs.items()) + "}"


def _split(total: float) -> tuple[float, float]:
    """`total` over the two engines: half each (the odd unit on engine 0)."""
    second = total // 2
    return total - second, second


def _gauge(lines: list[str], name: str, values: tuple[float, ...]) -> None:
    lines += [f"# HELP {name} A gauge.", f"# TYPE {name} gauge"]
    lines += [f"{name}{_labels(e)} {float(v)}" for e, v in zip(_ENGINES, values, strict=True)]


def _counter(lines: list[str], name: str, total: float) -> None:
    lines += [f"# HELP {name}_total A counter.", f"# TYPE {name}_total counter"]
    values = _split(total)
    lines += [f"{name}_total{_labels(e)} {v}" for e, v in zip(_ENGINES, values, strict=True)]
    lines += [f"# HELP {name}_created A counter.", f"# TYPE {name}_created gauge"]
    lines += [f"{name}_created{_labels(e)} 1.7563e+09" for e in _ENGINES]


def _histogram(lines: list[str], name: str, count: int, each_s: float) -> None:
    """A histogram of `count` observations, each `each_s`, all on engine 0."""
    lines += [f"# HELP {name} A histogram.", f"# TYPE {name} histogram"]
    for engine, n in zip(_ENGINES, (count, 0), strict=True):
        for le in ("0.001", "0.1", "1.0", "+Inf"):
            inside = n if le == "+Inf" or float(le) >= each_s else 0
            lines.append(f"{name}_bucket{_labels(engine, le=le)} {float(inside)}")
        lines.append(f"{name}_count{_labels(engine)} {float(n)}")
        lines.append(f"{name}_sum{_labels(engine)} {n * each_s}")
