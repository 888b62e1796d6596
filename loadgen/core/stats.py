"""Step statistics: trimming, throughput window, latency distributions, goodput (pure, numpy)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from loadgen.core.arrival_fit import count_dispersion, gap_ks
from loadgen.core.distributions import DISTRIBUTION_FIELDS, POOLED_FIELD
from loadgen.core.latency import (
    NS_PER_S,
    BoolArray,
    FloatArray,
    IntArray,
    RequestLatencies,
    itl_samples,
    request_latencies,
)
from loadgen.core.records import (
    Distribution,
    RequestRecord,
    ShardFigures,
    StepFigures,
    StepSummary,
    TokensSource,
)
from loadgen.core.sessions import kept_sessions, session_figures

SLO_KEYS = ("ttft", "tpot", "e2e", "per_token")

# A client whose sends are later than this at p99 (s) no longer offers the load it was asked to.
SATURATION_LATENESS_S = 0.010
_PERCENTILES = (50.0, 90.0, 95.0, 99.0)
_SOURCE_RANK: dict[TokensSource, int] = {"estimate": 0, "tokenizer": 1, "server": 2}


def parse_slos(text: str) -> dict[str, float]:
    """Parse `"ttft=0.5,tpot=0.05"` (limits in seconds) into `{"ttft": 0.5, "tpot": 0.05}`."""
    if not text.strip():
        raise ValueError(f"SLO list is empty; expected KEY=SECONDS pairs with KEY in {SLO_KEYS}")
    slos: dict[str, float] = {}
    for key, raw in key_values(text, "SECONDS"):
        if key not in SLO_KEYS:
            raise ValueError(f"unknown SLO key {key!r}; known keys are {', '.join(SLO_KEYS)}")
        slos[key] = _parse_limit(key, raw)
    return slos


def key_values(text: str, value_name: str) -> list[tuple[str, str]]:
    """The `KEY=VALUE` items of comma-separated SLO text, keys lower-cased; ValueError naming
    an item without "=" or a key given twice."""
    pairs: list[tuple[str, str]] = []
    for item in text.split(","):
        key, sep, raw = item.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise ValueError(f"SLO item {item.strip()!r} is not of the form KEY={value_name}")
        if key in dict(pairs):
            raise ValueError(f"SLO key {key!r} is given more than once")
        pairs.append((key, raw))
    return pairs


def _parse_limit(key: str, raw: str) -> float:
    """One SLO limit in seconds: a finite number > 0."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"SLO {key!r}: {raw.strip()!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"SLO {key!r}: limit must be a finite number of seconds > 0, got {raw!r}")
    return value


def distribution(values_s: npt.ArrayLike, *, scratch: bool = False) -> Distribution | None:
    """Summary of a sample (s): mean, std (ddof=0), min, linear percentiles, max; None if empty.

    `scratch`: the sample is the caller's to lose, so the percentiles reorder it in place
    instead of in a copy (a step's pooled ITL can be hundreds of megabytes).
    """
    arr = np.asarray(values_s, dtype=np.float64).ravel()
    if arr.size == 0:
        return None
    count, mean, std = int(arr.size), float(arr.mean()), float(arr.std())
    low, high = float(arr.min()), float(arr.max())
    p50, p90, p95, p99 = (
        float(p) for p in np.percentile(arr, _PERCENTILES, overwrite_input=scratch)
    )
    return Distribution(
        count=count, mean=mean, std=std, min=low, p50=p50, p90=p90, p95=p95, p99=p99, max=high
    )


def _meets_slos(lat: RequestLatencies, slos: Mapping[str, float]) -> BoolArray:
    """Which requests succeeded and meet every SLO; unmeasured quantities fail, except TPOT of
    <= 1 token."""
    meets = lat.ok.copy()
    for key, limit in slos.items():
        if key == "ttft":
            meets &= lat.ttft_s <= limit
        elif key == "tpot":
            # A single-token answer has no inter-token time to violate the limit.
            meets &= (lat.tpot_s <= limit) | (lat.tokens_out <= 1)
        elif key == "e2e":
            meets &= lat.e2e_s <= limit
        elif key == "per_token":
            meets &= lat.per_token_latency_s <= limit
        else:
            raise ValueError(f"unknown SLO key {key!r}; known keys are {', '.join(SLO_KEYS)}")
    return meets


def _send_figures(send_ns: IntArray) -> tuple[float | None, float | None]:
    """Achieved rate (req/s) and coefficient of variation of send gaps; `send_ns` in time order."""
    achieved = None
    if send_ns.size >= 2:
        span_ns = int(send_ns[-1] - send_ns[0])
        if span_ns > 0:
            achieved = (send_ns.size - 1) / (span_ns / NS_PER_S)
    cv = None
    gaps = np.diff(send_ns).astype(np.float64)
    if gaps.size >= 2 and gaps.mean() > 0:
        cv = float(gaps.std() / gaps.mean())
    return achieved, cv


def _present(values: FloatArray) -> Distribution | None:
    """Distribution of the measured (non-NaN) values."""
    return distribution(values[~np.isnan(values)])


def _reasoning_means(lat: RequestLatencies) -> tuple[float | None, float | None]:
    """Mean reasoning and answer tokens per success; None when no success reported reasoning."""
    reported = ~np.isnan(lat.reasoning_tokens)
    if not reported.any():
        return None, None
    # A success that reported no reasoning spent all its output on the answer.
    reasoning = np.where(reported, lat.reasoning_tokens, 0.0)[lat.ok]
    return float(reasoning.mean()), float(lat.answer_tokens[lat.ok].mean())


def _rate(count: float, window_s: float | None) -> float:
    """`count` per second of the window; 0.0 when there is no (or an empty) window."""
    if window_s is None or window_s <= 0:
        return 0.0
    return count / window_s


def _distributions(
    lat: RequestLatencies, ok: Sequence[RequestRecord]
) -> dict[str, Distribution | None]:
    """Every distribution of the registry over the measured values of `lat` (and `ok`'s ITL)."""
    return {
        name: distribution(itl_samples(ok), scratch=True)
        if name == POOLED_FIELD
        else _present(lat.column(name))
        for name in DISTRIBUTION_FIELDS
    }


def step_figures(
    records: Sequence[RequestRecord],
    slos: Mapping[str, float],
    target_rate_rps: float | None = None,
) -> StepFigures:
    """Every figure over `records` (any order); SLO limits in seconds keyed by `SLO_KEYS`.

    The send-gap KS test needs `target_rate_rps` (req/s): without it, it is None.
    """
    ordered = sorted(records, key=lambda r: r.index)
    n = len(ordered)
    ok = [r for r in ordered if r.ok]
    lat = request_latencies(ordered)
    window_s = int(lat.end_ns[lat.ok].max() - lat.send_ns.min()) / NS_PER_S if ok else None
    tokens_out = int(lat.tokens_out[lat.ok].sum())
    total_tps = None
    if window_s is None or all(r.tokens_in is not None for r in ok):
        total_tps = _rate(tokens_out + sum(r.tokens_in or 0 for r in ok), window_s)
    goodput = _rate(int(_meets_slos(lat, slos).sum()), window_s) if slos else None
    reasoning_mean, answer_mean = _reasoning_means(lat)
    errors = Counter(r.error_kind for r in ordered if r.error_kind is not None)
    # Merged shards' sends follow the schedule's order, not always the clock's by a few µs.
    achieved, cv = _send_figures(np.sort(lat.send_ns))
    ks = gap_ks(lat.send_ns, target_rate_rps) if target_rate_rps is not None else None
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
        reasoning_tokens_mean=reasoning_mean,
        answer_tokens_mean=answer_mean,
        goodput_rps=goodput,
        achieved_rate_rps=achieved,
        send_gap_cv=cv,
        send_gap_ks=None if ks is None else ks[0],
        send_gap_ks_pvalue=None if ks is None else ks[1],
        send_count_dispersion=count_dispersion(lat.send_ns),
        **_distributions(lat, ok),
    )


def _tokens_source(kept: Sequence[RequestRecord], every: Sequence[RequestRecord]) -> TokensSource:
    """The least exact token-count source of kept successes, else of all records."""
    pool = [r.tokens_source for r in kept if r.ok] or [r.tokens_source for r in every]
    return min(pool, key=_SOURCE_RANK.__getitem__, default="estimate")


def kept_records(
    ordered: Sequence[RequestRecord], num_sent: int, trim: int, num_sessions: int | None = None
) -> list[RequestRecord]:
    """The records of `ordered` (by index) that the trim rule keeps: send index in
    `[trim, num_sent - trim)`, or the turns of sessions `[trim, num_sessions - trim)`."""
    if num_sessions is None:
        return [r for r in ordered if trim <= r.index < num_sent - trim]
    return kept_sessions(ordered, num_sessions, trim)


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
    saturation_lateness_s: float = SATURATION_LATENESS_S,
    invalid: str | None = None,
    capped_sends: int = 0,
    num_sessions: int | None = None,
) -> StepSummary:
    """Trimmed (send index in `[trim, num_sent - trim)`) and untrimmed figures of one step.

    A step of `num_sessions` multi-turn sessions is trimmed by session start order instead:
    the turns of sessions `[trim, num_sessions - trim)` are kept. The client is saturated when
    the pacer's lateness p99 over the kept requests, or any shard's, passes
    `saturation_lateness_s`.
    """
    if trim < 0:
        raise ValueError(f"trim must be >= 0 requests, got {trim}")
    ordered = sorted(records, key=lambda r: r.index)
    kept = kept_records(ordered, num_sent, trim, num_sessions)
    # Turns follow answers, not the arrival process: only session starts are Poisson.
    gap_rate_rps = target_rate_rps if num_sessions is None else None
    trimmed = step_figures(kept, slos, gap_rate_rps)
    shards = shard_figures(kept)
    late_p99s = [trimmed.pacer_lateness_s.p99] if trimmed.pacer_lateness_s is not None else []
    late_p99s += [shard.lateness_p99_s for shard in shards if shard.lateness_p99_s is not None]
    # Batch mode (inf rate) sends everything at once by design, and a start-rate cap that held
    # sends back made them late on purpose: lateness there is not saturation.
    saturated = (
        math.isfinite(target_rate_rps)
        and not capped_sends
        and any(p99 > saturation_lateness_s for p99 in late_p99s)
    )
    return StepSummary(
        step=step,
        target_rate_rps=target_rate_rps,
        num_sent=num_sent,
        trim=trim,
        trimmed=trimmed,
        untrimmed=step_figures(ordered, slos, gap_rate_rps),
        client_saturated=saturated,
        interrupted=interrupted,
        tokens_source=_tokens_source(kept, ordered),
        duration_s=duration_s,
        invalid=invalid,
        shards=shards,
        capped_sends=capped_sends,
        sessions=None
        if num_sessions is None
        else session_figures(kept, num_sessions, distribution),
    )


def shard_figures(records: Sequence[RequestRecord]) -> tuple[ShardFigures, ...]:
    """Each shard's send rate (req/s) and pacer lateness p99 (s); empty for one process."""
    by_shard: dict[int, list[RequestRecord]] = {}
    for record in records:
        if record.shard is not None:
            by_shard.setdefault(record.shard, []).append(record)
    figures = []
    for shard in sorted(by_shard):
        sent = [r for r in by_shard[shard] if r.error_kind != "lost"]
        lat = request_latencies(sent)
        lateness = _present(lat.pacer_lateness_s)
        figures.append(
            ShardFigures(
                shard=shard,
                num_sent=len(sent),
                achieved_rate_rps=_send_figures(np.sort(lat.send_ns))[0],
                lateness_p99_s=None if lateness is None else lateness.p99,
            )
        )
    return tuple(figures)
