"""One arrival process from W shards: each shard's send offsets, and their records merged as one.

Poisson: shard i draws its own stream at rate/W from `SeedSequence(seed).spawn(W)[i]` (spawn
key `(i,)`, and its children for each use); independent Poisson streams add up to exactly one
Poisson stream at the full rate. Gamma and constant: streams of a renewal process do not add up
to one (W gamma streams tend to Poisson; W constant streams in phase come in bursts of W), so
every shard draws the one full-rate stream a single process would and takes its deal of it:
constant round robin, gamma at random. An infinite rate and a replayed trace deal round robin.
With a request count, the merged stream is cut at that count, so W shards send what one process
would have sent: the same number of requests, from the same process.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from loadgen.core.arrivals import ArrivalKind, send_offsets_s, send_offsets_within_s
from loadgen.core.records import RequestRecord

Offsets = npt.NDArray[np.float64]

# Spawn-key children of a shard's SeedSequence, one per use.
PROMPTS_KEY = 0
ARRIVALS_KEY = 1
_DEAL_KEY = 3


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard `index` of `count` that together send one step's load."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index must be in [0, {self.count}), got {self.index}")


def shard_seed(seed: int, shard: int, *keys: int) -> np.random.SeedSequence:
    """`SeedSequence(seed).spawn(W)[shard]`'s descendant `keys` (the same for any W)."""
    return np.random.SeedSequence(seed, spawn_key=(shard, *keys))


def shard_offsets_s(
    kind: ArrivalKind,
    rate_rps: float,
    shard: Shard,
    seed: int,
    *,
    num_requests: int,
    duration_s: float | None = None,
    burstiness: float = 1.0,
) -> Offsets:
    """Shard `shard`'s send offsets (s from the common start) for one step at `rate_rps`.

    With `duration_s`, every send of the step's process before it; else `num_requests` in all
    shards together. The same for every step at every rate, up to scale.
    """
    if math.isinf(rate_rps):
        return np.zeros(len(range(shard.index, num_requests, shard.count)), dtype=np.float64)
    if kind == "poisson":
        return _poisson_share(rate_rps, shard, seed, num_requests, duration_s)
    rng = np.random.default_rng([seed, ARRIVALS_KEY])  # the one-process stream (plan.py)
    if duration_s is not None:
        full = send_offsets_within_s(kind, rate_rps, duration_s, rng, burstiness)
    else:
        full = send_offsets_s(kind, rate_rps, num_requests, rng, burstiness)
    return full[deal(len(full), shard, seed, at_random=kind == "gamma")]


def deal(count: int, shard: Shard, seed: int, *, at_random: bool = False) -> npt.NDArray[np.intp]:
    """The indices of `count` requests that fall to `shard`: round robin, or each at random."""
    if not at_random:
        return np.arange(shard.index, count, shard.count)
    picks = np.random.default_rng(shard_seed(seed, 0, _DEAL_KEY)).integers(
        0, shard.count, size=count
    )
    return np.flatnonzero(picks == shard.index)


def _poisson_share(
    rate_rps: float, shard: Shard, seed: int, num_requests: int, duration_s: float | None
) -> Offsets:
    """Shard's own Poisson stream at rate/W, cut where the merged stream reaches its end."""
    share_rps = rate_rps / shard.count

    def stream(index: int) -> Offsets:
        # From one gap after the start, not at it: W streams that all began with a send at 0
        # would open every step with a burst of W.
        rng = np.random.default_rng(shard_seed(seed, index, ARRIVALS_KEY))
        if duration_s is not None:
            return send_offsets_within_s("poisson", share_rps, duration_s, rng)[1:]
        return send_offsets_s("poisson", share_rps, num_requests + 1, rng)[1:]

    own = stream(shard.index)
    if duration_s is not None or shard.count == 1:
        return own
    # The num_requests-th send of the merged stream ends the step: its time, then what of this
    # shard's stream comes before it.
    merged = np.concatenate([stream(index) for index in range(shard.count)])
    owner = np.repeat(np.arange(shard.count), num_requests)
    order = np.lexsort((owner, merged))[:num_requests]
    return own[: int((owner[order] == shard.index).sum())]


def shard_index(local: int, shard: Shard) -> int:
    """A shard's request `local` numbered among all shards' (round robin: its merged place when
    the shards take turns, as a dealt list does)."""
    return local * shard.count + shard.index


def merge_records(records: Iterable[RequestRecord]) -> list[RequestRecord]:
    """Shards' records (numbered by `shard_index`) as one step in send order: by scheduled
    time, then number. Each record's `index` becomes its place in that order."""
    ordered = sorted(records, key=lambda record: (record.t_sched_ns, record.index))
    return [dataclasses.replace(record, index=index) for index, record in enumerate(ordered)]


def lost_records(
    t_sched_ns: Sequence[int], indexes: Sequence[int], shard: int, lost_at_ns: int, reason: str
) -> list[RequestRecord]:
    """Records of kind `lost` for requests `indexes` of `shard` (scheduled at `t_sched_ns`, ns)
    that was lost at `lost_at_ns`: whether they were answered, nobody can tell."""
    return [
        RequestRecord(
            index=index,
            t_sched_ns=t_ns,
            t_send_ns=t_ns,
            slot_wait_ns=0,
            t_done_ns=max(lost_at_ns, t_ns),
            error_kind="lost",
            error=reason,
            shard=shard,
        )
        for index, t_ns in zip(indexes, t_sched_ns, strict=True)
    ]
