"""Tests for loadgen.cli.run: run, sweep and simulate resolve a RunConfig from file, env, flags."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pytest

from loadgen.cli import build_parser, main
from loadgen.cli.run import resolved_run, run_flags
from loadgen.config import ConfigError, Resolved, RunConfig

URL = "http://h:8000"
# Keeps a run that wrongly got past its usage error short: three requests, all at once.
SHORT = ["--rate", "inf", "--num-requests", "3", "--trim", "0"]


def resolved(*argv: str) -> Resolved[RunConfig]:
    """What `loadgen ARGV` would run with, and where each value came from."""
    args = build_parser().parse_args(list(argv))
    return resolved_run(args, run_flags(argv[0]))


def config_of(*argv: str) -> RunConfig:
    return resolved(*argv).config


def config_error(*argv: str) -> str:
    """The message of the ConfigError that resolving `loadgen ARGV` must raise."""
    with pytest.raises(ConfigError) as caught:
        resolved(*argv)
    return str(caught.value)


def parse_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The stderr of `loadgen ARGV`, which argparse must refuse (exit 2)."""
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(argv)
    assert caught.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line of `loadgen ARGV`, which must stop before running with exit 2."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.endswith("\n")
    assert "Traceback" not in captured.err
    return captured.err


def write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- flags to the config ------------------------------------------------------------------------


def test_run_minimal_takes_the_defaults() -> None:
    config = config_of("run", "--rate", "2.5", "--base-url", URL)
    assert config.target.model_dump() == {
        "name": None,
        "base_url": "http://h:8000/v1",
        "model": None,
        "api_key_env": None,
        "headers": {},
        "endpoint": "completions",
        "stream": True,
        "ignore_eos": None,
        "min_tokens": None,
        "temperature": None,
        "top_k": None,
        "top_p": None,
        "extra_body": {},
        "tokenizer": None,
        "connect_timeout_s": 10.0,
        "ttft_timeout_s": 600.0,
        "idle_timeout_s": 120.0,
        "request_timeout_s": 3600.0,
        "server_metrics": "auto",
    }
    assert config.targets == ()
    assert config.load.model_dump() == {
        "rates_rps": (2.5,),
        "auto_steps": 8,
        "num_requests": 1000,
        "duration_s": None,
        "trim": 100,
        "repeats": 1,
        "arrival": "poisson",
        "burstiness": 1.0,
        "trace": None,
        "time_scale": 1.0,
        "seed": 0,
        "max_concurrency": None,
        "max_start_rate_rps": None,
        "slos": {},
        "drain_timeout_s": 30.0,
    }
    assert config.workload.model_dump() == {
        "dataset": "synthetic",
        "dataset_format": "auto",
        "input_len": 128,
        "output_len": 128,
        "min_input": None,
        "max_input": None,
        "max_output": None,
        "shuffle": False,
        "replacement": False,
        "prompt_template": None,
        "prefix_tokens": 0,
        "num_prefixes": 1,
        "prefix_zipf": None,
        "multi_turn": False,
        "turns": "4",
        "think_time_s": 0.0,
    }
    assert config.output.out_dir is None
    assert (config.metrics.port, config.metrics.pushgateway) == (None, None)


def test_base_url_is_optional_for_the_built_in_simulator() -> None:
    assert config_of("run", "--rate", "1").target.base_url is None


def test_run_inf_rate() -> None:
    assert config_of("run", "--rate", "inf").load.rates_rps == (math.inf,)


def test_sweep_rates() -> None:
    assert config_of("sweep", "--rates", "1,2,4,inf").load.rates_rps == (1.0, 2.0, 4.0, math.inf)


def test_sweep_rate_range() -> None:
    assert config_of("sweep", "--rate-range", "0.5:2:0.5").load.rates_rps == (0.5, 1.0, 1.5, 2.0)


def test_every_target_flag_reaches_the_config(tmp_path: Path) -> None:
    target = config_of(
        "sweep",
        "--rates",
        "1,2",
        "--base-url",
        "https://h/custom/",
        "--model",
        "llama",
        "--api-key-env",
        "MY_KEY",
        "--header",
        "X-One: 1",
        "--header",
        "X-Two:  two words ",
        "--endpoint",
        "chat",
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
        "--tokenizer",
        "tiktoken:cl100k_base",
        "--connect-timeout",
        "1",
        "--ttft-timeout",
        "2",
        "--idle-timeout",
        "3",
        "--request-timeout",
        "4",
    ).target
    assert target.base_url == "https://h/custom"
    assert target.model == "llama"
    assert target.api_key_env == "MY_KEY"
    assert target.headers == {"X-One": "1", "X-Two": "two words"}
    assert target.endpoint == "chat"
    assert target.stream is False
    assert target.ignore_eos is False
    assert (target.min_tokens, target.temperature, target.top_k, target.top_p) == (3, 0.5, 4, 0.9)
    assert target.extra_body == {"seed": 7, "n": {"a": [1]}}
    assert target.tokenizer == "tiktoken:cl100k_base"
    assert (
        target.connect_timeout_s,
        target.ttft_timeout_s,
        target.idle_timeout_s,
        target.request_timeout_s,
    ) == (1.0, 2.0, 3.0, 4.0)


def test_every_load_flag_reaches_the_config() -> None:
    load = config_of(
        "sweep",
        "--rates",
        "1,2",
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
        "--max-start-rate",
        "2.5",
        "--slo",
        "e2e=2,per_token=0.1",
        "--drain-timeout",
        "5",
    ).load
    assert load.model_dump() == {
        "rates_rps": (1.0, 2.0),
        "auto_steps": 8,
        "num_requests": 50,
        "duration_s": None,
        "trim": 5,
        "repeats": 1,
        "arrival": "gamma",
        "burstiness": 0.5,
        "trace": None,
        "time_scale": 1.0,
        "seed": 9,
        "max_concurrency": 8,
        "max_start_rate_rps": 2.5,
        "slos": {"e2e": 2.0, "per_token": 0.1},
        "drain_timeout_s": 5.0,
    }


def test_duration_replaces_the_number_of_requests() -> None:
    load = config_of("run", "--rate", "10", "--duration", "60", "--trim", "5").load
    assert (load.duration_s, load.num_requests, load.trim) == (60.0, 1000, 5)


def test_trace_replay_needs_no_rate() -> None:
    load = config_of("run", "--arrival", "trace", "--trace", "t.jsonl", "--time-scale", "0.5").load
    assert (load.arrival, load.trace, load.rates_rps, load.time_scale) == (
        "trace",
        "t.jsonl",
        (),
        0.5,
    )


def test_workload_flags_reach_the_config() -> None:
    workload = config_of(
        "run",
        "--rate",
        "1",
        "--dataset",
        "data.json",
        "--dataset-format",
        "sharegpt",
        "--input-len",
        "64",
        "--output-len",
        "32",
        "--min-input",
        "1100",
        "--max-input",
        "1500",
        "--max-output",
        "120",
        "--shuffle",
        "--prompt-template",
        "llama2",
    ).workload
    assert workload.model_dump() == {
        "dataset": "data.json",
        "dataset_format": "sharegpt",
        "input_len": 64,
        "output_len": 32,
        "min_input": 1100,
        "max_input": 1500,
        "max_output": 120,
        "shuffle": True,
        "replacement": False,
        "prompt_template": "llama2",
        "prefix_tokens": 0,
        "num_prefixes": 1,
        "prefix_zipf": None,
        "multi_turn": False,
        "turns": "4",
        "think_time_s": 0.0,
    }
    assert config_of("run", "--rate", "1", "--replacement").workload.replacement is True


def test_output_metrics_and_sim_flags_reach_the_config(tmp_path: Path) -> None:
    config = config_of(
        "sweep",
        "--rates",
        "1",
        "--out",
        str(tmp_path / "res"),
        "--metrics-port",
        "0",
        "--metrics-host",
        "0.0.0.0",
        "--metrics-linger",
        "2.5",
        "--pushgateway",
        "http://pg:9091",
        "--gpu",
        "h100",
        "--sim-model",
        "mistral-7b",
        "--policy",
        "splitfuse",
        "--cost-model",
        "paper",
        "--sim-config",
        "engine.toml",
        "--max-num-seqs",
        "8",
        "--max-num-batched-tokens",
        "4096",
        "--token-budget",
        "256",
        "--gpu-memory-utilization",
        "0.8",
        "--eos-mean-tokens",
        "64",
    )
    assert config.output.out_dir == tmp_path / "res"
    assert config.metrics.model_dump() == {
        "port": 0,
        "host": "0.0.0.0",
        "linger_s": 2.5,
        "pushgateway": "http://pg:9091",
    }
    assert config.sim.model_dump() == {
        "gpu": "h100",
        "model": "mistral-7b",
        "policy": "splitfuse",
        "cost_model": "paper",
        "config_file": Path("engine.toml"),
        "max_num_seqs": 8,
        "max_num_batched_tokens": 4096,
        "token_budget": 256,
        "gpu_memory_utilization": 0.8,
        "eos_mean_tokens": 64.0,
        "enable_prefix_caching": None,
        "reasoning_tokens": "0",
    }


def test_ignore_eos_flag() -> None:
    assert config_of("run", "--rate", "1", "--ignore-eos").target.ignore_eos is True


def test_header_value_may_contain_colons() -> None:
    target = config_of("run", "--rate", "1", "--header", "X-Url: http://a:1")
    assert target.target.headers == {"X-Url": "http://a:1"}


def test_slo_ttft_tpot() -> None:
    assert config_of("run", "--rate", "1", "--slo", "ttft=0.5,tpot=0.05").load.slos == {
        "ttft": 0.5,
        "tpot": 0.05,
    }


def test_sources_are_labelled_by_flag() -> None:
    labels = resolved("sweep", "--rate-range", "1:3:1", "--trim", "5").labels
    assert dict(labels) == {("load", "rates_rps"): "--rate-range", ("load", "trim"): "--trim"}


# --- problems with flags ------------------------------------------------------------------------


def test_rates_and_rate_range_are_mutually_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    err = parse_error(["sweep", "--rates", "1,2", "--rate-range", "1:2:1"], capsys)
    assert err == (
        "loadgen sweep: error: argument --rate-range: not allowed with argument --rates "
        "(see --help)\n"
    )


def test_run_has_no_rates_flag(capsys: pytest.CaptureFixture[str]) -> None:
    err = parse_error(["run", "--rate", "1", "--rates", "1,2"], capsys)
    assert err == "loadgen: error: unrecognized arguments: --rates 1,2 (see --help)\n"


def test_run_takes_one_rate(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(["run", "--rate", "1,2"], capsys)
    assert err == "error: --rate: run takes one rate; sweep takes several\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sweep"], "--rates or --rate-range: no request rate given"),
        (["run"], "--rate: no request rate given"),
        (["simulate"], "--rates or --rate-range: no request rate given"),
    ],
)
def test_missing_rates_error_names_the_flags(argv: list[str], message: str) -> None:
    assert config_error(*argv) == message


def test_missing_rates_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(["sweep", "--num-requests", "3", "--trim", "0"], capsys)
    assert err == "error: --rates or --rate-range: no request rate given\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--rate", "2", "--trace", "t.jsonl"],
            "--trace: a trace FILE needs arrival trace",
        ),
        (
            ["--arrival", "trace", "--trace", "t.csv", "--rate", "2"],
            "--rate: a replayed trace sets its own rate: give no rates",
        ),
        (
            ["--arrival", "trace", "--trace", "t.csv", "--time-scale", "0"],
            "--time-scale: must be greater than 0 (got '0')",
        ),
        (
            ["--arrival", "trace", "--trace", "t.csv", "--dataset", "s2s"],
            "--dataset: a replayed trace brings its own lengths",
        ),
    ],
)
def test_trace_flag_conflicts(argv: list[str], message: str) -> None:
    assert config_error("run", *argv) == message


def test_trace_arrival_without_a_file() -> None:
    assert (
        config_error("run", "--arrival", "trace") == "--arrival: arrival trace needs a trace FILE"
    )


def test_streaming_slos_need_streaming() -> None:
    assert config_error("run", "--rate", "1", "--no-stream", "--slo", "ttft=1") == (
        "--no-stream: ttft and tpot SLOs need streaming"
    )


def test_duration_and_num_requests_flags_exclude_each_other() -> None:
    assert config_error("run", "--rate", "10", "--duration", "60", "--num-requests", "500") == (
        "--num-requests and --duration exclude each other"
    )


def test_unknown_prompt_template_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(["run", *SHORT, "--prompt-template", "x"], capsys)
    assert err == "error: --prompt-template: unknown template 'x'; choose from llama2\n"


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (["--rate", "0"], "--rate: invalid rate '0'"),
        (["--rate", "fast"], "--rate: invalid rate 'fast'"),
        (["--header", "no-colon"], "--header: a header must look like 'Name: value'"),
        (["--header", ": v"], "--header: a header must look like 'Name: value'"),
        (["--extra-body", "[1, 2]"], "--extra-body: must be a JSON object"),
        (["--extra-body", "{oops"], "--extra-body: not valid JSON"),
        (["--slo", "speed=1"], "--slo: unknown SLO key 'speed'"),
        (["--slo", "ttft=-1"], "--slo: SLO 'ttft'"),
        (["--num-requests", "many"], "--num-requests: "),
        (["--arrival", "uniform"], "--arrival: unknown arrival 'uniform'"),
        (["--endpoint", "embed"], "--endpoint: "),
        (["--base-url", "ftp://x"], "--base-url: "),
        (["--top-p", "0"], "--top-p: "),
        (["--num-requests", "200", "--trim", "100"], "--num-requests: 200 requests leave nothing"),
        (["--shuffle", "--replacement"], "--replacement: shuffle and replacement exclude"),
    ],
)
def test_bad_flag_values_are_one_line_usage_errors(
    bad: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(["run", *SHORT, *bad], capsys)
    assert err.startswith("error: " + fragment), err


def test_sweep_rate_errors_name_the_flag() -> None:
    assert config_error("sweep", "--rates", "1,,2").startswith("--rates: invalid rate list '1,,2'")
    assert config_error("sweep", "--rate-range", "1:2").startswith(
        "--rate-range: invalid rate range '1:2'"
    )


# --- LOADGEN_* variables ------------------------------------------------------------------------


def test_base_url_from_env_when_flag_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_BASE_URL", "http://env-host:9000")
    assert config_of("run", "--rate", "1").target.base_url == "http://env-host:9000/v1"


def test_base_url_flag_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_BASE_URL", "http://env-host:9000")
    found = resolved("sweep", "--rates", "1", "--base-url", "http://flag-host:8000")
    assert found.config.target.base_url == "http://flag-host:8000/v1"
    assert found.source_of(("target", "base_url")) == "--base-url"


def test_typed_env_values_are_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_NUM_REQUESTS", "300")
    monkeypatch.setenv("LOADGEN_SLO", "e2e=3")
    monkeypatch.setenv("LOADGEN_SHUFFLE", "true")
    found = resolved("run", "--rate", "1")
    assert found.config.load.num_requests == 300
    assert found.config.load.slos == {"e2e": 3.0}
    assert found.config.workload.shuffle is True
    assert found.source_of(("load", "num_requests")) == "LOADGEN_NUM_REQUESTS"


def test_run_rate_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_RATE", "7")
    assert config_of("run").load.rates_rps == (7.0,)


def test_sweep_rates_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_RATES", "1,2")
    assert config_of("sweep").load.rates_rps == (1.0, 2.0)


def test_rate_flag_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_RATES", "1,2")
    assert config_of("run", "--rate", "3").load.rates_rps == (3.0,)


def test_two_variables_for_one_field_are_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_RATE", "1")
    monkeypatch.setenv("LOADGEN_RATES", "2")
    assert config_error("run") == (
        "LOADGEN_RATES and LOADGEN_RATE set the same thing: give one of them"
    )


def test_empty_variable_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_NUM_REQUESTS", "  ")
    assert config_of("run", "--rate", "1").load.num_requests == 1000


def test_bad_env_value_is_a_usage_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOADGEN_NUM_REQUESTS", "lots")
    err = usage_error(["run", "--rate", "inf", "--trim", "0"], capsys)
    assert err.startswith("error: LOADGEN_NUM_REQUESTS: "), err
    assert "'lots'" in err


def test_bad_env_rate_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOADGEN_RATE", "fast")
    err = usage_error(["run", "--num-requests", "3", "--trim", "0"], capsys)
    assert err.startswith("error: LOADGEN_RATE: invalid rate 'fast'"), err


def test_env_rates_for_run_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOADGEN_RATES", "1,2")
    err = usage_error(["run", "--num-requests", "3", "--trim", "0"], capsys)
    assert err == "error: LOADGEN_RATES: run takes one rate; sweep takes several\n"


def test_flag_num_requests_drops_an_env_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_DURATION", "60")
    load = config_of("run", "--rate", "1", "--num-requests", "500").load
    assert (load.num_requests, load.duration_s) == (500, None)


def test_env_and_flag_headers_add_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_HEADER", "X-Key: abc")
    headers = config_of("run", "--rate", "1", "--header", "X-Other: 1").target.headers
    assert headers == {"X-Key": "abc", "X-Other": "1"}


def test_flag_header_wins_over_env_header_of_the_same_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOADGEN_HEADER", "x-key: env")
    assert config_of("run", "--rate", "1", "--header", "X-Key: flag").target.headers == {
        "X-Key": "flag"
    }


# --- sweep files --------------------------------------------------------------------------------


def test_sweep_file_then_env_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[load]\nrates_rps = [1, 2]\ntrim = 5\nseed = 4\nnum_requests = 50\n")
    found = resolved("sweep", "--config", str(path))
    assert (found.config.load.trim, found.config.load.seed) == (5, 4)
    assert found.source_of(("load", "trim")) == f"{path}: load.trim"
    monkeypatch.setenv("LOADGEN_TRIM", "6")
    monkeypatch.setenv("LOADGEN_SEED", "8")
    found = resolved("sweep", "--config", str(path), "--trim", "7")
    assert found.config.load.rates_rps == (1.0, 2.0)
    assert (found.config.load.trim, found.config.load.seed) == (7, 8)
    assert found.source_of(("load", "trim")) == "--trim"
    assert found.source_of(("load", "seed")) == "LOADGEN_SEED"


def test_sweep_file_from_loadgen_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "load:\n  rates_rps: '1,2'\n", "sweep.yaml")
    monkeypatch.setenv("LOADGEN_CONFIG", str(path))
    assert config_of("sweep").load.rates_rps == (1.0, 2.0)


def test_sweep_file_targets(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[target]\nmodel = 'common'\n[load]\nrates_rps = [1]\n"
        "[[targets]]\nname = 'alpha'\nbase_url = 'http://a:8000'\n"
        "[[targets]]\nname = 'beta'\nbase_url = 'http://b:9000/v1'\nmodel = 'own'\n",
    )
    config = config_of("sweep", "--config", str(path), "--endpoint", "chat")
    assert [(t.name, t.base_url, t.model, t.endpoint) for t in config.targets] == [
        ("alpha", "http://a:8000/v1", "common", "chat"),
        ("beta", "http://b:9000/v1", "own", "chat"),
    ]


def test_bad_sweep_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "[load]\nrates_rps = 'inf'\nnum_requests = 3\ntrim = 0\ntrimm = 1\n")
    err = usage_error(["sweep", "--config", str(path)], capsys)
    assert err == f"error: {path}: load.trimm: unknown key (did you mean trim?)\n"


# --- simulate -----------------------------------------------------------------------------------


def test_simulate_model_is_the_simulator_preset() -> None:
    config = config_of("simulate", "--rates", "1", "--model", "llama-2-13b")
    assert config.sim.model == "llama-2-13b"
    assert config.target.model is None


def test_simulate_keeps_the_request_options() -> None:
    target = config_of(
        "simulate", "--rates", "1", "--endpoint", "chat", "--ignore-eos", "--min-tokens", "4"
    ).target
    assert (target.endpoint, target.ignore_eos, target.min_tokens) == ("chat", True, 4)


@pytest.mark.parametrize(
    "flag", ["--base-url", "--header", "--sim-model", "--temperature", "--api-key-env"]
)
def test_simulate_has_no_server_flags(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    err = parse_error(["simulate", "--rates", "1", flag, "x"], capsys)
    assert err == f"loadgen: error: unrecognized arguments: {flag} x (see --help)\n"


def test_simulate_offers_model_in_its_help(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "1000")
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    flags = {words[0] for words in lines if words and words[0].startswith("--")}
    assert "--model" in flags
    assert "--base-url" not in flags
    assert "--header" not in flags
    assert "--sim-model" not in flags


def test_simulate_refuses_a_server_url_from_env(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOADGEN_BASE_URL", "http://env-host:9000")
    err = usage_error(["simulate", "--rates", "inf", "--num-requests", "3", "--trim", "0"], capsys)
    assert err == "error: LOADGEN_BASE_URL: simulating in virtual time sends to no server\n"


def test_simulate_refuses_a_concurrency_cap(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--rates", "inf", "--num-requests", "3", "--trim", "0"]
    err = usage_error([*argv, "--max-concurrency", "2"], capsys)
    assert err == "error: --max-concurrency: not modelled in virtual time\n"


def test_simulate_refuses_processes_from_env(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOADGEN_PROCESSES", "2")
    err = usage_error(["simulate", "--rates", "inf", "--num-requests", "3", "--trim", "0"], capsys)
    assert err == "error: LOADGEN_PROCESSES: virtual time runs in one process\n"


def test_master_refuses_processes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOADGEN_PROCESSES", "2")
    err = usage_error(["master", "--rates", "10"], capsys)
    assert err.startswith("error: LOADGEN_PROCESSES: a master's shards are its workers")


def test_results_of_a_run_run_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A short virtual-time run (no server, no load), then its summary.json as --config.
    out = tmp_path / "first"
    argv = ["simulate", "--rates", "2", "--num-requests", "3", "--trim", "0", "--out", str(out)]
    assert main([*argv, "--quiet"]) == 0
    capsys.readouterr()
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["tool"] == "loadgen"
    again = resolved("simulate", "--config", str(out / "summary.json"))
    assert again.config.load.rates_rps == (2.0,)
    assert (again.config.load.num_requests, again.config.load.trim) == (3, 0)
    assert again.config.output.out_dir is None
