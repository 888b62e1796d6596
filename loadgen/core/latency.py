"""Per-request latencies: the one definition of each, read by step statistics and the exporter.

Every quantity follows design.md section 2. Times come in as `perf_counter_ns` readings and
leave in seconds; a quantity a request did not measure (it failed, or was not streamed) is NaN.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from loadgen.core.records import RequestRecord

NS_PER_S = 1e9

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def ints(values: Iterable[int], count: int) -> IntArray:
    """An int64 array from `count` ints."""
    return np.fromiter(values, dtype=np.int64, count=count)


@dataclass(frozen=True, slots=True)
class RequestLatencies:
    """One value per record, in the records' order (s unless the name says otherwise).

    `ttft_s` to `per_token_latency_s` are NaN for failures and for what a request did not
    measure (`ttfa_s` also when no answer text came); `queue_s` and `pacer_lateness_s` are
    defined for every record sent. `reasoning_tokens` is NaN where a request reported none;
    `answer_tokens` is the rest of its output tokens.
    """

    ok: BoolArray
    tokens_out: IntArray
    send_ns: IntArray
    end_ns: IntArray
    ttft_s: FloatArray
    ttft_sched_s: FloatArray
    ttfa_s: FloatArray
    tpot_s: FloatArray
    e2e_s: FloatArray
    per_token_latency_s: FloatArray
    queue_s: FloatArray
    pacer_lateness_s: FloatArray
    reasoning_tokens: FloatArray
    answer_tokens: FloatArray

    def column(self, name: str) -> FloatArray:
        """The column called `name` (a per-request distribution's field name)."""
        values: FloatArray = getattr(self, name)
        return values


def _nan_where_none(values: Iterable[int | None], count: int) -> FloatArray:
    """`values` as floats, NaN where None."""
    return np.fromiter(
        (np.nan if value is None else value for value in values), dtype=np.float64, count=count
    )


def request_latencies(records: Sequence[RequestRecord]) -> RequestLatencies:
    """TTFT (from send and from schedule), TTFA, TPOT, E2E, per-token latency, queue, lateness
    and reasoning and answer tokens."""
    n = len(records)
    ok = np.fromiter((r.ok for r in records), dtype=np.bool_, count=n)
    send = ints((r.t_send_ns for r in records), n)
    sched = ints((r.t_sched_ns for r in records), n)
    # A success with no token chunk (not streamed) ends when its response does.
    end = ints((r.t_done_ns if r.t_last_ns is None else r.t_last_ns for r in records), n)
    streamed = ok & np.fromiter((r.t_first_ns is not None for r in records), np.bool_, count=n)
    first = ints((r.t_first_ns or 0 for r in records), n)
    tokens = ints((r.tokens_out for r in records), n)
    slot_wait = ints((r.slot_wait_ns for r in records), n)
    e2e = np.where(ok, (end - send) / NS_PER_S, np.nan)
    ttft = np.where(streamed, (first - send) / NS_PER_S, np.nan)
    ttft_sched = np.where(streamed, (first - sched) / NS_PER_S, np.nan)
    has_tpot = streamed & (tokens > 1)
    tpot = np.full(n, np.nan)
    tpot[has_tpot] = (e2e[has_tpot] - ttft[has_tpot]) / (tokens[has_tpot] - 1)
    has_per_token = ok & (tokens >= 1)
    per_token = np.full(n, np.nan)
    per_token[has_per_token] = e2e[has_per_token] / tokens[has_per_token]
    queue_ns = send - sched
    answer_send = ints((r.t_first_answer_ns or r.t_send_ns for r in records), n)
    answered = streamed & np.fromiter(
        (r.t_first_answer_ns is not None for r in records), np.bool_, count=n
    )
    reasoning = _nan_where_none((r.reasoning_tokens for r in records), n)
    reasoning[~ok] = np.nan
    return RequestLatencies(
        ok=ok,
        tokens_out=tokens,
        send_ns=send,
        end_ns=end,
        ttft_s=ttft,
        ttft_sched_s=ttft_sched,
        ttfa_s=np.where(answered, (answer_send - send) / NS_PER_S, np.nan),
        tpot_s=tpot,
        e2e_s=e2e,
        per_token_latency_s=per_token,
        queue_s=queue_ns / NS_PER_S,
        pacer_lateness_s=(queue_ns - slot_wait) / NS_PER_S,
        reasoning_tokens=reasoning,
        answer_tokens=np.where(ok, np.maximum(tokens - np.nan_to_num(reasoning), 0), np.nan),
    )


def _check_chunk_tokens(known: Sequence[RequestRecord]) -> None:
    """Raise ValueError when a record's `chunk_tokens` does not pair up with its chunk times."""
    for r in known:
        if len(r.chunk_tokens or ()) != len(r.chunk_times_ns):
            raise ValueError(
                f"request {r.index}: chunk_tokens has {len(r.chunk_tokens or ())} entries "
                f"but chunk_times_ns has {len(r.chunk_times_ns)}"
            )


def _concatenated(arrays: Iterable[Sequence[int]]) -> IntArray:
    """Several int sequences (lists, `array('q')`s) as one int64 array."""
    return np.concatenate([np.asarray(values, dtype=np.int64) for values in arrays])


def _chunk_tokens(streams: Sequence[RequestRecord], counts: IntArray) -> IntArray:
    """Tokens carried by every chunk of `streams`, concatenated; estimated where unknown."""
    tokens = ints((r.tokens_out for r in streams), len(streams))
    # Unknown split: spread tokens_out evenly with the remainder on the earliest chunks, i.e.
    # `remainder` chunks of base + 1 then the rest of base; one token per chunk when there are
    # no more tokens than chunks.
    spread = tokens > counts
    base = np.where(spread, tokens // counts, 1)
    remainder = np.where(spread, tokens % counts, 0)
    values = np.column_stack((base + 1, base)).ravel()
    k = np.repeat(values, np.column_stack((remainder, counts - remainder)).ravel())
    known = [r for r in streams if r.chunk_tokens is not None]
    if known:
        _check_chunk_tokens(known)
        flags = (r.chunk_tokens is not None for r in streams)
        is_known = np.fromiter(flags, dtype=np.bool_, count=len(streams))
        k[np.repeat(is_known, counts)] = _concatenated(r.chunk_tokens or () for r in known)
        # Every chunk in chunk_times_ns carries a token by contract; a claimed 0 still had a gap.
        np.maximum(k, 1, out=k)
    return k


def itl_samples(ok: Sequence[RequestRecord]) -> FloatArray:
    """Token-weighted inter-token latencies (s), pooled over the chunk streams of `ok`."""
    streams = [r for r in ok if len(r.chunk_times_ns) >= 2]
    if not streams:
        return np.empty(0, dtype=np.float64)
    counts = ints((len(r.chunk_times_ns) for r in streams), len(streams))
    starts = np.cumsum(counts) - counts
    times = _concatenated(r.chunk_times_ns for r in streams)
    gaps = np.empty(times.size, dtype=np.float64)
    np.subtract(times[1:], times[:-1], out=gaps[1:])
    del times  # a step may hold tens of millions of tokens: one such array at a time
    k = _chunk_tokens(streams, counts)
    # A stream's first chunk has no predecessor in it: repeating it 0 times drops the gap
    # that would otherwise span two requests.
    gaps[starts] = 0.0
    k[starts] = 0
    gaps /= np.maximum(k, 1) * NS_PER_S
    return np.repeat(gaps, k)
