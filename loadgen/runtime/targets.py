"""Open a target for sweeping: its server (or the built-in simulator), its model, an executor."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from loadgen.client.openai import OpenAIClient, ServerProbeError, Timeouts
from loadgen.client.protocol import RequestOptions
from loadgen.client.server_metrics import (
    MetricsProbeError,
    MetricsScrapeError,
    MetricsScraper,
    metrics_url,
    same_origin,
)
from loadgen.config import ConfigError, RunConfig, ServeConfig, TargetConfig
from loadgen.core.events import RunObserver
from loadgen.runtime.pacer import make_pacer
from loadgen.runtime.plan import TargetPlan
from loadgen.runtime.runner import StepRunner
from loadgen.runtime.sessions import SessionRunner
from loadgen.runtime.sim_serve import serve_options
from loadgen.runtime.sweep import PlannedExecutor, StepExecutor
from loadgen.runtime.virtual import VirtualSessionRunner, VirtualStepRunner
from loadgen.sim.embedded import EmbeddedSim
from loadgen.sim.server import ServeOptions
from loadgen.sim.settings import SimSetup
from loadgen.sim.virtual import OutputPolicy


@dataclass(frozen=True, slots=True)
class OpenTarget:
    """A target ready to sweep: what answers (model, URL), its label, and what runs its steps.

    `scraper` reads the server's metrics around each step (None: no server, or no metrics).
    """

    model: str
    base_url: str | None
    label: str
    executor: StepExecutor
    notes: Mapping[str, Any] = field(default_factory=dict)
    scraper: MetricsScraper | None = None


def api_key(target: TargetConfig) -> str | None:
    """The API key from the target's variable (never stored, never logged)."""
    if target.api_key_env is None:
        return None
    key = os.environ.get(target.api_key_env)
    if not key:
        raise ConfigError(f"api_key_env {target.api_key_env}: that variable is not set")
    return key


def timeouts(target: TargetConfig) -> Timeouts:
    """The target's per-request limits (s)."""
    return Timeouts(
        target.connect_timeout_s,
        target.ttft_timeout_s,
        target.idle_timeout_s,
        target.request_timeout_s,
    )


def request_options(target: TargetConfig, plan: TargetPlan, model: str) -> RequestOptions:
    """The request-body options of `target` for `model`: its body fields, ignore_eos settled."""
    optional = target.body_fields()
    if target.ignore_eos is None and plan.forced_lengths:
        optional["ignore_eos"] = True  # generated lengths mean nothing unless forced
    return RequestOptions(
        endpoint=target.endpoint,
        model=model,
        stream=target.stream,
        optional=optional,
        extra_body=target.extra_body,
    )


def simulator_notes(config: RunConfig, setup: SimSetup) -> dict[str, Any]:
    """What results say about the simulated engine."""
    return {"simulator": asdict(setup) | {"label": config.sim.label}}


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


@contextlib.asynccontextmanager
async def open_http(
    config: RunConfig,
    target: TargetConfig,
    plan: TargetPlan,
    observer: RunObserver,
    setup: SimSetup | None,
) -> AsyncIterator[OpenTarget]:
    """`target` over HTTP; with no base URL, the built-in simulator `setup` in its own process."""
    async with contextlib.AsyncExitStack() as stack:
        base_url, label, notes = target.base_url, target.name, {}
        if base_url is None:
            if setup is None:
                raise ConfigError("a target with no base_url needs the simulator's setup")
            served = target.model or config.sim.model
            sim = stack.enter_context(EmbeddedSim(setup, _serve_options(config, served)))
            stack.callback(_check_sim, sim, observer)
            observer.on_notice(
                f"no base URL: sweeping the built-in simulator ({setup.describe()}) at "
                f"{sim.base_url}"
            )
            base_url, label = sim.base_url, label or config.sim.label
            notes = simulator_notes(config, setup)
        model, runner = await stack.enter_async_context(
            http_runner(config, target, plan, observer, base_url)
        )
        scraper = await stack.enter_async_context(server_scraper(target, base_url, observer))
        label = label or f"{model} @ {urlsplit(base_url).netloc}"
        executor = PlannedExecutor(plan, runner, SessionRunner.like(runner))
        yield OpenTarget(model, base_url, label, executor, notes, scraper)


@contextlib.asynccontextmanager
async def server_scraper(
    target: TargetConfig, base_url: str, observer: RunObserver
) -> AsyncIterator[MetricsScraper | None]:
    """What scrapes the server's metrics, as `target.server_metrics` says, probed once now.

    `auto` tries the base URL's origin and `/metrics`, and goes on without (a notice) when it
    finds no vLLM metrics there; a URL that does not serve them is a MetricsProbeError. The
    target's API key and headers go only to a metrics URL of the target's own origin.
    """
    setting = target.server_metrics
    if setting == "off":
        yield None
        return
    url = metrics_url(base_url) if setting == "auto" else setting
    headers = _credentials(target) if same_origin(url, base_url) else {}
    async with MetricsScraper(url, headers) as scraper:
        try:
            why = None if await scraper.probe() else "no vLLM metrics (vllm:*) there"
        except MetricsScrapeError as exc:
            why = str(exc)
        if why is None:
            observer.on_notice(f"server metrics: scraping {scraper.shown_url} around each step")
            yield scraper
            return
    if setting != "auto":
        raise MetricsProbeError(f"server metrics at {scraper.shown_url}: {why}")
    observer.on_notice(f"no server metrics at {scraper.shown_url} ({why}); going on without them")
    yield None


def _credentials(target: TargetConfig) -> dict[str, str]:
    """The target's headers and API key, for a metrics page of its own origin."""
    headers = dict(target.headers or {})
    key = api_key(target)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def _start_cap_share(config: RunConfig, plan: TargetPlan) -> float | None:
    """The start-rate cap this sender keeps to (req/s): the whole cap, or a shard's share."""
    cap_rps = config.load.max_start_rate_rps
    if cap_rps is None or plan.shard is None:
        return cap_rps
    return cap_rps / plan.shard.count


@contextlib.asynccontextmanager
async def http_runner(
    config: RunConfig,
    target: TargetConfig,
    plan: TargetPlan,
    observer: RunObserver,
    base_url: str,
    model: str | None = None,
) -> AsyncIterator[tuple[str, StepRunner]]:
    """The model requests ask for, and a StepRunner that sends them to `base_url`.

    Without `model`, the target's model, checked against the server's list, or the first it
    lists (ServerProbeError when it cannot tell); with it, nothing is asked of the server.
    """
    async with contextlib.AsyncExitStack() as stack:
        client = OpenAIClient(
            base_url,
            request_options(target, plan, model or ""),
            timeouts=timeouts(target),
            api_key=api_key(target),
            headers=target.headers,
            count_tokens=plan.output_counter,
            on_warning=observer.on_warning,
        )
        await stack.enter_async_context(client)
        if model is None:
            model = await resolve_model(client, target.model)
            client.options = request_options(target, plan, model)
        pacer = make_pacer(asyncio.get_running_loop())
        stack.callback(pacer.close)
        runner = StepRunner(
            client,
            pacer,
            observer,
            max_concurrency=config.load.max_concurrency,
            drain_timeout_s=config.load.drain_timeout_s,
            max_start_rate_rps=_start_cap_share(config, plan),
        )
        yield model, runner


def _serve_options(config: RunConfig, served_model: str) -> ServeOptions:
    """The built-in simulator: vLLM's API in real time, with the run's engine and seed."""
    serve = ServeConfig(served_model_name=served_model, seed=config.load.seed, sim=config.sim)
    return serve_options(serve)


def _check_sim(sim: EmbeddedSim, observer: RunObserver) -> None:
    failure = sim.failure()
    if failure is not None:
        observer.on_warning(f"{failure}: requests after that failed")


@contextlib.asynccontextmanager
async def open_virtual(
    config: RunConfig, target: TargetConfig, plan: TargetPlan, setup: SimSetup
) -> AsyncIterator[OpenTarget]:
    """`target`'s requests through the simulated engine `setup` in virtual time."""
    ignore_eos = request_options(target, plan, setup.model.name).optional.get("ignore_eos")
    outputs = OutputPolicy(
        ignore_eos=bool(ignore_eos),
        min_tokens=target.min_tokens or 0,
        eos_mean_tokens=config.sim.eos_mean_tokens,
    )
    seed = config.load.seed
    runner = PlannedExecutor(
        plan, VirtualStepRunner(setup, outputs, seed), VirtualSessionRunner(setup, outputs, seed)
    )
    label = target.name or config.sim.label
    yield OpenTarget(setup.model.name, None, label, runner, simulator_notes(config, setup))
