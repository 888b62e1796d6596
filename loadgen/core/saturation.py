"""Over-saturation: a step whose server falls further behind the longer it runs (pure).

An open-loop step above the server's capacity grows a queue without bound: requests in flight
rise by (sent rate - completion rate) every second, and each request waits longer for its first
token than the one before. The window judged runs from the warm-up's end (or, later, twice the
median wait after the step's start, when the ramp to a steady state is over) to the last
request finished before the step's last send. The step is over-saturated when, over that
window, requests in flight and waits both end `GROWTH` times higher (mean of the last quarter
of the window against the first), requests in flight grew by more than `MIN_LAG` of the
requests sent meanwhile, both rose from each quarter of the window to the next, both
least-squares slopes are positive beyond `SLOPE_SIGMAS` standard errors, and all that held at
`PERSIST_CHECKS` checks in a row. A queue that only wanders (a server near but under its
capacity) rarely does all that: a single FIFO server at 90% load with exponential service
times, far burstier than a batching LLM server, is flagged in about 1 of 8 steps of 100 s. A known
blind spot: requests that stream nothing wait for their whole latency, and early in a ramp
only the short ones have ended, so a step of long non-streamed requests can be flagged while
it ramps up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from loadgen.core.records import RequestRecord

NS_PER_S = 1e9

SLOPE_SIGMAS = 3.0
MIN_LAG = 0.05
GROWTH = 1.5
MIN_QUEUE = 20
RAMP_WAITS = 2.0
PERSIST_CHECKS = 3
MIN_SAMPLES = 30
# Seconds between checks (s): the runtime polls at this pace, a replay of records steps by it.
CHECK_S = 0.5
MAX_REPLAY_CHECKS = 400


@dataclass(slots=True)
class SaturationWatch:
    """Finished requests of one step, `(t_s, in_flight, wait_s)`, after `warmup` sends and
    before the last of `num_planned` (None: not known) was sent: a step draining its queue
    after its last send is not growing one.

    `t_s` counts from the step's start; `wait_s` is the time to first token (or to the end, for
    a request that streamed none), None for a failure.
    """

    warmup: int
    num_planned: int | None = None
    t_s: list[float] = field(default_factory=list)
    in_flight: list[int] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    wait_s: list[float] = field(default_factory=list)
    wait_t_s: list[float] = field(default_factory=list)
    _in_a_row: int = 0
    over: bool = False

    def add(self, t_s: float, sent: int, in_flight: int, wait_s: float | None) -> None:
        """One finished request, at `t_s` (s) with `sent` sent and `in_flight` still out."""
        if sent < self.warmup or (self.num_planned is not None and sent >= self.num_planned):
            return
        self.t_s.append(t_s)
        self.in_flight.append(in_flight)
        self.sent.append(sent)
        if wait_s is not None and math.isfinite(wait_s):
            self.wait_t_s.append(t_s)
            self.wait_s.append(wait_s)

    def check(self) -> bool:
        """Judge what was added so far; True once the step is over-saturated (it stays so)."""
        if not self.over:
            self._in_a_row = self._in_a_row + 1 if self._growing() else 0
            self.over = self._in_a_row >= PERSIST_CHECKS
        return self.over

    def _growing(self) -> bool:
        """Requests in flight and waits both rising across the window (see the module)."""
        times = np.asarray(self.t_s)
        wait_times = np.asarray(self.wait_t_s)
        if times.size < 2 * MIN_SAMPLES or wait_times.size < MIN_SAMPLES:
            return False
        waits = np.asarray(self.wait_s)
        # Past the ramp: requests sent at the start have had twice a typical wait to finish.
        start_s = max(float(times[0]), RAMP_WAITS * float(np.median(waits)))
        in_window = times >= start_s
        waits_in = wait_times >= start_s
        if int(in_window.sum()) < 2 * MIN_SAMPLES or int(waits_in.sum()) < MIN_SAMPLES:
            return False
        counts = _Series(times[in_window], np.asarray(self.in_flight, np.float64)[in_window])
        delays = _Series(wait_times[waits_in], waits[waits_in])
        sent = np.asarray(self.sent, np.float64)[in_window]
        counts_by_quarter, delays_by_quarter = counts.quarters(), delays.quarters()
        lag = counts_by_quarter[-1] - counts_by_quarter[0]
        return (
            counts_by_quarter[-1] >= GROWTH * counts_by_quarter[0]
            and lag > max(MIN_LAG * float(sent[-1] - sent[0]), MIN_QUEUE)
            and delays_by_quarter[-1] >= GROWTH * delays_by_quarter[0]
            and _increasing(delays_by_quarter)
            and counts.rising()
            and delays.rising()
        )


def _increasing(values: Sequence[float]) -> bool:
    """True when each value is above the one before, over at least 3 (NaN ones, of quarters
    in which nothing finished, are left out)."""
    known = [value for value in values if not math.isnan(value)]
    return len(known) >= 3 and all(later > earlier for earlier, later in pairwise(known))


@dataclass(frozen=True, slots=True)
class _Series:
    """Values `y` sampled at times `x` (s), in time order."""

    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]

    def quarters(self) -> list[float]:
        """The mean of the values in each quarter of the time span (NaN for an empty one)."""
        edges = np.linspace(self.x[0], self.x[-1], 5)
        which = np.clip(np.searchsorted(edges, self.x, side="right") - 1, 0, 3)
        return [float(self.y[which == q].mean()) if (which == q).any() else math.nan
                for q in range(4)]  # fmt: skip

    def rising(self) -> bool:
        """True when the least-squares slope is above 0 by SLOPE_SIGMAS standard errors."""
        dx = self.x - self.x.mean()
        spread = float((dx * dx).sum())
        if spread <= 0 or self.x.size < 3:
            return False
        slope = float((dx * (self.y - self.y.mean())).sum()) / spread
        residuals = self.y - self.y.mean() - slope * dx
        error = math.sqrt(float((residuals * residuals).sum()) / (self.x.size - 2) / spread)
        return slope > SLOPE_SIGMAS * error and slope > 0


def wait_of(record: RequestRecord) -> float | None:
    """How long a request waited for its first token (s), or for its end when it streamed
    none; None for a failure."""
    if not record.ok:
        return None
    first_ns = record.t_first_ns if record.t_first_ns is not None else record.t_done_ns
    return (first_ns - record.t_send_ns) / NS_PER_S


def replay_over_saturated(records: Sequence[RequestRecord], warmup: int) -> bool:
    """Whether a watch checking every CHECK_S (s) would have flagged a finished step (a long
    step is checked at most MAX_REPLAY_CHECKS times, evenly: each check reads every sample)."""
    if not records:
        return False
    watch = SaturationWatch(warmup, len(records))
    sends_ns = np.sort(np.fromiter((r.t_send_ns for r in records), np.int64, len(records)))
    t0_ns = int(sends_ns[0])
    span_s = (max(r.t_done_ns for r in records) - t0_ns) / NS_PER_S
    every_s = max(CHECK_S, span_s / MAX_REPLAY_CHECKS)
    next_check_s = every_s
    for done, record in enumerate(sorted(records, key=lambda r: r.t_done_ns), 1):
        t_s = (record.t_done_ns - t0_ns) / NS_PER_S
        while t_s > next_check_s:
            if watch.check():
                return True
            next_check_s += every_s
        sent = int(np.searchsorted(sends_ns, record.t_done_ns, side="right"))
        watch.add(t_s, sent, sent - done, wait_of(record))
    return watch.check()
