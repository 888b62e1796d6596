"""Tests for loadgen.workloads.scenarios: the paper's length distributions, prompts, lookup."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
import pytest

from loadgen.core.records import RequestSpec
from loadgen.workloads.scenarios import (
    SCENARIOS,
    LogNormalLengths,
    ScenarioWorkload,
    UniformLengths,
    scenario,
)
from loadgen.workloads.text import IMPERATIVE_OPENERS, QUESTION_OPENERS

NAMES = ("s2s", "s2l", "l2s", "s16k")
SAMPLES = 1000


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@cache
def draw(name: str) -> tuple[RequestSpec, ...]:
    """A 1000-request draw of scenario `name` with a fixed seed (shared by the tests)."""
    return tuple(scenario(name).specs(SAMPLES, rng(2024)))


def prompt_lens(name: str) -> np.ndarray:
    return np.array([spec.tokens_in for spec in draw(name)])


def budgets(name: str) -> np.ndarray:
    return np.array([spec.max_tokens for spec in draw(name)])


def test_scenarios_are_the_papers_four() -> None:
    assert tuple(SCENARIOS) == NAMES
    for name in NAMES:
        assert scenario(name) is SCENARIOS[name]
        assert scenario(name).name == name


def test_unknown_scenario_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown scenario 'nope'; known: s2s, s2l, l2s, s16k"):
        scenario("nope")


@pytest.mark.parametrize(
    ("name", "prompt_range", "output_range"),
    [
        ("s2s", (4, 64), (3, 49)),
        ("s2l", (4, 50), (3, 971)),
        ("l2s", (1100, 1500), (4, 120)),
        ("s16k", (8, 40), (16000, 16000)),
    ],
)
def test_lengths_stay_in_their_ranges(
    name: str, prompt_range: tuple[int, int], output_range: tuple[int, int]
) -> None:
    specs = draw(name)
    assert len(specs) == SAMPLES
    lens, out = prompt_lens(name), budgets(name)
    assert lens.min() >= prompt_range[0]
    assert lens.max() <= prompt_range[1]
    assert out.min() >= output_range[0]
    assert out.max() <= output_range[1]


def test_s2s_output_median_about_27() -> None:
    # Uniform 3..49 has median 26; the sample median of 1000 draws has std about 0.7.
    assert abs(np.median(budgets("s2s")) - 27) <= 3


def test_s2s_prompts_mostly_under_50_tokens() -> None:
    # The log-normal (median 20, sigma 0.5) puts about 97% below 50; the paper says "mostly".
    lens = prompt_lens("s2s")
    assert np.mean(lens < 50) >= 0.90
    assert 15 <= np.median(lens) <= 25


def test_s2l_output_median_about_487_and_roughly_uniform() -> None:
    out = budgets("s2l")
    # The sample median of 1000 uniform draws on 3..971 has std about 15 tokens.
    assert abs(np.median(out) - 487) <= 40
    # Each quarter of the range expects 25% of draws (binomial std about 1.4%).
    edges = np.linspace(3, 972, 5)
    shares = np.histogram(out, bins=edges)[0] / len(out)
    assert np.all((shares >= 0.20) & (shares <= 0.30)), shares
    assert out.min() <= 50
    assert out.max() >= 900


def test_s2l_prompts_at_most_50_tokens() -> None:
    assert prompt_lens("s2l").max() <= 50


def test_l2s_long_prompts_short_outputs() -> None:
    lens = prompt_lens("l2s")
    assert lens.min() >= 1100
    assert lens.max() <= 1500
    # Uniform 1100..1500: the draw should span most of the range, not sit at one end.
    assert lens.min() < 1150
    assert lens.max() > 1450
    assert budgets("l2s").max() <= 120


def test_s16k_asks_for_exactly_16000_tokens() -> None:
    assert set(budgets("s16k").tolist()) == {16000}


@pytest.mark.parametrize("name", NAMES)
def test_prompt_word_count_equals_tokens_in(name: str) -> None:
    for spec in draw(name):
        assert len(spec.prompt.split()) == spec.tokens_in
        assert spec.messages is None


@pytest.mark.parametrize("name", NAMES)
def test_prompts_are_varied(name: str) -> None:
    prompts = [spec.prompt for spec in draw(name)]
    assert len(set(prompts)) == SAMPLES
    for prompt in prompts:
        words = {word.rstrip(",.?!").lower() for word in prompt.split()}
        # 8+ draws from a few hundred words: a repeated word would give 1 distinct.
        assert len(words) >= min(len(prompt.split()) // 3, 100), prompt


@pytest.mark.parametrize("name", ["s2s", "s2l", "s16k"])
def test_short_scenarios_are_instructions_or_questions(name: str) -> None:
    for spec in draw(name):
        opener = spec.prompt.split()[0].rstrip(",.?!")
        assert opener.lower() in QUESTION_OPENERS + IMPERATIVE_OPENERS
        assert opener[0].isupper()
        assert spec.prompt[-1] == ("?" if opener.lower() in QUESTION_OPENERS else ".")


def test_l2s_prompts_are_prose() -> None:
    openers = {spec.prompt.split()[0].rstrip(",.?!").lower() for spec in draw("l2s")}
    # Prose opens with any vocabulary word, not just the dozen instruction openers.
    assert len(openers - set(QUESTION_OPENERS + IMPERATIVE_OPENERS)) > 100
    assert all(spec.prompt[-1] in ".?!" for spec in draw("l2s"))


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_specs(name: str) -> None:
    assert scenario(name).specs(100, rng(3)) == scenario(name).specs(100, rng(3))


@pytest.mark.parametrize("name", NAMES)
def test_different_seeds_different_specs(name: str) -> None:
    first = scenario(name).specs(100, rng(1))
    second = scenario(name).specs(100, rng(2))
    assert {spec.prompt for spec in first}.isdisjoint(spec.prompt for spec in second)


def test_zero_requests() -> None:
    assert list(scenario("s2s").specs(0, rng(0))) == []


def test_negative_requests_rejected() -> None:
    with pytest.raises(ValueError, match="num_requests"):
        scenario("s2s").specs(-1, rng(0))


def test_custom_scenario() -> None:
    workload = ScenarioWorkload("tiny", UniformLengths(5, 5), UniformLengths(7, 9), "prose")
    specs: Sequence[RequestSpec] = workload.specs(50, rng(0))
    assert {spec.tokens_in for spec in specs} == {5}
    assert {spec.max_tokens for spec in specs} <= {7, 8, 9}
    assert all(len(spec.prompt.split()) == 5 for spec in specs)


@pytest.mark.parametrize(("low", "high"), [(0, 5), (6, 5), (-1, 1)])
def test_uniform_lengths_rejects_bad_ranges(low: int, high: int) -> None:
    with pytest.raises(ValueError, match="low <= high"):
        UniformLengths(low, high)


@pytest.mark.parametrize(
    ("median", "sigma", "low", "high"), [(20, 0.5, 30, 40), (20, 0.5, 0, 40), (20, 0.0, 4, 40)]
)
def test_log_normal_lengths_rejects_bad_parameters(
    median: float, sigma: float, low: int, high: int
) -> None:
    with pytest.raises(ValueError, match=r"low <= median|sigma"):
        LogNormalLengths(median, sigma, low, high)
