"""Tests for `--rates auto` in loadgen.core.sweep: `auto_rates` and `spread_rates`.

The policy is driven the way the runner drives it, with hand-built step summaries whose only
meaningful figure is the trimmed sequence throughput (req/s). Expected rates are written out
by hand: (high - low) / (K + 1) apart, rounded to 3 significant digits.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest

from loadgen.core.records import StepSummary
from loadgen.core.stats import step_figures
from loadgen.core.sweep import StepOrder, SweepPolicy, auto_rates, spread_rates

EMPTY = step_figures([], {})  # figures of an empty step: nothing sent, nothing measured


def _summary(
    step: int,
    order: StepOrder,
    throughput_rps: float,
    *,
    interrupted: bool = False,
    untrimmed_rps: float | None = None,
) -> StepSummary:
    """A hand-built summary of step `step` run as `order` says, that measured `throughput_rps`
    over its kept requests (and `untrimmed_rps` over all of them, 1000 unless given)."""
    trimmed = dataclasses.replace(EMPTY, sequence_throughput_rps=throughput_rps)
    untrimmed = dataclasses.replace(
        EMPTY, sequence_throughput_rps=1000.0 if untrimmed_rps is None else untrimmed_rps
    )
    return StepSummary(
        step=step,
        target_rate_rps=order.rate_rps,
        num_sent=0,
        trim=0,
        trimmed=trimmed,
        untrimmed=untrimmed,
        client_saturated=False,
        interrupted=interrupted,
        tokens_source="estimate",
        duration_s=1.0,
        synchronous=order.synchronous,
    )


def _drive(
    policy: SweepPolicy,
    throughputs_rps: list[float],
    interrupt_at: int | None = None,
) -> list[StepOrder]:
    """Run `policy`; step i measures `throughputs_rps[i]` (the last one from there on), and
    step `interrupt_at` reports an interruption. The orders it gave, in turn."""
    orders: list[StepOrder] = []
    try:
        order = next(policy)
        while True:
            step = len(orders)
            orders.append(order)
            if step > 50:
                pytest.fail("the policy never ended")
            measured = throughputs_rps[min(step, len(throughputs_rps) - 1)]
            summary = _summary(step, order, measured, interrupted=step == interrupt_at)
            order = policy.send(summary)
    except StopIteration:
        return orders


# ---- the order of steps ----------------------------------------------------------------------


def test_a_synchronous_step_then_inf_then_the_rates_between() -> None:
    # sync 2 req/s, inf 12 req/s, 4 between: (12 - 2) / 5 = 2 apart.
    orders = _drive(auto_rates(4), [2.0, 12.0, 5.0])
    assert orders[0] == StepOrder(math.inf, synchronous=True)
    assert orders[1] == StepOrder(math.inf)
    assert orders[2:] == [StepOrder(4.0), StepOrder(6.0), StepOrder(8.0), StepOrder(10.0)]
    assert [order.scale for order in orders] == [1] * 6
    assert [order.repeat for order in orders] == [0] * 6


@pytest.mark.parametrize(
    ("low_rps", "high_rps", "count", "expected"),
    [
        # the simulator's default run: 1.503 and 23.48 req/s, 4 between (4.395 apart)
        (1.503, 23.478, 4, [5.9, 10.3, 14.7, 19.1]),
        (1.0, 2.0, 2, [1.33, 1.67]),
        (100.0, 1000.0, 2, [400.0, 700.0]),
        (1234.0, 5678.0, 1, [3460.0]),  # 3456 to 3 significant digits
        (0.01, 0.02, 1, [0.015]),
        (3.0, 4.0, 1, [3.5]),
    ],
)
def test_the_rates_between_are_evenly_spaced_to_three_significant_digits(
    low_rps: float, high_rps: float, count: int, expected: list[float]
) -> None:
    orders = _drive(auto_rates(count), [low_rps, high_rps])
    assert [order.rate_rps for order in orders[2:]] == expected
    assert not any(order.synchronous for order in orders[1:])
    assert spread_rates(low_rps, high_rps, count) == expected


def test_the_rates_lie_strictly_between_the_two_ends_for_many_spans() -> None:
    for low_rps, high_rps in [(0.7, 0.9), (1.5, 50.0), (10.0, 11.0), (0.3, 1000.0)]:
        for count in (1, 2, 3, 8):
            rates = spread_rates(low_rps, high_rps, count)
            assert len(rates) == count
            assert all(low_rps < rate < high_rps for rate in rates), (low_rps, high_rps, rates)
            assert rates == sorted(set(rates))
            # Even spacing, up to the rounding of each rate to 3 significant digits (half a
            # unit of the third digit of the largest, on each of the two rates of a gap).
            width = (high_rps - low_rps) / (count + 1)
            ulp = 10 ** (math.floor(math.log10(max(rates))) - 2)
            gaps = [b - a for a, b in itertools.pairwise(rates)]
            assert all(abs(gap - width) <= ulp for gap in gaps), (width, gaps)


def test_the_spread_comes_from_the_trimmed_throughputs() -> None:
    policy = auto_rates(1)
    assert next(policy) == StepOrder(math.inf, synchronous=True)
    sync = _summary(0, StepOrder(math.inf, synchronous=True), 2.0, untrimmed_rps=100.0)
    assert policy.send(sync) == StepOrder(math.inf)
    saturated = _summary(1, StepOrder(math.inf), 4.0, untrimmed_rps=300.0)
    # From the untrimmed figures it would be 200.
    assert policy.send(saturated) == StepOrder(3.0)
    with pytest.raises(StopIteration):
        policy.send(_summary(2, StepOrder(3.0), 3.0))


def test_later_throughputs_do_not_move_the_rates() -> None:
    # Steps 2.. measure wildly different throughputs: the rates were fixed by steps 0 and 1.
    orders = _drive(auto_rates(3), [1.0, 5.0, 100.0, 0.1, 7.0])
    assert [order.rate_rps for order in orders[2:]] == [2.0, 3.0, 4.0]


# ---- interruptions and a server that does no better with more load ---------------------------


@pytest.mark.parametrize(("interrupt_at", "steps"), [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)])
def test_an_interrupted_step_ends_the_sweep(interrupt_at: int, steps: int) -> None:
    orders = _drive(auto_rates(3), [1.0, 5.0], interrupt_at=interrupt_at)
    assert len(orders) == steps
    assert orders[0].synchronous


def test_an_uninterrupted_sweep_runs_two_plus_k_steps() -> None:
    assert len(_drive(auto_rates(5), [1.0, 5.0])) == 7


@pytest.mark.parametrize(
    ("sync_rps", "saturated_rps"),
    [
        (5.0, 5.0),  # no better with more load
        (5.0, 3.0),  # worse with more load
        (0.0, 3.0),  # the synchronous step got nothing through
        (0.0, 0.0),
    ],
)
def test_no_rates_between_when_saturation_is_not_above_the_synchronous_step(
    sync_rps: float, saturated_rps: float
) -> None:
    orders = _drive(auto_rates(4), [sync_rps, saturated_rps])
    assert orders == [StepOrder(math.inf, synchronous=True), StepOrder(math.inf)]


# ---- spread_rates edge cases -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("low_rps", "high_rps"),
    [
        (2.0, 2.0),
        (3.0, 2.0),
        (0.0, 2.0),
        (-1.0, 2.0),
        (1.0, math.inf),
        (math.nan, 2.0),
        (1.0, math.nan),
        (math.inf, math.inf),
    ],
)
def test_spread_rates_gives_none_without_a_finite_span_above_zero(
    low_rps: float, high_rps: float
) -> None:
    assert spread_rates(low_rps, high_rps, 3) == []


def test_spread_rates_of_zero_rates_is_empty() -> None:
    assert spread_rates(1.0, 2.0, 0) == []


def test_spread_rates_of_one_is_the_midpoint() -> None:
    assert spread_rates(2.0, 8.0, 1) == [5.0]


def test_close_ends_still_give_distinct_rates_strictly_between() -> None:
    # A server that serves one request at a time: synchronous 10.02, saturated 10.05 req/s.
    rates = spread_rates(10.02, 10.05, 4)
    assert all(10.02 < rate < 10.05 for rate in rates), rates
    assert len(set(rates)) == len(rates) == 4, rates


# ---- bad K -----------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, -1, -8])
def test_auto_rates_refuses_fewer_than_one_rate_between(count: int) -> None:
    # Refused at the call, before the first step is asked for.
    with pytest.raises(ValueError, match="at least 1"):
        auto_rates(count)
