"""The one model of a run: its targets, load, workload, output, metrics and simulated engine.

Every default is written here, once. Flags, LOADGEN_* variables and sweep files (TOML, YAML,
JSON; see sources.py) fill this model, the service API takes it as its body, and summary.json
holds it dumped (secrets by name only). A request option is a TargetConfig field marked BODY.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, model_validator

from loadgen.client.protocol import Endpoint
from loadgen.config.cluster import ClusterConfig
from loadgen.config.sim import SimConfig
from loadgen.config.types import (
    BODY,
    BaseUrl,
    CapacitySlos,
    Choice,
    Headers,
    HttpUrl,
    JsonObject,
    Opt,
    Rates,
    Section,
    ServerMetrics,
    Share,
    Slos,
    field_error,
    merge_headers,
    parse_headers,
    parse_json_object,
)
from loadgen.core.arrivals import ARRIVAL_KINDS
from loadgen.core.sweep import AUTO
from loadgen.workloads.loaders import FORMATS
from loadgen.workloads.scenarios import SCENARIOS
from loadgen.workloads.sessions import SESSIONS_SCENARIO, parse_turns
from loadgen.workloads.templates import PROMPT_TEMPLATES

TARGET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ARRIVALS: tuple[str, ...] = (*ARRIVAL_KINDS, "trace")
# Fields of which a source sets at most one; a higher source setting one drops the others.
EXCLUSIVE = (frozenset({("load", "num_requests"), ("load", "duration_s")}),)


class TargetConfig(Section):
    """One endpoint, and how each request to it is made."""

    name: Annotated[str | None, Opt(cli=False)] = Field(
        None, description="labels the target's metrics and names its results folder"
    )
    base_url: BaseUrl | None = Field(
        None,
        description="server URL, e.g. http://host:8000/v1 (default: the built-in simulator)",
    )
    model: str | None = Field(None, description="model id (default: the first of GET /v1/models)")
    api_key_env: Annotated[str | None, Opt(metavar="VAR")] = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="environment variable holding the API key (sent as a Bearer token)",
    )
    headers: Annotated[
        Headers, Opt(name="header", metavar="'NAME: VALUE'", merge=True, repeat=True)
    ] = Field(default_factory=dict, description="extra HTTP headers (values are never written out)")
    endpoint: Endpoint = Field("completions", description="API to call")
    stream: bool = Field(True, description="stream responses (needed for TTFT, TPOT and ITL)")
    ignore_eos: Annotated[bool | None, BODY] = Field(
        None, description="force max_tokens outputs (default: on for generated workloads)"
    )
    min_tokens: Annotated[int | None, BODY] = Field(None, ge=0, description="min_tokens to send")
    temperature: Annotated[float | None, BODY] = Field(
        None, ge=0, description="sampling temperature"
    )
    top_k: Annotated[int | None, BODY] = Field(None, ge=-1, description="top_k to send")
    top_p: Annotated[float | None, BODY] = Field(None, gt=0, le=1, description="top_p to send")
    extra_body: Annotated[JsonObject, Opt(metavar="JSON", merge=True)] = Field(
        default_factory=dict, description="JSON object merged into every request body"
    )
    tokenizer: Annotated[str | None, Opt(metavar="PATH|tiktoken:NAME")] = Field(
        None,
        description="tokenizer.json (or its folder), a .tiktoken file or tiktoken:NAME, for "
        "exact token counts",
    )
    connect_timeout_s: Annotated[float, Opt(name="connect_timeout")] = Field(
        10.0, gt=0, description="seconds to connect"
    )
    ttft_timeout_s: Annotated[float, Opt(name="ttft_timeout")] = Field(
        600.0, gt=0, description="seconds from send to the first token"
    )
    idle_timeout_s: Annotated[float, Opt(name="idle_timeout")] = Field(
        120.0, gt=0, description="longest gap between stream reads (s)"
    )
    request_timeout_s: Annotated[float, Opt(name="request_timeout")] = Field(
        3600.0, gt=0, description="seconds a whole request may take"
    )
    server_metrics: Annotated[ServerMetrics, Opt(metavar="auto|off|URL")] = Field(
        "auto",
        description="scrape the server's Prometheus metrics around each step: auto (its "
        "/metrics, when it serves vLLM's), off, or the metrics URL",
    )

    def body_fields(self) -> dict[str, Any]:
        """The optional request-body fields this target sets, by their wire names."""
        return {
            name: getattr(self, name)
            for name, info in type(self).model_fields.items()
            if BODY in info.metadata and getattr(self, name) is not None
        }


class LoadConfig(Section):
    """How requests are sent: rates, step size, trimming, arrivals, SLOs (one for all targets)."""

    rates_rps: Annotated[Rates, Opt(name="rates", aliases=("rate_range", "rate"))] = Field(
        (),
        description="target rates in req/s: 1,2,4,inf or START:STOP:STEP; inf sends at once; "
        "auto: a synchronous step, inf, then --steps rates between what they measured",
    )
    auto_steps: Annotated[int, Opt(name="steps", metavar="K")] = Field(
        8, ge=1, description="rates --rates auto spreads between its synchronous and inf steps"
    )
    num_requests: int = Field(1000, ge=1, description="requests per step")
    duration_s: Annotated[float | None, Opt(name="duration", metavar="S")] = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="seconds of sending per step, instead of a number of requests",
    )
    trim: int = Field(100, ge=0, description="requests left out at each end of a step (send order)")
    repeats: int = Field(
        1,
        ge=1,
        description="run each step R times (fresh prompts, send times from seeds derived from "
        "--seed); figures get their mean and 95% interval over the runs",
    )
    arrival: Annotated[str, Choice(ARRIVALS, "arrival")] = Field(
        "poisson", description="arrival process"
    )
    burstiness: float = Field(
        1.0, gt=0, allow_inf_nan=False, description="gamma shape: 1 = Poisson, < 1 burstier"
    )
    trace: Annotated[str | None, Opt(metavar="FILE")] = Field(
        None,
        description="with arrival trace: BurstGPT CSV or JSONL {timestamp, input_tokens, "
        "output_tokens}",
    )
    time_scale: float = Field(
        1.0, gt=0, allow_inf_nan=False, description="multiply a trace's times (0.5: twice as fast)"
    )
    seed: int = Field(0, ge=0, description="seeds arrivals and prompts")
    max_concurrency: int | None = Field(None, ge=1, description="cap on requests in flight")
    max_start_rate_rps: Annotated[float | None, Opt(name="max_start_rate", metavar="R")] = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="hold request starts to R a second: a safety cap for bursts (inf, trace "
        "replay); steps it held back count capped_sends",
    )
    slos: Annotated[Slos, Opt(name="slo", metavar="K=V,...")] = Field(
        default_factory=dict, description="goodput SLOs in seconds: ttft, tpot, e2e, per_token"
    )
    drain_timeout_s: Annotated[float, Opt(name="drain_timeout")] = Field(
        30.0, gt=0, description="seconds a stop waits for requests in flight"
    )

    @model_validator(mode="after")
    def _consistent(self) -> LoadConfig:
        if self.arrival == "trace" and self.trace is None:
            raise field_error("arrival", "arrival trace needs a trace FILE")
        if self.arrival != "trace" and self.trace is not None:
            raise field_error("trace", "a trace FILE needs arrival trace")
        if self.trace is not None and self.rates_rps:
            raise field_error("rates_rps", "a replayed trace sets its own rate: give no rates")
        if self.duration_s is None and self.num_requests <= 2 * self.trim:
            raise field_error(
                "num_requests",
                f"{self.num_requests} requests leave nothing after trimming {self.trim} from "
                f"each end: use more than {2 * self.trim} requests or a smaller trim",
            )
        if self.duration_s is not None:
            self._check_duration(self.duration_s)
        return self

    @property
    def fixed_rates_rps(self) -> tuple[float, ...]:
        """The rates given (req/s); none for rates auto, which the sweep measures."""
        return () if isinstance(self.rates_rps, str) else self.rates_rps

    def _check_duration(self, duration_s: float) -> None:
        if self.rates_rps == AUTO:
            raise field_error("duration_s", "--rates auto runs an inf step: give no duration")
        for rate_rps in self.fixed_rates_rps:
            if math.isinf(rate_rps):
                raise field_error("duration_s", "a duration needs finite rates (inf sends at once)")
            if rate_rps * duration_s <= 2 * self.trim:
                raise field_error(
                    "duration_s",
                    f"{duration_s:g} s at {rate_rps:g} req/s sends about "
                    f"{rate_rps * duration_s:.0f} requests, nothing left after trimming "
                    f"{self.trim} from each end",
                )


class CapacityConfig(Section):
    """A capacity search (`loadgen capacity`): the highest rate at which every SLO holds."""

    slos: Annotated[CapacitySlos, Opt(name="capacity_slo", metavar="K=V,...")] = Field(
        default_factory=dict,
        description="SLOs every kept step must meet: ttft|ttfa|tpot|e2e|per_token with _pNN or "
        "_mean (s), error_rate (a share; 0.01 unless given)",
    )
    resolution: Annotated[Share, Opt(metavar="SHARE")] = Field(
        0.05,
        description="stop when the highest rate that held and the lowest that failed are "
        "this close (5% or 0.05)",
    )
    max_steps: int = Field(30, ge=1, description="most steps a search runs")
    max_scale: int = Field(
        4, ge=1, description="an undecided rate runs again with twice the requests, up to N times"
    )
    start_rate_rps: Annotated[float, Opt(name="start_rate", metavar="R")] = Field(
        1.0, gt=0, allow_inf_nan=False, description="the search's first rate (req/s)"
    )

    @property
    def searching(self) -> bool:
        """True when a run searches for capacity instead of sweeping fixed rates."""
        return bool(self.slos)


class WorkloadConfig(Section):
    """Where requests come from: a generator, a paper scenario or a dataset file."""

    dataset: str = Field(
        "synthetic",
        description="'synthetic', a paper scenario (s2s, s2l, l2s, s16k), 'chat-sessions' "
        "(multi-turn) or a dataset file",
    )
    dataset_format: Annotated[str, Choice(("auto", *FORMATS), "dataset format")] = Field(
        "auto", description="file format (auto: detected from the first entry)"
    )
    input_len: int = Field(128, ge=1, description="synthetic prompt tokens")
    output_len: int = Field(128, ge=1, description="synthetic max_tokens")
    min_input: int | None = Field(None, ge=1, description="drop dataset prompts under N tokens")
    max_input: int | None = Field(None, ge=1, description="drop dataset prompts over N tokens")
    max_output: int | None = Field(None, ge=1, description="drop dataset answers over N tokens")
    shuffle: bool = Field(False, description="seeded random order")
    replacement: bool = Field(False, description="draw dataset requests with replacement (seeded)")
    prompt_template: Annotated[str, Choice(tuple(PROMPT_TEMPLATES), "template")] | None = Field(
        None, description="wrap completions prompts in a chat template"
    )
    prefix_tokens: int = Field(
        0,
        ge=0,
        description="generated prompts start with one of --num-prefixes shared prefixes "
        "of N tokens",
    )
    num_prefixes: int = Field(1, ge=1, description="distinct shared prefixes")
    prefix_zipf: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="Zipf exponent of prefix popularity (default: every prefix equally likely)",
    )
    multi_turn: bool = Field(
        False,
        description="send each conversation of a sharegpt or messages dataset as a session of "
        "turns (as chat-sessions does)",
    )
    turns: Annotated[str, Opt(metavar="N|LOW:HIGH")] = Field(
        "4", description="turns per chat-sessions session (uniform in LOW:HIGH)"
    )
    think_time_s: Annotated[float, Opt(name="think_time", metavar="S")] = Field(
        0.0,
        ge=0,
        allow_inf_nan=False,
        description="mean seconds between an answer and the session's next turn (exponential)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> WorkloadConfig:
        if self.shuffle and self.replacement:
            raise field_error("replacement", "shuffle and replacement exclude each other")
        if self.prefix_tokens and not self.forced_lengths:
            raise field_error(
                "prefix_tokens",
                "shared prefixes are for generated workloads (synthetic or a "
                "scenario), not dataset files",
            )
        if not self.prefix_tokens and (self.num_prefixes != 1 or self.prefix_zipf is not None):
            raise field_error("num_prefixes", "num_prefixes and prefix_zipf need prefix_tokens")
        self._check_sessions()
        return self

    def _check_sessions(self) -> None:
        try:
            parse_turns(self.turns)
        except ValueError as exc:
            raise field_error("turns", str(exc)) from None
        if self.multi_turn and (self.dataset == "synthetic" or self.dataset in SCENARIOS):
            raise field_error(
                "multi_turn",
                f"multi_turn reads a dataset file's conversations (or use "
                f"--dataset {SESSIONS_SCENARIO})",
            )
        if self.sessions and self.prefix_tokens:
            raise field_error(
                "prefix_tokens",
                "sessions share their own history: shared prefixes are for single requests",
            )

    @property
    def sessions(self) -> bool:
        """True when each step sends multi-turn sessions rather than single requests."""
        return self.multi_turn or self.dataset == SESSIONS_SCENARIO

    @property
    def forced_lengths(self) -> bool:
        """True for generated workloads, whose output lengths only mean something if forced."""
        return self.dataset in ("synthetic", SESSIONS_SCENARIO) or self.dataset in SCENARIOS


class OutputConfig(Section):
    """Where results go."""

    out_dir: Annotated[Path | None, Opt(name="out")] = Field(
        None, description="results folder (default: results/<local time>/)"
    )


class MetricsConfig(Section):
    """Live Prometheus metrics of the run."""

    port: Annotated[int | None, Opt(name="metrics_port", metavar="PORT")] = Field(
        None, ge=0, le=65535, description="serve Prometheus /metrics on PORT (0: any free port)"
    )
    host: Annotated[str, Opt(name="metrics_host")] = Field(
        "127.0.0.1", description="address to serve /metrics on"
    )
    linger_s: Annotated[float, Opt(name="metrics_linger", metavar="S")] = Field(
        15.0,
        ge=0,
        allow_inf_nan=False,
        description="keep serving /metrics S seconds after the run, for the last scrape (unless "
        "stopped: Ctrl-C or SIGTERM)",
    )
    pushgateway: Annotated[HttpUrl | None, Opt(metavar="URL")] = Field(
        None, description="push the metrics to this Pushgateway after every step"
    )


class DescribeConfig(Section):
    """`loadgen dataset describe`: a workload's requests, drawn and counted, never sent."""

    workload: WorkloadConfig = Field(default_factory=WorkloadConfig)
    num_requests: int = Field(
        LoadConfig.model_fields["num_requests"].default, ge=1, description="requests to draw"
    )
    seed: int = Field(LoadConfig.model_fields["seed"].default, ge=0, description="seeds the draw")
    tokenizer: Annotated[str | None, Opt(metavar="PATH|tiktoken:NAME")] = Field(
        None, description=TargetConfig.model_fields["tokenizer"].description
    )


class RunConfig(Section):
    """A whole run: every target swept in turn under the same load and workload.

    `target` holds what every target shares (and is the only target when `targets` is empty);
    each `targets` entry is a named endpoint whose own settings win over `target`'s.
    """

    target: TargetConfig = Field(default_factory=TargetConfig)
    targets: Annotated[tuple[TargetConfig, ...], Opt(cli=False)] = ()
    load: LoadConfig = Field(default_factory=LoadConfig)
    workload: WorkloadConfig = Field(default_factory=WorkloadConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    sim: SimConfig = Field(default_factory=SimConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    capacity: CapacityConfig = Field(default_factory=CapacityConfig)

    @model_validator(mode="before")
    @classmethod
    def _inherit(cls, data: Any) -> Any:
        """Each `targets` entry starts from `target`: headers and body fields add up."""
        if not isinstance(data, dict) or not isinstance(data.get("targets"), list | tuple):
            return data
        shared = data.get("target", {})
        if isinstance(shared, TargetConfig):
            shared = {name: getattr(shared, name) for name in shared.model_fields_set}
        if not isinstance(shared, dict):
            return data
        entries = [inherit_target(shared, entry) for entry in data["targets"]]
        return {**data, "targets": entries}

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        self._check_targets()
        if self.load.trace is not None and self.workload.dataset != "synthetic":
            raise field_error("workload.dataset", "a replayed trace brings its own lengths")
        streamed = {"ttft", "tpot"} & set(self.load.slos)
        for where, target in self._located_targets():
            if streamed and not target.stream:
                raise field_error(f"{where}.stream", "ttft and tpot SLOs need streaming")
        if self.capacity.searching:
            self._check_search()
        elif not self.load.rates_rps and self.load.trace is None:
            raise field_error("load.rates_rps", "no request rate given")
        if self.load.rates_rps == AUTO:
            self._check_auto()
        return self

    def _check_auto(self) -> None:
        if self.workload.sessions:
            raise field_error("load.rates_rps", "rates auto sends single requests, not sessions")
        if self.cluster.processes is not None:
            raise field_error(
                "load.rates_rps", "rates auto sends its synchronous step from one process"
            )

    def _check_search(self) -> None:
        if self.load.repeats > 1:
            raise field_error("load.repeats", "a capacity search reruns undecided rates itself")
        if self.load.rates_rps:
            raise field_error("load.rates_rps", "a capacity search picks its own rates")
        if self.load.trace is not None:
            raise field_error("load.trace", "a replayed trace sets its own rate: nothing to search")
        load, start_rps = self.load, self.capacity.start_rate_rps
        if load.duration_s is not None and start_rps * load.duration_s <= 2 * load.trim:
            raise field_error(
                "load.duration_s",
                f"{load.duration_s:g} s at the start rate {start_rps:g} req/s leaves nothing "
                f"after trimming {load.trim} from each end",
            )

    def _check_targets(self) -> None:
        if not self.targets:
            return
        if self.target.base_url is not None:
            raise field_error(
                "target.base_url", "give base_url in each of the targets, not for all of them"
            )
        if self.target.name is not None:
            raise field_error("target.name", "names belong to the targets entries")
        seen: set[str] = set()
        for i, target in enumerate(self.targets):
            if target.name is None or not TARGET_NAME.fullmatch(target.name):
                raise field_error(
                    f"targets.{i}.name",
                    "needs a name of letters, digits, '.', '_' or '-' (it labels metrics and "
                    "names the results folder)",
                )
            if target.name in seen:
                raise field_error(f"targets.{i}.name", f"two targets are named {target.name!r}")
            seen.add(target.name)

    def _located_targets(self) -> list[tuple[str, TargetConfig]]:
        if not self.targets:
            return [("target", self.target)]
        return [(f"targets.{i}", target) for i, target in enumerate(self.targets)]

    def run_targets(self) -> tuple[TargetConfig, ...]:
        """The targets to sweep, in order: the `targets` entries, or the one `target`."""
        return self.targets or (self.target,)


def inherit_target(shared: dict[str, Any], entry: Any) -> Any:
    """A raw `targets` entry over the raw shared target settings (headers and bodies merged)."""
    if isinstance(entry, TargetConfig):
        entry = {name: getattr(entry, name) for name in entry.model_fields_set}
    if not isinstance(entry, dict):
        return entry
    merged = {**shared, **entry}
    try:
        if "headers" in shared and "headers" in entry:
            own = parse_headers(entry["headers"], hidden_ok=True)
            inherited = parse_headers(shared["headers"], hidden_ok=True)
            merged["headers"] = merge_headers(inherited, own)
        if "extra_body" in shared and "extra_body" in entry:
            own_body = parse_json_object(entry["extra_body"])
            merged["extra_body"] = {**parse_json_object(shared["extra_body"]), **own_body}
    except ValueError:
        pass  # left as given: the field's own validation names the bad value
    return merged
