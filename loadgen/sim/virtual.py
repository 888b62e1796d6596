"""Discrete-event runs of the engine model in virtual time: specs and send offsets in, records out.

No HTTP and no sleeping: the clock jumps from one engine step to the next, or to the next
arrival when the engine is idle. A request sent during a step joins the queue at the next
step, and its tokens become visible when the step that produced them ends.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from loadgen.core.records import RequestRecord, RequestSpec
from loadgen.sim.engine import Engine
from loadgen.sim.engine import Sequence as SimSequence

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


def prompt_tokens(text: str) -> int:
    """Prompt length the simulator charges: one token per whitespace-separated word.

    loadgen's generated prompts are built from words counted this way, so the engine sees
    exactly the drawn lengths; real English text runs about 1.3 BPE tokens per word.
    """
    return max(1, len(text.split()))


def spec_prompt_tokens(spec: RequestSpec) -> int:
    """The workload's own prompt count when it has one, else the word count (at least 1)."""
    if spec.tokens_in is not None:
        return max(1, spec.tokens_in)
    if spec.messages is not None:
        return sum(prompt_tokens(message.get("content", "")) for message in spec.messages)
    return prompt_tokens(spec.prompt)


@dataclass(slots=True)
class _Trace:
    """Token times (s) of one request as the virtual run goes."""

    token_times_s: array[float]
    done_s: float | None = None


def simulate_requests(
    engine: Engine,
    specs: Sequence[RequestSpec],
    offsets_s: npt.NDArray[np.float64],
    outputs: OutputPolicy,
    rng: np.random.Generator,
) -> list[RequestRecord]:
    """Run `specs[i]` arriving at `offsets_s[i]` through `engine`; records in send order (ns)."""
    order = np.argsort(offsets_s, kind="stable")
    # Requests in the engine; each becomes its compact record as soon as it ends.
    traces: dict[int, _Trace] = {}
    records: list[RequestRecord | None] = [None] * len(specs)
    now_s = 0.0
    position = 0
    while position < len(order) or engine.has_work():
        if not engine.has_work():
            now_s = max(now_s, float(offsets_s[order[position]]))
        while position < len(order) and offsets_s[order[position]] <= now_s:
            index = int(order[position])
            position += 1
            reason = _admit(engine, specs[index], index, outputs, rng, traces)
            if reason is not None:
                records[index] = _record(index, specs[index], offsets_s, None, reason)
        if not engine.has_work():
            continue
        result = engine.step()
        now_s += result.duration_s
        for seq in result.emitted:
            traces[seq.rid].token_times_s.append(now_s)
        for seq in result.finished:
            trace = traces.pop(seq.rid)
            trace.done_s = now_s
            records[seq.rid] = _record(seq.rid, specs[seq.rid], offsets_s, trace, None)
    return [
        _record(i, specs[i], offsets_s, None, None) if record is None else record
        for i, record in enumerate(records)
    ]


def _admit(
    engine: Engine,
    spec: RequestSpec,
    index: int,
    outputs: OutputPolicy,
    rng: np.random.Generator,
    traces: dict[int, _Trace],
) -> str | None:
    """Queue one request; the reason it was refused, if it was."""
    tokens_in = spec_prompt_tokens(spec)
    reason = engine.refusal(tokens_in, spec.max_tokens)
    if reason is None:
        length = outputs.length(spec.max_tokens, rng)
        engine.add(SimSequence(rid=index, prompt_tokens=tokens_in, output_tokens=length))
        traces[index] = _Trace(array("d"))
    return reason


def _record(
    index: int,
    spec: RequestSpec,
    offsets_s: npt.NDArray[np.float64],
    trace: _Trace | None,
    refusal: str | None,
) -> RequestRecord:
    """The RequestRecord a real client would have written for this request."""
    t_send_ns = round(float(offsets_s[index]) * _NS_PER_S)
    tokens_in = spec_prompt_tokens(spec)
    if trace is None or trace.done_s is None:
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
    )
