"""Tests for loadgen.config.render: the public dump (a recipe without secrets) and TOML text."""

from __future__ import annotations

import json
import math
import tomllib
from typing import Any

import pytest

from loadgen.cli.flags import flag_source
from loadgen.cli.main import build_parser
from loadgen.cli.run import run_flags
from loadgen.config import ConfigError, Resolved, RunConfig, Source, resolve
from loadgen.config.render import public_dump, toml_text, toml_value
from loadgen.config.sources import data_source

INF = math.inf

# A run of two targets with shared settings, own settings, and values of every kind.
SWEEP: dict[str, Any] = {
    "target": {
        "model": "common",
        "api_key_env": "SWEEP_KEY",
        "temperature": 0.5,
        "extra_body": {"a": 1, "b": 1},
    },
    "targets": [
        {
            "name": "alpha",
            "base_url": "http://a:8000",
            "model": "m-alpha",
            "endpoint": "chat",
            "extra_body": {"b": 2, "c": 3},
            "request_timeout_s": 60,
        },
        {"name": "beta", "base_url": "http://b:9000/v1"},
    ],
    "load": {
        "rates_rps": [1, 2.5, "inf"],
        "num_requests": 500,
        "trim": 10,
        "slos": {"ttft": 0.5},
    },
    "workload": {"dataset": "s2s", "shuffle": True},
    "output": {"out_dir": "results/x"},
    "metrics": {"port": 0, "pushgateway": "http://pg:9091"},
    "sim": {"gpu": "h100", "max_num_seqs": 64},
}
HEADERS = {"Authorization": "Bearer hdr-token-42", "X-Team": "blue-7c1e"}


def flags(*argv: str) -> Source:
    """The flag source of `loadgen sweep ARGV`, parsed by the real command line."""
    return flag_source(build_parser().parse_args(["sweep", *argv]), run_flags("sweep"))


def resolved_sweep(*argv: str, document: dict[str, Any] = SWEEP) -> Resolved[RunConfig]:
    """SWEEP as a file ("sweep.toml"), under the flags `argv`."""
    return resolve([data_source(document, "sweep.toml"), flags(*argv)], RunConfig)


def with_headers() -> dict[str, Any]:
    """SWEEP with HEADERS shared by every target."""
    return {**SWEEP, "target": {**SWEEP["target"], "headers": HEADERS}}


# --- public_dump --------------------------------------------------------------------------------


def test_dump_keeps_each_targets_own_settings_only() -> None:
    data = public_dump(resolved_sweep("--seed", "3").config)
    assert data["targets"] == [
        {
            "name": "alpha",
            "base_url": "http://a:8000/v1",
            "model": "m-alpha",
            "endpoint": "chat",
            "extra_body": {"b": 2, "c": 3},
            "request_timeout_s": 60.0,
        },
        {"name": "beta", "base_url": "http://b:9000/v1"},
    ]


def test_dump_holds_the_shared_target_and_sections_in_full() -> None:
    data = public_dump(resolved_sweep("--seed", "3").config)
    assert data["target"] == {
        "name": None,
        "base_url": None,
        "model": "common",
        "api_key_env": "SWEEP_KEY",
        "headers": {},
        "endpoint": "completions",
        "stream": True,
        "ignore_eos": None,
        "min_tokens": None,
        "temperature": 0.5,
        "top_k": None,
        "top_p": None,
        "extra_body": {"a": 1, "b": 1},
        "tokenizer": None,
        "connect_timeout_s": 10.0,
        "ttft_timeout_s": 600.0,
        "idle_timeout_s": 120.0,
        "request_timeout_s": 3600.0,
        "server_metrics": "auto",
    }
    assert data["load"] == {
        "rates_rps": [1.0, 2.5, "inf"],
        "auto_steps": 8,
        "num_requests": 500,
        "duration_s": None,
        "trim": 10,
        "repeats": 1,
        "arrival": "poisson",
        "burstiness": 1.0,
        "trace": None,
        "time_scale": 1.0,
        "seed": 3,
        "max_concurrency": None,
        "max_start_rate_rps": None,
        "slos": {"ttft": 0.5},
        "drain_timeout_s": 30.0,
    }
    assert data["metrics"] == {
        "port": 0,
        "host": "127.0.0.1",
        "linger_s": 15.0,
        "pushgateway": "http://pg:9091",
    }


def test_dump_leaves_out_the_results_folder_unless_asked() -> None:
    config = resolved_sweep().config
    assert public_dump(config)["output"] == {}
    assert public_dump(config, with_output=True)["output"] == {"out_dir": "results/x"}


def test_dump_of_a_duration_run_has_no_request_count() -> None:
    document = {"load": {"rates_rps": [10], "duration_s": 30}}
    load = public_dump(resolved_sweep(document=document).config)["load"]
    assert "num_requests" not in load
    assert load["duration_s"] == 30.0


def test_dump_renders_inf_rates_as_text() -> None:
    document = {"load": {"rates_rps": "0.5,2,inf"}}
    data = public_dump(resolved_sweep(document=document).config)
    assert data["load"]["rates_rps"] == [0.5, 2.0, "inf"]


def test_dump_is_strict_json_without_header_values() -> None:
    document = with_headers()
    document["targets"] = [
        {**SWEEP["targets"][0], "headers": {"X-Own": "own-secret-55"}},
        SWEEP["targets"][1],
    ]
    data = public_dump(resolved_sweep(document=document).config, with_output=True)
    text = json.dumps(data, allow_nan=False)
    for secret in ("hdr-token-42", "blue-7c1e", "own-secret-55"):
        assert secret not in text
    assert data["target"]["headers"] == {"Authorization": "***", "X-Team": "***"}
    assert data["targets"][0]["headers"] == {"X-Own": "***"}
    assert "headers" not in data["targets"][1]
    assert data["target"]["api_key_env"] == "SWEEP_KEY"  # where to find it, never what it is


def test_dump_lists_a_targets_changed_header_by_name_only() -> None:
    document = with_headers()
    document["targets"] = [
        {**SWEEP["targets"][0], "headers": {"x-team": "other"}},
        SWEEP["targets"][1],
    ]
    data = public_dump(resolved_sweep(document=document).config)
    assert data["targets"][0]["headers"] == {"x-team": "***"}


# --- round trips --------------------------------------------------------------------------------


def test_dump_read_back_is_the_same_config() -> None:
    original = resolved_sweep("--seed", "3", "--max-concurrency", "8").config
    data = public_dump(original, with_output=True)
    replay = resolve([data_source(data, "summary.json")], RunConfig).config
    assert replay == original
    assert replay.targets[1].extra_body == {"a": 1, "b": 1}


def test_dump_through_json_text_is_the_same_config() -> None:
    original = resolved_sweep().config
    text = json.dumps(public_dump(original, with_output=True))
    replay = resolve([data_source(json.loads(text), "summary.json")], RunConfig).config
    assert replay == original


def test_a_replay_gets_the_flags_of_the_replay() -> None:
    data = public_dump(resolved_sweep().config)
    replay = resolve([data_source(data, "summary.json"), flags("--model", "new")], RunConfig)
    alpha, beta = replay.config.run_targets()
    assert (alpha.model, beta.model) == ("m-alpha", "new")
    assert replay.config.output.out_dir is None


def test_hidden_header_values_make_a_replay_fail() -> None:
    data = public_dump(resolved_sweep(document=with_headers()).config)
    with pytest.raises(ConfigError) as caught:
        resolve([data_source(data, "summary.json")], RunConfig)
    assert str(caught.value).splitlines() == [
        "summary.json: target.headers: header Authorization: its value was not written to "
        "results; give it again"
    ]


def test_hidden_header_values_given_again_by_flags() -> None:
    original = resolved_sweep(document=with_headers()).config
    data = public_dump(original, with_output=True)
    again = flags("--header", "Authorization: Bearer hdr-token-42", "--header", "X-Team: blue-7c1e")
    replay = resolve([data_source(data, "summary.json"), again], RunConfig).config
    assert replay == original


# --- toml_text ----------------------------------------------------------------------------------


def test_toml_text_marks_where_each_value_came_from() -> None:
    resolved = resolved_sweep("--seed", "3")
    lines = toml_text(public_dump(resolved.config, with_output=True), resolved.labels).splitlines()
    assert lines[0] == (
        "# loadgen configuration; a comment says where a value that is no default came from"
    )
    for line in [
        "[target]",
        'model = "common"  # sweep.toml: target.model',
        'extra_body = { "a" = 1, "b" = 1 }  # sweep.toml: target.extra_body',
        "[load]",
        'rates_rps = [1.0, 2.5, "inf"]  # sweep.toml: load.rates_rps',
        "seed = 3  # --seed",
        'arrival = "poisson"',
        "[output]",
        'out_dir = "results/x"  # sweep.toml: output.out_dir',
        "[[targets]]",
        'name = "alpha"  # sweep.toml: targets[0].name',
        'base_url = "http://a:8000/v1"  # sweep.toml: targets[0].base_url',
        'name = "beta"  # sweep.toml: targets[1].name',
    ]:
        assert line in lines
    assert lines.count("[[targets]]") == 2
    assert not any(line.startswith(("tokenizer", "trace =", "duration_s")) for line in lines)


def test_toml_text_parses_and_resolves_to_the_same_config() -> None:
    resolved = resolved_sweep("--seed", "3")
    text = toml_text(public_dump(resolved.config, with_output=True), resolved.labels)
    document = tomllib.loads(text)
    assert document["load"]["rates_rps"] == [1.0, 2.5, "inf"]
    replay = resolve([data_source(document, "shown.toml")], RunConfig).config
    assert replay == resolved.config


def test_toml_text_hides_header_values() -> None:
    resolved = resolved_sweep(document=with_headers())
    text = toml_text(public_dump(resolved.config), resolved.labels)
    assert 'headers = { "Authorization" = "***", "X-Team" = "***" }' in text
    assert "hdr-token-42" not in text
    assert "blue-7c1e" not in text


def test_toml_text_refuses_a_null_inside_a_table() -> None:
    document = {"load": {"rates_rps": [1]}, "target": {"extra_body": {"stop": None}}}
    resolved = resolved_sweep(document=document)
    with pytest.raises(ValueError, match=r"^extra_body: None has no TOML form; use --format json$"):
        toml_text(public_dump(resolved.config), resolved.labels)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (False, "false"),
        (3, "3"),
        (-1, "-1"),
        (2.5, "2.5"),
        (1e-07, "1e-07"),
        (INF, "inf"),
        (-INF, "-inf"),
        ("plain", '"plain"'),
        ('say "hi"\n', '"say \\"hi\\"\\n"'),
        ("é", '"é"'),
        ([1, "x", [True]], '[1, "x", [true]]'),
        ((1.0, 2.0), "[1.0, 2.0]"),
        ({}, "{}"),
        ({"k": {"n": 1}, "a b": "c"}, '{ "k" = { "n" = 1 }, "a b" = "c" }'),
    ],
)
def test_toml_value(value: Any, text: str) -> None:
    assert toml_value(value) == text
    assert tomllib.loads(f"v = {text}\n")["v"] == (
        list(value) if isinstance(value, tuple) else value
    )


def test_toml_value_has_no_null() -> None:
    with pytest.raises(ValueError, match=r"^None has no TOML form; use --format json$"):
        toml_value(None)
