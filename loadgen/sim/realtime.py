"""The engine model in real time: one task steps it, sleeps each step's duration, wakes streams.

Step `k + 1` starts when step `k` was due to end (GPU work runs back to back), so token
delivery, which takes CPU time, does not slow the simulated GPU down. The loop keeps each step's
lateness (how long after its due end it actually woke) for `stats()`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter_ns

import numpy as np

from loadgen.sim.engine import Engine, StepResult
from loadgen.sim.metrics import VllmMetrics
from loadgen.sim.sequence import Sequence
from loadgen.sim.tokens import Token

# Behind by more than this (ns), the loop gives up catching up and restarts its timeline.
_MAX_DEBT_NS = 50_000_000
_LATENESS_SAMPLES = 100_000


Sink = Callable[["Job"], bool]


@dataclass(slots=True, eq=False)
class Job:
    """One request in the real-time engine: tokens produced so far and how many were written.

    A stream that can take writes straight from the engine loop installs a `sink`, which the
    loop calls after each step and which returns False when it cannot write now (the stream's
    own task then writes, with flow control). `reasoning` is how many of its first output
    tokens are reasoning (None: the model has no reasoning phase). Times are `perf_counter_ns`
    readings.
    """

    seq: Sequence
    max_tokens: int
    arrival_ns: int
    reasoning: int | None = None
    written: int = 0
    scheduled_ns: int | None = None
    first_ns: int | None = None
    last_ns: int | None = None
    finished: bool = False
    sink: Sink | None = None
    _waiter: asyncio.Future[None] | None = None

    @property
    def produced(self) -> int:
        """Output tokens the engine has emitted for this request."""
        return self.seq.generated

    @property
    def finish_reason(self) -> str:
        """vLLM's finish reason: "length" at max_tokens, else "stop" (EOS)."""
        return "length" if self.seq.generated >= self.max_tokens else "stop"

    @property
    def last_token_out(self) -> bool:
        """True once the final output token has been emitted."""
        return self.seq.generated >= self.seq.output_tokens

    def wake(self) -> None:
        """Wake the stream's task waiting in `changed`."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def changed(self) -> None:
        """Return once tokens wait to be written or the job has finished."""
        while self.produced == self.written and not self.finished:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        self._waiter = None


@dataclass(frozen=True, slots=True)
class LoopStats:
    """How the loop kept time: steps run, tokens emitted, step lateness percentiles (s)."""

    steps: int
    tokens: int
    lateness_p50_s: float
    lateness_p99_s: float
    lateness_max_s: float


class EngineLoop:
    """Steps `engine` in real time, `time_scale` times its modelled durations."""

    def __init__(
        self,
        engine: Engine,
        *,
        time_scale: float = 1.0,
        metrics: VllmMetrics | None = None,
        clock: Callable[[], int] = perf_counter_ns,
    ) -> None:
        self.engine = engine
        self._scale_ns = time_scale * 1e9
        self._metrics = metrics
        self._clock = clock
        self._jobs: dict[int, Job] = {}
        self._next_rid = 0
        self._work = asyncio.Event()
        self._steps = 0
        self._tokens = 0
        self._lateness_ns: deque[int] = deque(maxlen=_LATENESS_SAMPLES)
        self._last_step_end_ns = 0

    def submit(
        self,
        prompt_tokens: int,
        output_tokens: int,
        max_tokens: int,
        *,
        prompt: tuple[Token, ...] | None = None,
        role: str | None = None,
        reasoning: int | None = None,
    ) -> Job:
        """Queue a request (already checked with `engine.refusal`) and return its job.

        `prompt` is its token content and `role` its answer's (see Sequence), `reasoning` its
        reasoning tokens.
        """
        seq = Sequence(self._next_rid, prompt_tokens, output_tokens, prompt, role)
        self._next_rid += 1
        job = Job(seq, max_tokens, self._clock(), reasoning)
        self._jobs[seq.rid] = job
        self.engine.add(seq)
        self._work.set()
        return job

    def abort(self, job: Job) -> None:
        """Drop a job whose client went away."""
        if job.finished:
            return
        job.finished = True
        job.wake()
        self.engine.abort(job.seq)
        del self._jobs[job.seq.rid]
        if self._metrics is not None:
            e2e_s = (self._clock() - job.arrival_ns) / 1e9
            self._metrics.observe_finished(e2e_s, job.seq.prompt_tokens, job.seq.generated, "abort")

    def stats(self) -> LoopStats:
        """Steps, tokens and step lateness so far (lateness over the latest 100k steps)."""
        lateness_s = np.asarray(self._lateness_ns, dtype=np.float64) / 1e9
        if lateness_s.size == 0:
            return LoopStats(self._steps, self._tokens, 0.0, 0.0, 0.0)
        p50, p99 = np.percentile(lateness_s, [50, 99])
        return LoopStats(self._steps, self._tokens, float(p50), float(p99), float(lateness_s.max()))

    async def run(self) -> None:
        """Step the engine forever (cancel to stop)."""
        due_ns: int | None = None
        while True:
            if not self.engine.has_work():
                self._publish_state()
                self._work.clear()
                await self._work.wait()
                due_ns = None
            now_ns = self._clock()
            start_ns = now_ns if due_ns is None or now_ns - due_ns > _MAX_DEBT_NS else due_ns
            result = self.engine.step()
            for seq in result.prefilled:
                if (job := self._jobs.get(seq.rid)) is not None:
                    job.scheduled_ns = job.scheduled_ns or start_ns
            due_ns = start_ns + round(result.duration_s * self._scale_ns)
            delay_ns = due_ns - self._clock()
            await asyncio.sleep(max(delay_ns, 0) / 1e9)
            woke_ns = self._clock()
            self._lateness_ns.append(max(woke_ns - due_ns, 0))
            self._steps += 1
            self._deliver(result, woke_ns)
            # Let the woken streams write before arming the next timer: libuv computes its
            # poll timeout from the loop time cached before that work, so a timer armed
            # earlier would fire late by however long the writes took.
            await asyncio.sleep(0)

    def _deliver(self, result: StepResult, now_ns: int) -> None:
        """Hand each emitted token to its stream and record vLLM's metrics."""
        new_prompt_tokens = 0
        steady_gaps = 0
        for seq in result.emitted:
            job = self._jobs.get(seq.rid)
            if job is None:  # aborted while its step ran
                continue
            if job.sink is None or not job.sink(job):
                job.wake()
            if job.first_ns is None:
                job.first_ns = now_ns
                new_prompt_tokens += seq.prompt_tokens
                self._observe_first(job, now_ns)
            elif job.last_ns == self._last_step_end_ns:
                steady_gaps += 1
            elif self._metrics is not None and job.last_ns is not None:
                self._metrics.observe_inter_token((now_ns - job.last_ns) / 1e9)
            job.last_ns = now_ns
        if steady_gaps and self._metrics is not None:
            gap_s = (now_ns - self._last_step_end_ns) / 1e9
            self._metrics.observe_inter_token(gap_s, steady_gaps)
        self._last_step_end_ns = now_ns
        self._tokens += len(result.emitted)
        for seq in result.finished:
            if (job := self._jobs.pop(seq.rid, None)) is not None:
                self._finish(job, now_ns)
        if self._metrics is not None:
            self._metrics.count_step(new_prompt_tokens, len(result.emitted), result.preempted)
            self._metrics.count_prefix_cache(result.cache_queries, result.cache_hits)
        self._publish_state()

    def _observe_first(self, job: Job, now_ns: int) -> None:
        if self._metrics is not None:
            queue_ns = (job.scheduled_ns or now_ns) - job.arrival_ns
            self._metrics.observe_first_token((now_ns - job.arrival_ns) / 1e9, queue_ns / 1e9)

    def _finish(self, job: Job, now_ns: int) -> None:
        job.finished = True
        job.wake()
        if self._metrics is not None:
            e2e_s = (now_ns - job.arrival_ns) / 1e9
            self._metrics.observe_finished(
                e2e_s, job.seq.prompt_tokens, job.seq.generated, job.finish_reason
            )

    def _publish_state(self) -> None:
        if self._metrics is not None:
            engine = self.engine
            self._metrics.set_state(len(engine.running), len(engine.waiting), engine.kv_usage)
