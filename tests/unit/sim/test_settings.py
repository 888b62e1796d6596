"""Tests for loadgen.sim.settings (and the SimConfig section): prefix caching, reasoning."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from loadgen.config import SimConfig
from loadgen.sim.presets import PresetError
from loadgen.sim.reasoning import ReasoningRange
from loadgen.sim.settings import resolve


def test_defaults_cache_prefixes_and_do_not_reason() -> None:
    setup = resolve(SimConfig())
    assert setup.engine.enable_prefix_caching is True  # as vLLM V1
    assert setup.reasoning is None
    assert setup.build_engine().config.enable_prefix_caching


def test_prefix_caching_can_be_turned_off() -> None:
    setup = resolve(SimConfig(enable_prefix_caching=False))
    assert setup.engine.enable_prefix_caching is False


def test_the_file_can_turn_prefix_caching_off_and_a_flag_wins(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text("[engine]\nenable_prefix_caching = false\n")
    assert resolve(SimConfig(config_file=path)).engine.enable_prefix_caching is False
    flag = SimConfig(config_file=path, enable_prefix_caching=True)
    assert resolve(flag).engine.enable_prefix_caching is True


def test_the_file_must_say_true_or_false(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text("[engine]\nenable_prefix_caching = 1\n")
    with pytest.raises(PresetError, match="true or false"):
        resolve(SimConfig(config_file=path))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", None),
        ("64", ReasoningRange(64, 64)),
        ("100:900", ReasoningRange(100, 900)),
        (32, ReasoningRange(32, 32)),
    ],
)
def test_reasoning_tokens_reach_the_setup(value: object, expected: ReasoningRange | None) -> None:
    setup = resolve(SimConfig(reasoning_tokens=value))  # type: ignore[arg-type]
    assert setup.reasoning == expected


@pytest.mark.parametrize("value", ["many", "9:3", "-2", "", True])
def test_bad_reasoning_tokens_are_config_errors(value: object) -> None:
    with pytest.raises(pydantic.ValidationError, match="reasoning_tokens"):
        SimConfig(reasoning_tokens=value)  # type: ignore[arg-type]
