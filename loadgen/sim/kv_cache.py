"""The engine's KV blocks: free, held, and cached by content hash for prefix caching (blocks).

As vLLM's automatic prefix caching: a full block whose KV has been computed is registered under
its chained hash and stays cached after its sequences free it, until its memory is needed. A new
sequence whose leading blocks are cached shares them (one more holder each) instead of computing
them again. Free blocks are taken from those holding nothing reusable first; only then are free
cached blocks evicted, least recently used first. (vLLM keeps one queue of free blocks in LRU
order, so it may reuse a cached block while blank ones remain; here a cached block is evicted
only when the blocks are needed.)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


class BlockPool:
    """Counts of free and private blocks, plus the cached blocks by hash and holder count."""

    def __init__(self, total_blocks: int, *, caching: bool) -> None:
        self.total_blocks = total_blocks
        self.caching = caching
        self._blank = total_blocks
        # hash -> how many sequences hold the block; 0 means free but still cached.
        self._holders: dict[int, int] = {}
        # Free cached blocks, least recently used first.
        self._idle: OrderedDict[int, None] = OrderedDict()

    @property
    def free_blocks(self) -> int:
        """Blocks no sequence holds: blank ones plus cached ones nobody uses."""
        return self._blank + len(self._idle)

    @property
    def cached_blocks(self) -> int:
        """Blocks registered in the cache, held or free."""
        return len(self._holders)

    def is_cached(self, block_hash: int) -> bool:
        """True when a block with this hash is in the cache."""
        return block_hash in self._holders

    def longest_hit(self, hashes: Sequence[int], limit: int) -> int:
        """How many of the leading `hashes` (at most `limit`) are cached, stopping at a miss."""
        if not self.caching:
            return 0
        found = 0
        for block_hash in hashes[:limit]:
            if block_hash not in self._holders:
                break
            found += 1
        return found

    def idle_among(self, hashes: Sequence[int]) -> int:
        """How many of these cached blocks are free now (sharing them takes free blocks)."""
        return sum(block_hash in self._idle for block_hash in hashes)

    def share(self, hashes: Sequence[int]) -> None:
        """Add a holder to each cached block (taking it off the free list if it was free)."""
        for block_hash in hashes:
            self._holders[block_hash] += 1
            self._idle.pop(block_hash, None)

    def take(self, count: int) -> None:
        """Hand out `count` private blocks: blank ones first, then evict idle cached ones."""
        if count > self.free_blocks:
            raise ValueError(f"asked for {count} blocks, {self.free_blocks} free")
        from_blank = min(count, self._blank)
        self._blank -= from_blank
        for _ in range(count - from_blank):
            block_hash, _ = self._idle.popitem(last=False)
            del self._holders[block_hash]

    def register(self, block_hash: int) -> bool:
        """Cache a private block just filled under `block_hash`; False if one is cached already.

        A registered block stays with its sequence, now as a holder of the cached block; a
        duplicate stays private (and blank once freed).
        """
        if block_hash in self._holders:
            return False
        self._holders[block_hash] = 1
        return True

    def release(self, cached: Sequence[int], private: int) -> None:
        """Free a sequence's blocks: `private` blank ones and its holds on `cached` blocks.

        The last blocks go on the free list first, so they are evicted first and a shared
        prefix outlives its tails (vLLM frees in the same order).
        """
        self._blank += private
        for block_hash in reversed(cached):
            holders = self._holders[block_hash] - 1
            self._holders[block_hash] = holders
            if holders == 0:
                self._idle[block_hash] = None
