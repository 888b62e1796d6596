"""Tests for loadgen.config: validation messages, request options, API key lookup, public dict."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from loadgen.client.openai import Timeouts
from loadgen.config import ConfigError, MetricsEndpoint, RunConfig, WorkloadConfig

URL = "http://h:8000"
INF = math.inf
NAN = math.nan


def config(**overrides: Any) -> RunConfig:
    """A valid RunConfig (1 req/s against URL) with `overrides` applied."""
    fields: dict[str, Any] = {"base_url": URL, "rates_rps": (1.0,)}
    fields.update(overrides)
    return RunConfig(**fields)


def test_defaults_are_valid() -> None:
    cfg = config()
    assert cfg.rates_rps == (1.0,)
    assert cfg.num_requests == 1000
    assert cfg.trim == 100


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://h:8000", "http://h:8000/v1"),
        ("http://h:8000/v1/", "http://h:8000/v1"),
        ("https://h/custom/", "https://h/custom"),
    ],
)
def test_base_url_is_normalised(given: str, expected: str) -> None:
    assert config(base_url=given).base_url == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://h:8000", "http:// or https://"),
        ("http://", "no host"),
        ("http://h:nope", "invalid port"),
        ("http://h:8000/v1?x=1", "query or fragment"),
    ],
)
def test_bad_base_url_is_a_config_error(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config(base_url=url)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rates_rps": ()}, "no request rate given"),
        ({"rates_rps": (0.0,)}, r"request rates must be > 0 \(or inf\)"),
        ({"rates_rps": (1.0, -2.0)}, r"request rates must be > 0"),
        ({"rates_rps": (NAN,)}, r"request rates must be > 0"),
        ({"trim": -1}, "--trim must be >= 0"),
        (
            {"num_requests": 200, "trim": 100},
            "--num-requests 200 leaves nothing after trimming 100 from each end: "
            "use more than 200 requests or a smaller --trim",
        ),
        ({"num_requests": 0, "trim": 0}, "--num-requests 0 leaves nothing"),
        ({"arrival": "uniform"}, r"--arrival must be one of .*poisson"),
        ({"burstiness": 0.0}, "--burstiness must be a finite number > 0"),
        ({"burstiness": -1.0}, "--burstiness must be a finite number > 0"),
        ({"burstiness": INF}, "--burstiness must be a finite number > 0"),
        ({"burstiness": NAN}, "--burstiness must be a finite number > 0"),
        ({"max_concurrency": 0}, "--max-concurrency must be >= 1"),
        (
            {"stream": False, "slos": {"ttft": 0.5}},
            r"ttft and tpot SLOs need streaming \(drop --no-stream\)",
        ),
        ({"stream": False, "slos": {"tpot": 0.05}}, "need streaming"),
        ({"timeouts": Timeouts(connect_s=0.0)}, "--connect-timeout must be > 0 seconds"),
        ({"timeouts": Timeouts(ttft_s=-1.0)}, "--ttft-timeout must be > 0 seconds"),
        ({"timeouts": Timeouts(idle_s=NAN)}, "--idle-timeout must be > 0 seconds"),
        ({"timeouts": Timeouts(total_s=0.0)}, "--request-timeout must be > 0 seconds"),
        ({"drain_timeout_s": 0.0}, r"drain.timeout .*must be > 0 seconds"),
    ],
)
def test_each_problem_is_a_config_error(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config(**overrides)


def test_no_stream_allows_e2e_slo() -> None:
    assert config(stream=False, slos={"e2e": 2.0}).slos == {"e2e": 2.0}


def test_smallest_num_requests_that_leaves_one_kept() -> None:
    assert config(num_requests=201, trim=100).num_requests == 201


def test_inf_rate_is_valid() -> None:
    assert config(rates_rps=(1.0, INF)).rates_rps == (1.0, INF)


# --- request_options ----------------------------------------------------------------------------


def test_request_options_ignore_eos_on_for_synthetic() -> None:
    options = config().request_options("m")
    assert options.ignore_eos is True
    assert options.model == "m"


def test_request_options_ignore_eos_none_for_file_dataset() -> None:
    cfg = config(workload=WorkloadConfig(dataset="prompts.jsonl"))
    assert cfg.request_options("m").ignore_eos is None


@pytest.mark.parametrize("dataset", ["synthetic", "prompts.jsonl"])
@pytest.mark.parametrize("ignore_eos", [True, False])
def test_request_options_explicit_ignore_eos_wins(dataset: str, ignore_eos: bool) -> None:
    cfg = config(workload=WorkloadConfig(dataset=dataset), ignore_eos=ignore_eos)
    assert cfg.request_options("m").ignore_eos is ignore_eos


def test_request_options_carry_every_body_setting() -> None:
    cfg = config(
        endpoint="chat",
        stream=False,
        min_tokens=2,
        temperature=0.3,
        top_k=5,
        top_p=0.9,
        extra_body={"seed": 1},
    )
    options = cfg.request_options("model-x")
    assert options.endpoint == "chat"
    assert options.model == "model-x"
    assert options.stream is False
    assert (options.min_tokens, options.temperature, options.top_k, options.top_p) == (
        2,
        0.3,
        5,
        0.9,
    )
    assert dict(options.extra_body) == {"seed": 1}


# --- api_key ------------------------------------------------------------------------------------


def test_api_key_none_without_env_name() -> None:
    assert config().api_key() is None


def test_api_key_reads_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_TEST_KEY", "sk-secret-1")
    assert config(api_key_env="LOADGEN_TEST_KEY").api_key() == "sk-secret-1"


def test_api_key_unset_variable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOADGEN_TEST_KEY", raising=False)
    cfg = config(api_key_env="LOADGEN_TEST_KEY")
    with pytest.raises(ConfigError, match=r"--api-key-env LOADGEN_TEST_KEY: .*not set"):
        cfg.api_key()


def test_api_key_empty_variable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_TEST_KEY", "")
    with pytest.raises(ConfigError, match="LOADGEN_TEST_KEY"):
        config(api_key_env="LOADGEN_TEST_KEY").api_key()


# --- public_dict --------------------------------------------------------------------------------


def test_public_dict_hides_header_values() -> None:
    data = config(headers={"X-Api-Key": "hdr-secret", "X-Team": "blue"}).public_dict()
    assert data["headers"] == {"X-Api-Key": "***", "X-Team": "***"}


def test_public_dict_renders_inf_rates_as_text() -> None:
    data = config(rates_rps=(0.5, 2.0, INF)).public_dict()
    assert data["rates_rps"] == [0.5, 2.0, "inf"]


def test_public_dict_is_strict_json_without_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LOADGEN_TEST_KEY", "sk-live-abcdef")
    cfg = config(
        api_key_env="LOADGEN_TEST_KEY",
        headers={"Authorization": "Bearer hdr-token-42"},
        rates_rps=(INF,),
        out_dir=tmp_path,
    )
    text = json.dumps(cfg.public_dict(), allow_nan=False)
    assert "sk-live-abcdef" not in text
    assert "hdr-token-42" not in text
    data = json.loads(text)
    assert data["api_key_env"] == "LOADGEN_TEST_KEY"  # where to find it, never what it is
    assert data["out_dir"] == str(tmp_path)
    assert data["base_url"] == "http://h:8000/v1"
    assert data["timeouts"] == {
        "connect_s": 10.0,
        "ttft_s": 600.0,
        "idle_s": 120.0,
        "total_s": 3600.0,
    }
    assert data["workload"] == {
        "dataset": "synthetic",
        "input_len": 128,
        "output_len": 128,
        "dataset_format": "auto",
        "min_input": None,
        "max_input": None,
        "max_output": None,
        "shuffle": False,
        "replacement": False,
        "prompt_template": None,
        "tokenizer": None,
    }


def test_public_dict_out_dir_none() -> None:
    assert config().public_dict()["out_dir"] is None


@pytest.mark.parametrize(
    ("overrides", "flag"),
    [
        ({"timeouts": Timeouts(total_s=0.0)}, "--request-timeout"),
        ({"drain_timeout_s": 0.0}, "--drain-timeout"),
    ],
)
def test_timeout_problems_name_the_flag(overrides: dict[str, Any], flag: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(**overrides)
    assert flag in str(caught.value)
    assert "timeout timeout" not in str(caught.value)


def test_negative_seed_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--seed"):
        config(seed=-1)


@pytest.mark.parametrize("dataset", ["s2s", "s2l", "l2s", "s16k"])
def test_scenarios_force_their_lengths(dataset: str) -> None:
    assert config(workload=WorkloadConfig(dataset=dataset)).request_options("m").ignore_eos is True


@pytest.mark.parametrize(
    ("workload", "message"),
    [
        (WorkloadConfig(shuffle=True, replacement=True), "--shuffle and --replacement"),
        (WorkloadConfig(dataset_format="csv"), "--dataset-format must be one of auto, prompts"),
        (WorkloadConfig(min_input=0), "--min-input must be >= 1"),
        (WorkloadConfig(max_input=-3), "--max-input must be >= 1"),
        (WorkloadConfig(max_output=0), "--max-output must be >= 1"),
    ],
)
def test_workload_problems_name_the_flag(workload: WorkloadConfig, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config(workload=workload)


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        (MetricsEndpoint(port=70000), "--metrics-port"),
        (MetricsEndpoint(port=-1), "--metrics-port"),
        (MetricsEndpoint(linger_s=-1.0), "--metrics-linger"),
        (MetricsEndpoint(linger_s=float("inf")), "--metrics-linger"),
    ],
)
def test_bad_metrics_endpoint_is_refused(endpoint: MetricsEndpoint, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig("http://localhost:8000", (1.0,), metrics=endpoint)
