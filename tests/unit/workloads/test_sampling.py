"""Tests for loadgen.workloads.sampling: file order, shuffles, draws with replacement."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest

from loadgen.core.records import RequestSpec
from loadgen.workloads import Workload
from loadgen.workloads.sampling import DatasetWorkload, sample

TEN = [RequestSpec(prompt=f"p{i}", max_tokens=i + 1) for i in range(10)]


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def prompts(specs: list[RequestSpec] | tuple[RequestSpec, ...]) -> list[str]:
    return [spec.prompt for spec in specs]


def test_file_order_takes_the_first() -> None:
    assert sample(TEN, 3, rng(0)) == TEN[:3]


def test_file_order_wraps_around() -> None:
    three = TEN[:3]
    assert prompts(sample(three, 8, rng(0))) == ["p0", "p1", "p2", "p0", "p1", "p2", "p0", "p1"]


def test_file_order_ignores_the_seed() -> None:
    assert sample(TEN, 25, rng(1)) == sample(TEN, 25, rng(2))


@pytest.mark.parametrize(("shuffle", "replacement"), [(False, False), (True, False), (False, True)])
def test_zero_requests(shuffle: bool, replacement: bool) -> None:
    assert sample(TEN, 0, rng(0), shuffle=shuffle, replacement=replacement) == []


def test_shuffle_is_deterministic_per_seed() -> None:
    assert sample(TEN, 30, rng(7), shuffle=True) == sample(TEN, 30, rng(7), shuffle=True)
    assert sample(TEN, 10, rng(7), shuffle=True) != sample(TEN, 10, rng(8), shuffle=True)


def test_shuffle_is_a_permutation() -> None:
    shuffled = sample(TEN, 10, rng(3), shuffle=True)
    assert sorted(prompts(shuffled)) == sorted(prompts(TEN))
    assert shuffled != TEN


def test_shuffle_beyond_the_dataset_concatenates_permutations() -> None:
    shuffled = prompts(sample(TEN, 25, rng(4), shuffle=True))
    assert len(shuffled) == 25
    assert sorted(shuffled[:10]) == sorted(prompts(TEN))
    assert sorted(shuffled[10:20]) == sorted(prompts(TEN))
    assert len(set(shuffled[20:])) == 5
    assert shuffled[:10] != shuffled[10:20]


def test_replacement_draws_duplicates() -> None:
    drawn = sample(TEN, 1000, rng(5), replacement=True)
    counts = Counter(prompts(drawn))
    assert set(counts) == set(prompts(TEN))
    assert all(50 <= n <= 150 for n in counts.values())
    assert len(set(prompts(sample(TEN, 10, rng(5), replacement=True)))) < 10


def test_replacement_is_deterministic_per_seed() -> None:
    first = sample(TEN, 50, rng(6), replacement=True)
    assert first == sample(TEN, 50, rng(6), replacement=True)
    assert first != sample(TEN, 50, rng(9), replacement=True)


def test_shuffle_and_replacement_exclude_each_other() -> None:
    with pytest.raises(ValueError, match="exclude each other"):
        sample(TEN, 5, rng(0), shuffle=True, replacement=True)


@pytest.mark.parametrize(("shuffle", "replacement"), [(False, False), (True, False), (False, True)])
def test_empty_specs(shuffle: bool, replacement: bool) -> None:
    with pytest.raises(ValueError, match="no request specs"):
        sample([], 5, rng(0), shuffle=shuffle, replacement=replacement)


def test_negative_count() -> None:
    with pytest.raises(ValueError, match="num_requests must be >= 0"):
        sample(TEN, -1, rng(0))


def test_dataset_workload_through_the_protocol() -> None:
    workload: Workload = DatasetWorkload(TEN, "ten")
    assert workload.name == "ten"
    assert list(workload.specs(12, rng(0))) == TEN + TEN[:2]


@pytest.mark.parametrize(("shuffle", "replacement"), [(True, False), (False, True)])
def test_dataset_workload_uses_its_settings(shuffle: bool, replacement: bool) -> None:
    workload = DatasetWorkload(TEN, "ten", shuffle=shuffle, replacement=replacement)
    expected = sample(TEN, 40, rng(11), shuffle=shuffle, replacement=replacement)
    assert list(workload.specs(40, rng(11))) == expected
    assert expected != sample(TEN, 40, rng(11))


def test_dataset_workload_keeps_its_own_copy() -> None:
    source = list(TEN)
    workload = DatasetWorkload(source, "ten")
    source.clear()
    assert workload.requests == tuple(TEN)
    with pytest.raises(dataclasses.FrozenInstanceError):
        workload.name = "other"  # type: ignore[misc]


def test_dataset_workload_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="exclude each other"):
        DatasetWorkload(TEN, "ten", shuffle=True, replacement=True)
    with pytest.raises(ValueError, match="has no requests"):
        DatasetWorkload([], "empty")
