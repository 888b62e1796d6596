"""Tests for loadgen.core.saturation: the over-saturation watch and its replay of records.

Steps are simulated from seeded generators: Poisson sends served either in parallel (no queue:
a server below capacity) or by one FIFO server of a fixed service rate (a queue that grows
without bound when the send rate is above that rate).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import pytest

from loadgen.core.records import RequestRecord
from loadgen.core.saturation import SaturationWatch, replay_over_saturated, wait_of

NS = 1_000_000_000  # ns per s
BASE = 9_000 * NS  # an arbitrary perf_counter_ns origin; only differences matter
WARMUP = 10  # sends ignored at the start of each simulated step
SEEDS = range(2)

Latency = Callable[[np.random.Generator, int], np.ndarray]


def record(
    index: int, send_s: float, first_s: float | None, done_s: float, *, ok: bool = True
) -> RequestRecord:
    """A request sent at `send_s`, first token at `first_s` (None: not streamed), done at
    `done_s` (s after BASE)."""
    send = BASE + round(send_s * NS)
    return RequestRecord(
        index=index,
        t_sched_ns=send,
        t_send_ns=send,
        slot_wait_ns=0,
        t_done_ns=BASE + round(done_s * NS),
        t_first_ns=None if first_s is None else BASE + round(first_s * NS),
        error_kind=None if ok else "timeout",
    )


def poisson_sends(rng: np.random.Generator, rate: float, duration_s: float) -> np.ndarray:
    gaps = rng.exponential(1 / rate, int(rate * duration_s * 1.5) + 50)
    times = np.cumsum(gaps)
    return times[times < duration_s]


def parallel_step(
    seed: int, latency: Latency, *, rate: float = 10.0, duration_s: float = 100.0
) -> list[RequestRecord]:
    """No queue: every request is served at once, its first token after 0.1-0.3 s (uniform,
    independent of its latency)."""
    rng = np.random.default_rng(seed)
    sends = poisson_sends(rng, rate, duration_s)
    latencies = latency(rng, sends.size)
    ttfts = rng.uniform(0.1, 0.3, sends.size)
    return [
        record(i, s, s + min(ttft, lat), s + lat)
        for i, (s, lat, ttft) in enumerate(zip(sends, latencies, ttfts, strict=True))
    ]


def fifo_step(
    seed: int,
    arrival_rate: float,
    service_rate: float,
    *,
    duration_s: float = 100.0,
    exponential: bool = False,
    streamed: bool = True,
    ok: bool = True,
) -> list[RequestRecord]:
    """One server, first come first served: a request starts when the one before it is done;
    its first token comes a fifth of its service time after it starts."""
    rng = np.random.default_rng(seed)
    sends = poisson_sends(rng, arrival_rate, duration_s)
    mean = 1 / service_rate
    services = rng.exponential(mean, sends.size) if exponential else np.full(sends.size, mean)
    records: list[RequestRecord] = []
    free_s = 0.0
    for i, (send_s, service_s) in enumerate(zip(sends, services, strict=True)):
        start_s = max(send_s, free_s)
        free_s = start_s + service_s
        first_s = start_s + service_s / 5 if streamed else None
        records.append(record(i, send_s, first_s, free_s, ok=ok))
    return records


def fixed(latency_s: float) -> Latency:
    return lambda _rng, n: np.full(n, latency_s)


# --- steps below capacity -------------------------------------------------------------------


def flagged_seeds(make: Callable[[int], list[RequestRecord]], seeds: Iterable[int]) -> list[int]:
    return [seed for seed in seeds if replay_over_saturated(make(seed), WARMUP)]


@pytest.mark.parametrize(
    "latency",
    [fixed(0.5), fixed(2.0), lambda rng, n: rng.uniform(0.5, 2.0, n)],
    ids=["0.5s", "2s", "uniform-0.5-2s"],
)
def test_a_stable_step_without_a_queue_is_never_flagged(latency: Latency) -> None:
    # M/G/inf at 10 req/s for 100 s: in flight hovers around 10 * latency, waits do not move.
    assert flagged_seeds(lambda seed: parallel_step(seed, latency), SEEDS) == []


@pytest.mark.parametrize(
    "latency",
    [fixed(20.0), lambda rng, n: rng.exponential(20.0, n)],
    ids=["fixed-20s", "exponential-20s"],
)
def test_a_long_ramp_to_a_steady_state_is_not_flagged(latency: Latency) -> None:
    # Warm-up is 10 sends (~1 s) while requests take ~20 s: in flight ramps up for 20-60 s
    # to ~200, but a streamed request's wait (0.1-0.3 s to its first token) never rises.
    assert flagged_seeds(lambda seed: parallel_step(seed, latency), SEEDS) == []


@pytest.mark.parametrize(
    ("arrival", "exponential"), [(6.3, False), (5.6, True)], ids=["M/D/1-0.9", "M/M/1-0.8"]
)
def test_a_queue_just_below_capacity_is_not_flagged(arrival: float, exponential: bool) -> None:
    # One server of 7 req/s at 90% (M/D/1) or 80% (M/M/1) load for 100 s: stationary, mean
    # queue 3-4, but its excursions last tens of seconds. The queue never grows without bound,
    # so a sound detector flags none; 1 of 4 is allowed for a rare long excursion, no more.
    # (M/M/1 at 90% is left out: its excursions get it flagged in about 1 step of 5.)
    def step(seed: int) -> list[RequestRecord]:
        return fifo_step(seed, arrival, 7.0, exponential=exponential)

    assert len(flagged_seeds(step, range(4))) <= 1


# --- steps above capacity -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arrival", "service", "exponential"),
    [(10.0, 7.0, False), (10.0, 7.0, True), (10.0, 9.0, False)],
    ids=["10-on-7-M/D/1", "10-on-7-M/M/1", "10-on-9-M/D/1"],
)
def test_an_overloaded_queue_is_flagged(arrival: float, service: float, exponential: bool) -> None:
    # In flight grows by (arrival - service) per second, the wait by (arrival/service - 1) s
    # per second of step: 0.43 s/s at 10 on 7, 0.11 s/s at 10 on 9.
    missed = [
        seed
        for seed in SEEDS
        if not replay_over_saturated(
            fifo_step(seed, arrival, service, exponential=exponential), WARMUP
        )
    ]
    assert missed == []


def test_an_overloaded_queue_of_non_streamed_requests_is_flagged_by_their_ends() -> None:
    assert all(
        replay_over_saturated(fifo_step(s, 10.0, 7.0, streamed=False), WARMUP) for s in SEEDS
    )


def test_failures_give_no_waits_to_judge() -> None:
    # The same overloaded queue, every request failed: in flight still grows, but no wait does.
    assert replay_over_saturated(fifo_step(0, 10.0, 7.0), WARMUP)
    assert not replay_over_saturated(fifo_step(0, 10.0, 7.0, ok=False), WARMUP)


def test_no_records_is_not_over_saturated() -> None:
    assert not replay_over_saturated([], WARMUP)


# --- the watch itself -----------------------------------------------------------------------

Sample = tuple[float, int, int, float | None]


def overload_samples(seed: int, seconds: float) -> list[Sample]:
    """Completions of a server finishing 7 req/s while 10 req/s are sent, from t = 0:
    (t_s, sent, in_flight, wait_s), the wait 3/7 s longer each second, with 0.05 s noise."""
    rng = np.random.default_rng(seed)
    samples: list[Sample] = []
    for done in range(1, int(7 * seconds) + 1):
        t_s = done / 7
        sent = int(10 * t_s)
        samples.append((t_s, sent, sent - done, 3 * t_s / 7 + float(rng.normal(0, 0.05))))
    return samples


def steady_samples(seed: int, start: tuple[float, int], seconds: float) -> list[Sample]:
    """Completions at 10 req/s as fast as sends, ~15 in flight, waits 1 s with 0.05 s noise."""
    rng = np.random.default_rng(seed)
    t0, sent0 = start
    return [
        (t0 + k / 10, sent0 + k, 15 + int(rng.integers(-2, 3)), 1 + float(rng.normal(0, 0.05)))
        for k in range(1, int(10 * seconds) + 1)
    ]


def feed(watch: SaturationWatch, samples: Iterable[Sample]) -> list[bool]:
    """Add each sample, checking every 0.5 s of sample time as the runtime does."""
    verdicts: list[bool] = []
    next_check_s = 0.5
    for t_s, sent, in_flight, wait_s in samples:
        while t_s > next_check_s:
            verdicts.append(watch.check())
            next_check_s += 0.5
        watch.add(t_s, sent, in_flight, wait_s)
    return verdicts


def test_the_watch_flags_a_growing_queue_and_stays_flagged() -> None:
    watch = SaturationWatch(warmup=0)
    verdicts = feed(watch, overload_samples(0, 30.0))
    assert True in verdicts
    first = verdicts.index(True)
    assert all(verdicts[first:])
    # Now the queue empties and waits fall: the verdict holds.
    last_t, last_sent = overload_samples(0, 30.0)[-1][:2]
    draining = [(last_t + k / 20, last_sent, max(0, 90 - k), 12.9 - 0.05 * k) for k in range(200)]
    assert all(feed(watch, draining))
    assert watch.over
    # The same draining stretch alone is not growing.
    fresh = SaturationWatch(warmup=0)
    assert not any(feed(fresh, draining))
    assert not fresh.check()


def test_growth_must_persist_over_three_checks() -> None:
    watch = SaturationWatch(warmup=0)
    for sample in overload_samples(1, 30.0):
        watch.add(*sample)
    assert [watch.check() for _ in range(4)] == [False, False, True, True]


def test_fewer_than_sixty_samples_are_not_judged() -> None:
    # A queue growing by 2 requests and 1 ms of wait per completion (7 completions/s).
    def watch_of(n: int) -> SaturationWatch:
        watch = SaturationWatch(warmup=0)
        for k in range(1, n + 1):
            watch.add(k / 7, 3 * k, 2 * k, 0.001 * (k + 1))
        return watch

    too_few = watch_of(59)
    assert [too_few.check() for _ in range(4)] == [False] * 4
    enough = watch_of(60)
    assert [enough.check() for _ in range(4)] == [False, False, True, True]


def test_samples_before_the_warmup_sends_are_ignored() -> None:
    watch = SaturationWatch(warmup=50)
    watch.add(1.0, 49, 3, 0.5)
    assert (watch.t_s, watch.wait_s) == ([], [])
    watch.add(1.1, 50, 3, 0.5)
    assert (watch.t_s, watch.in_flight, watch.wait_s) == ([1.1], [3], [0.5])


def test_a_queue_that_grew_only_during_warmup_is_not_flagged() -> None:
    # 30 s of overload (300 sends), then 60 s steady at the rate sent.
    growing = overload_samples(3, 30.0)
    steady = steady_samples(3, growing[-1][:2], 60.0)
    assert any(feed(SaturationWatch(warmup=0), growing + steady))
    assert not any(feed(SaturationWatch(warmup=growing[-1][1] + 1), growing + steady))


def test_failures_and_bad_waits_add_no_wait_sample() -> None:
    watch = SaturationWatch(warmup=0)
    watch.add(1.0, 5, 2, None)
    watch.add(1.5, 6, 2, math.nan)
    watch.add(2.0, 7, 2, math.inf)
    watch.add(2.5, 8, 1, 0.25)
    assert (watch.t_s, watch.in_flight) == ([1.0, 1.5, 2.0, 2.5], [2, 2, 2, 1])
    assert (watch.wait_t_s, watch.wait_s) == ([2.5], [0.25])


def test_samples_after_the_last_planned_send_are_ignored() -> None:
    watch = SaturationWatch(warmup=0, num_planned=100)
    watch.add(9.0, 99, 10, 0.5)
    watch.add(9.5, 100, 9, 0.5)
    assert watch.t_s == [9.0]


def test_wait_of() -> None:
    # Streamed: first token 250 ms after the send; not streamed: done 1.5 s after it.
    assert wait_of(record(0, 10.0, 10.25, 12.0)) == pytest.approx(0.25)
    assert wait_of(record(1, 10.0, None, 11.5)) == pytest.approx(1.5)
    assert wait_of(record(2, 10.0, 10.25, 12.0, ok=False)) is None
    assert wait_of(record(3, 10.0, None, 11.5, ok=False)) is None
