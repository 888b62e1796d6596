"""What to simulate: GPU, model, scheduler and cost model, from presets, a TOML file and flags."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from loadgen.sim.cost_model import CostModel, Overheads, PaperFitCost, RooflineCost
from loadgen.sim.engine import POLICIES, Engine, EngineConfig, Policy
from loadgen.sim.presets import (
    GPUS,
    MODELS,
    GpuSpec,
    ModelSpec,
    PresetError,
    customized,
    lookup,
    read_sim_file,
)
from loadgen.sim.reasoning import ReasoningRange, parse_reasoning

CostKind = Literal["roofline", "paper"]
COST_MODELS: tuple[CostKind, ...] = ("roofline", "paper")


class SimChoice(Protocol):
    """What to simulate (the config model's `sim` section): preset names, a TOML file, limits.

    Engine limits left as None take the file's `[engine]` value, else EngineConfig's default.
    """

    @property
    def gpu(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def policy(self) -> Policy: ...
    @property
    def cost_model(self) -> CostKind: ...
    @property
    def config_file(self) -> Path | None: ...
    @property
    def max_num_seqs(self) -> int | None: ...
    @property
    def max_num_batched_tokens(self) -> int | None: ...
    @property
    def token_budget(self) -> int | None: ...
    @property
    def gpu_memory_utilization(self) -> float | None: ...
    @property
    def enable_prefix_caching(self) -> bool | None: ...
    @property
    def reasoning_tokens(self) -> str: ...


@dataclass(frozen=True, slots=True)
class SimSetup:
    """The resolved hardware, model, scheduler limits and overheads, and the reasoning phase."""

    gpu: GpuSpec
    model: ModelSpec
    engine: EngineConfig
    overheads: Overheads
    cost_model: CostKind
    reasoning: ReasoningRange | None = None

    def cost(self) -> CostModel:
        """The configured cost model."""
        if self.cost_model == "paper":
            return PaperFitCost(self.model)
        return RooflineCost(self.model, self.gpu, self.overheads)

    def build_engine(self) -> Engine:
        """A fresh engine with an empty KV cache."""
        return Engine(self.model, self.gpu, self.engine, self.cost())

    def describe(self) -> str:
        """One line for notices: GPU, model, policy."""
        return f"{self.gpu.name}, {self.model.name}, {self.engine.policy} scheduler"


def resolve(settings: SimChoice) -> SimSetup:
    """Presets, then the file's tables, then flags (PresetError when anything is unusable)."""
    if settings.policy not in POLICIES:
        raise PresetError(f"unknown policy {settings.policy!r}; choose from {', '.join(POLICIES)}")
    if settings.cost_model not in COST_MODELS:
        raise PresetError(f"unknown cost model {settings.cost_model!r}")
    tables: dict[str, dict[str, Any]] = {}
    where = "sim config"
    if settings.config_file is not None:
        tables = read_sim_file(settings.config_file)
        where = str(settings.config_file)
    gpu = customized(lookup(GPUS, settings.gpu, "GPU"), tables.get("gpu", {}), f"{where} [gpu]")
    model = customized(
        lookup(MODELS, settings.model, "model"), tables.get("model", {}), f"{where} [model]"
    )
    engine = _engine_config(settings, tables.get("engine", {}), f"{where} [engine]")
    overheads = _overheads(tables.get("overheads", {}), f"{where} [overheads]")
    try:
        reasoning = parse_reasoning(settings.reasoning_tokens)
    except ValueError as exc:
        raise PresetError(f"reasoning_tokens: {exc}") from None
    setup = SimSetup(gpu, model, engine, overheads, settings.cost_model, reasoning)
    setup.build_engine()  # PresetError now, not mid-run, when the model cannot be served
    return setup


def _engine_config(settings: SimChoice, table: dict[str, Any], where: str) -> EngineConfig:
    """EngineConfig defaults, the file's [engine] values, then any flag that was given."""
    flags = {
        "max_num_seqs": settings.max_num_seqs,
        "max_num_batched_tokens": settings.max_num_batched_tokens,
        "token_budget": settings.token_budget,
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "enable_prefix_caching": settings.enable_prefix_caching,
    }
    values = _numbers(EngineConfig(), table, where) | {
        key: value for key, value in flags.items() if value is not None
    }
    config = replace(EngineConfig(policy=settings.policy), **values)
    if not 0 < config.gpu_memory_utilization <= 1:
        raise PresetError("gpu_memory_utilization must be in (0, 1]")
    if not 0 <= config.watermark < 1:
        raise PresetError("watermark must be in [0, 1)")
    for name in ("max_num_seqs", "token_budget", "block_size"):
        if getattr(config, name) < 1:
            raise PresetError(f"{name} must be >= 1")
    if config.max_num_batched_tokens is not None and config.max_num_batched_tokens < 1:
        raise PresetError("max_num_batched_tokens must be >= 1")
    return config


def _overheads(table: dict[str, Any], where: str) -> Overheads:
    """The calibrated overheads with the file's [overheads] values on top."""
    overheads = replace(Overheads(), **_numbers(Overheads(), table, where))
    if not (0 < overheads.compute_efficiency <= 1 and 0 < overheads.memory_efficiency <= 1):
        raise PresetError(f"{where}: efficiencies must be in (0, 1]")
    if overheads.step_s < 0 or overheads.seq_s < 0:
        raise PresetError(f"{where}: overheads must be >= 0 seconds")
    return overheads


def _numbers(default: Any, table: dict[str, Any], where: str) -> dict[str, Any]:
    """`table` checked against the numeric (and yes/no) fields of the dataclass `default`."""
    known = {item.name: item.type for item in fields(default) if item.name != "policy"}
    for key, value in table.items():
        if key not in known:
            raise PresetError(f"{where}: unknown field {key!r}; known: {', '.join(known)}")
        if known[key] == "bool":
            if not isinstance(value, bool):
                raise PresetError(f"{where}: {key} must be true or false, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise PresetError(f"{where}: {key} must be a number, got {value!r}")
        if "int" in str(known[key]) and not float(value).is_integer():
            raise PresetError(f"{where}: {key} must be a whole number, got {value!r}")
    return {key: _number(value, str(known[key])) for key, value in table.items()}


def _number(value: Any, kind: str) -> Any:
    if kind == "bool":
        return value
    return int(value) if "int" in kind else float(value)
