"""Tests for loadgen.sim.kv_cache: free, private and cached blocks; LRU eviction on demand."""

from __future__ import annotations

import pytest

from loadgen.sim.kv_cache import BlockPool


def test_a_fresh_pool_is_all_free_and_caches_nothing() -> None:
    pool = BlockPool(8, caching=True)
    assert (pool.free_blocks, pool.cached_blocks) == (8, 0)
    assert pool.longest_hit([1, 2], limit=2) == 0


def test_registered_blocks_are_found_in_order_up_to_a_miss_and_the_limit() -> None:
    pool = BlockPool(8, caching=True)
    pool.take(3)
    for block_hash in (11, 12, 13):
        assert pool.register(block_hash)
    assert pool.longest_hit([11, 12, 13], limit=3) == 3
    assert pool.longest_hit([11, 12, 13], limit=2) == 2
    assert pool.longest_hit([11, 99, 13], limit=3) == 1
    assert pool.longest_hit([99, 12, 13], limit=3) == 0


def test_a_duplicate_block_stays_private() -> None:
    pool = BlockPool(8, caching=True)
    pool.take(2)
    assert pool.register(5)
    assert not pool.register(5)
    assert pool.cached_blocks == 1


def test_freed_cached_blocks_stay_cached_and_count_as_free() -> None:
    pool = BlockPool(4, caching=True)
    pool.take(3)
    pool.register(1)
    pool.register(2)
    pool.release([1, 2], private=1)
    assert (pool.free_blocks, pool.cached_blocks) == (4, 2)
    assert pool.longest_hit([1, 2], limit=2) == 2


def test_sharing_a_free_cached_block_takes_it_off_the_free_list() -> None:
    pool = BlockPool(4, caching=True)
    pool.take(1)
    pool.register(1)
    pool.release([1], private=0)
    assert pool.idle_among([1]) == 1
    pool.share([1])
    assert pool.free_blocks == 3
    assert pool.idle_among([1]) == 0
    pool.share([1])  # a second holder takes no block
    assert pool.free_blocks == 3
    pool.release([1], private=0)
    assert pool.free_blocks == 3  # still held once
    pool.release([1], private=0)
    assert pool.free_blocks == 4


def test_blank_blocks_go_before_any_cached_block_is_evicted() -> None:
    pool = BlockPool(4, caching=True)
    pool.take(2)
    pool.register(1)
    pool.register(2)
    pool.release([1, 2], private=0)
    pool.take(2)  # the two blank blocks
    assert pool.cached_blocks == 2
    pool.take(1)  # now one cached block must go
    assert pool.cached_blocks == 1


def test_eviction_is_least_recently_freed_first_and_tails_before_heads() -> None:
    pool = BlockPool(4, caching=True)
    pool.take(4)
    for block_hash in (1, 2, 3, 4):
        pool.register(block_hash)
    pool.release([1, 2], private=0)  # one sequence: its tail (2) is freed before its head (1)
    pool.release([3, 4], private=0)  # later: 4, then 3
    left = []
    for _ in range(4):
        pool.take(1)
        left.append([h for h in (1, 2, 3, 4) if pool.is_cached(h)])
    assert left == [[1, 3, 4], [3, 4], [3], []]


def test_a_shared_block_is_recently_used_again() -> None:
    pool = BlockPool(2, caching=True)
    pool.take(2)
    pool.register(1)
    pool.register(2)
    pool.release([1], private=0)
    pool.release([2], private=0)  # 1 is the least recently used
    pool.share([1])
    pool.release([1], private=0)  # now 2 is
    pool.take(1)
    assert (pool.is_cached(1), pool.is_cached(2)) == (True, False)


def test_taking_more_than_is_free_raises() -> None:
    pool = BlockPool(2, caching=True)
    pool.take(2)
    with pytest.raises(ValueError, match="0 free"):
        pool.take(1)


def test_without_caching_nothing_is_ever_found() -> None:
    pool = BlockPool(4, caching=False)
    pool.take(1)
    pool.register(1)
    pool.release([1], private=0)
    assert pool.longest_hit([1], limit=1) == 0
