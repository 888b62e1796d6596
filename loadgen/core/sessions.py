"""Figures of multi-turn sessions: which sessions a step keeps, and how each turn fared (pure)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from loadgen.core.latency import NS_PER_S, request_latencies
from loadgen.core.records import Distribution, RequestRecord, SessionFigures, TurnFigures

# stats.distribution: a sample in, its summary (None when empty) out; passed in, as stats
# imports this module.
Summarize = Callable[[npt.ArrayLike], Distribution | None]


def kept_sessions(
    records: Sequence[RequestRecord], num_sessions: int, trim: int
) -> list[RequestRecord]:
    """The records of sessions whose start index is in `[trim, num_sessions - trim)`."""
    return [r for r in records if r.session is not None and trim <= r.session < num_sessions - trim]


def session_figures(
    kept: Sequence[RequestRecord], num_started: int, distribution: Summarize
) -> SessionFigures:
    """Figures of the sessions `kept` holds (any order), of `num_started` started.

    `distribution` summarises a sample (stats.distribution), passed in to keep one definition.
    """
    by_session: dict[int, list[RequestRecord]] = {}
    for record in kept:
        if record.session is not None:
            by_session.setdefault(record.session, []).append(record)
    sessions = [sorted(turns, key=lambda r: r.turn or 0) for _, turns in sorted(by_session.items())]
    starts_ns = np.sort(np.array([turns[0].t_send_ns for turns in sessions], dtype=np.int64))
    span_ns = int(starts_ns[-1] - starts_ns[0]) if starts_ns.size else 0
    rate = (starts_ns.size - 1) / (span_ns / NS_PER_S) if starts_ns.size > 1 and span_ns else None
    ok_turns = [sum(r.ok for r in turns) for turns in sessions]
    durations_s = [_duration_s(turns) for turns in sessions]
    return SessionFigures(
        num_started=num_started,
        num_sessions=len(sessions),
        num_broken=sum(not all(r.ok for r in turns) for turns in sessions),
        session_rate_sps=rate,
        turns_ok=distribution(ok_turns),
        duration_s=distribution([d for d in durations_s if d is not None]),
        turns=_turn_figures(kept, distribution),
    )


def _duration_s(turns: Sequence[RequestRecord]) -> float | None:
    """From a session's first send to the end of its last successful turn (s)."""
    ends = [r.t_last_ns if r.t_last_ns is not None else r.t_done_ns for r in turns if r.ok]
    return None if not ends else (max(ends) - turns[0].t_send_ns) / NS_PER_S


def _turn_figures(
    kept: Sequence[RequestRecord], distribution: Summarize
) -> tuple[TurnFigures, ...]:
    """One TurnFigures per turn number, in order."""
    numbers = sorted({r.turn for r in kept if r.turn is not None})
    figures = []
    for number in numbers:
        turn = [r for r in kept if r.turn == number]
        lat = request_latencies(turn)
        ok = [r for r in turn if r.ok]
        tokens_in = [r.tokens_in for r in ok if r.tokens_in is not None]
        figures.append(
            TurnFigures(
                turn=number,
                num_requests=len(turn),
                num_ok=len(ok),
                tokens_in_mean=float(np.mean(tokens_in)) if tokens_in else None,
                cached_share=_cached_share(ok),
                ttft_s=distribution(lat.ttft_s[~np.isnan(lat.ttft_s)]),
                e2e_s=distribution(lat.e2e_s[~np.isnan(lat.e2e_s)]),
            )
        )
    return tuple(figures)


def _cached_share(ok: Sequence[RequestRecord]) -> float | None:
    """Cached prompt tokens over prompt tokens, over the successes whose server said both."""
    said = [(r.cached_tokens, r.tokens_in) for r in ok if r.cached_tokens is not None]
    prompt = sum(tokens_in or 0 for _, tokens_in in said)
    return sum(cached for cached, _ in said) / prompt if prompt else None
