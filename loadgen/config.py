"""One validated configuration of a run; built by the CLI, read by the runtime."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from loadgen.client.openai import Timeouts
from loadgen.client.protocol import Endpoint, RequestOptions, normalize_base_url
from loadgen.core.arrivals import ARRIVAL_KINDS, ArrivalKind
from loadgen.workloads.loaders import FORMATS
from loadgen.workloads.scenarios import SCENARIOS

DATASET_FORMATS = ("auto", *FORMATS)


class ConfigError(Exception):
    """A configuration a run cannot start with; the message says what to change."""


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    """Where requests come from: `dataset` is "synthetic", a scenario name, or a file path.

    Lengths and filters are in tokens; `dataset_format` is "auto" or a loader's format name.
    """

    dataset: str = "synthetic"
    input_len: int = 128
    output_len: int = 128
    dataset_format: str = "auto"
    min_input: int | None = None
    max_input: int | None = None
    max_output: int | None = None
    shuffle: bool = False
    replacement: bool = False
    prompt_template: str | None = None
    tokenizer: str | None = None

    @property
    def forced_lengths(self) -> bool:
        """True for generated workloads, whose output lengths only mean something if forced."""
        return self.dataset == "synthetic" or self.dataset in SCENARIOS


@dataclass(frozen=True, slots=True)
class MetricsEndpoint:
    """Where to serve: host, port (0 picks one), and how long to linger after the run (s)."""

    host: str = "127.0.0.1"
    port: int = 9400
    linger_s: float = 15.0


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Everything a sweep needs. Secrets are never held here, only where to find them.

    `base_url` None means no server: the built-in simulator (embedded, or in virtual time).
    """

    base_url: str | None
    rates_rps: tuple[float, ...]
    endpoint: Endpoint = "completions"
    model: str | None = None
    api_key_env: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    stream: bool = True
    ignore_eos: bool | None = None
    min_tokens: int | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    num_requests: int = 1000
    trim: int = 100
    arrival: ArrivalKind | Literal["trace"] = "poisson"
    burstiness: float = 1.0
    trace: str | None = None
    time_scale: float = 1.0
    seed: int = 0
    max_concurrency: int | None = None
    slos: Mapping[str, float] = field(default_factory=dict)
    timeouts: Timeouts = field(default_factory=Timeouts)
    drain_timeout_s: float = 30.0
    out_dir: Path | None = None
    metrics: MetricsEndpoint | None = None
    pushgateway: str | None = None

    def __post_init__(self) -> None:
        if self.base_url is not None:
            try:
                object.__setattr__(self, "base_url", normalize_base_url(self.base_url))
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        for problem in _problems(self):
            raise ConfigError(problem)

    def request_options(self, model: str) -> RequestOptions:
        """The request-body options for `model`."""
        ignore_eos = self.ignore_eos
        if ignore_eos is None and (self.workload.forced_lengths or self.trace is not None):
            ignore_eos = True
        return RequestOptions(
            endpoint=self.endpoint,
            model=model,
            stream=self.stream,
            ignore_eos=ignore_eos,
            min_tokens=self.min_tokens,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            extra_body=self.extra_body,
        )

    def api_key(self) -> str | None:
        """The API key from the configured environment variable (never stored, never logged)."""
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError(f"--api-key-env {self.api_key_env}: that variable is not set")
        return key

    def public_dict(self) -> dict[str, Any]:
        """The configuration as written to results: header values are hidden."""
        data = asdict(self)
        data["headers"] = {name: "***" for name in self.headers}
        data["out_dir"] = str(self.out_dir) if self.out_dir else None
        data["rates_rps"] = [_rate_text(rate) for rate in self.rates_rps]
        return data


def _rate_text(rate: float) -> float | str:
    return "inf" if math.isinf(rate) else rate


def _problems(config: RunConfig) -> list[str]:
    """Every reason `config` cannot run (empty when it can)."""
    problems = []
    if (config.arrival == "trace") != (config.trace is not None):
        problems.append("--arrival trace and --trace FILE go together")
    if not config.rates_rps and config.trace is None:
        problems.append("no request rate given")
    if config.trace is not None:
        problems.extend(_trace_problems(config))
    if any(not (rate > 0) for rate in config.rates_rps):
        problems.append("request rates must be > 0 (or inf)")
    if config.trim < 0:
        problems.append("--trim must be >= 0")
    if config.num_requests <= 2 * config.trim:
        problems.append(
            f"--num-requests {config.num_requests} leaves nothing after trimming "
            f"{config.trim} from each end: use more than {2 * config.trim} requests or a "
            "smaller --trim"
        )
    if config.arrival not in (*ARRIVAL_KINDS, "trace"):
        problems.append(f"--arrival must be one of {', '.join(ARRIVAL_KINDS)} or trace")
    if not (config.burstiness > 0 and math.isfinite(config.burstiness)):
        problems.append("--burstiness must be a finite number > 0")
    if config.seed < 0:
        problems.append("--seed must be >= 0")
    problems.extend(_workload_problems(config.workload))
    if config.max_concurrency is not None and config.max_concurrency < 1:
        problems.append("--max-concurrency must be >= 1")
    if not config.stream and ({"ttft", "tpot"} & set(config.slos)):
        problems.append("ttft and tpot SLOs need streaming (drop --no-stream)")
    problems.extend(_timeout_problems(config))
    if config.pushgateway is not None and not config.pushgateway.startswith(
        ("http://", "https://")
    ):
        problems.append("--pushgateway must be an http:// or https:// URL")
    if config.metrics is not None:
        if not 0 <= config.metrics.port <= 65535:
            problems.append("--metrics-port must be in 0..65535")
        if not (0 <= config.metrics.linger_s < float("inf")):
            problems.append("--metrics-linger must be a finite number >= 0")
    return problems


def _trace_problems(config: RunConfig) -> list[str]:
    problems = []
    if not (config.time_scale > 0 and math.isfinite(config.time_scale)):
        problems.append("--time-scale must be a finite number > 0")
    if config.workload.dataset != "synthetic":
        problems.append("a replayed trace brings its own lengths: drop --dataset")
    if config.rates_rps:
        problems.append("a replayed trace sets its own rate: use `loadgen run` without --rate")
    return problems


def check_workload(workload: WorkloadConfig) -> None:
    """Raise ConfigError for the first problem of `workload` (nothing when it can be built)."""
    for problem in _workload_problems(workload):
        raise ConfigError(problem)


def _workload_problems(workload: WorkloadConfig) -> list[str]:
    problems = []
    if workload.input_len < 1 or workload.output_len < 1:
        problems.append("--input-len and --output-len must be >= 1")
    if workload.shuffle and workload.replacement:
        problems.append("--shuffle and --replacement exclude each other")
    if workload.dataset_format not in DATASET_FORMATS:
        problems.append(f"--dataset-format must be one of {', '.join(DATASET_FORMATS)}")
    for flag, value in (
        ("--min-input", workload.min_input),
        ("--max-input", workload.max_input),
        ("--max-output", workload.max_output),
    ):
        if value is not None and value < 1:
            problems.append(f"{flag} must be >= 1 tokens")
    return problems


def _timeout_problems(config: RunConfig) -> list[str]:
    limits = {
        "--connect-timeout": config.timeouts.connect_s,
        "--ttft-timeout": config.timeouts.ttft_s,
        "--idle-timeout": config.timeouts.idle_s,
        "--request-timeout": config.timeouts.total_s,
        "--drain-timeout": config.drain_timeout_s,
    }
    return [f"{flag} must be > 0 seconds" for flag, value in limits.items() if not (value > 0)]
