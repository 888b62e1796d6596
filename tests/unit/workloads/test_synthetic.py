"""Tests for loadgen.workloads.synthetic: prompt length, output budget, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from loadgen.workloads.synthetic import SyntheticWorkload


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize(("input_len", "output_len"), [(1, 1), (7, 3), (128, 128), (1000, 16)])
def test_prompts_have_input_len_words_and_output_budget(input_len: int, output_len: int) -> None:
    specs = SyntheticWorkload(input_len, output_len).specs(25, rng(0))
    assert len(specs) == 25
    for spec in specs:
        words = spec.prompt.split(" ")
        assert len(words) == input_len
        assert all(word and word.strip() == word for word in words)
        assert spec.max_tokens == output_len
        assert spec.tokens_in == input_len
        assert spec.messages is None


def test_zero_requests() -> None:
    assert list(SyntheticWorkload(8, 8).specs(0, rng(0))) == []


def test_same_seed_same_prompts() -> None:
    workload = SyntheticWorkload(32, 8)
    assert workload.specs(50, rng(42)) == workload.specs(50, rng(42))


def test_different_seeds_different_prompts() -> None:
    workload = SyntheticWorkload(32, 8)
    first = [spec.prompt for spec in workload.specs(50, rng(1))]
    second = [spec.prompt for spec in workload.specs(50, rng(2))]
    assert set(first).isdisjoint(second)


def test_prompts_are_distinct() -> None:
    prompts = [spec.prompt for spec in SyntheticWorkload(16, 4).specs(500, rng(0))]
    assert len(set(prompts)) == 500


def test_name() -> None:
    assert SyntheticWorkload(8, 8).name == "synthetic"


@pytest.mark.parametrize(("input_len", "output_len"), [(0, 8), (8, 0), (-1, 8)])
def test_lengths_below_one_are_rejected(input_len: int, output_len: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SyntheticWorkload(input_len, output_len)
