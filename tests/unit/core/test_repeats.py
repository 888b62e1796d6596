"""Tests for loadgen.core.repeats: repeated steps grouped, and their figures' t intervals.

Expected intervals are worked out here on their own: the sample mean and standard deviation
by hand-written sums, and the Student t quantile t(0.975, n - 1) by integrating the t density
numerically (Simpson's rule) and bisecting, never from the code's table. The code's table has
3 decimals, so intervals are compared with a relative tolerance of 5e-4.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import orjson
import pytest

from loadgen.core.bootstrap import Interval
from loadgen.core.records import Distribution, StepFigures, StepSummary
from loadgen.core.repeats import RepeatedStep, figure_values, repeated_steps, repeats_document
from loadgen.core.stats import step_figures

EMPTY = step_figures([], {})  # figures of an empty step: nothing sent, nothing measured
T_REL = 5e-4  # the code's t table is rounded to 3 decimals: 4.303 for 4.3027, 2.776 for 2.7764

# The distributions of a step's figures, written out here (not taken from the code's list).
DISTRIBUTIONS = (
    "ttft_s",
    "ttft_sched_s",
    "ttfa_s",
    "tpot_s",
    "itl_s",
    "e2e_s",
    "per_token_latency_s",
    "queue_s",
    "pacer_lateness_s",
)
SCALARS = (
    "achieved_rate_rps",
    "sequence_throughput_rps",
    "output_token_throughput_tps",
    "total_token_throughput_tps",
    "goodput_rps",
    "error_rate",
)


@functools.cache
def t975(dof: int) -> float:
    """The 97.5% quantile of Student's t with `dof` degrees of freedom, computed numerically."""

    def density(x: float) -> float:
        log_c = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)
        return math.exp(log_c - (dof + 1) / 2 * math.log1p(x * x / dof))

    def cdf_above_half(x: float) -> float:  # P(0 < T < x), Simpson's rule
        n = 4_000
        h = x / n
        total = density(0.0) + density(x)
        total += sum((4 if i % 2 else 2) * density(i * h) for i in range(1, n))
        return total * h / 3

    low, high = 0.0, 20.0
    for _ in range(50):
        mid = (low + high) / 2
        if cdf_above_half(mid) < 0.475:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def expected_interval(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width): the mean and the half-width of its two-sided 95% Student t
    interval."""
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, t975(n - 1) * math.sqrt(variance) / math.sqrt(n)


def assert_interval(got: Interval, values: Sequence[float]) -> None:
    """`got` is the mean of `values` with its t interval: the mean to 1e-12 (relative), each
    half-width to T_REL."""
    mean, half = expected_interval(values)
    assert got.estimate == pytest.approx(mean, rel=1e-12, abs=1e-15)
    assert got.high - got.estimate == pytest.approx(half, rel=T_REL, abs=1e-15)
    assert got.estimate - got.low == pytest.approx(half, rel=T_REL, abs=1e-15)


def dist(mean: float, p50: float, p90: float, p99: float) -> Distribution:
    """A distribution with the four figures a repeated step keeps (the rest are fillers)."""
    return Distribution(
        count=10, mean=mean, std=1.0, min=0.0, p50=p50, p90=p90, p95=(p90 + p99) / 2, p99=p99,
        max=2 * p99,
    )  # fmt: skip


def figures(**changes: object) -> StepFigures:
    """Empty-step figures with `changes`."""
    return dataclasses.replace(EMPTY, **changes)  # type: ignore[arg-type]


def run(
    step: int,
    repeat: int,
    trimmed: StepFigures | None = None,
    *,
    rate: float = 5.0,
    synchronous: bool = False,
    untrimmed: StepFigures | None = None,
) -> StepSummary:
    """A hand-built summary of run `repeat` of a step, numbered `step` in the sweep."""
    return StepSummary(
        step=step,
        target_rate_rps=rate,
        num_sent=10,
        trim=0,
        trimmed=trimmed or EMPTY,
        untrimmed=untrimmed or EMPTY,
        client_saturated=False,
        interrupted=False,
        tokens_source="estimate",
        duration_s=1.0,
        synchronous=synchronous,
        repeat=repeat,
    )


def test_the_independent_t_quantiles_match_published_tables() -> None:
    # Checks the test's own yardstick against printed t tables (5 significant digits).
    for dof, table in [(1, 12.706), (2, 4.3027), (4, 2.7764), (9, 2.2622), (29, 2.0452)]:
        assert t975(dof) == pytest.approx(table, rel=1e-4)


# ---- grouping --------------------------------------------------------------------------------


def test_runs_are_grouped_by_repeat_zero_starting_a_group() -> None:
    steps = [
        run(0, 0, rate=5.0),
        run(1, 1, rate=5.0),
        run(2, 2, rate=5.0),
        run(3, 0, rate=10.0),
        run(4, 1, rate=10.0),
        run(5, 2, rate=10.0),
    ]
    groups = repeated_steps(steps)
    assert [(g.target_rate_rps, g.steps) for g in groups] == [(5.0, (0, 1, 2)), (10.0, (3, 4, 5))]


def test_single_runs_are_not_reported() -> None:
    # No --repeats: every step is run 0 of its own.
    assert repeated_steps([run(0, 0), run(1, 0, rate=10.0), run(2, 0, rate=20.0)]) == []
    assert repeats_document([run(0, 0), run(1, 0)]) == []
    assert repeated_steps([]) == []


def test_a_step_cut_short_after_one_run_is_left_out_and_one_after_two_is_kept() -> None:
    # Three runs of 5 req/s, then 10 req/s was stopped after two runs, 20 req/s after one.
    steps = [run(0, 0), run(1, 1), run(2, 2)]
    steps += [run(3, 0, rate=10.0), run(4, 1, rate=10.0), run(5, 0, rate=20.0)]
    groups = repeated_steps(steps)
    assert [(g.target_rate_rps, g.steps) for g in groups] == [(5.0, (0, 1, 2)), (10.0, (3, 4))]


def test_a_first_step_that_is_not_run_zero_still_starts_a_group() -> None:
    groups = repeated_steps([run(7, 1), run(8, 2)])
    assert [g.steps for g in groups] == [(7, 8)]


def test_a_synchronous_step_keeps_its_flag_and_inf_rate() -> None:
    steps = [
        run(0, 0, rate=math.inf, synchronous=True),
        run(1, 1, rate=math.inf, synchronous=True),
        run(2, 0, rate=math.inf),
        run(3, 1, rate=math.inf),
    ]
    groups = repeated_steps(steps)
    assert [(g.target_rate_rps, g.synchronous, g.steps) for g in groups] == [
        (math.inf, True, (0, 1)),
        (math.inf, False, (2, 3)),
    ]


# ---- intervals -------------------------------------------------------------------------------


def test_three_runs_of_9_10_11_give_mean_10_and_the_t_half_width() -> None:
    steps = [
        run(i, i, figures(sequence_throughput_rps=value)) for i, value in enumerate((9, 10, 11))
    ]
    [group] = repeated_steps(steps)
    interval = group.figures["sequence_throughput_rps"]
    # sample std 1; half-width t(0.975, 2) * 1 / sqrt(3) = 4.3027 / 1.7321 = 2.4841
    assert interval.estimate == pytest.approx(10.0, rel=1e-12)
    assert interval.high - interval.estimate == pytest.approx(2.4841, rel=T_REL)
    assert interval.estimate - interval.low == pytest.approx(2.4841, rel=T_REL)


@pytest.mark.parametrize(
    "values",
    [
        [4.0, 6.0],  # 1 degree of freedom: t = 12.706
        [1.0, 2.0, 4.0, 8.0, 16.0],
        [0.51, 0.49, 0.55, 0.47, 0.52, 0.50, 0.48, 0.53, 0.46, 0.54],
        [float(v) for v in range(1, 31)],  # 29 degrees of freedom
    ],
)
def test_intervals_match_independent_student_t_intervals(values: list[float]) -> None:
    steps = [
        run(i, i, figures(output_token_throughput_tps=value, e2e_s=dist(value, 2 * value, 3, 4)))
        for i, value in enumerate(values)
    ]
    [group] = repeated_steps(steps)
    assert_interval(group.figures["output_token_throughput_tps"], values)
    assert_interval(group.figures["e2e_s.mean"], values)
    assert_interval(group.figures["e2e_s.p50"], [2 * v for v in values])
    assert_interval(group.figures["e2e_s.p90"], [3.0] * len(values))


def test_identical_runs_give_an_interval_of_no_width() -> None:
    steps = [run(i, i, figures(error_rate=0.0, sequence_throughput_rps=3.0)) for i in range(4)]
    [group] = repeated_steps(steps)
    for name in ("error_rate", "sequence_throughput_rps"):
        got = group.figures[name]
        assert (got.estimate, got.low, got.high) == pytest.approx((got.estimate,) * 3)
    assert group.figures["sequence_throughput_rps"].estimate == pytest.approx(3.0)


def test_every_step_table_figure_gets_an_interval_from_the_trimmed_figures() -> None:
    every = {name: dist(0.1, 0.2, 0.3, 0.4) for name in DISTRIBUTIONS}
    kept = [
        figures(
            achieved_rate_rps=5.0 + i,
            sequence_throughput_rps=4.0 + i,
            output_token_throughput_tps=100.0 + i,
            total_token_throughput_tps=300.0 + i,
            goodput_rps=3.0 + i,
            error_rate=0.01 * i,
            **every,
        )
        for i in range(3)
    ]
    untrimmed = figures(sequence_throughput_rps=1e6, achieved_rate_rps=1e6)
    steps = [run(i, i, kept[i], untrimmed=untrimmed) for i in range(3)]
    [group] = repeated_steps(steps)
    expected = set(SCALARS) | {
        f"{name}.{stat}" for name in DISTRIBUTIONS for stat in ("mean", "p50", "p90", "p99")
    }
    assert set(group.figures) == expected
    assert group.figures["sequence_throughput_rps"].estimate == pytest.approx(5.0)
    assert group.figures["achieved_rate_rps"].estimate == pytest.approx(6.0)
    assert group.figures["error_rate"].estimate == pytest.approx(0.01)
    assert group.figures["itl_s.p99"].estimate == pytest.approx(0.4)
    assert group.figures["queue_s.p90"].estimate == pytest.approx(0.3)


def test_figure_values_names_each_measured_figure() -> None:
    values = figure_values(figures(goodput_rps=2.5, tpot_s=dist(0.01, 0.02, 0.03, 0.04)))
    assert values == {
        "sequence_throughput_rps": 0.0,
        "output_token_throughput_tps": 0.0,
        "total_token_throughput_tps": 0.0,
        "goodput_rps": 2.5,
        "tpot_s.mean": 0.01,
        "tpot_s.p50": 0.02,
        "tpot_s.p90": 0.03,
        "tpot_s.p99": 0.04,
    }


# ---- figures missing in some runs ------------------------------------------------------------


def test_a_figure_missing_in_some_runs_is_summed_over_the_runs_that_have_it() -> None:
    steps = [
        run(0, 0, figures(goodput_rps=2.0, ttft_s=dist(0.1, 0.1, 0.1, 0.1))),
        run(1, 1, figures(goodput_rps=None, ttft_s=dist(0.3, 0.3, 0.3, 0.3))),
        run(2, 2, figures(goodput_rps=4.0, ttft_s=None)),
        run(3, 3, figures(goodput_rps=6.0, ttft_s=dist(0.5, 0.5, 0.5, 0.5))),
    ]
    [group] = repeated_steps(steps)
    assert_interval(group.figures["goodput_rps"], [2.0, 4.0, 6.0])  # t(0.975, 2): three runs
    assert group.figures["goodput_rps"].estimate == pytest.approx(4.0)
    assert_interval(group.figures["ttft_s.p99"], [0.1, 0.3, 0.5])
    assert group.steps == (0, 1, 2, 3)


def test_a_figure_in_one_run_only_has_no_width_and_one_in_none_is_left_out() -> None:
    steps = [
        run(0, 0, figures(achieved_rate_rps=7.0)),
        run(1, 1, figures()),
        run(2, 2, figures()),
    ]
    [group] = repeated_steps(steps)
    got = group.figures["achieved_rate_rps"]
    assert (got.estimate, got.low, got.high) == (7.0, 7.0, 7.0)
    assert "goodput_rps" not in group.figures
    assert "error_rate" not in group.figures
    assert not any(name.startswith("ttft_s.") for name in group.figures)


# ---- the summary.json document ---------------------------------------------------------------


def test_repeats_document_shape() -> None:
    steps = [
        run(0, 0, figures(sequence_throughput_rps=9.0), rate=math.inf, synchronous=True),
        run(1, 1, figures(sequence_throughput_rps=10.0), rate=math.inf, synchronous=True),
        run(2, 2, figures(sequence_throughput_rps=11.0), rate=math.inf, synchronous=True),
        run(3, 0, figures(sequence_throughput_rps=20.0), rate=12.5),  # a single run: left out
        run(4, 0, figures(sequence_throughput_rps=30.0), rate=25.0),
        run(5, 1, figures(sequence_throughput_rps=34.0), rate=25.0),
    ]
    document = repeats_document(steps)
    assert [sorted(entry) for entry in document] == [
        ["figures", "steps", "synchronous", "target_rate_rps"]
    ] * 2
    first, second = document
    assert (first["target_rate_rps"], first["synchronous"], first["steps"]) == (
        math.inf,
        True,
        [0, 1, 2],
    )
    assert (second["target_rate_rps"], second["synchronous"], second["steps"]) == (
        25.0,
        False,
        [4, 5],
    )
    assert set(first["figures"]) == {
        "sequence_throughput_rps",
        "output_token_throughput_tps",
        "total_token_throughput_tps",
    }
    for entry in document:
        for name, figure in entry["figures"].items():
            assert sorted(figure) == ["high", "low", "mean"], name
            assert all(isinstance(figure[key], float) for key in figure)
            assert figure["low"] <= figure["mean"] <= figure["high"]
    throughput = first["figures"]["sequence_throughput_rps"]
    assert throughput["mean"] == pytest.approx(10.0)
    assert throughput["high"] - throughput["mean"] == pytest.approx(4.3027 / math.sqrt(3), T_REL)
    throughput = second["figures"]["sequence_throughput_rps"]
    # two runs 30, 34: std 2.828, half-width 12.706 * 2.828 / sqrt(2) = 25.41
    assert throughput["mean"] == pytest.approx(32.0)
    assert throughput["low"] == pytest.approx(32.0 - 25.412, rel=T_REL)
    # Plain JSON once the rate is written as summary.json does ("inf").
    first["target_rate_rps"] = "inf"
    assert orjson.loads(orjson.dumps(document)) == document


def test_repeated_step_fields() -> None:
    [group] = repeated_steps([run(3, 0, rate=2.0), run(4, 1, rate=2.0)])
    assert isinstance(group, RepeatedStep)
    assert (group.target_rate_rps, group.synchronous, group.steps) == (2.0, False, (3, 4))
