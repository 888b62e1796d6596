"""Observers of a run: the progress display, exporters and file writers subscribe here."""

from __future__ import annotations

from dataclasses import dataclass

from loadgen.core.records import RequestRecord, StepSummary


@dataclass(slots=True)
class StepProgress:
    """Live counters of the step in progress; `t_start_ns` is the schedule origin (ns)."""

    step: int
    target_rate_rps: float
    num_planned: int
    trim: int
    t_start_ns: int
    sent: int = 0
    done: int = 0
    errors: int = 0

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet finished."""
        return self.sent - self.done


class RunObserver:
    """Receives run events; every method is a no-op unless overridden. Must not block."""

    def on_step_start(self, progress: StepProgress) -> None:
        """A step begins; `progress` stays live while it runs."""

    def on_request_sent(self, progress: StepProgress, index: int, lateness_ns: int) -> None:
        """Request `index` of the step was dispatched, `lateness_ns` after its scheduled time."""

    def on_request_done(self, progress: StepProgress, record: RequestRecord) -> None:
        """A request of the step ended (success or error)."""

    def on_step_end(
        self, progress: StepProgress, summary: StepSummary, records: list[RequestRecord]
    ) -> None:
        """A step finished and was summarised."""

    def on_warning(self, message: str) -> None:
        """Something the user should know that is not an error (say, a field the server refused)."""

    def on_run_end(self) -> None:
        """The run is over (finished, or stopped)."""


class Observers(RunObserver):
    """Hands every event to each of several observers, in order."""

    def __init__(self, *observers: RunObserver) -> None:
        self.observers = observers

    def on_step_start(self, progress: StepProgress) -> None:
        """Tell every observer."""
        for observer in self.observers:
            observer.on_step_start(progress)

    def on_request_sent(self, progress: StepProgress, index: int, lateness_ns: int) -> None:
        """Tell every observer."""
        for observer in self.observers:
            observer.on_request_sent(progress, index, lateness_ns)

    def on_request_done(self, progress: StepProgress, record: RequestRecord) -> None:
        """Tell every observer."""
        for observer in self.observers:
            observer.on_request_done(progress, record)

    def on_step_end(
        self, progress: StepProgress, summary: StepSummary, records: list[RequestRecord]
    ) -> None:
        """Tell every observer."""
        for observer in self.observers:
            observer.on_step_end(progress, summary, records)

    def on_warning(self, message: str) -> None:
        """Tell every observer."""
        for observer in self.observers:
            observer.on_warning(message)

    def on_run_end(self) -> None:
        """Tell every observer."""
        for observer in self.observers:
            observer.on_run_end()
