"""Tests for loadgen.cli: flags to RunConfig, one-line usage errors, LOADGEN_* env defaults."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from loadgen.cli import build_parser, config_from_args
from loadgen.client.openai import Timeouts
from loadgen.config import ConfigError, RunConfig, WorkloadConfig

URL = "http://h:8000"


def parse(argv: Sequence[str]) -> RunConfig:
    """The RunConfig that `loadgen ARGV` describes."""
    return config_from_args(build_parser().parse_args(list(argv)))


def usage_error(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The stderr of `loadgen ARGV`, which must be an argparse usage error (exit 2)."""
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(list(argv))
    assert caught.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


# --- mapping ------------------------------------------------------------------------------------


def test_run_minimal() -> None:
    cfg = parse(["run", "--rate", "2.5", "--base-url", URL])
    assert cfg.rates_rps == (2.5,)
    assert cfg.base_url == "http://h:8000/v1"
    assert cfg.endpoint == "completions"
    assert cfg.model is None
    assert cfg.stream is True
    assert cfg.ignore_eos is None
    assert cfg.workload == WorkloadConfig("synthetic", 128, 128)
    assert (cfg.num_requests, cfg.trim, cfg.arrival, cfg.burstiness, cfg.seed) == (
        1000,
        100,
        "poisson",
        1.0,
        0,
    )
    assert cfg.max_concurrency is None
    assert dict(cfg.headers) == {}
    assert dict(cfg.extra_body) == {}
    assert dict(cfg.slos) == {}
    assert cfg.timeouts == Timeouts()
    assert cfg.drain_timeout_s == 30.0
    assert cfg.out_dir is None


def test_run_inf_rate() -> None:
    assert parse(["run", "--rate", "inf", "--base-url", URL]).rates_rps == (math.inf,)


def test_sweep_rates() -> None:
    cfg = parse(["sweep", "--rates", "1,2,4,inf", "--base-url", URL])
    assert cfg.rates_rps == (1.0, 2.0, 4.0, math.inf)


def test_sweep_rate_range() -> None:
    cfg = parse(["sweep", "--rate-range", "0.5:2:0.5", "--base-url", URL])
    assert cfg.rates_rps == (0.5, 1.0, 1.5, 2.0)


def test_every_option_is_mapped(tmp_path: Path) -> None:
    cfg = parse(
        [
            "sweep",
            "--rates",
            "1,2",
            "--base-url",
            "https://h/custom/",
            "--endpoint",
            "chat",
            "--model",
            "llama",
            "--api-key-env",
            "MY_KEY",
            "--header",
            "X-One: 1",
            "--header",
            "X-Two:  two words ",
            "--no-stream",
            "--no-ignore-eos",
            "--min-tokens",
            "3",
            "--temperature",
            "0.5",
            "--top-k",
            "4",
            "--top-p",
            "0.9",
            "--extra-body",
            '{"seed": 7, "n": {"a": [1]}}',
            "--dataset",
            "prompts.jsonl",
            "--input-len",
            "64",
            "--output-len",
            "32",
            "--num-requests",
            "50",
            "--trim",
            "5",
            "--arrival",
            "gamma",
            "--burstiness",
            "0.5",
            "--seed",
            "9",
            "--max-concurrency",
            "8",
            "--slo",
            "e2e=2,per_token=0.1",
            "--connect-timeout",
            "1",
            "--ttft-timeout",
            "2",
            "--idle-timeout",
            "3",
            "--request-timeout",
            "4",
            "--drain-timeout",
            "5",
            "--out",
            str(tmp_path),
        ]
    )
    assert cfg.rates_rps == (1.0, 2.0)
    assert cfg.base_url == "https://h/custom"
    assert cfg.endpoint == "chat"
    assert cfg.model == "llama"
    assert cfg.api_key_env == "MY_KEY"
    assert dict(cfg.headers) == {"X-One": "1", "X-Two": "two words"}
    assert cfg.stream is False
    assert cfg.ignore_eos is False
    assert (cfg.min_tokens, cfg.temperature, cfg.top_k, cfg.top_p) == (3, 0.5, 4, 0.9)
    assert dict(cfg.extra_body) == {"seed": 7, "n": {"a": [1]}}
    assert cfg.workload == WorkloadConfig("prompts.jsonl", 64, 32)
    assert (cfg.num_requests, cfg.trim, cfg.arrival, cfg.burstiness, cfg.seed) == (
        50,
        5,
        "gamma",
        0.5,
        9,
    )
    assert cfg.max_concurrency == 8
    assert dict(cfg.slos) == {"e2e": 2.0, "per_token": 0.1}
    assert cfg.timeouts == Timeouts(connect_s=1.0, ttft_s=2.0, idle_s=3.0, total_s=4.0)
    assert cfg.drain_timeout_s == 5.0
    assert cfg.out_dir == tmp_path


def test_ignore_eos_flag() -> None:
    assert parse(["run", "--rate", "1", "--base-url", URL, "--ignore-eos"]).ignore_eos is True


def test_header_value_may_contain_colons() -> None:
    cfg = parse(["run", "--rate", "1", "--base-url", URL, "--header", "X-Url: http://a:1"])
    assert dict(cfg.headers) == {"X-Url": "http://a:1"}


def test_slo_ttft_tpot() -> None:
    cfg = parse(["run", "--rate", "1", "--base-url", URL, "--slo", "ttft=0.5,tpot=0.05"])
    assert dict(cfg.slos) == {"ttft": 0.5, "tpot": 0.05}


def test_inconsistent_flags_raise_config_error() -> None:
    args = build_parser().parse_args(
        ["run", "--rate", "1", "--base-url", URL, "--no-stream", "--slo", "ttft=1"]
    )
    with pytest.raises(ConfigError, match="need streaming"):
        config_from_args(args)


def test_base_url_is_optional_for_the_built_in_simulator() -> None:
    assert parse(["run", "--rate", "1"]).base_url is None


# --- usage errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "required"),
        (["bench"], "invalid choice"),
        (["run", "--rate", "0", "--base-url", URL], "invalid rate '0'"),
        (["run", "--rate", "fast", "--base-url", URL], "invalid rate 'fast'"),
        (["sweep", "--rates", "1,,2", "--base-url", URL], "empty entry"),
        (["sweep", "--rate-range", "1:2", "--base-url", URL], "START:STOP:STEP"),
        (["run", "--rate", "1", "--base-url", URL, "--header", "no-colon"], "Name: value"),
        (["run", "--rate", "1", "--base-url", URL, "--header", ": v"], "Name: value"),
        (["run", "--rate", "1", "--base-url", URL, "--extra-body", "[1, 2]"], "JSON object"),
        (["run", "--rate", "1", "--base-url", URL, "--extra-body", "{oops"], "--extra-body"),
        (["run", "--rate", "1", "--base-url", URL, "--slo", "speed=1"], "unknown SLO key"),
        (["run", "--rate", "1", "--base-url", URL, "--slo", "ttft=-1"], "ttft"),
        (["run", "--rate", "1", "--base-url", URL, "--num-requests", "many"], "--num-requests"),
        (["run", "--rate", "1", "--base-url", URL, "--arrival", "uniform"], "invalid choice"),
        (["run", "--rate", "1", "--base-url", URL, "--endpoint", "embed"], "invalid choice"),
        (["run", "--rate", "1", "--base-url", URL, "--bogus"], "unrecognized arguments"),
    ],
)
def test_usage_error_is_one_line_with_help_hint(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(argv, capsys)
    assert err.endswith("\n")
    assert err.count("\n") == 1, err
    assert err.startswith("loadgen")
    assert "error:" in err
    assert "see --help" in err
    assert fragment in err


def test_rates_and_rate_range_are_mutually_exclusive(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = usage_error(
        ["sweep", "--rates", "1,2", "--rate-range", "1:2:1", "--base-url", URL], capsys
    )
    assert "not allowed with argument" in err
    assert "see --help" in err


def test_run_has_no_rates_flag(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(["run", "--rate", "1", "--rates", "1,2", "--base-url", URL], capsys)
    assert "unrecognized arguments" in err


# --- LOADGEN_* environment defaults -------------------------------------------------------------


def test_base_url_from_env_when_flag_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_BASE_URL", "http://env-host:9000")
    assert parse(["run", "--rate", "1"]).base_url == "http://env-host:9000/v1"


def test_base_url_flag_overrides_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_BASE_URL", "http://env-host:9000")
    cfg = parse(["sweep", "--rates", "1", "--base-url", "http://flag-host:8000"])
    assert cfg.base_url == "http://flag-host:8000/v1"


def test_typed_env_default_is_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_NUM_REQUESTS", "300")
    monkeypatch.setenv("LOADGEN_SLO", "e2e=3")
    cfg = parse(["run", "--rate", "1", "--base-url", URL])
    assert cfg.num_requests == 300
    assert dict(cfg.slos) == {"e2e": 3.0}


def test_run_rate_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_RATE", "7")
    assert parse(["run", "--base-url", URL]).rates_rps == (7.0,)


def test_bad_env_default_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOADGEN_NUM_REQUESTS", "lots")
    err = usage_error(["run", "--rate", "1", "--base-url", URL], capsys)
    assert "--num-requests" in err
    assert "see --help" in err


def test_sweep_without_rates_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--rates or --rate-range"):
        parse(["sweep", "--base-url", URL])


def test_run_without_rate_is_a_config_error_unless_replaying_a_trace() -> None:
    with pytest.raises(ConfigError, match=r"run needs --rate \(or --arrival trace\)"):
        parse(["run", "--base-url", URL])
    cfg = parse(["run", "--base-url", URL, "--arrival", "trace", "--trace", "t.jsonl"])
    assert (cfg.arrival, cfg.trace, cfg.rates_rps, cfg.time_scale) == ("trace", "t.jsonl", (), 1.0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--arrival", "trace"], "--arrival trace and --trace FILE go together"),
        (["--rate", "2", "--trace", "t.jsonl"], "--arrival trace and --trace FILE go together"),
        (["--arrival", "trace", "--trace", "t.csv", "--rate", "2"], "without --rate"),
        (["--arrival", "trace", "--trace", "t.csv", "--time-scale", "0"], "--time-scale"),
        (["--arrival", "trace", "--trace", "t.csv", "--dataset", "s2s"], "drop --dataset"),
    ],
)
def test_trace_flag_conflicts(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(["run", "--base-url", URL, *argv])


def test_header_env_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    # --header repeats, so it has no single LOADGEN_ default; the variable must not break parsing.
    monkeypatch.setenv("LOADGEN_HEADER", "X-Key: abc")
    assert dict(parse(["run", "--rate", "1", "--base-url", URL]).headers) == {}


def test_header_flag_with_env_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_HEADER", "X-Key: abc")
    cfg = parse(["run", "--rate", "1", "--base-url", URL, "--header", "X-Other: 1"])
    assert dict(cfg.headers) == {"X-Other": "1"}


def test_sweep_rates_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_RATES", "1,2")
    assert parse(["sweep", "--base-url", URL]).rates_rps == (1.0, 2.0)


def test_workload_flags_reach_the_config() -> None:
    cfg = parse(
        [
            "run",
            "--rate",
            "1",
            "--base-url",
            URL,
            "--dataset",
            "data.json",
            "--dataset-format",
            "sharegpt",
            "--min-input",
            "1100",
            "--max-input",
            "1500",
            "--max-output",
            "120",
            "--shuffle",
            "--prompt-template",
            "llama2",
        ]
    )
    assert cfg.workload == WorkloadConfig(
        dataset="data.json",
        dataset_format="sharegpt",
        min_input=1100,
        max_input=1500,
        max_output=120,
        shuffle=True,
        prompt_template="llama2",
    )


def test_unknown_prompt_template_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(["run", "--rate", "1", "--base-url", URL, "--prompt-template", "x"], capsys)
    assert "llama2" in err
