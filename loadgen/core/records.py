"""Records that flow from client to statistics: specs in, records out, summaries per step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

ErrorKind = Literal[
    "http_3xx",
    "http_4xx",
    "http_5xx",
    "timeout",
    "connect",
    "disconnect",
    "bad_stream",
    "cancelled",
    "lost",
]
ERROR_KINDS: tuple[ErrorKind, ...] = get_args(ErrorKind)
TokensSource = Literal["server", "tokenizer", "estimate"]
Phase = Literal["warmup", "measure", "cooldown"]


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request of a workload: a prompt (or chat messages) and its output budget in tokens."""

    prompt: str
    max_tokens: int
    tokens_in: int | None = None
    messages: tuple[Mapping[str, str], ...] | None = None


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What happened to one sent request; times are `perf_counter_ns` readings (ns).

    `chunk_times_ns` holds the arrival of every token-carrying chunk of a stream (empty when
    not streamed); `chunk_tokens` the tokens each of those chunks carried, when known. Both
    are best held compact (`array("q")`): a step keeps every stream's until it is summarised.
    `t_first_ns` is None for non-streamed requests (no time to first token is observable);
    `t_first_answer_ns` is the first chunk of answer (not reasoning) text, None when none came.
    `reasoning_tokens` counts the output tokens that were reasoning (part of `tokens_out`),
    None when the server sent no reasoning and reported none; `cached_tokens` the prompt
    tokens the server found in its prefix cache, when it said. A turn of a multi-turn session
    has its `session` (start order in the step, from 0) and `turn` (from 1).
    `shard` is the shard that sent it, in a run of several (None: a one-process run). A `lost`
    record is a request whose shard was lost before it told how the request ended.
    """

    index: int
    t_sched_ns: int
    t_send_ns: int
    slot_wait_ns: int
    t_done_ns: int
    t_first_ns: int | None = None
    t_last_ns: int | None = None
    tokens_in: int | None = None
    tokens_out: int = 0
    tokens_source: TokensSource = "estimate"
    chunk_times_ns: Sequence[int] = field(default_factory=tuple)
    chunk_tokens: Sequence[int] | None = None
    error_kind: ErrorKind | None = None
    error: str | None = None
    status: int | None = None
    shard: int | None = None
    t_first_answer_ns: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    session: int | None = None
    turn: int | None = None

    @property
    def ok(self) -> bool:
        """True when the request completed without error."""
        return self.error_kind is None


def phase_of(index: int, num_requests: int, trim: int) -> Phase:
    """The trim-rule phase of send index `index` in a step of `num_requests` (or of session
    start index `index` in a step of `num_requests` sessions)."""
    if index < trim:
        return "warmup"
    if index >= num_requests - trim:
        return "cooldown"
    return "measure"


def record_phase(record: RequestRecord, num_planned: int, trim: int) -> Phase:
    """The trim-rule phase of `record` in a step of `num_planned` requests, or of sessions when
    it is a session's turn (sessions are trimmed by start order)."""
    number = record.index if record.session is None else record.session
    return phase_of(number, num_planned, trim)


@dataclass(frozen=True, slots=True)
class Distribution:
    """Summary of one latency-like sample (seconds unless the field name says otherwise)."""

    count: int
    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float


@dataclass(frozen=True, slots=True)
class StepFigures:
    """Every figure of one step over one set of requests (trimmed, or all sent).

    Throughputs are per second of `window_s`; they are 0.0 when no request succeeded and
    `window_s` is None. Distributions are None when they have no sample. Reasoning and answer
    token means (per success) are None when no success reported reasoning. `send_gap_ks` and its
    p-value test the send gaps against the target rate's exponential (finite rates only);
    `send_count_dispersion` is the variance over mean of sends per 100 ms window.
    """

    num_requests: int
    num_ok: int
    num_errors: int
    errors_by_kind: Mapping[str, int]
    error_rate: float | None
    window_s: float | None
    sequence_throughput_rps: float
    output_token_throughput_tps: float
    total_token_throughput_tps: float | None
    reasoning_tokens_mean: float | None
    answer_tokens_mean: float | None
    goodput_rps: float | None
    achieved_rate_rps: float | None
    send_gap_cv: float | None
    send_gap_ks: float | None
    send_gap_ks_pvalue: float | None
    send_count_dispersion: float | None
    ttft_s: Distribution | None
    ttft_sched_s: Distribution | None
    ttfa_s: Distribution | None
    tpot_s: Distribution | None
    itl_s: Distribution | None
    e2e_s: Distribution | None
    per_token_latency_s: Distribution | None
    queue_s: Distribution | None
    pacer_lateness_s: Distribution | None


@dataclass(frozen=True, slots=True)
class ShardFigures:
    """What one shard of a step sent, among the kept requests: its rate and pacer lateness."""

    shard: int
    num_sent: int
    achieved_rate_rps: float | None
    lateness_p99_s: float | None


@dataclass(frozen=True, slots=True)
class TurnFigures:
    """The kept requests of one turn number (from 1) of a step's sessions.

    `cached_share` is the share of their prompt tokens the server said it found cached (None
    when it did not say).
    """

    turn: int
    num_requests: int
    num_ok: int
    tokens_in_mean: float | None
    cached_share: float | None
    ttft_s: Distribution | None
    e2e_s: Distribution | None


@dataclass(frozen=True, slots=True)
class SessionFigures:
    """The kept sessions of a step (trimmed by session start order) and their turns.

    `num_started` counts every session the step started (before trimming); `num_sessions` the
    kept ones. `session_rate_sps` is the achieved rate of kept session starts (sessions/s);
    `turns_ok` the turns each session completed; `duration_s` from a session's first send to
    its last answer's end; `num_broken` sessions ended early by a failed turn.
    """

    num_started: int
    num_sessions: int
    num_broken: int
    session_rate_sps: float | None
    turns_ok: Distribution | None
    duration_s: Distribution | None
    turns: tuple[TurnFigures, ...]


@dataclass(frozen=True, slots=True)
class ServerFigures:
    """The server's own view of one step, from its Prometheus metrics scraped around it.

    Token and preemption counts are counter deltas from the step's first scrape to its last,
    beside what the client counted over every request it sent in the step (`client_*`);
    `tokens_mismatch` says how they disagree, None when they agree. Gauges are sampled at every
    scrape (`scrapes` of them). Latency means (s) come from the server's histogram deltas. A
    figure is None when the server does not expose its metric.
    """

    url: str
    scrapes: int
    prompt_tokens: int | None
    generation_tokens: int | None
    client_prompt_tokens: int | None
    client_generation_tokens: int | None
    tokens_mismatch: str | None
    prefix_cache_queries: int | None
    prefix_cache_hits: int | None
    prefix_cache_hit_rate: float | None
    preemptions: int | None
    running_max: float | None
    running_mean: float | None
    waiting_max: float | None
    waiting_mean: float | None
    kv_cache_usage_max: float | None
    ttft_mean_s: float | None
    itl_mean_s: float | None
    e2e_mean_s: float | None


Verdict = Literal["holds", "fails", "undecided"]


@dataclass(frozen=True, slots=True)
class SloCheck:
    """One capacity SLO judged on one step: the step's figure, its 95% interval, the verdict.

    `key` is the SLO as given (`ttft_p99`, `error_rate`); `limit` and the figures are in its
    units (s, or a share of requests); `why` says what left it undecided, when it was.
    """

    key: str
    limit: float
    estimate: float | None
    low: float | None
    high: float | None
    verdict: Verdict
    why: str | None = None


@dataclass(frozen=True, slots=True)
class StepVerdict:
    """Whether a step carried its load within every capacity SLO: holds when every check
    holds, fails when one fails (or the step was over-saturated), else undecided."""

    verdict: Verdict
    checks: tuple[SloCheck, ...]


@dataclass(frozen=True, slots=True)
class StepSummary:
    """One finished step of a sweep: the trimmed figures, the untrimmed ones, and flags.

    `invalid` says why the step's figures cannot be trusted (a shard lost mid-step); `shards`
    holds each shard's figures in a run of several (empty for one process); `server` the
    server's own view of the step, when its metrics were scraped; `sessions` the figures of a
    step of multi-turn sessions (kept by session start order, not send order).
    `over_saturated`: the server fell further behind the longer the step ran (a capacity
    search stops such a step early); `slo` the step's verdict under a capacity search's SLOs;
    `synchronous` a step that sent one request at a time (its target rate is inf); `repeat`
    which run of its step it is, from 0 (`--repeats`).
    """

    step: int
    target_rate_rps: float
    num_sent: int
    trim: int
    trimmed: StepFigures
    untrimmed: StepFigures
    client_saturated: bool
    interrupted: bool
    tokens_source: TokensSource
    duration_s: float
    invalid: str | None = None
    shards: tuple[ShardFigures, ...] = ()
    capped_sends: int = 0
    server: ServerFigures | None = None
    sessions: SessionFigures | None = None
    over_saturated: bool = False
    slo: StepVerdict | None = None
    synchronous: bool = False
    repeat: int = 0
