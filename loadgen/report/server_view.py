"""The step figures that 2026 traffic adds, for people: reasoning, sessions, the server's view."""

from __future__ import annotations

from collections.abc import Sequence

from loadgen.core.records import ServerFigures, SessionFigures, StepFigures, StepSummary

# The per-turn columns of a step of sessions.
TURN_COLUMNS = (
    "turn", "requests", "ok", "prompt tok mean", "cached %", "TTFT ms p50", "TTFT ms p99",
    "E2E ms p50",
)  # fmt: skip
# The server-view columns of a sweep: title, and how a step's figures fill it.
SERVER_COLUMNS = (
    "server gen tok", "client gen tok", "prefix hit %", "preempt",
    "running max", "waiting max", "KV max %", "server TTFT ms",
)  # fmt: skip


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}"


def _ms(value_s: float | None) -> str:
    return "-" if value_s is None else f"{value_s * 1e3:.1f}"


def _mean_max(mean: float | None, high: float | None) -> str:
    return "-" if mean is None or high is None else f"{mean:.1f} / {high:g}"


def reasoning_rows(figures: StepFigures) -> list[tuple[str, str]]:
    """Mean reasoning and answer tokens per success, when any success reported reasoning."""
    if figures.reasoning_tokens_mean is None or figures.answer_tokens_mean is None:
        return []
    return [
        (
            "reasoning / answer tokens, mean",
            f"{figures.reasoning_tokens_mean:.1f} / {figures.answer_tokens_mean:.1f}",
        )
    ]


def server_rows(server: ServerFigures | None) -> list[tuple[str, str]]:
    """The server's view of one step as (figure, value) rows; none when it was not scraped."""
    if server is None:
        return []
    tokens = (
        f"{_count(server.generation_tokens)} / {_count(server.client_generation_tokens)}"
        f" (prompt {_count(server.prompt_tokens)} / {_count(server.client_prompt_tokens)})"
    )
    hits = f"{_share(server.prefix_cache_hit_rate)} ({_count(server.prefix_cache_hits)} of "
    return [
        ("server: generated tokens, server / client", tokens),
        ("server: prefix-cache hit %", hits + f"{_count(server.prefix_cache_queries)} tokens)"),
        ("server: preemptions", _count(server.preemptions)),
        ("server: running, mean / max", _mean_max(server.running_mean, server.running_max)),
        ("server: waiting, mean / max", _mean_max(server.waiting_mean, server.waiting_max)),
        ("server: KV-cache usage max %", _share(server.kv_cache_usage_max)),
        (
            "server: TTFT / ITL / E2E ms mean",
            " / ".join(_ms(v) for v in (server.ttft_mean_s, server.itl_mean_s, server.e2e_mean_s)),
        ),
        ("server: scrapes", f"{server.scrapes} of {server.url}"),
    ]


def server_cells(server: ServerFigures) -> tuple[str, ...]:
    """One step's SERVER_COLUMNS cells."""
    return (
        _count(server.generation_tokens),
        _count(server.client_generation_tokens),
        _share(server.prefix_cache_hit_rate),
        _count(server.preemptions),
        "-" if server.running_max is None else f"{server.running_max:g}",
        "-" if server.waiting_max is None else f"{server.waiting_max:g}",
        _share(server.kv_cache_usage_max),
        _ms(server.ttft_mean_s),
    )


def server_warnings(summary: StepSummary) -> list[str]:
    """What the server's view says a reader must know: its counts disagree with the client's."""
    server = summary.server
    if server is None or server.tokens_mismatch is None:
        return []
    return [f"server metrics: {server.tokens_mismatch}"]


def scraped(steps: Sequence[StepSummary]) -> list[tuple[StepSummary, ServerFigures]]:
    """The steps whose server metrics were scraped, each with its server figures."""
    return [(step, step.server) for step in steps if step.server is not None]


def session_rows(sessions: SessionFigures | None) -> list[tuple[str, str]]:
    """A step of sessions' own figures as (figure, value) rows; none for a step of requests."""
    if sessions is None:
        return []
    turns, duration = sessions.turns_ok, sessions.duration_s
    rate = "-" if sessions.session_rate_sps is None else f"{sessions.session_rate_sps:.2f}"
    completed = "-" if turns is None else f"{turns.mean:.1f} / {turns.max:g}"
    return [
        (
            "sessions kept / started / broken",
            f"{sessions.num_sessions} / {sessions.num_started} / {sessions.num_broken}",
        ),
        ("session rate (sessions/s)", rate),
        ("turns completed, mean / max", completed),
        (
            "session duration s, mean / p99",
            "-" if duration is None else f"{duration.mean:.2f} / {duration.p99:.2f}",
        ),
    ]


def turn_cells(sessions: SessionFigures) -> list[tuple[str, ...]]:
    """One row of TURN_COLUMNS cells per turn number."""
    return [
        (
            str(turn.turn),
            str(turn.num_requests),
            str(turn.num_ok),
            "-" if turn.tokens_in_mean is None else f"{turn.tokens_in_mean:.0f}",
            _share(turn.cached_share),
            _ms(None if turn.ttft_s is None else turn.ttft_s.p50),
            _ms(None if turn.ttft_s is None else turn.ttft_s.p99),
            _ms(None if turn.e2e_s is None else turn.e2e_s.p50),
        )
        for turn in sessions.turns
    ]
