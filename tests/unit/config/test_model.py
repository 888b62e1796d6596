"""Tests for loadgen.config.model: defaults, every check of a field, and how targets inherit."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from loadgen.config import (
    ConfigError,
    LoadConfig,
    MetricsConfig,
    RunConfig,
    ServeConfig,
    SimConfig,
    TargetConfig,
    WorkloadConfig,
    resolve,
)
from loadgen.config.model import DescribeConfig
from loadgen.config.sources import data_source
from loadgen.config.types import field_error

INF = math.inf
NAN = math.nan
RATES = {"rates_rps": [1]}
NEEDS_A_NAME = (
    "needs a name of letters, digits, '.', '_' or '-' (it labels metrics and names the "
    "results folder)"
)


def run(document: dict[str, Any]) -> RunConfig:
    """The RunConfig a sweep file holding `document` describes."""
    return resolve([data_source(document, "sweep.toml")], RunConfig).config


def error_lines(document: dict[str, Any]) -> list[str]:
    """The lines of the ConfigError that a sweep file holding `document` must raise."""
    with pytest.raises(ConfigError) as caught:
        run(document)
    return str(caught.value).splitlines()


# --- defaults -----------------------------------------------------------------------------------


def test_defaults_with_a_rate() -> None:
    config = run({"load": RATES})
    assert config.load.rates_rps == (1.0,)
    assert (config.load.num_requests, config.load.trim, config.load.seed) == (1000, 100, 0)
    assert config.load.arrival == "poisson"
    assert config.load.duration_s is None
    assert config.load.drain_timeout_s == 30.0
    assert config.target.base_url is None
    assert config.target.endpoint == "completions"
    assert config.target.stream is True
    assert config.target.headers == {}
    assert config.target.extra_body == {}
    timeouts = (
        config.target.connect_timeout_s,
        config.target.ttft_timeout_s,
        config.target.idle_timeout_s,
        config.target.request_timeout_s,
    )
    assert timeouts == (10.0, 600.0, 120.0, 3600.0)
    assert config.targets == ()
    assert config.workload == WorkloadConfig(dataset="synthetic", input_len=128, output_len=128)
    assert config.output.out_dir is None
    assert config.metrics == MetricsConfig(port=None, host="127.0.0.1", linger_s=15.0)
    assert config.sim == SimConfig(gpu="a100", model="llama-2-7b", policy="vllm")


def test_serve_and_describe_defaults() -> None:
    serve = ServeConfig()
    assert (serve.host, serve.port, serve.api_flavor, serve.time_scale) == (
        "127.0.0.1",
        8000,
        "vllm",
        1.0,
    )
    describe = DescribeConfig()
    assert (describe.num_requests, describe.seed, describe.tokenizer) == (1000, 0, None)


def test_sections_are_frozen() -> None:
    config = run({"load": RATES})
    with pytest.raises(ValidationError):
        config.load.trim = 3  # type: ignore[misc]


def test_smallest_num_requests_that_leaves_one_kept() -> None:
    assert run({"load": {**RATES, "num_requests": 201, "trim": 100}}).load.num_requests == 201


def test_no_trim_allows_one_request() -> None:
    assert run({"load": {**RATES, "num_requests": 1, "trim": 0}}).load.num_requests == 1


def test_inf_rate_is_valid() -> None:
    assert run({"load": {"rates_rps": [1, "inf"]}}).load.rates_rps == (1.0, INF)


def test_duration_that_leaves_requests_after_trimming() -> None:
    load = run({"load": {"rates_rps": [10], "duration_s": 30, "trim": 100}}).load
    assert load.duration_s == 30.0


def test_no_stream_allows_an_e2e_slo() -> None:
    config = run({"target": {"stream": False}, "load": {**RATES, "slos": {"e2e": 2}}})
    assert config.load.slos == {"e2e": 2.0}


def test_trace_replay_needs_no_rates() -> None:
    load = run({"load": {"arrival": "trace", "trace": "burst.csv"}}).load
    assert (load.arrival, load.trace, load.rates_rps) == ("trace", "burst.csv", ())


def test_base_url_of_a_file_is_normalised() -> None:
    assert run({"target": {"base_url": "http://h:8000"}, "load": RATES}).target.base_url == (
        "http://h:8000/v1"
    )


@pytest.mark.parametrize("name", ["API_KEY", "_k", "K9"])
def test_api_key_env_takes_a_variable_name(name: str) -> None:
    assert run({"target": {"api_key_env": name}, "load": RATES}).target.api_key_env == name


# --- each problem names its field and source ----------------------------------------------------


@pytest.mark.parametrize(
    ("document", "line"),
    [
        # load
        ({"load": {"rates_rps": []}}, "sweep.toml: load.rates_rps: no request rate given"),
        (
            {"load": {"rates_rps": [1, -2]}},
            "sweep.toml: load.rates_rps: invalid rate '-2': a rate must be > 0 requests per "
            "second (or 'inf')",
        ),
        (
            {"load": {**RATES, "trim": -1}},
            "sweep.toml: load.trim: must be greater than or equal to 0 (got -1)",
        ),
        (
            {"load": {**RATES, "num_requests": 200, "trim": 100}},
            "sweep.toml: load.num_requests: 200 requests leave nothing after trimming 100 from "
            "each end: use more than 200 requests or a smaller trim",
        ),
        (
            {"load": {**RATES, "num_requests": 0, "trim": 0}},
            "sweep.toml: load.num_requests: must be greater than or equal to 1 (got 0)",
        ),
        (
            {"load": {**RATES, "arrival": "uniform"}},
            "sweep.toml: load.arrival: unknown arrival 'uniform'; choose from poisson, gamma, "
            "constant, trace",
        ),
        (
            {"load": {**RATES, "burstiness": 0}},
            "sweep.toml: load.burstiness: must be greater than 0 (got 0)",
        ),
        (
            {"load": {**RATES, "burstiness": -1.0}},
            "sweep.toml: load.burstiness: must be greater than 0 (got -1.0)",
        ),
        (
            {"load": {**RATES, "burstiness": INF}},
            "sweep.toml: load.burstiness: must be a finite number (got inf)",
        ),
        (
            {"load": {**RATES, "burstiness": NAN}},
            "sweep.toml: load.burstiness: must be a finite number (got nan)",
        ),
        (
            {"load": {**RATES, "time_scale": 0}},
            "sweep.toml: load.time_scale: must be greater than 0 (got 0)",
        ),
        (
            {"load": {**RATES, "max_concurrency": 0}},
            "sweep.toml: load.max_concurrency: must be greater than or equal to 1 (got 0)",
        ),
        (
            {"load": {**RATES, "seed": -1}},
            "sweep.toml: load.seed: must be greater than or equal to 0 (got -1)",
        ),
        (
            {"load": {**RATES, "drain_timeout_s": 0}},
            "sweep.toml: load.drain_timeout_s: must be greater than 0 (got 0)",
        ),
        (
            {"load": {**RATES, "slos": {"bogus": 1}}},
            "sweep.toml: load.slos: unknown SLO key 'bogus'; known keys are ttft, tpot, e2e, "
            "per_token",
        ),
        (
            {"load": {"rates_rps": [1], "duration_s": 60}},
            "sweep.toml: load.duration_s: 60 s at 1 req/s sends about 60 requests, nothing "
            "left after trimming 100 from each end",
        ),
        (
            {"load": {"rates_rps": [10, "inf"], "duration_s": 60}},
            "sweep.toml: load.duration_s: a duration needs finite rates (inf sends at once)",
        ),
        (
            {"load": {**RATES, "duration_s": INF}},
            "sweep.toml: load.duration_s: must be a finite number (got inf)",
        ),
        (
            {"load": {**RATES, "duration_s": 0}},
            "sweep.toml: load.duration_s: must be greater than 0 (got 0)",
        ),
        (
            {"load": {"trace": "burst.csv"}},
            "sweep.toml: load.trace: a trace FILE needs arrival trace",
        ),
        (
            {"load": {"arrival": "trace", "trace": "burst.csv", "rates_rps": [1]}},
            "sweep.toml: load.rates_rps: a replayed trace sets its own rate: give no rates",
        ),
        (
            {"load": {"arrival": "trace", "trace": "burst.csv"}, "workload": {"dataset": "s2s"}},
            "sweep.toml: workload.dataset: a replayed trace brings its own lengths",
        ),
        (
            {"target": {"stream": False}, "load": {**RATES, "slos": {"ttft": 0.5}}},
            "sweep.toml: target.stream: ttft and tpot SLOs need streaming",
        ),
        (
            {"target": {"stream": False}, "load": {**RATES, "slos": "tpot=0.05"}},
            "sweep.toml: target.stream: ttft and tpot SLOs need streaming",
        ),
        # target
        (
            {"target": {"connect_timeout_s": 0}, "load": RATES},
            "sweep.toml: target.connect_timeout_s: must be greater than 0 (got 0)",
        ),
        (
            {"target": {"ttft_timeout_s": -1}, "load": RATES},
            "sweep.toml: target.ttft_timeout_s: must be greater than 0 (got -1)",
        ),
        (
            {"target": {"idle_timeout_s": NAN}, "load": RATES},
            "sweep.toml: target.idle_timeout_s: must be greater than 0 (got nan)",
        ),
        (
            {"target": {"request_timeout_s": 0}, "load": RATES},
            "sweep.toml: target.request_timeout_s: must be greater than 0 (got 0)",
        ),
        (
            {"target": {"base_url": "ftp://h:8000"}, "load": RATES},
            "sweep.toml: target.base_url: base URL must start with http:// or https://, got "
            "'ftp://h:8000'",
        ),
        (
            {"target": {"base_url": "http://h:8000/v1?x=1"}, "load": RATES},
            "sweep.toml: target.base_url: base URL must not have a query or fragment: "
            "'http://h:8000/v1?x=1'",
        ),
        (
            {"target": {"api_key_env": "1KEY"}, "load": RATES},
            "sweep.toml: target.api_key_env: String should match pattern "
            "'^[A-Za-z_][A-Za-z0-9_]*$'",
        ),
        (
            {"target": {"api_key_env": "MY-KEY"}, "load": RATES},
            "sweep.toml: target.api_key_env: String should match pattern "
            "'^[A-Za-z_][A-Za-z0-9_]*$'",
        ),
        (
            {"target": {"api_key_env": ""}, "load": RATES},
            "sweep.toml: target.api_key_env: String should match pattern "
            "'^[A-Za-z_][A-Za-z0-9_]*$'",
        ),
        (
            {"target": {"endpoint": "foo"}, "load": RATES},
            "sweep.toml: target.endpoint: must be 'completions', 'chat' or 'responses' (got 'foo')",
        ),
        (
            {"target": {"stream": "maybe"}, "load": RATES},
            "sweep.toml: target.stream: must be a valid boolean, unable to interpret input "
            "(got 'maybe')",
        ),
        (
            {"target": {"top_p": 0}, "load": RATES},
            "sweep.toml: target.top_p: must be greater than 0 (got 0)",
        ),
        (
            {"target": {"top_p": 1.5}, "load": RATES},
            "sweep.toml: target.top_p: must be less than or equal to 1 (got 1.5)",
        ),
        (
            {"target": {"top_k": -2}, "load": RATES},
            "sweep.toml: target.top_k: must be greater than or equal to -1 (got -2)",
        ),
        (
            {"target": {"temperature": -0.1}, "load": RATES},
            "sweep.toml: target.temperature: must be greater than or equal to 0 (got -0.1)",
        ),
        (
            {"target": {"min_tokens": -1}, "load": RATES},
            "sweep.toml: target.min_tokens: must be greater than or equal to 0 (got -1)",
        ),
        (
            {"target": {"extra_body": "[1]"}, "load": RATES},
            "sweep.toml: target.extra_body: must be a JSON object",
        ),
        # workload
        (
            {"workload": {"shuffle": True, "replacement": True}, "load": RATES},
            "sweep.toml: workload.replacement: shuffle and replacement exclude each other",
        ),
        (
            {"workload": {"dataset_format": "csv"}, "load": RATES},
            "sweep.toml: workload.dataset_format: unknown dataset format 'csv'; choose from "
            "auto, prompts, sharegpt, alpaca, messages",
        ),
        (
            {"workload": {"min_input": 0}, "load": RATES},
            "sweep.toml: workload.min_input: must be greater than or equal to 1 (got 0)",
        ),
        (
            {"workload": {"max_input": -3}, "load": RATES},
            "sweep.toml: workload.max_input: must be greater than or equal to 1 (got -3)",
        ),
        (
            {"workload": {"max_output": 0}, "load": RATES},
            "sweep.toml: workload.max_output: must be greater than or equal to 1 (got 0)",
        ),
        (
            {"workload": {"input_len": 0}, "load": RATES},
            "sweep.toml: workload.input_len: must be greater than or equal to 1 (got 0)",
        ),
        (
            {"workload": {"prompt_template": "nope"}, "load": RATES},
            "sweep.toml: workload.prompt_template: unknown template 'nope'; choose from llama2",
        ),
        # metrics
        (
            {"metrics": {"port": 70000}, "load": RATES},
            "sweep.toml: metrics.port: must be less than or equal to 65535 (got 70000)",
        ),
        (
            {"metrics": {"port": -1}, "load": RATES},
            "sweep.toml: metrics.port: must be greater than or equal to 0 (got -1)",
        ),
        (
            {"metrics": {"linger_s": -1.0}, "load": RATES},
            "sweep.toml: metrics.linger_s: must be greater than or equal to 0 (got -1.0)",
        ),
        (
            {"metrics": {"linger_s": INF}, "load": RATES},
            "sweep.toml: metrics.linger_s: must be a finite number (got inf)",
        ),
        (
            {"metrics": {"pushgateway": "pg:9091"}, "load": RATES},
            "sweep.toml: metrics.pushgateway: must be an http:// or https:// URL",
        ),
        # sim
        (
            {"sim": {"gpu": "tpu"}, "load": RATES},
            "sweep.toml: sim.gpu: unknown GPU 'tpu'; choose from rtx3090, rtx4090, a100, h100, "
            "h200",
        ),
        (
            {"sim": {"model": "x"}, "load": RATES},
            "sweep.toml: sim.model: unknown model 'x'; choose from llama-2-7b, llama-2-13b, "
            "mistral-7b, vicuna-7b-16k",
        ),
        (
            {"sim": {"policy": "fifo"}, "load": RATES},
            "sweep.toml: sim.policy: must be 'vllm' or 'splitfuse' (got 'fifo')",
        ),
        (
            {"sim": {"gpu_memory_utilization": 1.5}, "load": RATES},
            "sweep.toml: sim.gpu_memory_utilization: must be less than or equal to 1 (got 1.5)",
        ),
        (
            {"sim": {"token_budget": 0}, "load": RATES},
            "sweep.toml: sim.token_budget: must be greater than or equal to 1 (got 0)",
        ),
    ],
)
def test_each_problem_is_one_line_naming_field_and_source(
    document: dict[str, Any], line: str
) -> None:
    assert error_lines(document) == [line]


def test_no_rate_at_all_is_named_by_its_field() -> None:
    assert error_lines({}) == ["load.rates_rps (default): no request rate given"]


def test_several_problems_give_one_line_each_in_field_order() -> None:
    document = {
        "load": {**RATES, "trim": -1, "seed": -1},
        "metrics": {"port": 70000},
        "target": {"connect_timeout_s": 0},
    }
    assert error_lines(document) == [
        "sweep.toml: target.connect_timeout_s: must be greater than 0 (got 0)",
        "sweep.toml: load.trim: must be greater than or equal to 0 (got -1)",
        "sweep.toml: load.seed: must be greater than or equal to 0 (got -1)",
        "sweep.toml: metrics.port: must be less than or equal to 65535 (got 70000)",
    ]


# --- targets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "vllm-0.6_tp2", "A.B", "9", "n" * 64])
def test_good_target_names(name: str) -> None:
    config = run({"load": RATES, "targets": [{"name": name, "base_url": "http://a"}]})
    assert config.targets[0].name == name


@pytest.mark.parametrize("name", ["a b", "../x", "x/y", "", ".hidden", "-x", "n" * 65])
def test_bad_target_names(name: str) -> None:
    document = {"load": RATES, "targets": [{"name": name, "base_url": "http://a"}]}
    assert error_lines(document) == [f"sweep.toml: targets[0].name: {NEEDS_A_NAME}"]


def test_target_name_must_be_text() -> None:
    document = {"load": RATES, "targets": [{"name": 7, "base_url": "http://a"}]}
    assert error_lines(document) == ["sweep.toml: targets[0].name: must be a valid string"]


def test_duplicate_target_names() -> None:
    document = {
        "load": RATES,
        "targets": [
            {"name": "same", "base_url": "http://a"},
            {"name": "other", "base_url": "http://b"},
            {"name": "same", "base_url": "http://c"},
        ],
    }
    assert error_lines(document) == ["sweep.toml: targets[2].name: two targets are named 'same'"]


def test_base_url_beside_targets() -> None:
    document = {
        "load": RATES,
        "target": {"base_url": "http://h"},
        "targets": [{"name": "a", "base_url": "http://a"}],
    }
    assert error_lines(document) == [
        "sweep.toml: target.base_url: give base_url in each of the targets, not for all of them"
    ]


def test_a_name_beside_targets() -> None:
    document = {"load": RATES, "target": {"name": "all"}, "targets": [{"name": "a"}]}
    assert error_lines(document) == ["sweep.toml: target.name: names belong to the targets entries"]


def test_a_single_target_may_have_a_name() -> None:
    config = run({"load": RATES, "target": {"name": "solo", "base_url": "http://h"}})
    assert config.run_targets() == (config.target,)
    assert config.target.name == "solo"


def test_empty_targets_leaves_the_one_target() -> None:
    config = run({"load": RATES, "target": {"base_url": "http://h"}, "targets": []})
    assert config.run_targets() == (TargetConfig(base_url="http://h/v1"),)


def test_a_bad_value_in_the_second_target_names_it() -> None:
    document = {
        "load": RATES,
        "targets": [
            {"name": "ok", "base_url": "http://a"},
            {"name": "slow", "base_url": "http://b", "connect_timeout_s": 0},
        ],
    }
    assert error_lines(document) == [
        "sweep.toml: targets[1].connect_timeout_s: must be greater than 0 (got 0)"
    ]


def test_a_bad_shared_value_is_reported_once() -> None:
    document = {
        "load": RATES,
        "target": {"connect_timeout_s": 0},
        "targets": [{"name": "a"}, {"name": "b"}],
    }
    assert error_lines(document) == [
        "sweep.toml: target.connect_timeout_s: must be greater than 0 (got 0)"
    ]


def test_a_shared_setting_a_target_inherits_names_both() -> None:
    document = {
        "load": {**RATES, "slos": {"ttft": 1}},
        "target": {"stream": False},
        "targets": [{"name": "a"}, {"name": "b", "stream": True}],
    }
    assert error_lines(document) == [
        "sweep.toml: target.stream (for targets[0]): ttft and tpot SLOs need streaming"
    ]


def test_a_targets_own_setting_is_named() -> None:
    document = {
        "load": {**RATES, "slos": {"ttft": 1}},
        "targets": [{"name": "a"}, {"name": "b", "stream": False}],
    }
    assert error_lines(document) == [
        "sweep.toml: targets[1].stream: ttft and tpot SLOs need streaming"
    ]


@pytest.mark.parametrize(
    ("key", "line"),
    [
        ("rates_rps", "sweep.toml: targets[0].rates_rps: unknown key"),
        ("seed", "sweep.toml: targets[0].seed: unknown key"),
        ("dataset", "sweep.toml: targets[0].dataset: unknown key"),
    ],
)
def test_load_and_workload_cannot_differ_between_targets(key: str, line: str) -> None:
    document = {"load": RATES, "targets": [{"name": "a", key: 1}]}
    assert error_lines(document) == [line]


TWO_TARGETS: dict[str, Any] = {
    "load": RATES,
    "target": {
        "model": "common",
        "headers": {"X-Team": "perf", "X-Mode": "shared"},
        "extra_body": {"a": 1, "b": 1},
    },
    "targets": [
        {
            "name": "alpha",
            "base_url": "http://a:8000",
            "model": "m-alpha",
            "endpoint": "chat",
            "api_key_env": "ALPHA_KEY",
            "ignore_eos": False,
            "headers": {"x-mode": "alpha", "X-Extra": "yes"},
            "extra_body": {"b": 2, "c": 3},
        },
        {"name": "beta", "base_url": "http://b:9000/v1"},
    ],
}


def test_each_target_starts_from_the_shared_target() -> None:
    alpha, beta = run(TWO_TARGETS).run_targets()
    assert (alpha.name, beta.name) == ("alpha", "beta")
    assert (alpha.base_url, beta.base_url) == ("http://a:8000/v1", "http://b:9000/v1")
    assert (alpha.model, beta.model) == ("m-alpha", "common")
    assert (alpha.endpoint, beta.endpoint) == ("chat", "completions")
    assert (alpha.api_key_env, beta.api_key_env) == ("ALPHA_KEY", None)
    assert (alpha.ignore_eos, beta.ignore_eos) == (False, None)


def test_headers_merge_without_case_a_targets_own_winning() -> None:
    alpha, beta = run(TWO_TARGETS).run_targets()
    assert alpha.headers == {"X-Team": "perf", "x-mode": "alpha", "X-Extra": "yes"}
    assert beta.headers == {"X-Team": "perf", "X-Mode": "shared"}


def test_extra_body_merges_key_by_key() -> None:
    alpha, beta = run(TWO_TARGETS).run_targets()
    assert alpha.extra_body == {"a": 1, "b": 2, "c": 3}
    assert beta.extra_body == {"a": 1, "b": 1}


def test_the_shared_target_itself_keeps_its_own_settings() -> None:
    shared = run(TWO_TARGETS).target
    assert shared.headers == {"X-Team": "perf", "X-Mode": "shared"}
    assert shared.extra_body == {"a": 1, "b": 1}
    assert shared.name is None


def test_targets_inherit_when_built_from_objects() -> None:
    config = RunConfig(
        target=TargetConfig(model="common", headers={"X-Team": "perf"}),
        targets=(
            TargetConfig(name="a", base_url="http://a", headers={"x-team": "own"}),
            TargetConfig(name="b", base_url="http://b"),
        ),
        load=LoadConfig(rates_rps=(1.0,)),
    )
    a, b = config.targets
    assert (a.model, b.model) == ("common", "common")
    assert a.headers == {"x-team": "own"}
    assert b.headers == {"X-Team": "perf"}


def test_a_bad_header_of_a_target_is_named_by_the_target() -> None:
    document = {
        "load": RATES,
        "target": {"headers": {"X-A": "1"}},
        "targets": [{"name": "a", "headers": "no colon"}],
    }
    assert error_lines(document) == [
        "sweep.toml: targets[0].headers: a header must look like 'Name: value'"
    ]


# --- helpers of the model -----------------------------------------------------------------------


def test_run_targets_in_order() -> None:
    config = run(TWO_TARGETS)
    assert [target.name for target in config.run_targets()] == ["alpha", "beta"]


def test_body_fields_are_the_set_request_options_by_wire_name() -> None:
    target = TargetConfig(ignore_eos=False, min_tokens=2, temperature=0.3, top_k=5, top_p=0.9)
    assert target.body_fields() == {
        "ignore_eos": False,
        "min_tokens": 2,
        "temperature": 0.3,
        "top_k": 5,
        "top_p": 0.9,
    }
    assert TargetConfig().body_fields() == {}


@pytest.mark.parametrize(
    ("dataset", "forced"),
    [
        ("synthetic", True),
        ("s2s", True),
        ("s2l", True),
        ("l2s", True),
        ("s16k", True),
        ("prompts.jsonl", False),
    ],
)
def test_generated_workloads_force_their_lengths(dataset: str, forced: bool) -> None:
    assert WorkloadConfig(dataset=dataset).forced_lengths is forced


def test_sim_label() -> None:
    assert SimConfig(gpu="h100", model="mistral-7b", policy="splitfuse").label == (
        "sim h100/mistral-7b/splitfuse"
    )


def test_field_error_carries_the_field_path() -> None:
    error = field_error("targets.1.name", "bad name")
    assert error.type == "loadgen_field"
    assert error.message() == "bad name"
    assert error.context == {"field": "targets.1.name"}


def test_out_dir_is_a_path() -> None:
    config = run({"load": RATES, "output": {"out_dir": "results/x"}})
    assert config.output.out_dir == Path("results/x")
