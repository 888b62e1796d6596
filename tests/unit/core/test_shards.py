"""Tests for loadgen.core.shards: W shards' send offsets and their records merged as one step.

Every draw is seeded; statistical checks run over many seeds with their tolerances stated.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from loadgen.core.arrival_fit import count_dispersion, gap_ks
from loadgen.core.arrivals import send_offsets_s, send_offsets_within_s
from loadgen.core.latency import FloatArray, IntArray
from loadgen.core.records import RequestRecord
from loadgen.core.shards import (
    ARRIVALS_KEY,
    Shard,
    deal,
    lost_records,
    merge_records,
    shard_index,
    shard_offsets_s,
    shard_seed,
)

NS = 1_000_000_000
BASE = 5_000_000_000_000  # an arbitrary perf_counter_ns origin
SEEDS = range(200)


def sends_ns(offsets_s: FloatArray) -> IntArray:
    return np.rint(offsets_s * NS).astype(np.int64)


def all_shards(kind: str, rate: float, count: int, seed: int, **kwargs: float) -> list[FloatArray]:
    """Every shard's offsets for a step split over `count` shards."""
    return [
        shard_offsets_s(kind, rate, Shard(i, count), seed, **kwargs)  # type: ignore[arg-type]
        for i in range(count)
    ]


def merged(kind: str, rate: float, count: int, seed: int, **kwargs: float) -> FloatArray:
    return np.sort(np.concatenate(all_shards(kind, rate, count, seed, **kwargs)))


# --- Shard -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("index", "count"), [(-1, 3), (3, 3), (4, 3), (0, 0), (0, -1)])
def test_a_shard_index_outside_its_count_is_rejected(index: int, count: int) -> None:
    with pytest.raises(ValueError, match="shard index"):
        Shard(index, count)


@pytest.mark.parametrize(("index", "count"), [(0, 1), (0, 3), (2, 3)])
def test_a_shard_index_inside_its_count_is_accepted(index: int, count: int) -> None:
    assert Shard(index, count) == Shard(index, count)


# --- shard_seed ------------------------------------------------------------------------------


def state(seq: np.random.SeedSequence) -> list[int]:
    return seq.generate_state(8).tolist()  # type: ignore[no-any-return]


@pytest.mark.parametrize("workers", [1, 2, 3, 5, 8])
def test_shard_seed_is_the_spawned_child_for_any_count(workers: int) -> None:
    for seed in (0, 7, 2**40 + 3):
        for i in range(workers):
            child = np.random.SeedSequence(seed).spawn(workers)[i]
            assert state(shard_seed(seed, i)) == state(child)


@pytest.mark.parametrize("workers", [2, 4, 7])
@pytest.mark.parametrize("keys", [(0,), (1,), (3,), (1, 2)])
def test_shard_seed_keys_are_the_shards_spawned_children(
    workers: int, keys: tuple[int, ...]
) -> None:
    seed = 12345
    for i in range(workers):
        seq = np.random.SeedSequence(seed).spawn(workers)[i]
        for key in keys:  # a fresh parent per level: spawn() counts the children it made
            seq = seq.spawn(key + 1)[key]
        assert state(shard_seed(seed, i, *keys)) == state(seq)


def test_shard_seed_does_not_depend_on_the_number_of_shards() -> None:
    seed = 99
    for i in range(3):
        states = {tuple(state(np.random.SeedSequence(seed).spawn(w)[i])) for w in (3, 4, 10)}
        assert states == {tuple(state(shard_seed(seed, i)))}
    # ...and different shards and keys give different streams.
    distinct = {tuple(state(shard_seed(seed, i, *k))) for i in range(3) for k in ((), (0,), (1,))}
    assert len(distinct) == 9


# --- Poisson, by count -----------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2, 3, 4])
@pytest.mark.parametrize("num_requests", [1, 2, 17, 500])
def test_poisson_shards_send_the_step_count_between_them(workers: int, num_requests: int) -> None:
    for seed in (0, 1, 2):
        shards = all_shards("poisson", 40.0, workers, seed, num_requests=num_requests)
        assert sum(len(own) for own in shards) == num_requests
        for own in shards:
            assert np.all(np.diff(own) > 0)  # sorted
            # Each stream starts one gap after the start, not at it: no opening burst of W.
            assert np.all(own > 0)


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_poisson_shards_draw_streams_of_their_own(workers: int) -> None:
    shards = all_shards("poisson", 40.0, workers, 5, num_requests=400)
    for a in range(workers):
        for b in range(a + 1, workers):
            # No lock step: no send of one shard falls at another's instant.
            assert np.intersect1d(shards[a], shards[b]).size == 0
    # Every shard takes part (with 400 sends, a shard with none has probability ~(3/4)^400).
    assert all(len(own) > 0 for own in shards)


def test_poisson_one_shard_is_a_stream_of_its_own_cut_at_the_count() -> None:
    (own,) = all_shards("poisson", 40.0, 1, 3, num_requests=100)
    rng = np.random.default_rng(shard_seed(3, 0, ARRIVALS_KEY))
    expected = send_offsets_s("poisson", 40.0, 101, rng)[1:]
    np.testing.assert_array_equal(own, expected)


def test_poisson_shards_are_cut_where_the_merged_stream_reaches_the_count() -> None:
    workers, n, seed = 3, 200, 11
    # Each shard's full stream at rate/W; the merged step is their first n sends.
    streams = [
        send_offsets_s(
            "poisson", 40.0 / workers, n + 1, np.random.default_rng(shard_seed(seed, i, 1))
        )[1:]
        for i in range(workers)
    ]
    cut = np.sort(np.concatenate(streams))[n - 1]
    for i, own in enumerate(all_shards("poisson", 40.0, workers, seed, num_requests=n)):
        np.testing.assert_array_equal(own, streams[i][streams[i] <= cut])


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_poisson_superposition_is_poisson_at_the_full_rate(workers: int) -> None:
    rate, n = 100.0, 2000
    scaled_ends, pvalues, dispersions = [], [], []
    for seed in SEEDS:
        sends = sends_ns(merged("poisson", rate, workers, seed, num_requests=n))
        # The n-th point of a rate-r Poisson process from 0 is Gamma(n, 1/r): mean n/r.
        scaled_ends.append(sends[-1] / NS * rate / n)
        ks = gap_ks(sends, rate)
        assert ks is not None
        pvalues.append(ks[1])
        dispersion = count_dispersion(sends)
        assert dispersion is not None
        dispersions.append(dispersion)
    # Mean of 200 draws with sd 1/sqrt(2000) each: sd of the mean ~0.0016; 1% is ~6 sd.
    assert np.mean(scaled_ends) == pytest.approx(1.0, abs=0.01)
    # p is uniform for a Poisson stream: P(p < 0.05) = 0.05, Binomial(200, 0.05) has mean 10,
    # sd ~3.1; [2, 20] of 200 is about +-3 sd.
    assert 0.01 <= np.mean(np.asarray(pvalues) < 0.05) <= 0.10
    # Variance over mean of counts per 100 ms (mean 10, ~200 windows): ~1, sd ~0.1 per seed.
    assert 0.9 <= np.mean(dispersions) <= 1.1


@pytest.mark.parametrize("workers", [2, 4])
def test_lock_step_streams_come_in_bursts_the_dispersion_sees(workers: int) -> None:
    # The failure the shards avoid: W senders each drawing the SAME stream at rate/W. Counts
    # per window are W times a Poisson count, so their variance over mean is W.
    rate, n = 100.0, 2000
    dispersions = []
    for seed in range(50):
        one = send_offsets_s("poisson", rate / workers, n // workers, np.random.default_rng(seed))
        dispersion = count_dispersion(sends_ns(np.sort(np.tile(one, workers))))
        assert dispersion is not None
        dispersions.append(dispersion)
    assert np.mean(dispersions) == pytest.approx(workers, rel=0.1)
    assert np.mean(dispersions) > 1.5


# --- Poisson, by duration --------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2, 3, 4])
def test_poisson_shards_by_duration_send_rate_times_duration(workers: int) -> None:
    rate, duration = 50.0, 10.0
    totals = []
    for seed in SEEDS:
        shards = all_shards("poisson", rate, workers, seed, num_requests=1, duration_s=duration)
        for own in shards:
            assert np.all((own > 0) & (own < duration))
            assert np.all(np.diff(own) > 0)
        totals.append(sum(len(own) for own in shards))
    # Total ~ Poisson(500): sd 22 per seed, ~1.6 for the mean of 200; 2% is ~6 sd.
    assert np.mean(totals) == pytest.approx(rate * duration, rel=0.02)
    # ...and its variance is its mean (not W times it, as lock-step shards' would be).
    assert np.var(totals) / np.mean(totals) == pytest.approx(1.0, abs=0.3)


def test_poisson_shards_by_duration_ignore_the_count() -> None:
    a = all_shards("poisson", 50.0, 3, 4, num_requests=1, duration_s=5.0)
    b = all_shards("poisson", 50.0, 3, 4, num_requests=10_000, duration_s=5.0)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


# --- constant --------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("num_requests", [1, 5, 100, 101])
def test_constant_shards_deal_the_one_process_schedule_round_robin(
    workers: int, num_requests: int
) -> None:
    rate = 25.0
    full = send_offsets_s("constant", rate, num_requests, np.random.default_rng(0))
    shards = all_shards("constant", rate, workers, 8, num_requests=num_requests)
    for i, own in enumerate(shards):
        np.testing.assert_array_equal(own, full[i::workers])
    np.testing.assert_array_equal(np.sort(np.concatenate(shards)), full)


@pytest.mark.parametrize("workers", [1, 3, 4])
def test_constant_shards_by_duration_deal_round_robin(workers: int) -> None:
    full = send_offsets_within_s("constant", 25.0, 2.0, np.random.default_rng(0))
    shards = all_shards("constant", 25.0, workers, 8, num_requests=1, duration_s=2.0)
    for i, own in enumerate(shards):
        np.testing.assert_array_equal(own, full[i::workers])


# --- gamma -----------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2, 3, 4])
@pytest.mark.parametrize("burstiness", [0.3, 1.0, 4.0])
def test_gamma_shards_deal_the_one_process_stream(workers: int, burstiness: float) -> None:
    rate, n = 30.0, 400
    for seed in (0, 21):
        # The stream a single process would draw for this step (ARRIVALS_KEY child of seed).
        full = send_offsets_s("gamma", rate, n, np.random.default_rng([seed, 1]), burstiness)
        shards = all_shards("gamma", rate, workers, seed, num_requests=n, burstiness=burstiness)
        picks = [deal(n, Shard(i, workers), seed, at_random=True) for i in range(workers)]
        # Every request falls to exactly one shard, the same whichever shard deals.
        np.testing.assert_array_equal(np.sort(np.concatenate(picks)), np.arange(n))
        for own, pick in zip(shards, picks, strict=True):
            np.testing.assert_array_equal(own, full[pick])
        np.testing.assert_array_equal(np.sort(np.concatenate(shards)), np.sort(full))


def test_gamma_deal_is_at_random_not_round_robin() -> None:
    n, workers = 1200, 3
    picks = [deal(n, Shard(i, workers), 4, at_random=True) for i in range(workers)]
    # Each share ~Binomial(1200, 1/3): mean 400, sd ~16; +-80 is 5 sd.
    assert all(abs(len(pick) - n / workers) < 80 for pick in picks)
    assert not np.array_equal(picks[0], np.arange(0, n, workers))


def test_gamma_shards_by_duration_deal_the_one_process_stream() -> None:
    seed, workers = 6, 3
    full = send_offsets_within_s("gamma", 30.0, 5.0, np.random.default_rng([seed, 1]), 0.5)
    shards = all_shards(
        "gamma", 30.0, workers, seed, num_requests=1, duration_s=5.0, burstiness=0.5
    )
    for i, own in enumerate(shards):
        np.testing.assert_array_equal(
            own, full[deal(len(full), Shard(i, workers), seed, at_random=True)]
        )
    assert sum(len(own) for own in shards) == len(full)


# --- infinite rate ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["poisson", "gamma", "constant"])
@pytest.mark.parametrize(("num_requests", "workers", "sizes"), [
    (10, 3, [4, 3, 3]),
    (9, 3, [3, 3, 3]),
    (2, 4, [1, 1, 0, 0]),
    (7, 1, [7]),
])  # fmt: skip
def test_an_infinite_rate_deals_zeros_round_robin(
    kind: str, num_requests: int, workers: int, sizes: list[int]
) -> None:
    shards = all_shards(kind, math.inf, workers, 0, num_requests=num_requests)
    assert [len(own) for own in shards] == sizes
    assert sum(sizes) == num_requests
    assert all(np.all(own == 0.0) for own in shards)


# --- deal ------------------------------------------------------------------------------------


@pytest.mark.parametrize("at_random", [False, True])
@pytest.mark.parametrize("workers", [1, 2, 3, 5])
@pytest.mark.parametrize("count", [0, 1, 4, 100])
def test_deal_partitions_the_requests(at_random: bool, workers: int, count: int) -> None:
    for seed in (0, 3):
        picks = [deal(count, Shard(i, workers), seed, at_random=at_random) for i in range(workers)]
        for pick in picks:
            assert np.all(np.diff(pick) > 0)
        np.testing.assert_array_equal(np.sort(np.concatenate(picks)), np.arange(count))


def test_deal_round_robin_gives_shard_i_every_wth_request() -> None:
    np.testing.assert_array_equal(deal(10, Shard(1, 3), 0), [1, 4, 7])


# --- shard_index, merge_records --------------------------------------------------------------


def shard_records(offsets_s: FloatArray, shard: Shard) -> list[RequestRecord]:
    """A shard's records of its sends, numbered among all shards'."""
    return [
        RequestRecord(
            index=shard_index(local, shard),
            t_sched_ns=BASE + int(sched),
            t_send_ns=BASE + int(sched) + 1000,
            slot_wait_ns=0,
            t_done_ns=BASE + int(sched) + 5000,
            shard=shard.index,
        )
        for local, sched in enumerate(sends_ns(offsets_s))
    ]


def test_shard_index_numbers_round_robin() -> None:
    assert [shard_index(j, Shard(i, 3)) for j in range(3) for i in range(3)] == list(range(9))
    assert shard_index(5, Shard(0, 1)) == 5


def test_merged_records_follow_the_one_process_schedule() -> None:
    workers, n, seed = 3, 300, 2
    full = sends_ns(send_offsets_s("gamma", 40.0, n, np.random.default_rng([seed, 1]), 0.5))
    records = [
        record
        for i in reversed(range(workers))  # any order in
        for record in shard_records(
            shard_offsets_s("gamma", 40.0, Shard(i, workers), seed, num_requests=n, burstiness=0.5),
            Shard(i, workers),
        )
    ]
    out = merge_records(records)
    assert [r.index for r in out] == list(range(n))
    assert [r.t_sched_ns - BASE for r in out] == full.tolist()
    # Each shard's records keep their shard and their own order.
    for i in range(workers):
        mine = [r for r in out if r.shard == i]
        assert len(mine) == len([r for r in records if r.shard == i])
        assert [r.t_sched_ns for r in mine] == sorted(r.t_sched_ns for r in mine)


def test_merge_orders_by_schedule_then_number() -> None:
    def rec(index: int, sched: int, shard: int) -> RequestRecord:
        return RequestRecord(index, sched, sched, 0, sched, shard=shard)

    # (index, t_sched, shard): 4 and 1 tie at 20 ns; the lower number goes first.
    records = [rec(4, 20, 1), rec(0, 30, 0), rec(1, 20, 1), rec(3, 10, 0)]
    out = merge_records(records)
    assert [(r.index, r.t_sched_ns, r.shard) for r in out] == [
        (0, 10, 0),
        (1, 20, 1),
        (2, 20, 1),
        (3, 30, 0),
    ]
    assert merge_records([]) == []


@pytest.mark.parametrize(("num_requests", "workers"), [(10, 3), (8, 4), (5, 1)])
def test_ties_at_one_scheduled_time_interleave_round_robin(num_requests: int, workers: int) -> None:
    records = [
        record
        for i in range(workers)
        for record in shard_records(
            shard_offsets_s("poisson", math.inf, Shard(i, workers), 0, num_requests=num_requests),
            Shard(i, workers),
        )
    ]
    out = merge_records(records)
    assert [r.index for r in out] == list(range(num_requests))
    assert [r.shard for r in out] == [k % workers for k in range(num_requests)]


# --- lost_records ----------------------------------------------------------------------------


def test_lost_records_mark_a_lost_shards_requests() -> None:
    sched = [BASE + 10, BASE + 500, BASE + 2000]
    lost = lost_records(sched, [2, 5, 8], shard=2, lost_at_ns=BASE + 1000, reason="worker gone")
    assert len(lost) == 3
    assert [r.index for r in lost] == [2, 5, 8]
    assert [r.t_sched_ns for r in lost] == sched
    assert [r.t_send_ns for r in lost] == sched
    # Done when the shard was lost, never before the request was scheduled.
    assert [r.t_done_ns for r in lost] == [BASE + 1000, BASE + 1000, BASE + 2000]
    for r in lost:
        assert r.error_kind == "lost"
        assert r.error == "worker gone"
        assert r.shard == 2
        assert r.slot_wait_ns == 0
        assert r.t_done_ns >= r.t_sched_ns
        assert not r.ok


def test_lost_records_of_nothing_and_of_mismatched_lists() -> None:
    assert lost_records([], [], shard=0, lost_at_ns=0, reason="x") == []
    with pytest.raises(ValueError, match="zip"):
        lost_records([1, 2], [0], shard=0, lost_at_ns=0, reason="x")
