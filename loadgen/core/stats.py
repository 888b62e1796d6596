"""Step statistics: trimming, throughput window, latency distributions, goodput (pure, numpy)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import numpy.typing as npt

from loadgen.core.records import (
    Distribution,
    RequestRecord,
    StepFigures,
    StepSummary,
    TokensSource,
)

SLO_KEYS = ("ttft", "tpot", "e2e", "per_token")

_NS_PER_S = 1e9
_PERCENTILES = (50.0, 90.0, 95.0, 99.0)
_SOURCE_RANK: dict[TokensSource, int] = {"estimate": 0, "tokenizer": 1, "server": 2}

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def parse_slos(text: str) -> dict[str, float]:
    """Parse `"ttft=0.5,tpot=0.05"` (limits in seconds) into `{"ttft": 0.5, "tpot": 0.05}`."""
    if not text.strip():
        raise ValueError(f"SLO list is empty; expected KEY=SECONDS pairs with KEY in {SLO_KEYS}")
    slos: dict[str, float] = {}
    for item in text.split(","):
        key, sep, raw = item.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise ValueError(f"SLO item {item.strip()!r} is not of the form KEY=SECONDS")
        if key not in SLO_KEYS:
            raise ValueError(f"unknown SLO key {key!r}; known keys are {', '.join(SLO_KEYS)}")
        if key in slos:
            raise ValueError(f"SLO key {key!r} is given more than once")
        slos[key] = _parse_limit(key, raw)
    return slos


def _parse_limit(key: str, raw: str) -> float:
    """One SLO limit in seconds: a finite number > 0."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"SLO {key!r}: {raw.strip()!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"SLO {key!r}: limit must be a finite number of seconds > 0, got {raw!r}")
    return value


def distribution(values_s: npt.ArrayLike) -> Distribution | None:
    """Summary of a sample (s): mean, std (ddof=0), min, linear percentiles, max; None if empty."""
    arr = np.asarray(values_s, dtype=np.float64).ravel()
    if arr.size == 0:
        return None
    p50, p90, p95, p99 = (float(p) for p in np.percentile(arr, _PERCENTILES))
    return Distribution(
        count=int(arr.size),
        mean=float(arr.mean()),
        std=float(arr.std()),
        min=float(arr.min()),
        p50=p50,
        p90=p90,
        p95=p95,
        p99=p99,
        max=float(arr.max()),
    )


def _ints(values: Iterable[int], count: int) -> IntArray:
    """An int64 array from `count` ints."""
    return np.fromiter(values, dtype=np.int64, count=count)


@dataclass(frozen=True, slots=True)
class _Latencies:
    """Per-success latencies (s); NaN where a quantity was not measured."""

    tokens_out: IntArray
    end_ns: IntArray
    ttft: FloatArray
    ttft_sched: FloatArray
    tpot: FloatArray
    e2e: FloatArray
    per_token: FloatArray


def _latencies(ok: Sequence[RequestRecord]) -> _Latencies:
    """TTFT (from send and from schedule), TPOT, E2E and per-token latency (s) of successes."""
    n = len(ok)
    send = _ints((r.t_send_ns for r in ok), n)
    sched = _ints((r.t_sched_ns for r in ok), n)
    end = _ints((r.t_done_ns if r.t_last_ns is None else r.t_last_ns for r in ok), n)
    streamed = np.fromiter((r.t_first_ns is not None for r in ok), dtype=np.bool_, count=n)
    first = _ints((r.t_first_ns or 0 for r in ok), n)
    tokens = _ints((r.tokens_out for r in ok), n)
    e2e = (end - send) / _NS_PER_S
    ttft = np.where(streamed, (first - send) / _NS_PER_S, np.nan)
    ttft_sched = np.where(streamed, (first - sched) / _NS_PER_S, np.nan)
    has_tpot = streamed & (tokens > 1)
    tpot = np.full(n, np.nan)
    tpot[has_tpot] = (e2e[has_tpot] - ttft[has_tpot]) / (tokens[has_tpot] - 1)
    has_per_token = tokens >= 1
    per_token = np.full(n, np.nan)
    per_token[has_per_token] = e2e[has_per_token] / tokens[has_per_token]
    return _Latencies(tokens, end, ttft, ttft_sched, tpot, e2e, per_token)


def _check_chunk_tokens(known: Sequence[RequestRecord]) -> None:
    """Raise ValueError when a record's `chunk_tokens` does not pair up with its chunk times."""
    for r in known:
        if len(r.chunk_tokens or ()) != len(r.chunk_times_ns):
            raise ValueError(
                f"request {r.index}: chunk_tokens has {len(r.chunk_tokens or ())} entries "
                f"but chunk_times_ns has {len(r.chunk_times_ns)}"
            )


def _chunk_tokens(streams: Sequence[RequestRecord], counts: IntArray) -> IntArray:
    """Tokens carried by every chunk of `streams`, concatenated; estimated where unknown."""
    tokens = _ints((r.tokens_out for r in streams), len(streams))
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
        given = chain.from_iterable(r.chunk_tokens or () for r in known)
        k[np.repeat(is_known, counts)] = _ints(given, int(counts[is_known].sum()))
        # Every chunk in chunk_times_ns carries a token by contract; a claimed 0 still had a gap.
        np.maximum(k, 1, out=k)
    return k


def itl_samples(ok: Sequence[RequestRecord]) -> FloatArray:
    """Token-weighted inter-token latencies (s), pooled over the chunk streams of `ok`."""
    streams = [r for r in ok if len(r.chunk_times_ns) >= 2]
    if not streams:
        return np.empty(0, dtype=np.float64)
    counts = _ints((len(r.chunk_times_ns) for r in streams), len(streams))
    starts = np.cumsum(counts) - counts
    total = int(counts.sum())
    times = _ints(chain.from_iterable(r.chunk_times_ns for r in streams), total)
    k = _chunk_tokens(streams, counts)
    gaps = np.empty(total, dtype=np.float64)
    np.subtract(times[1:], times[:-1], out=gaps[1:])
    # A stream's first chunk has no predecessor in it: repeating it 0 times drops the gap
    # that would otherwise span two requests.
    gaps[starts] = 0.0
    k[starts] = 0
    gaps /= np.maximum(k, 1) * _NS_PER_S
    return np.repeat(gaps, k)


def _meets_slos(lat: _Latencies, slos: Mapping[str, float]) -> BoolArray:
    """Which successes meet every SLO; unmeasured quantities fail, except TPOT of <= 1 token."""
    meets = np.ones(lat.e2e.size, dtype=np.bool_)
    for key, limit in slos.items():
        if key == "ttft":
            meets &= lat.ttft <= limit
        elif key == "tpot":
            # A single-token answer has no inter-token time to violate the limit.
            meets &= (lat.tpot <= limit) | (lat.tokens_out <= 1)
        elif key == "e2e":
            meets &= lat.e2e <= limit
        elif key == "per_token":
            meets &= lat.per_token <= limit
        else:
            raise ValueError(f"unknown SLO key {key!r}; known keys are {', '.join(SLO_KEYS)}")
    return meets


def _send_figures(send_ns: IntArray) -> tuple[float | None, float | None]:
    """Achieved rate (req/s) and coefficient of variation of send gaps, in send order."""
    achieved = None
    if send_ns.size >= 2:
        span_ns = int(send_ns[-1] - send_ns[0])
        if span_ns > 0:
            achieved = (send_ns.size - 1) / (span_ns / _NS_PER_S)
    cv = None
    gaps = np.diff(send_ns).astype(np.float64)
    if gaps.size >= 2 and gaps.mean() > 0:
        cv = float(gaps.std() / gaps.mean())
    return achieved, cv


def _present(values: FloatArray) -> Distribution | None:
    """Distribution of the measured (non-NaN) values."""
    return distribution(values[~np.isnan(values)])


def _rate(count: float, window_s: float | None) -> float:
    """`count` per second of the window; 0.0 when there is no (or an empty) window."""
    if window_s is None or window_s <= 0:
        return 0.0
    return count / window_s


def step_figures(records: Sequence[RequestRecord], slos: Mapping[str, float]) -> StepFigures:
    """Every figure over `records` (any order); SLO limits in seconds keyed by `SLO_KEYS`."""
    ordered = sorted(records, key=lambda r: r.index)
    n = len(ordered)
    ok = [r for r in ordered if r.ok]
    lat = _latencies(ok)
    send = _ints((r.t_send_ns for r in ordered), n)
    window_s = int(lat.end_ns.max() - send.min()) / _NS_PER_S if ok else None
    tokens_out = int(lat.tokens_out.sum())
    total_tps = None
    if window_s is None or all(r.tokens_in is not None for r in ok):
        total_tps = _rate(tokens_out + sum(r.tokens_in or 0 for r in ok), window_s)
    goodput = _rate(int(_meets_slos(lat, slos).sum()), window_s) if slos else None
    queue_ns = send - _ints((r.t_sched_ns for r in ordered), n)
    lateness_ns = queue_ns - _ints((r.slot_wait_ns for r in ordered), n)
    errors = Counter(r.error_kind for r in ordered if r.error_kind is not None)
    achieved, cv = _send_figures(send)
    return StepFigures(
        num_requests=n,
        num_ok=len(ok),
        num_errors=n - len(ok),
        errors_by_kind={kind: errors[kind] for kind in sorted(errors)},
        error_rate=(n - len(ok)) / n if n else None,
        window_s=window_s,
        sequence_throughput_rps=_rate(len(ok), window_s),
        output_token_throughput_tps=_rate(tokens_out, window_s),
        total_token_throughput_tps=total_tps,
        goodput_rps=goodput,
        achieved_rate_rps=achieved,
        send_gap_cv=cv,
        ttft_s=_present(lat.ttft),
        ttft_sched_s=_present(lat.ttft_sched),
        tpot_s=_present(lat.tpot),
        itl_s=distribution(itl_samples(ok)),
        e2e_s=distribution(lat.e2e),
        per_token_latency_s=_present(lat.per_token),
        queue_s=distribution(queue_ns / _NS_PER_S),
        pacer_lateness_s=distribution(lateness_ns / _NS_PER_S),
    )


def _tokens_source(kept: Sequence[RequestRecord], every: Sequence[RequestRecord]) -> TokensSource:
    """The least exact token-count source of kept successes, else of all records."""
    pool = [r.tokens_source for r in kept if r.ok] or [r.tokens_source for r in every]
    return min(pool, key=_SOURCE_RANK.__getitem__, default="estimate")


def summarize_step(
    records: Sequence[RequestRecord],
    *,
    step: int,
    target_rate_rps: float,
    num_sent: int,
    trim: int,
    slos: Mapping[str, float],
    interrupted: bool,
    duration_s: float,
    saturation_lateness_s: float = 0.010,
) -> StepSummary:
    """Trimmed (send index in `[trim, num_sent - trim)`) and untrimmed figures of one step."""
    if trim < 0:
        raise ValueError(f"trim must be >= 0 requests, got {trim}")
    ordered = sorted(records, key=lambda r: r.index)
    kept = [r for r in ordered if trim <= r.index < num_sent - trim]
    trimmed = step_figures(kept, slos)
    lateness = trimmed.pacer_lateness_s
    # Batch mode (inf rate) sends everything at once by design: lateness there is not saturation.
    saturated = (
        math.isfinite(target_rate_rps)
        and lateness is not None
        and lateness.p99 > saturation_lateness_s
    )
    return StepSummary(
        step=step,
        target_rate_rps=target_rate_rps,
        num_sent=num_sent,
        trim=trim,
        trimmed=trimmed,
        untrimmed=step_figures(ordered, slos),
        client_saturated=saturated,
        interrupted=interrupted,
        tokens_source=_tokens_source(kept, ordered),
        duration_s=duration_s,
    )
