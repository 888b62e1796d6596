"""Rate-sweep policies: parse the rates (req/s) to visit and drive them as generators."""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass

from loadgen.core.records import StepSummary


@dataclass(frozen=True, slots=True)
class StepOrder:
    """What a policy asks of the next step: its rate (req/s), and `scale` times the usual
    number of requests (or seconds) per step. A `synchronous` step sends its requests one at a
    time, each when the last ended (`rate_rps` is inf): at most SYNC_REQUESTS of them,
    trimming at most SYNC_TRIM at each end. `repeat` numbers the runs of one step (from 0):
    each draws its send times from a seed of its own."""

    rate_rps: float
    scale: int = 1
    synchronous: bool = False
    repeat: int = 0


SweepPolicy = Generator[StepOrder, StepSummary, None]

MAX_RANGE_RATES = 10_000
SYNC_REQUESTS = 120
SYNC_TRIM = 10
AUTO = "auto"
_RANGE_REL_TOL = 1e-9
_SIGNIFICANT_DIGITS = 12


def parse_rate(text: str) -> float:
    """One target rate (req/s) from text such as "2.5" or "inf"."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("empty rate: expected a positive number of requests per second or 'inf'")
    try:
        rate = float(stripped)
    except ValueError:
        raise ValueError(
            f"invalid rate {text!r}: expected a positive number of requests per second or 'inf'"
        ) from None
    _check_rate(rate, text)
    return rate


def parse_rates(text: str) -> list[float]:
    """Target rates (req/s) from a comma-separated list such as "1,2,4,8,inf"."""
    if not text.strip():
        raise ValueError("no rates given: expected a comma-separated list such as '1,2,4,inf'")
    items = text.split(",")
    if any(not item.strip() for item in items):
        raise ValueError(f"invalid rate list {text!r}: empty entry between commas")
    return [parse_rate(item) for item in items]


def parse_rate_range(text: str) -> list[float]:
    """Target rates (req/s) from "START:STOP:STEP", STOP included when it lies on the grid."""
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"invalid rate range {text!r}: expected START:STOP:STEP, such as 1:10:0.5")
    start = _parse_range_number(parts[0], "START", text)
    stop = _parse_range_number(parts[1], "STOP", text)
    step = _parse_range_number(parts[2], "STEP", text)
    if start <= 0:
        raise ValueError(f"invalid rate range {text!r}: START must be > 0, got {start!r}")
    if step <= 0:
        raise ValueError(f"invalid rate range {text!r}: STEP must be > 0, got {step!r}")
    if stop < start:
        raise ValueError(f"invalid rate range {text!r}: STOP ({stop!r}) is below START ({start!r})")
    last = _last_grid_index(start, stop, step)
    if last + 1 > MAX_RANGE_RATES:
        raise ValueError(
            f"rate range {text!r} gives more than {MAX_RANGE_RATES} rates; use a larger STEP"
        )
    return [_round_significant(start + i * step) for i in range(int(last) + 1)]


def fixed_rates(rates: Sequence[float]) -> SweepPolicy:
    """A policy yielding each rate (req/s) in order, stopping after an interrupted step."""
    checked = tuple(float(rate) for rate in rates)
    if not checked:
        raise ValueError("no rates given: a sweep needs at least one rate")
    for rate in checked:
        _check_rate(rate, repr(rate))
    # Validation runs here, at the call; the generator body below runs only on the first next().
    return _fixed_rates(checked)


def _fixed_rates(rates: tuple[float, ...]) -> SweepPolicy:
    """Yield each rate (req/s); return once a received summary says the step was interrupted."""
    for rate in rates:
        summary = yield StepOrder(rate)
        if summary.interrupted:
            return


def auto_rates(num_between: int) -> SweepPolicy:
    """`--rates auto`: a synchronous step, a saturated one (inf), then `num_between` rates
    (req/s) spread evenly between the sequence throughputs the two measured."""
    if num_between < 1:
        raise ValueError(f"--rates auto needs at least 1 rate between, got {num_between}")
    return _auto_rates(num_between)


def _auto_rates(num_between: int) -> SweepPolicy:
    """Measure the two ends, then walk the rates between; stop after an interrupted step."""
    synchronous = yield StepOrder(math.inf, synchronous=True)
    if synchronous.interrupted:
        return
    saturated = yield StepOrder(math.inf)
    if saturated.interrupted:
        return
    for rate_rps in spread_rates(
        synchronous.trimmed.sequence_throughput_rps,
        saturated.trimmed.sequence_throughput_rps,
        num_between,
    ):
        summary = yield StepOrder(rate_rps)
        if summary.interrupted:
            return


def spread_rates(low_rps: float, high_rps: float, count: int) -> list[float]:
    """`count` rates (req/s) evenly spaced strictly between `low_rps` and `high_rps`, to 3
    significant digits when that keeps them apart; none when the high end is not above the low
    one (a server that does no better with more load)."""
    if count < 1 or not (0 < low_rps < high_rps and math.isfinite(high_rps)):
        return []
    width_rps = (high_rps - low_rps) / (count + 1)
    exact = [low_rps + i * width_rps for i in range(1, count + 1)]
    for digits in (3, 6, _SIGNIFICANT_DIGITS):
        rates = [float(f"{rate:.{digits}g}") for rate in exact]
        if low_rps < rates[0] and rates[-1] < high_rps and len(set(rates)) == count:
            return rates
    return exact


def _check_rate(rate: float, text: str) -> None:
    """Raise ValueError unless `rate` is a usable target rate (> 0, or inf; not NaN)."""
    # `not rate > 0` also rejects NaN, which compares false with everything.
    if not rate > 0:
        raise ValueError(
            f"invalid rate {text!r}: a rate must be > 0 requests per second (or 'inf')"
        )


def _parse_range_number(part: str, name: str, text: str) -> float:
    """One finite number of a START:STOP:STEP range."""
    try:
        value = float(part)
    except ValueError:
        raise ValueError(f"invalid rate range {text!r}: {name} {part!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"invalid rate range {text!r}: {name} must be a finite number")
    return value


def _last_grid_index(start: float, stop: float, step: float) -> float:
    """Index of the last grid point at or below `stop` (a float: it may be huge or inf)."""
    steps = (stop - start) / step
    if not math.isfinite(steps):
        return steps
    nearest = round(steps)
    # Float error puts e.g. (0.5 - 0.1) / 0.1 at 3.9999999999999996; snap it to the grid point.
    if abs(steps - nearest) <= _RANGE_REL_TOL * max(1.0, abs(nearest)):
        return float(nearest)
    return float(math.floor(steps))


def _round_significant(value: float) -> float:
    """`value` rounded to 12 significant digits, so 0.1 steps give 0.3, not 0.30000000000000004."""
    return float(f"{value:.{_SIGNIFICANT_DIGITS}g}")
