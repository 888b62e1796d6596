"""Run events as plain data, and the observer that every output of a run subscribes with.

The runtime tells one RunObserver what happens; the results writer, the sweep plot, the
console, the Prometheus exporter and the Pushgateway are all observers (see `Observers`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen.core.records import RequestRecord, StepSummary
from loadgen.core.saturation import SaturationWatch, wait_of


@dataclass(frozen=True, slots=True)
class TargetInfo:
    """A target about to be swept.

    `name` is its sweep-file name (None for a run's only, unnamed target); `label` names it in
    plots and metrics; `model` is the model id requests ask for; `out_dir` is its results
    folder (None: nothing written); `config` is the run's configuration as written to results
    (plain JSON, secrets as names only); `notes` says more about the target (the simulated
    engine's setup, for one).
    """

    name: str | None
    label: str
    model: str
    base_url: str | None
    scenario: str
    run_id: str
    out_dir: Path | None
    plot_title: str
    config: Mapping[str, Any] = field(default_factory=dict)
    notes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class StepProgress:
    """Live counters of the step in progress; `t_start_ns` is the schedule origin (ns).

    In a step of multi-turn `sessions`, `num_planned` and `trim` count sessions, and `sent`,
    `done` and `errors` requests. `watch` sees every finished request when the step is
    watched for over-saturation.
    """

    step: int
    target_rate_rps: float
    num_planned: int
    trim: int
    t_start_ns: int
    sessions: bool = False
    sent: int = 0
    done: int = 0
    errors: int = 0
    watch: SaturationWatch | None = None

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet finished."""
        return self.sent - self.done

    def finish(self, record: RequestRecord) -> None:
        """Count a finished request (and show it to the step's saturation watch, if any)."""
        self.done += 1
        self.errors += not record.ok
        if self.watch is not None:
            t_s = (record.t_done_ns - self.t_start_ns) / 1e9
            self.watch.add(t_s, self.sent, self.in_flight, wait_of(record))


@dataclass(frozen=True, slots=True)
class TargetOutcome:
    """What sweeping one target gave: its finished steps, or the error that stopped it.

    `info` is None when the target failed before its first step could be planned.
    """

    name: str | None
    label: str
    info: TargetInfo | None
    steps: tuple[StepSummary, ...]
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """Every target's outcome, in the order they were swept, and whether a stop cut the run."""

    targets: tuple[TargetOutcome, ...]
    interrupted: bool

    @property
    def swept(self) -> tuple[TargetOutcome, ...]:
        """The targets that were swept (each with at least a first step begun)."""
        return tuple(target for target in self.targets if target.error is None)

    @property
    def failures(self) -> tuple[TargetOutcome, ...]:
        """The targets that could not be swept."""
        return tuple(target for target in self.targets if target.error is not None)


class RunObserver:
    """Receives run events; every method is a no-op unless overridden. Must not block."""

    def on_target_start(self, target: TargetInfo) -> None:
        """A target's sweep begins (its server reached, its model known)."""

    def on_step_start(self, progress: StepProgress) -> None:
        """A step begins; `progress` stays live while it runs."""

    def on_request_sent(self, progress: StepProgress, index: int, lateness_ns: int) -> None:
        """Request `index` of the step was dispatched, `lateness_ns` after its scheduled time."""

    def on_request_done(self, progress: StepProgress, record: RequestRecord) -> None:
        """A request of the step ended (success or error)."""

    def on_step_end(
        self, progress: StepProgress, summary: StepSummary, records: list[RequestRecord]
    ) -> None:
        """A step finished and was summarised; `records` are its requests in send order."""

    def on_target_end(self, outcome: TargetOutcome) -> None:
        """A target's sweep ended (finished, stopped, or failed)."""

    def on_notice(self, message: str) -> None:
        """Something worth telling that is neither a warning nor an error (where /metrics is)."""

    def on_warning(self, message: str) -> None:
        """Something the user should know that is not an error (say, a field the server refused)."""

    def on_run_end(self, outcome: RunOutcome) -> None:
        """The run is over (finished, or stopped)."""


_EVENTS = (
    "on_target_start",
    "on_step_start",
    "on_request_sent",
    "on_request_done",
    "on_step_end",
    "on_target_end",
    "on_notice",
    "on_warning",
    "on_run_end",
)


class Observers(RunObserver):
    """Hands every event to each of several observers, in order.

    Per-request events reach only the observers that override them: the hot path pays for
    what listens, not for every observer of the run.
    """

    def __init__(self, *observers: RunObserver) -> None:
        self.observers = observers
        listening = {
            event: [
                getattr(observer, event)
                for observer in observers
                if getattr(type(observer), event) is not getattr(RunObserver, event)
            ]
            for event in _EVENTS
        }
        self._sent = listening["on_request_sent"]
        self._done = listening["on_request_done"]
        self._listening = listening

    def _tell(self, event: str, *args: Any) -> None:
        for handler in self._listening[event]:
            handler(*args)

    def on_target_start(self, target: TargetInfo) -> None:
        """Tell every observer."""
        self._tell("on_target_start", target)

    def on_step_start(self, progress: StepProgress) -> None:
        """Tell every observer."""
        self._tell("on_step_start", progress)

    def on_request_sent(self, progress: StepProgress, index: int, lateness_ns: int) -> None:
        """Tell every observer that listens."""
        for handler in self._sent:
            handler(progress, index, lateness_ns)

    def on_request_done(self, progress: StepProgress, record: RequestRecord) -> None:
        """Tell every observer that listens."""
        for handler in self._done:
            handler(progress, record)

    def on_step_end(
        self, progress: StepProgress, summary: StepSummary, records: list[RequestRecord]
    ) -> None:
        """Tell every observer."""
        self._tell("on_step_end", progress, summary, records)

    def on_target_end(self, outcome: TargetOutcome) -> None:
        """Tell every observer."""
        self._tell("on_target_end", outcome)

    def on_notice(self, message: str) -> None:
        """Tell every observer."""
        self._tell("on_notice", message)

    def on_warning(self, message: str) -> None:
        """Tell every observer."""
        self._tell("on_warning", message)

    def on_run_end(self, outcome: RunOutcome) -> None:
        """Tell every observer."""
        self._tell("on_run_end", outcome)
