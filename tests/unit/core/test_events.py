"""Tests for loadgen.core.events: Observers hands each event to every observer that listens."""

from __future__ import annotations

from pathlib import Path

from loadgen.core.events import (
    Observers,
    RunObserver,
    RunOutcome,
    StepProgress,
    TargetInfo,
    TargetOutcome,
)
from loadgen.core.records import RequestRecord

EVENTS = (
    "target_start",
    "step_start",
    "request_sent",
    "request_done",
    "step_end",
    "target_end",
    "notice",
    "warning",
    "run_end",
)
PROGRESS = StepProgress(step=0, target_rate_rps=4.0, num_planned=10, trim=2, t_start_ns=0)
RECORD = RequestRecord(index=0, t_sched_ns=0, t_send_ns=1, slot_wait_ns=0, t_done_ns=5)
INFO = TargetInfo(
    name="a",
    label="a",
    model="m",
    base_url="http://h/v1",
    scenario="synthetic",
    run_id="r",
    out_dir=Path("out"),
    plot_title="t",
)
TARGET = TargetOutcome("a", "a", INFO, ())


class Recorder(RunObserver):
    """Appends (name, event, *args) to a shared log on every event."""

    def __init__(self, name: str, log: list[tuple[object, ...]]) -> None:
        self.name, self.log = name, log


for _event in EVENTS:
    setattr(
        Recorder, f"on_{_event}", lambda self, *a, e=_event: self.log.append((self.name, e, *a))
    )


class StepsOnly(RunObserver):
    """Listens to step ends only."""

    def __init__(self, log: list[tuple[object, ...]]) -> None:
        self.log = log

    def on_step_end(self, *args: object) -> None:  # type: ignore[override]
        self.log.append(("steps", "step_end"))


def test_observers_hand_every_event_to_each_in_order() -> None:
    log: list[tuple[object, ...]] = []
    both = Observers(Recorder("a", log), Recorder("b", log))
    events: list[tuple[object, ...]] = [
        ("target_start", INFO), ("step_start", PROGRESS), ("request_sent", PROGRESS, 0, 7),
        ("request_done", PROGRESS, RECORD), ("warning", "field refused"),
        ("notice", "metrics at"), ("step_end", PROGRESS, None, [RECORD]),
        ("target_end", TARGET), ("run_end", RunOutcome((TARGET,), False)),
    ]  # fmt: skip
    for name, *args in events:
        getattr(both, f"on_{name}")(*args)
    # Each event reaches a, then b, before the next event is handed out.
    assert log == [(who, *event) for event in events for who in ("a", "b")]


def test_an_observer_hears_only_what_it_overrides() -> None:
    log: list[tuple[object, ...]] = []
    both = Observers(StepsOnly(log), Recorder("all", log))
    both.on_request_sent(PROGRESS, 0, 1)
    both.on_step_end(PROGRESS, None, [])  # type: ignore[arg-type]
    assert log == [
        ("all", "request_sent", PROGRESS, 0, 1),  # StepsOnly does not listen to sends
        ("steps", "step_end"),
        ("all", "step_end", PROGRESS, None, []),
    ]


def test_outcome_splits_swept_and_failed_targets() -> None:
    failed = TargetOutcome("b", "b", None, (), OSError("down"))
    outcome = RunOutcome((TARGET, failed), interrupted=False)
    assert outcome.swept == (TARGET,)
    assert outcome.failures == (failed,)
