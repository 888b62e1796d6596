"""Tests for loadgen.sim.presets: model sizes, GPU units, custom overrides and sim files.

Expected sizes are worked out by hand from the paper's model table (h, h', l, n, KV heads,
vocab) and written as literals; nothing is recomputed with the properties under test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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

# hidden 8, ffn 16, 2 layers, 2 heads (head_dim 4), 1 KV head, vocab 10, context 64
TINY = ModelSpec(
    "tiny", hidden=8, ffn_hidden=16, layers=2, heads=2, kv_heads=1, vocab=10, max_model_len=64
)
TOY_GPU = GpuSpec("toy", memory_gib=2.0, bandwidth_gbps=100.0, peak_tflops=10.0)


# ---- model sizes -------------------------------------------------------------------------


def test_tiny_model_sizes_by_hand() -> None:
    # kv_dim = kv_heads * hidden / heads = 1 * 8 / 2 = 4
    assert TINY.kv_dim == 4
    # layer = h*(h + 2*kv_dim) + h*h + 3*h*ffn = 8*16 + 64 + 3*8*16 = 128 + 64 + 384 = 576
    assert TINY.layer_params == 576
    # all = layers*layer + 2*vocab*h = 2*576 + 2*10*8 = 1152 + 160 = 1312
    assert TINY.weight_params == 1312
    assert TINY.weight_bytes == 2624  # 1312 * 2 bytes
    # 2 (K and V) * layers * kv_dim * dtype = 2*2*4*2 = 32
    assert TINY.kv_bytes_per_token == 32


def test_llama_2_7b_has_about_6_74e9_parameters() -> None:
    llama = MODELS["llama-2-7b"]
    assert llama.weight_params == pytest.approx(6.74e9, rel=0.01)
    # 32 * (4*4096^2 + 3*4096*11008) + 2*32000*4096
    #   = 32 * (67_108_864 + 135_266_304) + 262_144_000 = 6_476_005_376 + 262_144_000
    assert llama.weight_params == 6_738_149_376
    assert llama.weight_bytes == 13_476_298_752  # * 2 bytes (BF16)


def test_llama_2_7b_kv_bytes_per_token() -> None:
    # 2 (K, V) * 32 layers * 4096 (32 heads * 128) * 2 bytes
    assert MODELS["llama-2-7b"].kv_dim == 4096
    assert MODELS["llama-2-7b"].kv_bytes_per_token == 2 * 32 * 4096 * 2 == 524_288


def test_llama_2_13b_sizes() -> None:
    big = MODELS["llama-2-13b"]
    # 40 * (4*5120^2 + 3*5120*13824) + 2*32000*5120 = 40*(104_857_600 + 212_336_640) + 327_680_000
    assert big.weight_params == 13_015_449_600
    assert big.kv_bytes_per_token == 2 * 40 * 5120 * 2 == 819_200


def test_mistral_uses_grouped_query_attention() -> None:
    mistral = MODELS["mistral-7b"]
    assert mistral.kv_dim == 8 * 128 == 1024  # 8 KV heads of 4096/32 = 128
    assert mistral.kv_bytes_per_token == 2 * 32 * 1024 * 2 == 131_072
    # layer = 4096*(4096 + 2*1024) + 4096^2 + 3*4096*14336
    #       = 25_165_824 + 16_777_216 + 176_160_768 = 218_103_808
    assert mistral.layer_params == 218_103_808
    # 32 * 218_103_808 + 2*32000*4096 = 6_979_321_856 + 262_144_000 (about 7.24e9)
    assert mistral.weight_params == 7_241_465_856
    assert mistral.max_model_len == 32768


def test_vicuna_16k_is_llama_2_7b_with_a_longer_context() -> None:
    vicuna, llama = MODELS["vicuna-7b-16k"], MODELS["llama-2-7b"]
    assert vicuna.max_model_len == 16384
    assert llama.max_model_len == 4096
    assert vicuna.weight_params == 6_738_149_376
    assert vicuna.kv_bytes_per_token == 524_288


# ---- GPUs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "memory_gib", "bandwidth_gbps", "peak_tflops"),
    [
        ("rtx3090", 24.0, 936.0, 71.0),
        ("rtx4090", 24.0, 1008.0, 165.2),
        ("a100", 80.0, 2039.0, 312.0),
        ("h100", 80.0, 3350.0, 989.0),
        ("h200", 141.0, 4800.0, 989.0),
    ],
)
def test_gpu_presets_match_the_paper_table(
    key: str, memory_gib: float, bandwidth_gbps: float, peak_tflops: float
) -> None:
    gpu = GPUS[key]
    assert (gpu.memory_gib, gpu.bandwidth_gbps, gpu.peak_tflops) == (
        memory_gib,
        bandwidth_gbps,
        peak_tflops,
    )


def test_gpu_unit_conversions() -> None:
    a100 = GPUS["a100"]
    assert a100.memory_bytes == 85_899_345_920  # 80 * 1024^3
    assert a100.bandwidth_bps == pytest.approx(2.039e12, rel=1e-12)  # 2039 GB/s * 1e9
    assert a100.peak_flops == pytest.approx(3.12e14, rel=1e-12)  # 312 TFLOP/s * 1e12
    assert TOY_GPU.memory_bytes == 2_147_483_648  # 2 GiB
    assert TOY_GPU.bandwidth_bps == pytest.approx(1e11)
    assert TOY_GPU.peak_flops == pytest.approx(1e13)


def test_lookup_names_the_choices() -> None:
    assert lookup(GPUS, "h100", "GPU") is GPUS["h100"]
    with pytest.raises(PresetError, match=r"unknown GPU 'v100'.*a100"):
        lookup(GPUS, "v100", "GPU")


# ---- customized --------------------------------------------------------------------------


def test_customized_replaces_the_named_fields_only() -> None:
    changed = customized(TINY, {"layers": 4, "vocab": 20, "name": "wider"}, "x.toml [model]")
    assert (changed.layers, changed.vocab, changed.name) == (4, 20, "wider")
    assert (changed.hidden, changed.heads, changed.max_model_len) == (8, 2, 64)
    assert TINY.layers == 2  # the original is untouched
    # layers now 4: 4*576 + 2*20*8 = 2304 + 320
    assert changed.weight_params == 2624


def test_customized_turns_whole_floats_into_ints() -> None:
    changed = customized(TINY, {"hidden": 16.0}, "where")
    assert changed.hidden == 16
    assert type(changed.hidden) is int


def test_customized_gpu_accepts_fractional_floats() -> None:
    changed = customized(TOY_GPU, {"memory_gib": 0.5, "bandwidth_gbps": 3}, "[gpu]")
    assert changed.memory_gib == 0.5
    assert changed.memory_bytes == 536_870_912  # 0.5 * 1024^3
    assert changed.bandwidth_gbps == 3


def test_customized_empty_overrides_is_the_same_spec() -> None:
    assert customized(TINY, {}, "where") == TINY


def test_customized_rejects_unknown_fields() -> None:
    with pytest.raises(PresetError, match=r"^sim\.toml \[model\]: unknown field 'width'"):
        customized(TINY, {"width": 8}, "sim.toml [model]")


@pytest.mark.parametrize("value", [0, -4, -0.5, "8", True, None, float("nan")])
def test_customized_rejects_values_that_are_not_positive_numbers(value: object) -> None:
    with pytest.raises(PresetError, match=r"^here: layers must be a number > 0"):
        customized(TINY, {"layers": value}, "here")


def test_customized_rejects_non_positive_gpu_values() -> None:
    with pytest.raises(PresetError, match="memory_gib must be a number > 0"):
        customized(TOY_GPU, {"memory_gib": 0.0}, "[gpu]")


@pytest.mark.parametrize("field", ["hidden", "layers", "vocab", "max_model_len", "dtype_bytes"])
def test_customized_rejects_fractions_for_int_fields(field: str) -> None:
    with pytest.raises(PresetError, match=f"{field} must be a whole number, got 2.5"):
        customized(TINY, {field: 2.5}, "here")


def test_customized_rejects_hidden_not_a_multiple_of_heads() -> None:
    with pytest.raises(PresetError, match="hidden must be a multiple of heads"):
        customized(TINY, {"hidden": 9}, "here")
    with pytest.raises(PresetError, match="hidden must be a multiple of heads"):
        customized(TINY, {"heads": 3}, "here")


def test_customized_rejects_heads_not_a_multiple_of_kv_heads() -> None:
    with pytest.raises(PresetError, match="heads must be a multiple of kv_heads"):
        customized(MODELS["mistral-7b"], {"kv_heads": 3}, "here")
    grouped = customized(MODELS["mistral-7b"], {"kv_heads": 4}, "here")
    assert grouped.kv_dim == 512  # 4 KV heads * 128


# ---- read_sim_file ------------------------------------------------------------------------


def test_read_sim_file_reads_the_three_tables(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text(
        "[gpu]\nmemory_gib = 40.0\nname = 'half A100'\n\n"
        "[model]\nlayers = 4\n\n"
        "[engine]\nmax_num_seqs = 8\npolicy = 'splitfuse'\n"
    )
    assert read_sim_file(path) == {
        "gpu": {"memory_gib": 40.0, "name": "half A100"},
        "model": {"layers": 4},
        "engine": {"max_num_seqs": 8, "policy": "splitfuse"},
    }


def test_read_sim_file_tables_are_optional(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert read_sim_file(empty) == {}
    only_model = tmp_path / "model.toml"
    only_model.write_text("[model]\nvocab = 100\n")
    assert read_sim_file(only_model) == {"model": {"vocab": 100}}


def _raises_with_path(path: Path, fragment: str) -> None:
    with pytest.raises(PresetError) as caught:
        read_sim_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert re.search(fragment, message), message


def test_read_sim_file_rejects_unknown_tables(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text("[gpu]\nmemory_gib = 1\n[scheduler]\nx = 1\n[aaa]\n")
    _raises_with_path(path, r"unknown table\(s\) aaa, scheduler")


def test_read_sim_file_rejects_a_table_name_bound_to_a_value(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text("gpu = 'a100'\n")
    _raises_with_path(path, "must be tables")


def test_read_sim_file_rejects_bad_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[gpu\nmemory_gib = \n")
    _raises_with_path(path, "not valid TOML")


def test_read_sim_file_rejects_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"[gpu]\nname = '\xe9'\n")
    _raises_with_path(path, "not valid TOML")


def test_read_sim_file_rejects_a_missing_file(tmp_path: Path) -> None:
    _raises_with_path(tmp_path / "nowhere.toml", "cannot read")


def test_read_sim_file_rejects_a_directory(tmp_path: Path) -> None:
    _raises_with_path(tmp_path, "cannot read")


def test_preset_error_is_a_value_error() -> None:
    assert issubclass(PresetError, ValueError)
