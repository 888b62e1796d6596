"""Multi-turn sessions through the engine model in virtual time: sessions in, records out.

A session's first turn arrives at its start; each later turn arrives when the previous turn's
last token appeared plus its own think time, resending the whole history (so the engine's
prefix cache can serve it). A refused turn ends its session, as a failed turn does on a server.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from loadgen.core.records import RequestRecord, RequestSpec
from loadgen.sim.engine import Engine
from loadgen.sim.reasoning import ReasoningRange
from loadgen.sim.virtual import OutputPolicy, run_arrivals


class SessionTurn(Protocol):
    """What the simulator needs of a turn: the think time before it is sent (s)."""

    @property
    def think_s(self) -> float:
        """Seconds between the previous answer's end and this turn's send."""
        ...


class SessionLike(Protocol):
    """What the simulator needs of a session (workloads' Session is one)."""

    @property
    def turns(self) -> Sequence[SessionTurn]:
        """The turns, in the order they are sent."""
        ...

    def request(self, turn: int) -> RequestSpec:
        """The request of turn `turn` (from 0), its history included."""
        ...


class _SessionArrivals:
    """Pending turns, earliest first (ties by session start order, then turn); a turn that
    ended well queues the session's next one."""

    def __init__(self, sessions: Sequence[SessionLike], starts_s: Sequence[float]) -> None:
        self._sessions = sessions
        # (arrival s, session, turn from 0): unique keys, so the heap never compares further.
        self._pending = [(start_s, number, 0) for number, start_s in enumerate(starts_s)]
        heapq.heapify(self._pending)
        self._sent: list[tuple[int, int]] = []
        self.records: list[RequestRecord] = []

    def next_s(self) -> float | None:
        """When the next pending turn arrives (s), or None when none is pending."""
        return self._pending[0][0] if self._pending else None

    def pop(self) -> tuple[int, RequestSpec, float]:
        """The next pending turn: its send index, request and arrival time (s)."""
        t_s, number, turn = heapq.heappop(self._pending)
        self._sent.append((number, turn))
        return len(self._sent) - 1, self._sessions[number].request(turn), t_s

    def ended(self, record: RequestRecord, now_s: float) -> None:
        """Keep the turn's record; if it succeeded, queue the session's next turn to arrive
        `think_s` after `now_s`, when its last token appeared (s)."""
        number, turn = self._sent[record.index]
        self.records.append(replace(record, session=number, turn=turn + 1))
        turns = self._sessions[number].turns
        if record.ok and turn + 1 < len(turns):
            heapq.heappush(self._pending, (now_s + turns[turn + 1].think_s, number, turn + 1))


def simulate_sessions(
    engine: Engine,
    sessions: Sequence[SessionLike],
    starts_s: npt.NDArray[np.float64],
    outputs: OutputPolicy,
    rng: np.random.Generator,
    reasoning: ReasoningRange | None = None,
) -> list[RequestRecord]:
    """Run `sessions[i]` starting at `starts_s[i]` through `engine`; records in send order (ns).

    A record's index is its turn's arrival order, and it carries its `session` (start order,
    from 0) and `turn` (from 1); output lengths and reasoning are drawn as simulate_requests's.
    """
    arrivals = _SessionArrivals(sessions, [float(start) for start in starts_s])
    run_arrivals(engine, arrivals, outputs, rng, reasoning)
    return sorted(arrivals.records, key=lambda record: record.index)
