"""Sweeps on disk: each one's state in RESULTS/<id>/sweep.json, beside its results files.

Written atomically at every change of status, so a restart finds every sweep as it last was: one
that was running (or being cancelled) has lost its process and becomes failed, keeping the steps
its summary.json holds; queued ones are run.
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from loadgen.export.files import write_atomic
from loadgen.service.security import valid_sweep_id

Status = Literal["queued", "running", "cancelling", "succeeded", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
STATE_FILE = "sweep.json"
RESTARTED = "interrupted by a restart of the service"


def new_sweep_id(now: datetime) -> str:
    """A fresh id: the submission time (UTC) and 32 random bits, sortable by time."""
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(4)}"


@dataclass(slots=True)
class SweepState:
    """One sweep as the API shows it: status, the sweep file it runs, and how it ended."""

    id: str
    status: Status
    created: str
    config: dict[str, Any]
    idempotency_key: str | None = None
    error: str | None = None
    finished: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """Finished one way or another."""
        return self.status in FINISHED


def utc_now() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


class Store:
    """The sweeps under `root`, one folder each."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def folder(self, sweep_id: str) -> Path:
        """Where a sweep's files live (ValueError for an id the service did not make)."""
        if not valid_sweep_id(sweep_id):
            raise ValueError(f"not a sweep id: {sweep_id!r}")
        return self.root / sweep_id

    def save(self, state: SweepState) -> None:
        """Write `state` (atomically)."""
        folder = self.folder(state.id)
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / STATE_FILE, orjson.dumps(asdict(state), option=orjson.OPT_INDENT_2))

    def delete(self, sweep_id: str) -> None:
        """Remove a sweep and its results."""
        shutil.rmtree(self.folder(sweep_id), ignore_errors=True)

    def load_all(self) -> list[SweepState]:
        """Every sweep found, oldest submission first; folders that are no sweeps are skipped."""
        states = []
        for path in sorted(self.root.glob(f"*/{STATE_FILE}")):
            if not valid_sweep_id(path.parent.name):
                continue
            try:
                states.append(SweepState(**orjson.loads(path.read_bytes())))
            except (OSError, ValueError, TypeError):
                continue  # a half-made folder from a crash before its first write
        return sorted(states, key=lambda state: state.created)

    def recover(self) -> list[SweepState]:
        """Every sweep found, those a restart interrupted marked failed (and saved)."""
        states = self.load_all()
        for state in states:
            if state.status in ("running", "cancelling"):
                state.status, state.error = "failed", RESTARTED
                state.finished = utc_now().isoformat()
                self.save(state)
        return states
