"""Tests for loadgen.config.sources: precedence, merging, exclusive fields and error lines."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from loadgen.cli.flags import flag_source
from loadgen.cli.main import build_parser
from loadgen.cli.run import run_flags
from loadgen.config import ConfigError, RunConfig, Source, resolve
from loadgen.config.files import file_source
from loadgen.config.sources import (
    Resolved,
    data_source,
    env_source,
    option_fields,
)

INF = math.inf
RATES = {"rates_rps": [1]}


def flags(*argv: str) -> Source:
    """The flag source of `loadgen sweep ARGV`, parsed by the real command line."""
    return flag_source(build_parser().parse_args(["sweep", *argv]), run_flags("sweep"))


def error_lines(sources: list[Source]) -> list[str]:
    """The lines of the ConfigError that resolving `sources` must raise."""
    with pytest.raises(ConfigError) as caught:
        resolve(sources, RunConfig)
    return str(caught.value).splitlines()


# --- precedence: one table ----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """Sources of one run, and what must win at `field`.

    `file` is a sweep file's TOML text; "{file}" in `source` and `error` stands for its path.
    `setting` is the dotted path of the value checked; `source_field` is where the winning
    label is looked up when not at `setting` itself (a value a targets entry inherits is
    labelled at `target`).
    """

    id: str
    file: str
    setting: str
    value: Any = None
    source: str = ""
    env: dict[str, str] = field(default_factory=dict)
    argv: tuple[str, ...] = ()
    source_field: str = ""
    error: str = ""


HEADERS_FILE = """
[load]
rates_rps = [1]

[target]
headers = { "X-Team" = "perf", "X-Mode" = "file" }

[[targets]]
name = "alpha"
headers = { "X-MODE" = "own" }

[[targets]]
name = "beta"
"""

BODY_FILE = """
[load]
rates_rps = [1]

[target]
extra_body = { a = 1, b = 1 }

[[targets]]
name = "alpha"
extra_body = { c = 4 }
"""

TARGETS_FILE = """
[load]
rates_rps = [1]

[[targets]]
name = "alpha"
model = "m-alpha"

[[targets]]
name = "beta"
"""

CASES = [
    Case(
        "default-only",
        "[load]\nrates_rps = [1]\n",
        "load.trim",
        100,
        "load.trim (default)",
    ),
    Case("file-only", "[load]\nrates_rps = [1]\ntrim = 5\n", "load.trim", 5, "{file}: load.trim"),
    Case(
        "env-over-file",
        "[load]\nrates_rps = [1]\ntrim = 5\n",
        "load.trim",
        7,
        "LOADGEN_TRIM",
        env={"LOADGEN_TRIM": "7"},
    ),
    Case(
        "empty-env-is-unset",
        "[load]\nrates_rps = [1]\ntrim = 5\n",
        "load.trim",
        5,
        "{file}: load.trim",
        env={"LOADGEN_TRIM": "  "},
    ),
    Case(
        "flag-over-env",
        "[load]\nrates_rps = [1]\n",
        "load.trim",
        9,
        "--trim",
        env={"LOADGEN_TRIM": "7"},
        argv=("--trim", "9"),
    ),
    Case(
        "flag-over-file",
        "[load]\nrates_rps = [1]\ntrim = 5\n",
        "load.trim",
        9,
        "--trim",
        argv=("--trim", "9"),
    ),
    Case(
        "flag-over-env-over-file",
        "[load]\nrates_rps = [1]\ntrim = 5\n",
        "load.trim",
        9,
        "--trim",
        env={"LOADGEN_TRIM": "7"},
        argv=("--trim", "9"),
    ),
    Case(
        "target-own-over-flag",
        TARGETS_FILE,
        "targets.0.model",
        "m-alpha",
        "{file}: targets[0].model",
        env={"LOADGEN_MODEL": "from-env"},
        argv=("--model", "flagged"),
    ),
    Case(
        "flag-reaches-a-target-without-its-own",
        TARGETS_FILE,
        "targets.1.model",
        "flagged",
        "--model",
        env={"LOADGEN_MODEL": "from-env"},
        argv=("--model", "flagged"),
        source_field="target.model",
    ),
    Case(
        "env-reaches-a-target-without-its-own",
        TARGETS_FILE,
        "targets.1.model",
        "from-env",
        "LOADGEN_MODEL",
        env={"LOADGEN_MODEL": "from-env"},
        source_field="target.model",
    ),
    Case(
        "headers-file-env-flags-merge",
        HEADERS_FILE,
        "target.headers",
        {"X-Team": "perf", "x-mode": "env", "X-Flag": "1"},
        "--header",
        env={"LOADGEN_HEADER": "x-mode: env"},
        argv=("--header", "X-Flag: 1"),
    ),
    Case(
        "headers-a-targets-own-win",
        HEADERS_FILE,
        "targets.0.headers",
        {"X-Team": "perf", "X-Flag": "1", "X-MODE": "own"},
        "{file}: targets[0].headers",
        env={"LOADGEN_HEADER": "x-mode: env"},
        argv=("--header", "X-Flag: 1"),
    ),
    Case(
        "headers-inherited-by-a-target",
        HEADERS_FILE,
        "targets.1.headers",
        {"X-Team": "perf", "x-mode": "env", "X-Flag": "1"},
        "--header",
        env={"LOADGEN_HEADER": "x-mode: env"},
        argv=("--header", "X-Flag: 1"),
        source_field="target.headers",
    ),
    Case(
        "flag-header-replaces-same-name-any-case",
        HEADERS_FILE,
        "target.headers",
        {"X-Team": "perf", "X-MODE": "flag"},
        "--header",
        argv=("--header", "X-MODE: flag"),
    ),
    Case(
        "extra-body-file-env-flags-merge",
        BODY_FILE,
        "target.extra_body",
        {"a": 1, "b": 2, "c": 3},
        "--extra-body",
        env={"LOADGEN_EXTRA_BODY": '{"b": 2}'},
        argv=("--extra-body", '{"c": 3}'),
    ),
    Case(
        "extra-body-a-targets-own-key-wins",
        BODY_FILE,
        "targets.0.extra_body",
        {"a": 1, "b": 2, "c": 4},
        "{file}: targets[0].extra_body",
        env={"LOADGEN_EXTRA_BODY": '{"b": 2}'},
        argv=("--extra-body", '{"c": 3}'),
    ),
    Case(
        "rate-range-flag-over-rates-env",
        "[load]\nrates_rps = [1]\n",
        "load.rates_rps",
        (2.0, 4.0, 6.0),
        "--rate-range",
        env={"LOADGEN_RATES": "5"},
        argv=("--rate-range", "2:6:2"),
    ),
    Case(
        "rates-flag-over-rate-range-env",
        "[load]\nrates_rps = [1]\n",
        "load.rates_rps",
        (1.0, INF),
        "--rates",
        env={"LOADGEN_RATE_RANGE": "5:6:1"},
        argv=("--rates", "1,inf"),
    ),
    Case(
        "rate-range-env-over-file-rates",
        "[load]\nrates_rps = [1, 2]\n",
        "load.rates_rps",
        (5.0, 6.0),
        "LOADGEN_RATE_RANGE",
        env={"LOADGEN_RATE_RANGE": "5:6:1"},
    ),
    Case(
        "rate-env-over-file-range",
        '[load]\nrates_rps = "1:3:1"\n',
        "load.rates_rps",
        (4.0,),
        "LOADGEN_RATE",
        env={"LOADGEN_RATE": "4"},
    ),
    Case(
        "duration-flag-over-file-num-requests",
        "[load]\nrates_rps = [10]\nnum_requests = 500\n",
        "load.duration_s",
        60.0,
        "--duration",
        argv=("--duration", "60"),
    ),
    Case(
        "duration-flag-drops-file-num-requests",
        "[load]\nrates_rps = [10]\nnum_requests = 500\n",
        "load.num_requests",
        1000,
        "load.num_requests (default)",
        argv=("--duration", "60"),
    ),
    Case(
        "num-requests-env-drops-file-duration",
        "[load]\nrates_rps = [10]\nduration_s = 60\n",
        "load.duration_s",
        None,
        "load.duration_s (default)",
        env={"LOADGEN_NUM_REQUESTS": "500"},
    ),
    Case(
        "num-requests-env-over-file-duration",
        "[load]\nrates_rps = [10]\nduration_s = 60\n",
        "load.num_requests",
        500,
        "LOADGEN_NUM_REQUESTS",
        env={"LOADGEN_NUM_REQUESTS": "500"},
    ),
    Case(
        "two-rate-aliases-in-env",
        "[load]\nrates_rps = [1]\n",
        "load.rates_rps",
        env={"LOADGEN_RATES": "1", "LOADGEN_RATE": "2"},
        error="LOADGEN_RATES and LOADGEN_RATE set the same thing: give one of them",
    ),
    Case(
        "two-exclusive-fields-in-env",
        "[load]\nrates_rps = [10]\n",
        "load.duration_s",
        env={"LOADGEN_NUM_REQUESTS": "500", "LOADGEN_DURATION": "60"},
        error="LOADGEN_NUM_REQUESTS and LOADGEN_DURATION exclude each other",
    ),
    Case(
        "two-exclusive-fields-in-the-file",
        "[load]\nrates_rps = [10]\nnum_requests = 500\nduration_s = 60\n",
        "load.duration_s",
        error="{file}: load.num_requests and {file}: load.duration_s exclude each other",
    ),
    Case(
        "no-flag-over-file-bool",
        "[load]\nrates_rps = [1]\n[target]\nignore_eos = true\n",
        "target.ignore_eos",
        False,
        "--no-ignore-eos",
        env={"LOADGEN_IGNORE_EOS": "true"},
        argv=("--no-ignore-eos",),
    ),
    Case(
        "bool-flag-over-env",
        "[load]\nrates_rps = [1]\n",
        "target.ignore_eos",
        True,
        "--ignore-eos",
        env={"LOADGEN_IGNORE_EOS": "false"},
        argv=("--ignore-eos",),
    ),
    Case(
        "base-url-flag-beside-file-targets",
        TARGETS_FILE,
        "target.base_url",
        argv=("--base-url", "http://x"),
        error="--base-url: give base_url in each of the targets, not for all of them",
    ),
    Case(
        "base-url-env-beside-file-targets",
        TARGETS_FILE,
        "target.base_url",
        env={"LOADGEN_BASE_URL": "http://x"},
        error="LOADGEN_BASE_URL: give base_url in each of the targets, not for all of them",
    ),
    Case(
        "a-bad-flag-value-is-named-by-the-flag",
        "[load]\nrates_rps = [1]\ntrim = 5\n",
        "load.trim",
        env={"LOADGEN_TRIM": "7"},
        argv=("--trim", "-1"),
        error="--trim: must be greater than or equal to 0 (got '-1')",
    ),
    Case(
        "a-bad-env-value-is-named-by-the-variable",
        "[load]\nrates_rps = [1]\n",
        "load.trim",
        env={"LOADGEN_TRIM": "x"},
        error="LOADGEN_TRIM: must be a valid integer, unable to parse string as an integer "
        "(got 'x')",
    ),
]


def value_at(config: RunConfig, dotted: str) -> Any:
    """The value at a dotted path such as "targets.0.model"."""
    node: Any = config
    for part in dotted.split("."):
        node = node[int(part)] if part.isdigit() else getattr(node, part)
    return node


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_precedence(case: Case, tmp_path: Path) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text(case.file, encoding="utf-8")

    def sources() -> list[Source]:
        return [file_source(path), env_source(case.env), flags(*case.argv)]

    if case.error:
        with pytest.raises(ConfigError) as caught:
            resolve(sources(), RunConfig)
        assert str(caught.value).splitlines() == [case.error.replace("{file}", str(path))]
        return
    resolved = resolve(sources(), RunConfig)
    assert value_at(resolved.config, case.setting) == case.value
    label_field = tuple((case.source_field or case.setting).split("."))
    assert resolved.source_of(label_field) == case.source.replace("{file}", str(path))


# --- env_source ---------------------------------------------------------------------------------


def test_env_source_reads_only_option_variables() -> None:
    environ = {
        "LOADGEN_TRIM": "5",
        "LOADGEN_CONFIG": "sweep.toml",
        "LOADGEN_BOGUS": "1",
        "TRIM": "6",
        "loadgen_seed": "3",
    }
    source = env_source(environ)
    assert dict(source.values) == {("load", "trim"): "5"}
    assert dict(source.labels) == {("load", "trim"): "LOADGEN_TRIM"}


def test_env_source_names_each_field_by_its_option() -> None:
    environ = {
        "LOADGEN_CONNECT_TIMEOUT": "5",
        "LOADGEN_OUT": "r/x",
        "LOADGEN_METRICS_PORT": "9100",
        "LOADGEN_SIM_MODEL": "mistral-7b",
        "LOADGEN_MODEL": "m",
        "LOADGEN_SLO": "e2e=3",
    }
    assert dict(env_source(environ).labels) == {
        ("target", "model"): "LOADGEN_MODEL",
        ("target", "connect_timeout_s"): "LOADGEN_CONNECT_TIMEOUT",
        ("load", "slos"): "LOADGEN_SLO",
        ("output", "out_dir"): "LOADGEN_OUT",
        ("metrics", "port"): "LOADGEN_METRICS_PORT",
        ("sim", "model"): "LOADGEN_SIM_MODEL",
    }


def test_env_text_becomes_typed_values() -> None:
    environ = {
        "LOADGEN_RATES": "1,inf",
        "LOADGEN_STREAM": "false",
        "LOADGEN_SHUFFLE": "1",
        "LOADGEN_OUT": "r/x",
        "LOADGEN_METRICS_PORT": "9100",
        "LOADGEN_SLO": "e2e=3",
    }
    config = resolve([env_source(environ)], RunConfig).config
    assert config.load.rates_rps == (1.0, INF)
    assert config.target.stream is False
    assert config.workload.shuffle is True
    assert config.output.out_dir == Path("r/x")
    assert config.metrics.port == 9100
    assert config.load.slos == {"e2e": 3.0}


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"LOADGEN_RATES": "1", "LOADGEN_RATE_RANGE": "1:2:1"},
            "LOADGEN_RATES and LOADGEN_RATE_RANGE set the same thing: give one of them",
        ),
        (
            {"LOADGEN_RATE_RANGE": "1:2:1", "LOADGEN_RATE": "1"},
            "LOADGEN_RATE_RANGE and LOADGEN_RATE set the same thing: give one of them",
        ),
    ],
)
def test_env_aliases_exclude_each_other(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        env_source(environ)
    assert str(caught.value).splitlines() == [message]


def test_an_empty_alias_does_not_count() -> None:
    source = env_source({"LOADGEN_RATES": "", "LOADGEN_RATE": "2"})
    assert dict(source.values) == {("load", "rates_rps"): "2"}
    assert dict(source.labels) == {("load", "rates_rps"): "LOADGEN_RATE"}


# --- data_source --------------------------------------------------------------------------------


def test_data_source_labels_each_value_by_its_place() -> None:
    source = data_source(
        {"load": {"trim": 5}, "targets": [{"name": "a"}], "extra": 1}, "sweep.toml"
    )
    assert dict(source.values) == {("load", "trim"): 5}
    assert dict(source.labels) == {
        ("load", "trim"): "sweep.toml: load.trim",
        ("extra",): "sweep.toml: extra",
    }
    assert source.targets == ({"name": "a"},)
    assert source.targets_label == "sweep.toml"
    assert dict(source.unknown) == {"extra": 1}


@pytest.mark.parametrize(("data", "kind"), [([1, 2], "list"), ("text", "str")])
def test_data_source_needs_a_table(data: Any, kind: str) -> None:
    with pytest.raises(ConfigError) as caught:
        data_source(data, "body")
    assert str(caught.value).splitlines() == [f"body: must hold a table of settings, not {kind}"]


def test_data_source_of_nothing_gives_no_settings() -> None:
    source = data_source(None, "body")  # an empty or comments-only YAML file
    assert dict(source.values) == {}
    assert source.targets is None
    assert dict(source.unknown) == {}


@pytest.mark.parametrize("targets", ["a", [1, 2], {"name": "a"}, None])
def test_data_source_targets_must_be_a_list_of_tables(targets: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        data_source({"targets": targets}, "sweep.toml")
    assert str(caught.value).splitlines() == [
        "sweep.toml: targets must be a list of tables ([[targets]])"
    ]


def test_a_section_that_is_no_table_is_named() -> None:
    assert error_lines([data_source({"load": "fast"}, "sweep.toml")]) == [
        "sweep.toml: load: must be a valid dictionary or instance of LoadConfig"
    ]


# --- resolve ------------------------------------------------------------------------------------


def test_unset_names_what_would_set_a_field() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve([flags()], RunConfig, unset={("load", "rates_rps"): "--rates or --rate-range"})
    assert str(caught.value).splitlines() == ["--rates or --rate-range: no request rate given"]


def test_a_source_wins_over_unset() -> None:
    sources = [data_source({"load": {"rates_rps": []}}, "sweep.toml")]
    with pytest.raises(ConfigError) as caught:
        resolve(sources, RunConfig, unset={("load", "rates_rps"): "--rates"})
    assert str(caught.value).splitlines() == ["sweep.toml: load.rates_rps: no request rate given"]


def test_source_of_a_default() -> None:
    resolved = resolve([data_source({"load": RATES}, "sweep.toml")], RunConfig)
    assert isinstance(resolved, Resolved)
    assert resolved.source_of(("load", "rates_rps")) == "sweep.toml: load.rates_rps"
    assert resolved.source_of(("sim", "gpu")) == "sim.gpu (default)"


def test_the_last_file_with_targets_gives_them() -> None:
    first = data_source({"load": RATES, "targets": [{"name": "a"}, {"name": "b"}]}, "one.toml")
    second = data_source({"targets": [{"name": "c"}]}, "two.toml")
    resolved = resolve([first, second], RunConfig)
    assert [target.name for target in resolved.config.targets] == ["c"]
    assert resolved.source_of(("targets", "0", "name")) == "two.toml: targets[0].name"


def test_a_higher_source_replaces_a_headers_value_with_the_same_name() -> None:
    file = data_source({"load": RATES, "target": {"headers": {"Authorization": "a"}}}, "f.toml")
    config = resolve([file, flags("--header", "authorization: b")], RunConfig).config
    assert config.target.headers == {"authorization": "b"}


def test_env_replaces_nothing_it_does_not_name() -> None:
    file = data_source({"load": {**RATES, "trim": 5, "seed": 4}}, "f.toml")
    config = resolve([file, env_source({"LOADGEN_SEED": "9"})], RunConfig).config
    assert (config.load.trim, config.load.seed) == (5, 9)


def test_a_bad_lower_value_is_named_by_its_own_source() -> None:
    # The file's header is the bad one; the flag that adds to it is fine.
    file = data_source({"load": RATES, "target": {"headers": "no colon"}}, "sweep.toml")
    lines = error_lines([file, flags("--header", "X-A: 1")])
    assert len(lines) == 1
    assert lines[0].startswith("sweep.toml: target.headers: ")
    assert lines[0].endswith("a header must look like 'Name: value'")


def test_a_target_without_a_name_is_named_by_its_file() -> None:
    file = data_source({"load": RATES, "targets": [{"base_url": "http://a"}]}, "sweep.toml")
    lines = error_lines([file])
    assert len(lines) == 1
    assert lines[0].startswith("sweep.toml: targets[0]")
    assert "needs a name of letters, digits, '.', '_' or '-'" in lines[0]


# --- unknown keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "line"),
    [
        (
            {"load": {**RATES, "num_request": 5}},
            "sweep.toml: load.num_request: unknown key (did you mean num_requests?)",
        ),
        (
            {"load": {**RATES, "max-concurrency": 5}},
            "sweep.toml: load.max-concurrency: unknown key (did you mean max_concurrency?)",
        ),
        (
            {"load": {**RATES, "rate_range": "1:2:1"}},
            "sweep.toml: load.rate_range: unknown key (did you mean load.rates_rps?)",
        ),
        (
            {"load": RATES, "rates": [1]},
            "sweep.toml: rates: unknown key (did you mean load.rates_rps?)",
        ),
        (
            {"load": RATES, "trim": 5},
            "sweep.toml: trim: unknown key (did you mean load.trim?)",
        ),
        (
            {"load": RATES, "targetz": {}},
            "sweep.toml: targetz: unknown key (did you mean target?)",
        ),
        (
            {"load": RATES, "target": {"header": {"X-A": "1"}}},
            "sweep.toml: target.header: unknown key (did you mean target.headers?)",
        ),
        (
            {"load": RATES, "target": {"base-url": "http://h"}},
            "sweep.toml: target.base-url: unknown key (did you mean base_url?)",
        ),
        (
            {"load": RATES, "metrics": {"metrics_port": 9100}},
            "sweep.toml: metrics.metrics_port: unknown key (did you mean metrics.port?)",
        ),
        (
            {"load": RATES, "sim": {"sim_model": "mistral-7b"}},
            "sweep.toml: sim.sim_model: unknown key (did you mean sim.model?)",
        ),
        (
            {"load": RATES, "targets": [{"name": "a", "modle": "m"}]},
            "sweep.toml: targets[0].modle: unknown key (did you mean model?)",
        ),
        (
            {"load": RATES, "targets": [{"name": "a", "base-url": "http://a"}]},
            "sweep.toml: targets[0].base-url: unknown key (did you mean base_url?)",
        ),
        ({"load": RATES, "zzzzzz": 5}, "sweep.toml: zzzzzz: unknown key"),
        ({"load": RATES, "config": "x.toml"}, "sweep.toml: config: unknown key"),
    ],
    ids=[
        "near-field",
        "dashes",
        "alias-option",
        "top-level-option",
        "top-level-field-option",
        "near-section",
        "flag-name-in-section",
        "dashes-in-target",
        "option-name-in-its-section",
        "sim-option-name",
        "near-field-in-targets-entry",
        "dashes-in-targets-entry",
        "far-off",
        "not-a-setting",
    ],
)
def test_unknown_keys_are_named_with_a_suggestion(document: dict[str, Any], line: str) -> None:
    assert error_lines([data_source(document, "sweep.toml")]) == [line]


def test_unknown_keys_give_one_line_each() -> None:
    document = {"load": {**RATES, "rate": 3}, "target": {"header": {}}, "rates": 3}
    assert error_lines([data_source(document, "sweep.toml")]) == [
        "sweep.toml: target.header: unknown key (did you mean target.headers?)",
        "sweep.toml: load.rate: unknown key (did you mean load.rates_rps?)",
        "sweep.toml: rates: unknown key (did you mean load.rates_rps?)",
    ]


# --- option_fields ------------------------------------------------------------------------------


def test_option_names_are_unique() -> None:
    names = [name for option in option_fields() for name in option.names]
    assert len(names) == len(set(names))


def test_option_fields_leave_out_file_only_fields() -> None:
    paths = {option.path for option in option_fields()}
    assert ("target", "name") not in paths
    assert ("targets",) not in paths
    assert ("target", "base_url") in paths


def test_option_names_and_variables() -> None:
    by_path = {option.path: option for option in option_fields()}
    rates = by_path[("load", "rates_rps")]
    assert rates.names == ("rates", "rate_range", "rate")
    assert rates.env_names == ("LOADGEN_RATES", "LOADGEN_RATE_RANGE", "LOADGEN_RATE")
    assert by_path[("target", "headers")].env_names == ("LOADGEN_HEADER",)
    assert by_path[("target", "headers")].opt.merge is True
    assert by_path[("metrics", "linger_s")].env_names == ("LOADGEN_METRICS_LINGER",)
