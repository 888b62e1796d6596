"""Hardware and model presets of the simulated engine (pure data: GiB, GB/s, TFLOP/s, tokens)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

GIB = 1024**3


@dataclass(frozen=True, slots=True)
class GpuSpec:
    """One accelerator: memory in GiB, bandwidth in GB/s, dense BF16 peak in TFLOP/s."""

    name: str
    memory_gib: float
    bandwidth_gbps: float
    peak_tflops: float

    @property
    def memory_bytes(self) -> float:
        """Device memory (bytes)."""
        return self.memory_gib * GIB

    @property
    def bandwidth_bps(self) -> float:
        """Peak memory bandwidth (bytes/s)."""
        return self.bandwidth_gbps * 1e9

    @property
    def peak_flops(self) -> float:
        """Peak dense BF16 throughput (FLOP/s)."""
        return self.peak_tflops * 1e12


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A decoder-only transformer: widths, layer count, heads, vocabulary, context (tokens)."""

    name: str
    hidden: int
    ffn_hidden: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    max_model_len: int
    dtype_bytes: int = 2

    @property
    def kv_dim(self) -> int:
        """Width of one of K or V per token and layer (kv_heads * head_dim)."""
        return self.kv_heads * (self.hidden // self.heads)

    @property
    def layer_params(self) -> int:
        """Weights of one decoder layer's projections: QKV, output, FFN gate/up/down."""
        h = self.hidden
        return h * (h + 2 * self.kv_dim) + h * h + 3 * h * self.ffn_hidden

    @property
    def weight_params(self) -> int:
        """All weights: layers, input embedding and LM head (norms are negligible)."""
        return self.layers * self.layer_params + 2 * self.vocab * self.hidden

    @property
    def weight_bytes(self) -> int:
        """Weights in memory (bytes)."""
        return self.weight_params * self.dtype_bytes

    @property
    def kv_bytes_per_token(self) -> int:
        """KV cache of one token over all layers (bytes)."""
        return 2 * self.layers * self.kv_dim * self.dtype_bytes


# Paper Table 7 and public specs; memory as nvidia-smi reports it (GiB).
GPUS: dict[str, GpuSpec] = {
    "rtx3090": GpuSpec("RTX 3090", 24.0, 936.0, 71.0),
    "rtx4090": GpuSpec("RTX 4090", 24.0, 1008.0, 165.2),
    "a100": GpuSpec("A100 80GB", 80.0, 2039.0, 312.0),
    "h100": GpuSpec("H100 SXM", 80.0, 3350.0, 989.0),
    "h200": GpuSpec("H200", 141.0, 4800.0, 989.0),
}

MODELS: dict[str, ModelSpec] = {
    "llama-2-7b": ModelSpec("Llama-2-7B", 4096, 11008, 32, 32, 32, 32000, 4096),
    "llama-2-13b": ModelSpec("Llama-2-13B", 5120, 13824, 40, 40, 40, 32000, 4096),
    "mistral-7b": ModelSpec("Mistral-7B", 4096, 14336, 32, 32, 8, 32000, 32768),
    "vicuna-7b-16k": ModelSpec("Vicuna-7B-16k", 4096, 11008, 32, 32, 32, 32000, 16384),
}


_Spec = TypeVar("_Spec", GpuSpec, ModelSpec)


class PresetError(ValueError):
    """An unknown preset or a bad custom hardware/model description."""


def lookup(table: dict[str, _Spec], name: str, what: str) -> _Spec:
    """`table[name]`, or PresetError naming the choices."""
    try:
        return table[name]
    except KeyError:
        raise PresetError(f"unknown {what} {name!r}; choose from {', '.join(table)}") from None


def customized(spec: _Spec, overrides: dict[str, Any], where: str) -> _Spec:
    """`spec` with the fields named in `overrides` replaced (PresetError on unknown or bad ones)."""
    known = {item.name: item.type for item in fields(spec)}
    for key, value in overrides.items():
        if key not in known:
            raise PresetError(f"{where}: unknown field {key!r}; known: {', '.join(known)}")
        if key == "name":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise PresetError(f"{where}: {key} must be a number > 0, got {value!r}")
        if known[key] == "int" and not float(value).is_integer():
            raise PresetError(f"{where}: {key} must be a whole number, got {value!r}")
    values: dict[str, Any] = {
        key: (int(value) if known[key] == "int" else value) for key, value in overrides.items()
    }
    changed = replace(spec, **values)
    if isinstance(changed, ModelSpec) and changed.hidden % changed.heads:
        raise PresetError(f"{where}: hidden must be a multiple of heads")
    if isinstance(changed, ModelSpec) and changed.heads % changed.kv_heads:
        raise PresetError(f"{where}: heads must be a multiple of kv_heads")
    return changed


def read_sim_file(path: Path) -> dict[str, dict[str, Any]]:
    """A TOML file of optional [gpu], [model], [engine], [overheads] tables (else PresetError)."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise PresetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PresetError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(data) - {"gpu", "model", "engine", "overheads"}
    if unknown:
        raise PresetError(f"{path}: unknown table(s) {', '.join(sorted(unknown))}")
    if not all(isinstance(table, dict) for table in data.values()):
        raise PresetError(f"{path}: gpu, model, engine and overheads must be tables")
    return data
