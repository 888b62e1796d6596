"""Terminal output: a live progress line per step, then a table of its figures."""

from __future__ import annotations

import asyncio
import math
from time import perf_counter_ns

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from loadgen.core.distributions import DISTRIBUTIONS
from loadgen.core.events import RunObserver, StepProgress, TargetInfo, TargetOutcome
from loadgen.core.records import Distribution, RequestRecord, StepSummary
from loadgen.core.stats import SATURATION_LATENESS_S
from loadgen.report.repeats import repeats_table
from loadgen.report.server_view import (
    SERVER_COLUMNS,
    TURN_COLUMNS,
    reasoning_rows,
    scraped,
    server_cells,
    server_rows,
    server_warnings,
    session_rows,
    turn_cells,
)

_REFRESH_S = 0.25


def rate_text(rate_rps: float) -> str:
    """A request rate for people: "inf" or a short number."""
    return "inf" if math.isinf(rate_rps) else f"{rate_rps:g}"


def step_rate_text(summary: StepSummary) -> str:
    """A step's target rate for people: "sync" for a synchronous step (one at a time)."""
    return "sync" if summary.synchronous else rate_text(summary.target_rate_rps)


def _ms(value_s: float | None) -> str:
    return "-" if value_s is None else f"{value_s * 1e3:.1f}"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ks_text(statistic: float | None, pvalue: float | None) -> str:
    return "-" if statistic is None or pvalue is None else f"{statistic:.3f} ({pvalue:.2f})"


def progress_text(progress: StepProgress, now_ns: int) -> Text:
    """One status line: sent, done, errors, in flight and the rate actually sent."""
    elapsed_s = max((now_ns - progress.t_start_ns) / 1e9, 1e-9)
    if progress.sessions:
        return Text.assemble(
            (f"step {progress.step + 1} @ {rate_text(progress.target_rate_rps)} sessions/s  ",
             "bold"),
            f"{progress.num_planned} sessions  requests sent {progress.sent}  "
            f"done {progress.done}  ",
            (f"errors {progress.errors}  ", "red" if progress.errors else ""),
            f"in flight {progress.in_flight}",
        )  # fmt: skip
    return Text.assemble(
        (f"step {progress.step + 1} @ {rate_text(progress.target_rate_rps)} req/s  ", "bold"),
        f"sent {progress.sent}/{progress.num_planned}  done {progress.done}  ",
        (f"errors {progress.errors}  ", "red" if progress.errors else ""),
        f"in flight {progress.in_flight}  sending at {progress.sent / elapsed_s:.1f} req/s",
    )


def summary_table(summary: StepSummary) -> Table:
    """The figures of one step (trimmed), as a table."""
    figures = summary.trimmed
    rate = step_rate_text(summary)
    title = (
        f"step {summary.step + 1}: target {rate} req/s, "
        f"kept {figures.num_requests} of {summary.num_sent} (trim {summary.trim})"
    )
    if summary.sessions is not None:
        title = (
            f"step {summary.step + 1}: target {rate} sessions/s, kept "
            f"{summary.sessions.num_sessions} of {summary.sessions.num_started} sessions "
            f"(trim {summary.trim}): {figures.num_requests} of {summary.num_sent} requests"
        )
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("achieved rate (req/s)", _num(figures.achieved_rate_rps)),
        ("send-gap CV", _num(figures.send_gap_cv)),
        ("send-gap KS vs Exp(rate) (p)", _ks_text(figures.send_gap_ks, figures.send_gap_ks_pvalue)),
        ("sends per 100 ms: variance / mean", _num(figures.send_count_dispersion)),
        ("sequence throughput (req/s)", _num(figures.sequence_throughput_rps)),
        ("output tokens/s", _num(figures.output_token_throughput_tps, 1)),
        ("total tokens/s", _num(figures.total_token_throughput_tps, 1)),
        ("goodput (req/s)", _num(figures.goodput_rps)),
        ("ok / errors", f"{figures.num_ok} / {figures.num_errors}"),
    ]
    for spec in DISTRIBUTIONS:
        dist: Distribution | None = getattr(figures, spec.field)
        values = (dist.mean, dist.p50, dist.p99) if dist else (None, None, None)
        rows.append((f"{spec.title} ms mean/p50/p99", " / ".join(_ms(v) for v in values)))
    rows += reasoning_rows(figures) + session_rows(summary.sessions) + server_rows(summary.server)
    for name, value in rows:
        table.add_row(name, value)
    return table


def sweep_table(summaries: list[StepSummary]) -> Table:
    """One row per step: the sweep's curves as numbers (the paper's Figure 1 in a table)."""
    table = Table(title="sweep (trimmed figures)", title_justify="left")
    for name in ("target req/s", "achieved", "req/s", "out tok/s", "per-token ms p50",
                 "TTFT ms p99", "errors", "flags"):  # fmt: skip
        table.add_column(name, justify="right")
    for summary in summaries:
        figures = summary.trimmed
        per_token, ttft = figures.per_token_latency_s, figures.ttft_s
        flags = [name for name, on in (("saturated", summary.client_saturated),
                                       ("interrupted", summary.interrupted),
                                       ("capped", summary.capped_sends > 0),
                                       ("over-saturated", summary.over_saturated),
                                       ("invalid", summary.invalid is not None)) if on]  # fmt: skip
        table.add_row(
            step_rate_text(summary),
            _num(figures.achieved_rate_rps),
            _num(figures.sequence_throughput_rps),
            _num(figures.output_token_throughput_tps, 1),
            _ms(per_token.p50 if per_token else None),
            _ms(ttft.p99 if ttft else None),
            str(figures.num_errors),
            " ".join(flags),
        )
    return table


def turn_table(summary: StepSummary) -> Table | None:
    """The kept sessions' figures by turn number; None for a step of single requests."""
    if summary.sessions is None:
        return None
    table = Table(title="by turn (kept sessions)", title_justify="left")
    for name in TURN_COLUMNS:
        table.add_column(name, justify="right")
    for cells in turn_cells(summary.sessions):
        table.add_row(*cells)
    return table


def server_table(summaries: list[StepSummary]) -> Table | None:
    """One row per step of the server's own view; None when no step's metrics were scraped."""
    steps = scraped(summaries)
    if not steps:
        return None
    table = Table(title="the server's view (from its /metrics)", title_justify="left")
    for name in ("target req/s", *SERVER_COLUMNS):
        table.add_column(name, justify="right")
    for summary, server in steps:
        table.add_row(step_rate_text(summary), *server_cells(server))
    return table


class ConsoleReporter(RunObserver):
    """Says which target is swept, shows progress while a step runs and its table when it ends,
    and each target's sweep table; silent when `quiet`."""

    def __init__(self, console: Console | None = None, *, quiet: bool = False) -> None:
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self._live: Live | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._summaries: list[StepSummary] = []

    def on_target_start(self, target: TargetInfo) -> None:
        """Say what is swept: the target, its URL and model, and where results go."""
        self._summaries = []
        if self.quiet:
            return
        if target.name is not None:
            self.console.rule(f"target {target.name}")
        results = f"  results {target.out_dir}" if target.out_dir is not None else ""
        where = target.base_url or "virtual time"
        self.console.print(
            f"target {target.label}: {where}  model {target.model}{results}", highlight=False
        )
        if "prefixes" in target.notes:
            self.console.print(str(target.notes["prefixes"]), highlight=False)

    def on_step_start(self, progress: StepProgress) -> None:
        """Start a live status line, refreshed from the event loop (no extra thread)."""
        if self.quiet or not self.console.is_terminal:
            return
        self._live = Live(console=self.console, auto_refresh=False, transient=True)
        self._live.start()
        self._refresher = asyncio.get_running_loop().create_task(self._refresh(progress))

    async def _refresh(self, progress: StepProgress) -> None:
        while self._live is not None:
            self._live.update(progress_text(progress, perf_counter_ns()), refresh=True)
            await asyncio.sleep(_REFRESH_S)

    def on_step_end(
        self, progress: StepProgress, summary: StepSummary, records: list[RequestRecord]
    ) -> None:
        """Stop the live line and print the step's table and warnings."""
        self._stop_live()
        self._summaries.append(summary)
        if self.quiet:
            return
        self.console.print(summary_table(summary))
        turns = turn_table(summary)
        if turns is not None:
            self.console.print(turns)
        for line in step_warnings(summary):
            self.console.print(f"[bold yellow]warning:[/] {line}")

    def on_notice(self, message: str) -> None:
        """Print an informational line."""
        if not self.quiet:
            self.console.print(message, highlight=False)

    def on_warning(self, message: str) -> None:
        """Print a warning line (above the live progress line, if one is shown)."""
        if not self.quiet:
            self.console.print(f"[bold yellow]warning:[/] {message}", highlight=False)

    def on_target_end(self, outcome: TargetOutcome) -> None:
        """Stop any live display; after several steps, print the target's sweep table."""
        self._stop_live()
        if not self.quiet and len(self._summaries) > 1:
            self.console.print(sweep_table(self._summaries))
            server = server_table(self._summaries)
            if server is not None:
                self.console.print(server)
            repeats = repeats_table(self._summaries)
            if repeats is not None:
                self.console.print(repeats)
        self._summaries = []

    def _stop_live(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        if self._live is not None:
            self._live.stop()
            self._live = None


def step_warnings(summary: StepSummary) -> list[str]:
    """What a reader must know before trusting a step's figures."""
    warnings = []
    lateness = summary.trimmed.pacer_lateness_s
    if summary.client_saturated and lateness is not None:
        warnings.append(
            f"client_saturated: the client sent late (pacer lateness p99 "
            f"{lateness.p99 * 1e3:.1f} ms); this step's figures understate the offered load"
        )
    if summary.invalid is not None:
        warnings.append(f"invalid: {summary.invalid}; do not use this step's figures")
    if summary.capped_sends:
        warnings.append(
            f"capped: the start-rate cap (max_start_rate_rps) held back {summary.capped_sends} "
            "sends; the schedule was bent, so its latenesses are the cap's"
        )
    late = [shard.shard for shard in summary.shards
            if shard.lateness_p99_s is not None
            and shard.lateness_p99_s > SATURATION_LATENESS_S]  # fmt: skip
    if late:
        warnings.append(
            f"shard(s) {', '.join(map(str, late))} sent late "
            f"(lateness p99 > {SATURATION_LATENESS_S * 1e3:g} ms)"
        )
    if summary.interrupted:
        warnings.append("the step was interrupted; its figures cover only what was sent")
    if summary.over_saturated:
        warnings.append(
            "over_saturated: requests in flight and their waits kept growing (the server is "
            "over its capacity); a capacity search stops such a step early"
        )
    if summary.trimmed.num_errors:
        kinds = ", ".join(f"{k} {v}" for k, v in summary.trimmed.errors_by_kind.items())
        warnings.append(f"{summary.trimmed.num_errors} kept requests failed ({kinds})")
    warnings += server_warnings(summary)
    if summary.tokens_source == "estimate":
        warnings.append(
            "the server sent no token usage; output tokens are estimated (one per stream chunk)"
        )
    return warnings
