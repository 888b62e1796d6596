"""Drive a whole sweep: probe the server, run each step, summarise, write, and stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter_ns
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from loadgen.client.openai import OpenAIClient, ServerProbeError
from loadgen.config import ConfigError, RunConfig
from loadgen.core.arrivals import send_offsets_s
from loadgen.core.records import RequestSpec, StepSummary
from loadgen.core.stats import summarize_step
from loadgen.core.sweep import fixed_rates
from loadgen.export.files import ResultsWriter
from loadgen.export.prometheus import RunLabels
from loadgen.report.sweep_plot import write_sweep_plot
from loadgen.runtime.events import RunObserver, StepProgress
from loadgen.runtime.metrics_server import LiveMetrics, live_metrics
from loadgen.runtime.pacer import make_pacer
from loadgen.runtime.runner import StepResult, StepRunner, StopSignal
from loadgen.runtime.workload import build_workload, shape_prompts, token_counter, workload_rng
from loadgen.workloads import DatasetError, Workload
from loadgen.workloads.tokens import EstimateCounter
from loadgen.workloads.trace import TraceWorkload, load_trace

# Lead time between building a step and its first scheduled send (ns).
_STEP_LEAD_NS = 20_000_000


class StepExecutor(Protocol):
    """Runs one step's requests: against a server (StepRunner) or in virtual time."""

    async def run(
        self,
        progress: StepProgress,
        specs: Sequence[RequestSpec],
        offsets_s: npt.NDArray[np.float64],
        stop: StopSignal,
    ) -> StepResult:
        """Send `specs[i]` at offset `offsets_s[i]` (s); the step's records."""
        ...


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    """What a sweep produced: the summaries of every finished step, and where they are."""

    steps: tuple[StepSummary, ...]
    out_dir: Path
    model: str
    interrupted: bool
    label: str


async def resolve_model(client: OpenAIClient, model: str | None) -> str:
    """`model`, or the first model the server lists; ServerProbeError if it cannot tell."""
    try:
        ids = await client.list_models()
    except ServerProbeError as exc:
        if model is None or str(exc).startswith("cannot reach"):
            raise
        return model  # some servers have no usable /models; the requests will tell
    if model is not None:
        return model
    if not ids:
        raise ServerProbeError(f"{client.base_url}/models lists no model; pass --model")
    return ids[0]


@contextlib.contextmanager
def stop_on_signals(stop: StopSignal) -> Iterator[None]:
    """Route SIGINT and SIGTERM to `stop` while inside (first: drain, second: abandon)."""
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.request_stop)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or no signals here: Ctrl-C then ends the process
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


async def run_sweep(
    config: RunConfig,
    observer: RunObserver,
    out_dir: Path,
    *,
    stop: StopSignal | None = None,
    on_model: Callable[[str], None] | None = None,
    on_metrics: Callable[[str], None] | None = None,
    label: str | None = None,
    notes: Mapping[str, Any] | None = None,
) -> SweepOutcome:
    """Run every step of `config` against its server and write results to `out_dir`.

    `label` names the target in `sweep.png` and in metrics (default: the model and the server's
    host:port); `notes` are added to the configuration written to summary.json; `on_metrics`
    gets the URL of `/metrics` when the run serves it.
    """
    stop = stop or StopSignal()
    with stop_on_signals(stop):
        async with live_metrics(
            config.metrics, config.pushgateway, out_dir.name, on_metrics
        ) as metrics:
            return await sweep_target(
                config,
                observer,
                out_dir,
                stop,
                metrics,
                on_model=on_model,
                label=label,
                notes=notes,
            )


async def sweep_target(
    config: RunConfig,
    observer: RunObserver,
    out_dir: Path,
    stop: StopSignal,
    metrics: LiveMetrics | None,
    *,
    on_model: Callable[[str], None] | None = None,
    label: str | None = None,
    notes: Mapping[str, Any] | None = None,
) -> SweepOutcome:
    """One target's sweep (see run_sweep), reporting to `metrics` when given."""
    if config.base_url is None:
        raise ConfigError("a sweep needs the server's --base-url")
    plan = plan_arrivals(config)
    client = OpenAIClient(
        config.base_url,
        config.request_options(""),
        timeouts=config.timeouts,
        api_key=config.api_key(),
        headers=config.headers,
        count_tokens=plan.output_counter,
        on_warning=observer.on_warning,
    )
    async with client:
        model = await resolve_model(client, config.model)
        if on_model is not None:
            on_model(model)
        client.options = config.request_options(model)
        written = config.public_dict() | {"model": model} | dict(notes or {})
        writer = ResultsWriter(out_dir, written)
        pacer = make_pacer(asyncio.get_running_loop())
        runner = StepRunner(
            client,
            pacer,
            observer,
            max_concurrency=config.max_concurrency,
            drain_timeout_s=config.drain_timeout_s,
        )
        target = label or f"{model} @ {urlsplit(config.base_url).netloc}"
        if metrics is not None:
            labels = RunLabels(metrics.run_id, target, model, scenario_label(config))
            runner.observer = metrics.watch(labels, runner.observer)
        try:
            await run_steps(config, plan, runner, runner.observer, writer, stop, target)
        finally:
            pacer.close()
            observer.on_run_end()
    return SweepOutcome(tuple(writer.steps), out_dir, model, stop.stop_sending.is_set(), target)


def scenario_label(config: RunConfig) -> str:
    """The workload as a metrics label: a scenario name, "synthetic", a file's name, "trace"."""
    if config.trace is not None:
        return f"trace:{Path(config.trace).name}"
    return Path(config.workload.dataset).name


@dataclass(frozen=True, slots=True)
class ArrivalPlan:
    """Where each step's requests and send times come from.

    `fixed_offsets_s` is a replayed trace's schedule (s), the same at every step; otherwise the
    arrival process draws one per step.
    """

    workload: Workload
    rates_rps: tuple[float, ...]
    num_requests: int
    fixed_offsets_s: npt.NDArray[np.float64] | None = None
    output_counter: Callable[[str], int] | None = None


def plan_arrivals(config: RunConfig) -> ArrivalPlan:
    """The configured workload and schedule (DatasetError when it cannot be built)."""
    spec = config.workload
    counter = token_counter(spec.tokenizer)
    # The tokenizer also counts output tokens for servers that send no usage (DeepSpeed-MII).
    output_counter = None if isinstance(counter, EstimateCounter) else counter.count
    if config.trace is None:
        workload = build_workload(spec, config.endpoint, counter)
        return ArrivalPlan(workload, config.rates_rps, config.num_requests, None, output_counter)
    trace = load_trace(Path(config.trace)).head(config.num_requests)
    if len(trace) <= 2 * config.trim:
        raise DatasetError(
            f"{config.trace}: {len(trace)} usable requests; trimming {config.trim} from each "
            "end needs more (use a smaller --trim)"
        )
    workload = shape_prompts(TraceWorkload(trace), spec, config.endpoint, counter, exact=True)
    rate_rps = trace.mean_rate_rps(config.time_scale)
    offsets_s = trace.scaled_offsets_s(config.time_scale)
    return ArrivalPlan(workload, (rate_rps,), len(trace), offsets_s, output_counter)


async def run_steps(
    config: RunConfig,
    plan: ArrivalPlan,
    runner: StepExecutor,
    observer: RunObserver,
    writer: ResultsWriter,
    stop: StopSignal,
    label: str,
) -> None:
    """Run the sweep policy's steps until it ends or a stop is requested; plot as steps end.

    `label` names the target in `sweep.png`.
    """
    policy = fixed_rates(plan.rates_rps)
    step = 0
    rate_rps = next(policy)
    while not stop.stop_sending.is_set():
        specs = plan.workload.specs(plan.num_requests, workload_rng(config.seed, step))
        offsets_s = _offsets(config, plan, rate_rps)
        progress = StepProgress(
            step, rate_rps, plan.num_requests, config.trim, perf_counter_ns() + _STEP_LEAD_NS
        )
        observer.on_step_start(progress)
        result = await runner.run(progress, specs, offsets_s, stop)
        summary = summarize_step(
            result.records,
            step=step,
            target_rate_rps=rate_rps,
            num_sent=len(result.records),
            trim=config.trim,
            slos=config.slos,
            interrupted=result.interrupted,
            duration_s=result.duration_s,
        )
        writer.write_step(summary, result.records, progress.t_start_ns)
        write_sweep_plot(writer.out_dir / "sweep.png", {label: writer.steps}, plot_title(config))
        observer.on_step_end(progress, summary, result.records)
        try:
            rate_rps = policy.send(summary)
        except StopIteration:
            return
        step += 1


def plot_title(config: RunConfig) -> str:
    """What the sweep sent: dataset, arrival process and step size."""
    return (
        f"{config.workload.dataset} workload, {config.arrival} arrivals, "
        f"{config.num_requests} requests per step (trim {config.trim})"
    )


def _offsets(config: RunConfig, plan: ArrivalPlan, rate_rps: float) -> npt.NDArray[np.float64]:
    """This step's send offsets (s): the trace's, or drawn by the arrival process."""
    arrival = config.arrival
    if arrival == "trace":
        if plan.fixed_offsets_s is None:
            raise RuntimeError("a trace replay without the trace's schedule")
        return plan.fixed_offsets_s
    # One arrival stream for every step: steps differ only in scale (common random numbers).
    return send_offsets_s(
        arrival,
        rate_rps,
        plan.num_requests,
        np.random.default_rng([config.seed, 1]),
        config.burstiness,
    )
