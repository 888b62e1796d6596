"""The simulated serving engine's settings: what `simulate`, `sim` and a run with no URL use."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from loadgen.config.types import Choice, Opt, Section
from loadgen.sim.engine import Policy
from loadgen.sim.presets import GPUS, MODELS
from loadgen.sim.reasoning import parse_reasoning
from loadgen.sim.requests import Flavor


class SimConfig(Section):
    """The simulated serving engine: presets, a TOML file over them, and engine limits.

    Limits left unset take the file's [engine] value, else the engine's default.
    """

    gpu: Annotated[str, Choice(tuple(GPUS), "GPU")] = Field("a100", description="GPU preset")
    model: Annotated[str, Choice(tuple(MODELS), "model"), Opt(name="sim_model")] = Field(
        "llama-2-7b", description="model preset"
    )
    policy: Policy = Field("vllm", description="scheduler")
    cost_model: Literal["roofline", "paper"] = Field(
        "roofline", description="roofline (any GPU) or the paper's fitted A100 equations"
    )
    config_file: Annotated[Path | None, Opt(name="sim_config", metavar="FILE")] = Field(
        None, description="TOML with [gpu], [model], [engine], [overheads] values over the presets"
    )
    max_num_seqs: int | None = Field(None, ge=1, description="sequences per batch (256)")
    max_num_batched_tokens: int | None = Field(
        None, ge=1, description="prompt tokens per vllm step (the model's length)"
    )
    token_budget: int | None = Field(None, ge=1, description="tokens per splitfuse step (512)")
    gpu_memory_utilization: float | None = Field(
        None, gt=0, le=1, description="fraction of GPU memory for the engine (0.9)"
    )
    eos_mean_tokens: float = Field(
        256.0, gt=0, description="mean output length when a request does not set ignore_eos"
    )
    enable_prefix_caching: bool | None = Field(
        None, description="vLLM's automatic prefix caching: cached prompt blocks skip prefill (on)"
    )
    reasoning_tokens: Annotated[str, Opt(metavar="N|LOW:HIGH")] = Field(
        "0",
        description="each request's first N output tokens (uniform in LOW:HIGH) are reasoning, "
        "streamed apart from the answer; 0: none",
    )

    @field_validator("reasoning_tokens", mode="before")
    @classmethod
    def _reasoning(cls, value: object) -> str:
        text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(text, str):
            raise ValueError("expected N or LOW:HIGH (tokens)")
        parse_reasoning(text)
        return text.strip()

    @property
    def label(self) -> str:
        """A short name for results and plots, e.g. "sim a100/llama-2-7b/vllm"."""
        return f"sim {self.gpu}/{self.model}/{self.policy}"


class ServeConfig(Section):
    """`loadgen sim`: the simulated engine served over HTTP in real time."""

    host: str = Field("127.0.0.1", description="address to bind (0.0.0.0: all)")
    port: int = Field(8000, ge=0, le=65535, description="port to serve on")
    api_flavor: Flavor = Field("vllm", description="server behaviour")
    served_model_name: str | None = Field(None, description="model id in the API (default: preset)")
    time_scale: float = Field(
        1.0,
        gt=0,
        allow_inf_nan=False,
        description="multiply modelled step times (0.1 runs ten times faster than the GPU)",
    )
    seed: int = Field(0, ge=0, description="seeds output lengths at EOS")
    sim: SimConfig = Field(default_factory=SimConfig)
