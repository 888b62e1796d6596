"""Tests for loadgen.cli_config: sweep files as `loadgen sweep` defaults, and their targets."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest

from loadgen.cli import build_parser, config_from_args
from loadgen.cli_config import option_value, sweep_file_of, targets_from_args
from loadgen.config import ConfigError, RunConfig, WorkloadConfig
from loadgen.config_file import read_sweep_file

URL = "base_url = 'http://h:8000'\n"
TWO_TARGETS = """
rates = [1, 2]
num_requests = 50
trim = 5
model = "common"
headers = {X-Team = "perf", X-Mode = "shared"}
extra_body = {a = 1, b = 1}

[[targets]]
name = "alpha"
base_url = "http://a:8000"
model = "m-alpha"
endpoint = "chat"
api_key_env = "ALPHA_KEY"
ignore_eos = false
headers = {X-Mode = "alpha", X-Extra = "yes"}
extra_body = {b = 2, c = 3}

[[targets]]
name = "beta"
base_url = "http://b:9000/v1"
"""


def write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def parse(path: Path, *flags: str) -> argparse.Namespace:
    """`loadgen sweep --config PATH FLAGS...`, parsed the way main() does it."""
    argv = ["sweep", "--config", str(path), *flags]
    sweep = sweep_file_of(argv)
    assert sweep is not None
    return build_parser(sweep).parse_args(argv)


def config(tmp_path: Path, text: str, *flags: str, name: str = "sweep.toml") -> RunConfig:
    return config_from_args(parse(write(tmp_path, text, name), *flags))


def targets(tmp_path: Path, text: str, *flags: str) -> dict[str, RunConfig]:
    return dict(targets_from_args(parse(write(tmp_path, text), *flags), config_from_args))


def file_error(tmp_path: Path, text: str, name: str = "sweep.toml") -> str:
    """The ConfigError that building the parser for a file holding `text` must raise."""
    with pytest.raises(ConfigError) as caught:
        build_parser(read_sweep_file(write(tmp_path, text, name)))
    return str(caught.value)


# --- top-level options --------------------------------------------------------------------------


def test_file_values_become_the_config(tmp_path: Path) -> None:
    text = URL + 'rates = [1, 2.5, inf]\nnum-requests = 50\ntrim = 5\ndataset = "s2s"\n'
    cfg = config(tmp_path, text)
    assert cfg.base_url == "http://h:8000/v1"
    assert cfg.rates_rps == (1.0, 2.5, math.inf)
    assert (cfg.num_requests, cfg.trim) == (50, 5)
    assert cfg.workload == WorkloadConfig("s2s", 128, 128)
    assert cfg.seed == 0


def test_yaml_file_with_yaml_infinity(tmp_path: Path) -> None:
    text = "base_url: http://h\nrates: [4, .inf]\nseed: 7\n"
    cfg = config(tmp_path, text, name="sweep.yaml")
    assert cfg.rates_rps == (4.0, math.inf)
    assert cfg.seed == 7


@pytest.mark.parametrize(
    ("line", "expected"), [('rate-range = "2:6:2"', (2.0, 4.0, 6.0)), ("rates = 3", (3.0,))]
)
def test_rates_in_file(tmp_path: Path, line: str, expected: tuple[float, ...]) -> None:
    assert config(tmp_path, URL + line + "\n").rates_rps == expected


def test_file_options_do_not_touch_run(tmp_path: Path) -> None:
    parser = build_parser(read_sweep_file(write(tmp_path, URL + "rates = [1]\ntrim = 7\n")))
    cfg = config_from_args(parser.parse_args(["run", "--rate", "1", "--base-url", "http://r"]))
    assert cfg.trim == 100


def test_env_beats_file_and_flag_beats_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = URL + "rates = [1]\nnum_requests = 50\n"
    assert config(tmp_path, text, "--num-requests", "600").num_requests == 600
    monkeypatch.setenv("LOADGEN_NUM_REQUESTS", "700")
    assert config(tmp_path, text).num_requests == 700
    assert config(tmp_path, text, "--num-requests", "800").num_requests == 800


@pytest.mark.parametrize(
    ("line", "flags", "env", "expected"),
    [
        ('rate_range = "2:6:2"', ["--rates", "9"], {}, (9.0,)),
        ("rates = [1]", ["--rate-range", "1:2:0.5"], {}, (1.0, 1.5, 2.0)),
        ("rates = [1, 2]", [], {"LOADGEN_RATES": "5,inf"}, (5.0, math.inf)),
        ("rates = [1, 2]", [], {"LOADGEN_RATE_RANGE": "5:6:1"}, (5.0, 6.0)),
        # Flags rank above variables: --rate-range must win over LOADGEN_RATES.
        ("rates = [1]", ["--rate-range", "2:6:2"], {"LOADGEN_RATES": "5"}, (2.0, 4.0, 6.0)),
    ],
    ids=["rates-flag", "range-flag", "rates-env", "range-env", "range-flag-over-rates-env"],
)
def test_rate_precedence(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    line: str,
    flags: list[str],
    env: dict[str, str],
    expected: tuple[float, ...],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert config(tmp_path, URL + line + "\n", *flags).rates_rps == expected


def test_no_rates_anywhere(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rates in the --config file"):
        config(tmp_path, URL + "num_requests = 500\n")


def test_booleans(tmp_path: Path) -> None:
    text = URL + "rates = [1]\nstream = false\nignore-eos = true\nshuffle = true\n"
    cfg = config(tmp_path, text)
    assert (cfg.stream, cfg.ignore_eos, cfg.workload.shuffle) == (False, True, True)
    assert config(tmp_path, text, "--no-ignore-eos").ignore_eos is False


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('stream = "no"', "sweep.toml: stream: must be true or false"),
        ("ignore_eos = 1", "ignore_eos: must be true or false"),
        ('endpoint = "foo"', "endpoint: 'foo' is not one of completions, chat"),
        ('num_requests = "x"', "num_requests: invalid literal for int()"),
        ("num_requests = 2.5", "num_requests: invalid literal for int()"),
        ("model = true", "model: needs a value"),
        ('model = {a = "b"}', "model: must be a single value, not a table"),
        ('rates = ["fast"]', "rates: invalid rate 'fast'"),
        ('rate_range = "6:2:2"', "rate_range: invalid rate range"),
        ('slo = {ttft = "soon"}', "slo:"),
        ('extra_body = "[1]"', "extra_body: must be a JSON object"),
        ('header = "no colon"', "header: header must look like 'Name: value'"),
        ('rates = [1]\nrate_range = "1:2:1"', "give rates or rate_range, not both"),
        ("num_request = 5", "unknown option 'num_request' (did you mean num_requests?)"),
        ('config = "x"', "unknown option 'config'"),
        # A bad value inside a target names the target.
        (
            '[[targets]]\nname = "alpha"\nbase_url = "u"\nstream = "no"',
            "target alpha: stream: must be true or false",
        ),
    ],
)
def test_bad_values(tmp_path: Path, line: str, expected: str) -> None:
    assert expected in file_error(tmp_path, line + "\n")


def test_unknown_option_far_off(tmp_path: Path) -> None:
    message = file_error(tmp_path, "zzzzzz = 5\n")
    assert "unknown option 'zzzzzz'" in message
    assert "did you mean" not in message


def test_tables(tmp_path: Path) -> None:
    text = URL + 'rates = [1]\nextra_body = {a = 1}\nslo = {ttft = 0.5}\nheaders = {X-A = "1"}\n'
    cfg = config(tmp_path, text)
    assert dict(cfg.extra_body) == {"a": 1}
    assert dict(cfg.slos) == {"ttft": 0.5}
    assert dict(cfg.headers) == {"X-A": "1"}


def test_tables_as_strings(tmp_path: Path) -> None:
    text = URL + "rates = [1]\nextra_body = '{\"z\": [1]}'\nslos = \"e2e=3\"\nheader = 'X-B: 2'\n"
    cfg = config(tmp_path, text)
    assert dict(cfg.extra_body) == {"z": [1]}
    assert dict(cfg.slos) == {"e2e": 3.0}
    assert dict(cfg.headers) == {"X-B": "2"}


def test_yaml_header_list_of_mappings(tmp_path: Path) -> None:
    # A natural YAML spelling; it must give header X-A (or be refused), never a mangled name.
    text = "base_url: http://h\nrates: [1]\nheaders:\n  - X-A: '1'\n"
    try:
        cfg = config(tmp_path, text, name="sweep.yaml")
    except ConfigError:
        return
    assert dict(cfg.headers) == {"X-A": "1"}


def test_header_flag_adds_to_file_headers(tmp_path: Path) -> None:
    cfg = config(tmp_path, URL + 'rates = [1]\nheaders = ["X-A: 1"]\n', "--header", "X-B: 2")
    assert dict(cfg.headers) == {"X-A": "1", "X-B": "2"}


def test_env_replaces_file_extra_body(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_EXTRA_BODY", '{"e": 1}')
    cfg = config(tmp_path, URL + "rates = [1]\nextra_body = {a = 1}\n")
    assert dict(cfg.extra_body) == {"e": 1}


def test_option_value_directly() -> None:
    parser = argparse.ArgumentParser()
    count = parser.add_argument("--count", type=int)
    tags = parser.add_argument("--tag", action="append")
    flag = parser.add_argument("--on", action="store_true")
    assert option_value(count, 3, "w") == 3
    assert option_value(tags, {"a": 1}, "w") == ["a: 1"]
    assert option_value(tags, "one", "w") == ["one"]
    assert option_value(flag, False, "w") is False
    with pytest.raises(ConfigError, match=r"^here: invalid literal"):
        option_value(count, "x", "here")
    with pytest.raises(ConfigError, match=r"^here: must be true or false$"):
        option_value(flag, "true", "here")


# --- targets ------------------------------------------------------------------------------------


def test_per_target_overrides(tmp_path: Path) -> None:
    found = targets(tmp_path, TWO_TARGETS)
    assert list(found) == ["alpha", "beta"]
    alpha, beta = found["alpha"], found["beta"]
    assert (alpha.base_url, beta.base_url) == ("http://a:8000/v1", "http://b:9000/v1")
    assert (alpha.model, beta.model) == ("m-alpha", "common")
    assert (alpha.endpoint, beta.endpoint) == ("chat", "completions")
    assert (alpha.api_key_env, beta.api_key_env) == ("ALPHA_KEY", None)
    assert (alpha.ignore_eos, beta.ignore_eos) == (False, None)


def test_headers_and_extra_body_merge(tmp_path: Path) -> None:
    found = targets(tmp_path, TWO_TARGETS)
    assert dict(found["alpha"].headers) == {"X-Team": "perf", "X-Mode": "alpha", "X-Extra": "yes"}
    assert dict(found["beta"].headers) == {"X-Team": "perf", "X-Mode": "shared"}
    assert dict(found["alpha"].extra_body) == {"a": 1, "b": 2, "c": 3}
    assert dict(found["beta"].extra_body) == {"a": 1, "b": 1}


def test_targets_share_the_load_and_beat_flags(tmp_path: Path) -> None:
    found = targets(tmp_path, TWO_TARGETS, "--seed", "3", "--model", "flagged")
    assert (found["alpha"].model, found["beta"].model) == ("m-alpha", "flagged")
    for cfg in found.values():
        assert cfg.rates_rps == (1.0, 2.0)
        assert (cfg.num_requests, cfg.trim, cfg.seed) == (50, 5, 3)
        assert cfg.workload == WorkloadConfig()


def test_base_url_with_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="--base-url"):
        targets(tmp_path, TWO_TARGETS, "--base-url", "http://x")
    monkeypatch.setenv("LOADGEN_BASE_URL", "http://x")
    with pytest.raises(ConfigError, match="exclude each other"):
        targets(tmp_path, TWO_TARGETS)


def test_unusable_target_config_names_it(tmp_path: Path) -> None:
    text = 'rates = [1]\n[[targets]]\nname = "ok"\nbase_url = "http://a"\n'
    text += '[[targets]]\nname = "slow"\nbase_url = "http://b"\nconnect_timeout = 0\n'
    with pytest.raises(ConfigError, match=r"^target slow: --connect-timeout must be > 0"):
        targets(tmp_path, text)


def test_api_key_value_is_never_public(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-unique-7f3a9c-never-logged"
    monkeypatch.setenv("ALPHA_KEY", secret)
    alpha = targets(tmp_path, TWO_TARGETS)["alpha"]
    assert alpha.api_key() == secret
    public = alpha.public_dict()
    assert public["api_key_env"] == "ALPHA_KEY"
    assert secret not in str(public)
    assert "perf" not in str(public["headers"])


# --- finding the file ---------------------------------------------------------------------------


def test_sweep_file_of(tmp_path: Path) -> None:
    path = write(tmp_path, URL)
    assert sweep_file_of([]) is None
    assert sweep_file_of(["run", "--config", str(path)]) is None
    assert sweep_file_of(["sweep", "--rates", "1"]) is None
    found = sweep_file_of(["sweep", "--rates", "1", f"--config={path}"])
    assert found is not None
    assert found.path == path
    assert dict(found.options) == {"base_url": "http://h:8000"}


def test_config_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, URL + "rates = [2]\n")
    monkeypatch.setenv("LOADGEN_CONFIG", str(path))
    assert sweep_file_of(["run", "--rate", "1"]) is None
    found = sweep_file_of(["sweep"])
    assert found is not None
    assert found.path == path
    cfg = config_from_args(build_parser(found).parse_args(["sweep"]))
    assert cfg.rates_rps == (2.0,)
    # --config beats the variable, which here names no file.
    monkeypatch.setenv("LOADGEN_CONFIG", str(tmp_path / "absent.toml"))
    found = sweep_file_of(["sweep", "--config", str(path)])
    assert found is not None
    assert found.path == path
    with pytest.raises(ConfigError, match="cannot read"):
        sweep_file_of(["sweep"])
