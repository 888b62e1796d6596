"""Discrete-event runs of the engine model in virtual time: specs and send offsets in, records out.

No HTTP and no sleeping: the clock jumps from one engine step to the next, or to the next
arrival when the engine is idle. A request sent during a step joins the queue at the next
step, and its tokens become visible when the step that produced them ends.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from loadgen.core.records import RequestRecord, RequestSpec
from loadgen.sim.engine import Engine
from loadgen.sim.reasoning import ReasoningRange
from loadgen.sim.sequence import Sequence as SimSequence
from loadgen.sim.tokens import Token, fit_tokens, message_tokens, prompt_tokens, text_tokens

_NS_PER_S = 1e9


@dataclass(frozen=True, slots=True)
class OutputPolicy:
    """How long outputs are: `max_tokens` when `ignore_eos`, else a seeded EOS draw.

    Without `ignore_eos` a sequence stops at EOS after a geometric number of tokens with mean
    `eos_mean_tokens`, kept within `[min_tokens, max_tokens]`.
    """

    ignore_eos: bool
    min_tokens: int
    eos_mean_tokens: float

    def length(self, max_tokens: int, rng: np.random.Generator) -> int:
        """Tokens a request asking for `max_tokens` will generate (at least 1)."""
        if self.ignore_eos:
            return max_tokens
        natural = int(rng.geometric(1.0 / max(self.eos_mean_tokens, 1.0)))
        return max(1, min(max_tokens, max(natural, self.min_tokens)))


def spec_prompt_tokens(spec: RequestSpec) -> int:
    """The workload's own prompt count when it has one, else the word count (at least 1)."""
    if spec.tokens_in is not None:
        return max(1, spec.tokens_in)
    if spec.messages is not None:
        return sum(prompt_tokens(message.get("content", "")) for message in spec.messages)
    return prompt_tokens(spec.prompt)


def spec_prompt(spec: RequestSpec) -> tuple[Token, ...]:
    """The prompt's token content, `spec_prompt_tokens(spec)` tokens of it (see tokens.py)."""
    if spec.messages is not None:
        tokens = message_tokens(spec.messages)
    else:
        tokens = text_tokens(spec.prompt)
    return fit_tokens(tokens, spec_prompt_tokens(spec))


@dataclass(frozen=True, slots=True)
class _Draws:
    """What draws each request's output length, and its reasoning tokens when there are any."""

    outputs: OutputPolicy
    rng: np.random.Generator
    reasoning: ReasoningRange | None
    thinking: np.random.Generator | None


@dataclass(slots=True)
class _Trace:
    """One request as the virtual run goes: what was sent and when (s), its token times (s),
    its reasoning tokens if any, and the prompt tokens it found in the prefix cache."""

    spec: RequestSpec
    t_send_s: float
    token_times_s: array[float]
    reasoning: int | None = None
    cached: int = 0
    done_s: float | None = None


class Arrivals(Protocol):
    """The requests a virtual run is sent, earliest first; a request's end may add more."""

    def next_s(self) -> float | None:
        """When the next pending request arrives (s), or None when none is pending."""
        ...

    def pop(self) -> tuple[int, RequestSpec, float]:
        """The next pending request: its id (the record's index), spec and arrival time (s)."""
        ...

    def ended(self, record: RequestRecord, now_s: float) -> None:
        """Take the record of a request that finished or was refused at `now_s` (s)."""
        ...


class _Fixed:
    """Requests at fixed offsets: `specs[i]` arrives at `offsets_s[i]`, ties in spec order."""

    def __init__(self, specs: Sequence[RequestSpec], offsets_s: npt.NDArray[np.float64]) -> None:
        self._specs = specs
        self._offsets_s = offsets_s
        self._order = np.argsort(offsets_s, kind="stable")
        self._position = 0
        self.records: list[RequestRecord | None] = [None] * len(specs)

    def next_s(self) -> float | None:
        """When the next pending request arrives (s), or None when none is pending."""
        if self._position == len(self._order):
            return None
        return float(self._offsets_s[self._order[self._position]])

    def pop(self) -> tuple[int, RequestSpec, float]:
        """The next pending request: its index, spec and arrival time (s)."""
        index = int(self._order[self._position])
        self._position += 1
        return index, self._specs[index], float(self._offsets_s[index])

    def ended(self, record: RequestRecord, now_s: float) -> None:
        """Keep the record in its spec's place."""
        self.records[record.index] = record


def simulate_requests(
    engine: Engine,
    specs: Sequence[RequestSpec],
    offsets_s: npt.NDArray[np.float64],
    outputs: OutputPolicy,
    rng: np.random.Generator,
    reasoning: ReasoningRange | None = None,
) -> list[RequestRecord]:
    """Run `specs[i]` arriving at `offsets_s[i]` through `engine`; records in send order (ns).

    With a `reasoning` phase each request's reasoning tokens are drawn from a generator spawned
    from `rng`, so output lengths stay those of a run without one.
    """
    arrivals = _Fixed(specs, offsets_s)
    run_arrivals(engine, arrivals, outputs, rng, reasoning)
    return [
        _record(i, _Trace(specs[i], float(offsets_s[i]), array("d")), None)
        if record is None
        else record
        for i, record in enumerate(arrivals.records)
    ]


class _OneByOne:
    """Requests sent one at a time: the first at 0, each next as the one before it ends."""

    def __init__(self, specs: Sequence[RequestSpec]) -> None:
        self._specs = specs
        self._next_s: float | None = 0.0 if specs else None
        self.records: list[RequestRecord] = []

    def next_s(self) -> float | None:
        """When the next request goes (s): None while one is out, or when all went."""
        return self._next_s

    def pop(self) -> tuple[int, RequestSpec, float]:
        """The next request, sent now."""
        index, sent_s = len(self.records), self._next_s or 0.0
        self._next_s = None
        return index, self._specs[index], sent_s

    def ended(self, record: RequestRecord, now_s: float) -> None:
        """Keep the record; the next request goes now."""
        self.records.append(record)
        if len(self.records) < len(self._specs):
            self._next_s = now_s


def simulate_one_by_one(
    engine: Engine,
    specs: Sequence[RequestSpec],
    outputs: OutputPolicy,
    rng: np.random.Generator,
    reasoning: ReasoningRange | None = None,
) -> list[RequestRecord]:
    """Run `specs` through `engine` one at a time, each sent as the last ends; records (ns)."""
    arrivals = _OneByOne(specs)
    run_arrivals(engine, arrivals, outputs, rng, reasoning)
    return arrivals.records


def run_arrivals(
    engine: Engine,
    arrivals: Arrivals,
    outputs: OutputPolicy,
    rng: np.random.Generator,
    reasoning: ReasoningRange | None = None,
) -> None:
    """Run every request of `arrivals` through `engine` in virtual time, each record to it.

    The clock jumps to the next arrival when the engine is idle; otherwise every request that
    has arrived joins the queue before the next step, and a step's tokens appear at its end.
    """
    draws = _Draws(outputs, rng, reasoning, None if reasoning is None else rng.spawn(1)[0])
    # Requests in the engine; each becomes its compact record as soon as it ends.
    traces: dict[int, _Trace] = {}
    now_s = 0.0
    while (next_s := arrivals.next_s()) is not None or engine.has_work():
        if not engine.has_work() and next_s is not None:
            now_s = max(now_s, next_s)
        while (next_s := arrivals.next_s()) is not None and next_s <= now_s:
            rid, spec, t_send_s = arrivals.pop()
            trace = _Trace(spec, t_send_s, array("d"))
            reason = _admit(engine, rid, trace, draws)
            if reason is None:
                traces[rid] = trace
            else:
                arrivals.ended(_record(rid, trace, reason), now_s)
        if not engine.has_work():
            continue
        result = engine.step()
        now_s += result.duration_s
        for seq in result.emitted:
            traces[seq.rid].token_times_s.append(now_s)
        for seq in result.finished:
            trace = traces.pop(seq.rid)
            trace.done_s, trace.cached = now_s, seq.cache_hits
            arrivals.ended(_record(seq.rid, trace, None), now_s)


def _admit(engine: Engine, rid: int, trace: _Trace, draws: _Draws) -> str | None:
    """Queue one request as sequence `rid`; the reason it was refused, if it was."""
    spec = trace.spec
    tokens_in = spec_prompt_tokens(spec)
    reason = engine.refusal(tokens_in, spec.max_tokens)
    if reason is None:
        length = draws.outputs.length(spec.max_tokens, draws.rng)
        caching = engine.config.enable_prefix_caching
        seq = SimSequence(
            rid=rid,
            prompt_tokens=tokens_in,
            output_tokens=length,
            prompt=spec_prompt(spec) if caching else None,
            role="assistant" if spec.messages is not None else None,
        )
        engine.add(seq)
        if draws.reasoning is not None and draws.thinking is not None:
            trace.reasoning = draws.reasoning.draw(length, draws.thinking)
    return reason


def _record(index: int, trace: _Trace, refusal: str | None) -> RequestRecord:
    """The RequestRecord a real client would have written for this request."""
    t_send_ns = round(trace.t_send_s * _NS_PER_S)
    tokens_in = spec_prompt_tokens(trace.spec)
    if trace.done_s is None:
        return RequestRecord(
            index=index,
            t_sched_ns=t_send_ns,
            t_send_ns=t_send_ns,
            slot_wait_ns=0,
            t_done_ns=t_send_ns,
            tokens_in=tokens_in,
            error_kind="http_4xx",
            error=refusal or "never scheduled",
            status=400,
        )
    times_ns = array("q", [round(t * _NS_PER_S) for t in trace.token_times_s])
    answer = trace.reasoning or 0
    return RequestRecord(
        index=index,
        t_sched_ns=t_send_ns,
        t_send_ns=t_send_ns,
        slot_wait_ns=0,
        t_done_ns=times_ns[-1],
        t_first_ns=times_ns[0],
        t_last_ns=times_ns[-1],
        tokens_in=tokens_in,
        tokens_out=len(times_ns),
        tokens_source="server",
        chunk_times_ns=times_ns,
        status=200,
        t_first_answer_ns=times_ns[answer] if answer < len(times_ns) else None,
        reasoning_tokens=trace.reasoning,
        cached_tokens=trace.cached,
    )
