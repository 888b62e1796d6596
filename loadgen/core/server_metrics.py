"""The server's view of one step, from its Prometheus metrics scraped around the step.

A `Scrape` holds, for each sample name of interest (`WANTED`), its value in every label set
(vLLM labels its series by `model_name` and `engine`): counts and gauges of one server are
summed across them, a usage fraction takes their largest. Names follow vLLM's V1 engine
(vllm/v1/metrics/loggers.py) as prometheus-client exposes them (counters with `_total`);
each figure takes the first of its names that the server exposes, so the names vLLM used
before 0.9 are read too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from loadgen.core.records import RequestRecord, ServerFigures

# Counters (sample names, preferred first): vLLM's names, then their pre-0.9 forms.
PROMPT_TOKENS = ("vllm:prompt_tokens_total",)
GENERATION_TOKENS = ("vllm:generation_tokens_total",)
PREEMPTIONS = ("vllm:num_preemptions_total",)
PREFIX_QUERIES = ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total")
PREFIX_HITS = ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total")
# Gauges.
RUNNING = ("vllm:num_requests_running",)
WAITING = ("vllm:num_requests_waiting",)
KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
# Histograms, by family name (their `_sum` and `_count` samples are read).
TTFT = ("vllm:time_to_first_token_seconds",)
ITL = ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")
E2E = ("vllm:e2e_request_latency_seconds",)

_COUNTERS = (*PROMPT_TOKENS, *GENERATION_TOKENS, *PREEMPTIONS, *PREFIX_QUERIES, *PREFIX_HITS)
_HISTOGRAMS = (*TTFT, *ITL, *E2E)
# Every sample name a scrape needs to keep.
_HISTOGRAM_SAMPLES = tuple(f"{name}{end}" for name in _HISTOGRAMS for end in ("_sum", "_count"))
WANTED = frozenset((*_COUNTERS, *RUNNING, *WAITING, *KV_USAGE, *_HISTOGRAM_SAMPLES))
# The prefix of every vLLM family: a metrics page with none is not a vLLM server's.
VLLM_PREFIX = "vllm:"

# Server and client token counts agree when they differ by at most this many tokens, or by at
# most this fraction of the larger count (a request finishing as the last scrape is taken).
TOKENS_TOLERANCE = 2
TOKENS_TOLERANCE_FRACTION = 0.01
# `tokens_mismatch` when a token counter decreased between two scrapes of a step.
RESTARTED = "the server's token counters went back during the step (did it restart?)"


@dataclass(frozen=True, slots=True)
class Scrape:
    """One reading of a metrics page at `t_ns` (perf_counter_ns): every label set's value of
    each sample name read (absent: the page had no such sample)."""

    t_ns: int
    samples: Mapping[str, tuple[float, ...]]


@dataclass(frozen=True, slots=True)
class ClientTokens:
    """What the client counted over every request it sent in a step (tokens).

    `prompt` is None unless every request's prompt size is known; `exact` is True when every
    count came from the server's usage (not a tokenizer, not an estimate).
    """

    prompt: int | None
    generation: int
    exact: bool


def client_tokens(records: Sequence[RequestRecord]) -> ClientTokens:
    """The client's counts over all of a step's records, failed ones' partial output included."""
    prompts = [r.tokens_in for r in records]
    prompt = None if any(n is None for n in prompts) else sum(n or 0 for n in prompts)
    counted = [r for r in records if r.ok or r.tokens_out > 0]
    exact = all(r.tokens_source == "server" for r in counted)
    return ClientTokens(prompt, sum(r.tokens_out for r in records), exact)


def server_figures(url: str, scrapes: Sequence[Scrape], client: ClientTokens) -> ServerFigures:
    """The server's figures for one step scraped `scrapes` times, in time order, at `url`.

    Counters are deltas from the first scrape to the last (None with fewer than two scrapes,
    or when one went back: the server restarted); gauges are sampled at every scrape.
    """
    ordered = sorted(scrapes, key=lambda s: s.t_ns)
    prompt, generation = _delta(ordered, PROMPT_TOKENS), _delta(ordered, GENERATION_TOKENS)
    queries, hits = _delta(ordered, PREFIX_QUERIES), _delta(ordered, PREFIX_HITS)
    running, waiting = _gauge(ordered, RUNNING), _gauge(ordered, WAITING)
    kv_usage = _gauge(ordered, KV_USAGE, largest=True)
    reset = len(ordered) > 1 and any(
        _went_back(ordered, _present(ordered, names))
        for names in (PROMPT_TOKENS, GENERATION_TOKENS)
    )
    return ServerFigures(
        url=url,
        scrapes=len(ordered),
        prompt_tokens=_int(prompt),
        generation_tokens=_int(generation),
        client_prompt_tokens=client.prompt,
        client_generation_tokens=client.generation,
        tokens_mismatch=RESTARTED if reset else tokens_mismatch(prompt, generation, client),
        prefix_cache_queries=_int(queries),
        prefix_cache_hits=_int(hits),
        prefix_cache_hit_rate=_ratio(hits, queries),
        preemptions=_int(_delta(ordered, PREEMPTIONS)),
        running_max=running[0],
        running_mean=running[1],
        waiting_max=waiting[0],
        waiting_mean=waiting[1],
        kv_cache_usage_max=kv_usage[0],
        ttft_mean_s=_histogram_mean(ordered, TTFT),
        itl_mean_s=_histogram_mean(ordered, ITL),
        e2e_mean_s=_histogram_mean(ordered, E2E),
    )


def tokens_mismatch(
    server_prompt: float | None, server_generation: float | None, client: ClientTokens
) -> str | None:
    """How the server's token counts disagree with the client's, None when they agree.

    Only with `client.exact` is a disagreement called a mismatch; otherwise the text says the
    client's count is an estimate.
    """
    parts = [
        f"{what} tokens: server {round(server)}, client {mine}"
        for what, server, mine in (
            ("generation", server_generation, client.generation),
            ("prompt", server_prompt, client.prompt),
        )
        if server is not None and mine is not None and not _agree(server, mine)
    ]
    if not parts:
        return None
    text = "; ".join(parts)
    return f"mismatch: {text}" if client.exact else f"{text} (the client's counts are estimates)"


def _agree(server: float, client: int) -> bool:
    """Whether two token counts agree within the tolerance."""
    gap = abs(server - client)
    return gap <= TOKENS_TOLERANCE or gap <= TOKENS_TOLERANCE_FRACTION * max(server, client)


def _present(scrapes: Sequence[Scrape], names: tuple[str, ...]) -> str | None:
    """The first of `names` that some scrape holds."""
    return next((n for n in names if any(n in s.samples for s in scrapes)), None)


def _went_back(scrapes: Sequence[Scrape], name: str | None) -> bool:
    """Whether counter `name` (summed over label sets) decreased between two scrapes."""
    if name is None:
        return False
    values = [sum(s.samples[name]) for s in scrapes if name in s.samples]
    return any(later < earlier for earlier, later in pairwise(values))


def _delta(scrapes: Sequence[Scrape], names: tuple[str, ...]) -> float | None:
    """Last minus first of a counter; None when unknown, or when it went back (a restart)."""
    name = _present(scrapes, names)
    if name is None or len(scrapes) < 2 or _went_back(scrapes, name):
        return None
    first, last = scrapes[0].samples.get(name), scrapes[-1].samples.get(name)
    if first is None or last is None:
        return None
    return sum(last) - sum(first)


def _histogram_mean(scrapes: Sequence[Scrape], names: tuple[str, ...]) -> float | None:
    """A histogram's mean over the step (s): delta of its sum over delta of its count."""
    name = next((n for n in names if any(f"{n}_count" in s.samples for s in scrapes)), None)
    if name is None:
        return None
    total, count = _delta(scrapes, (f"{name}_sum",)), _delta(scrapes, (f"{name}_count",))
    return _ratio(total, count)


def _gauge(
    scrapes: Sequence[Scrape], names: tuple[str, ...], *, largest: bool = False
) -> tuple[float | None, float | None]:
    """A gauge's max and time-weighted mean over the scrapes; label sets summed (`largest`:
    the largest taken, for a fraction such as cache usage)."""
    name = _present(scrapes, names)
    if name is None:
        return None, None
    points = [
        (s.t_ns, max(s.samples[name], default=0.0) if largest else sum(s.samples[name]))
        for s in scrapes
        if name in s.samples
    ]
    return max(v for _, v in points), _time_mean(points)


def _time_mean(points: Sequence[tuple[int, float]]) -> float:
    """The mean of a gauge sampled at `points` (ns, value), by the trapezoid rule over time;
    the plain mean when the samples span no time."""
    span_ns = points[-1][0] - points[0][0]
    if len(points) < 2 or span_ns <= 0:
        return sum(v for _, v in points) / len(points)
    area = sum((t1 - t0) * (v0 + v1) / 2 for (t0, v0), (t1, v1) in pairwise(points))
    return area / span_ns


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)
