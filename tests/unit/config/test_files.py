"""Tests for loadgen.config.files: sweep files (TOML, YAML, JSON), summary.json, the schema."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from loadgen.cli.main import main
from loadgen.config import ConfigError, RunConfig, resolve
from loadgen.config.files import SUFFIXES, file_source, read_document
from loadgen.config.sources import data_source

INF = math.inf
SWEEPS = Path(__file__).resolve().parents[3] / "docker" / "sweeps"
SWEEP_FILES = [path for path in sorted(SWEEPS.iterdir()) if path.suffix in SUFFIXES]

TOML = """
[load]
rates_rps = [1, 2, 4]
num_requests = 200
trim = 10

[target]
headers = { "X-Team" = "perf" }

[[targets]]
name = "vllm"
base_url = "http://a:8000"
model = "m1"

[[targets]]
name = "mii"
base_url = "http://b:8000"
"""

YAML = """
load:
  rates_rps: [1, 2, 4]
  num_requests: 200
  trim: 10
target:
  headers:
    X-Team: perf
targets:
  - name: vllm
    base_url: http://a:8000
    model: m1
  - name: mii
    base_url: http://b:8000
"""

JSON = """
{
  "load": {"rates_rps": [1, 2, 4], "num_requests": 200, "trim": 10},
  "target": {"headers": {"X-Team": "perf"}},
  "targets": [
    {"name": "vllm", "base_url": "http://a:8000", "model": "m1"},
    {"name": "mii", "base_url": "http://b:8000"}
  ]
}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_lines(path: Path) -> list[str]:
    """The lines of the ConfigError that reading `path` must raise."""
    with pytest.raises(ConfigError) as caught:
        file_source(path)
    return str(caught.value).splitlines()


# --- reading ------------------------------------------------------------------------------------


def test_toml_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", TOML)
    source = file_source(path)
    assert dict(source.values) == {
        ("load", "rates_rps"): [1, 2, 4],
        ("load", "num_requests"): 200,
        ("load", "trim"): 10,
        ("target", "headers"): {"X-Team": "perf"},
    }
    assert source.labels[("load", "trim")] == f"{path}: load.trim"
    assert source.targets == (
        {"name": "vllm", "base_url": "http://a:8000", "model": "m1"},
        {"name": "mii", "base_url": "http://b:8000"},
    )
    assert source.targets_label == str(path)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("s.yaml", YAML),
        ("s.yml", YAML),
        ("s.YAML", YAML),
        ("s.json", JSON),
        ("s.JSON", JSON),
        ("s.TOML", TOML),
    ],
)
def test_every_format_gives_the_same_values(tmp_path: Path, name: str, text: str) -> None:
    source = file_source(write(tmp_path, name, text))
    assert dict(source.values) == {
        ("load", "rates_rps"): [1, 2, 4],
        ("load", "num_requests"): 200,
        ("load", "trim"): 10,
        ("target", "headers"): {"X-Team": "perf"},
    }
    assert source.targets == (
        {"name": "vllm", "base_url": "http://a:8000", "model": "m1"},
        {"name": "mii", "base_url": "http://b:8000"},
    )


def test_a_file_resolves_to_its_config(tmp_path: Path) -> None:
    config = resolve([file_source(write(tmp_path, "s.toml", TOML))], RunConfig).config
    assert config.load.rates_rps == (1.0, 2.0, 4.0)
    assert (config.load.num_requests, config.load.trim) == (200, 10)
    vllm, mii = config.run_targets()
    assert (vllm.name, vllm.base_url, vllm.model) == ("vllm", "http://a:8000/v1", "m1")
    assert (mii.name, mii.base_url, mii.model) == ("mii", "http://b:8000/v1", None)
    assert vllm.headers == mii.headers == {"X-Team": "perf"}


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("s.toml", "[load]\nrates_rps = [4, inf]\n"),
        ("s.yaml", "load:\n  rates_rps: [4, .inf]\n"),
        ("s.json", '{"load": {"rates_rps": [4, "inf"]}}'),
        ("s.toml", '[load]\nrates_rps = "4,inf"\n'),
    ],
)
def test_infinite_rates_in_each_format(tmp_path: Path, name: str, text: str) -> None:
    config = resolve([file_source(write(tmp_path, name, text))], RunConfig).config
    assert config.load.rates_rps == (4.0, INF)


def test_yaml_headers_as_a_list_of_one_entry_tables(tmp_path: Path) -> None:
    text = "load:\n  rates_rps: [1]\ntarget:\n  headers:\n    - X-A: '1'\n    - X-B: '2'\n"
    config = resolve([file_source(write(tmp_path, "s.yaml", text))], RunConfig).config
    assert config.target.headers == {"X-A": "1", "X-B": "2"}


def test_tables_given_as_text(tmp_path: Path) -> None:
    text = (
        '[load]\nrates_rps = [1]\nslos = "e2e=3"\n'
        "[target]\nextra_body = '{\"z\": [1]}'\nheaders = 'X-B: 2'\n"
    )
    config = resolve([file_source(write(tmp_path, "s.toml", text))], RunConfig).config
    assert config.target.extra_body == {"z": [1]}
    assert config.load.slos == {"e2e": 3.0}
    assert config.target.headers == {"X-B": "2"}


def test_a_summary_json_gives_its_config(tmp_path: Path) -> None:
    summary = {
        "tool": "loadgen",
        "version": "0.1.0",
        "target": {"name": None, "label": "sim", "model": "m", "base_url": None},
        "config": {"load": {"rates_rps": [2, "inf"], "trim": 3, "num_requests": 50}},
        "steps": [],
    }
    path = write(tmp_path, "summary.json", json.dumps(summary))
    source = file_source(path)
    assert dict(source.values) == {
        ("load", "rates_rps"): [2, "inf"],
        ("load", "trim"): 3,
        ("load", "num_requests"): 50,
    }
    assert source.labels[("load", "trim")] == f"{path}: load.trim"
    assert resolve([source], RunConfig).config.load.rates_rps == (2.0, INF)


def test_a_json_of_another_tool_is_read_as_settings(tmp_path: Path) -> None:
    path = write(tmp_path, "other.json", '{"tool": "other", "config": {}}')
    with pytest.raises(ConfigError) as caught:
        resolve([file_source(path)], RunConfig)
    assert str(caught.value).splitlines() == [
        f"{path}: tool: unknown key",
        f"{path}: config: unknown key",
    ]


@pytest.mark.parametrize(
    ("name", "text"),
    [("s.toml", ""), ("s.toml", "# nothing yet\n"), ("s.json", "{}")],
)
def test_an_empty_file_gives_nothing(tmp_path: Path, name: str, text: str) -> None:
    source = file_source(write(tmp_path, name, text))
    assert dict(source.values) == {}
    assert source.targets is None


@pytest.mark.parametrize("text", ["", "# nothing yet\n"])
def test_an_empty_yaml_file_gives_nothing_as_toml_does(tmp_path: Path, text: str) -> None:
    source = file_source(write(tmp_path, "s.yaml", text))
    assert dict(source.values) == {}
    assert source.targets is None


# --- file errors: one line, starting with the file ----------------------------------------------


def test_unknown_suffix(tmp_path: Path) -> None:
    path = write(tmp_path, "s.ini", "[load]\n")
    assert error_lines(path) == [f"{path}: a sweep file must end in .toml, .yaml, .yml, .json"]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    assert error_lines(path) == [f"{path}: cannot read (No such file or directory)"]


def test_a_directory_cannot_be_read(tmp_path: Path) -> None:
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    assert error_lines(folder) == [f"{folder}: cannot read (Is a directory)"]


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_bytes(b"model = '\xff\xfe'\n")
    assert error_lines(path) == [f"{path}: not UTF-8 text"]


def test_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", "[load]\nrates_rps = [1,\n")
    (line,) = error_lines(path)
    assert line.startswith(f"{path}: not valid TOML: ")


def test_invalid_yaml_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "load:\n  rates_rps: [1, 2\n  trim: x\n")
    (line,) = error_lines(path)
    assert line.startswith(f"{path}: not valid YAML: ")
    assert "line 3" in line


def test_invalid_json(tmp_path: Path) -> None:
    path = write(tmp_path, "s.json", "{bad")
    (line,) = error_lines(path)
    assert line.startswith(f"{path}: not valid JSON: ")


@pytest.mark.parametrize(
    ("name", "text", "kind"),
    [
        ("s.yaml", "- 1\n- 2\n", "list"),
        ("s.yaml", "just text\n", "str"),
        ("s.json", "[1]", "list"),
    ],
)
def test_top_level_must_be_a_table(tmp_path: Path, name: str, text: str, kind: str) -> None:
    path = write(tmp_path, name, text)
    assert error_lines(path) == [f"{path}: must hold a table of settings, not {kind}"]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("s.toml", 'targets = "a"\n'),
        ("s.toml", "targets = [1, 2]\n"),
        ("s.toml", '[targets]\nname = "a"\n'),
        ("s.yaml", "targets:\n"),
    ],
)
def test_targets_must_be_a_list_of_tables(tmp_path: Path, name: str, text: str) -> None:
    path = write(tmp_path, name, text)
    assert error_lines(path) == [f"{path}: targets must be a list of tables ([[targets]])"]


def test_a_bad_value_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", '[load]\nrates_rps = ["fast"]\n')
    with pytest.raises(ConfigError) as caught:
        resolve([file_source(path)], RunConfig)
    assert str(caught.value).splitlines() == [
        f"{path}: load.rates_rps: invalid rate 'fast': expected a positive number of requests "
        "per second or 'inf'",
    ]


def test_a_bad_value_in_a_targets_entry_names_the_file_and_the_entry(tmp_path: Path) -> None:
    text = '[load]\nrates_rps = [1]\n[[targets]]\nname = "a"\n[[targets]]\nname = "b c"\n'
    path = write(tmp_path, "s.toml", text)
    with pytest.raises(ConfigError) as caught:
        resolve([file_source(path)], RunConfig)
    assert str(caught.value).splitlines() == [
        f"{path}: targets[1].name: needs a name of letters, digits, '.', '_' or '-' (it labels "
        "metrics and names the results folder)",
    ]


# --- the JSON Schema and the sweep files of the repository -------------------------------------


@pytest.fixture
def schema(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """What `loadgen config schema` prints."""
    assert main(["config", "schema"]) == 0
    printed: dict[str, Any] = json.loads(capsys.readouterr().out)
    return printed


def schema_errors(schema: dict[str, Any], document: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [error.message for error in validator.iter_errors(document)]


def test_the_printed_schema_is_the_models(schema: dict[str, Any]) -> None:
    assert schema == RunConfig.model_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)


def test_there_are_sweep_files() -> None:
    assert {"gpu.toml", "staging.toml"} <= {path.name for path in SWEEP_FILES}


@pytest.mark.parametrize("path", SWEEP_FILES, ids=[path.name for path in SWEEP_FILES])
def test_the_schema_validates_each_sweep_file(schema: dict[str, Any], path: Path) -> None:
    assert schema_errors(schema, read_document(path)) == []


@pytest.mark.parametrize("path", SWEEP_FILES, ids=[path.name for path in SWEEP_FILES])
def test_each_sweep_file_resolves(path: Path) -> None:
    config = resolve([file_source(path)], RunConfig).config
    assert config.run_targets()


def test_the_gpu_sweep_file_as_written() -> None:
    config = resolve([file_source(SWEEPS / "gpu.toml")], RunConfig).config
    assert config.workload.dataset == "s2s"
    assert config.load.rates_rps == (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    vllm, mii = config.run_targets()
    assert (vllm.name, vllm.base_url) == ("vllm", "http://vllm:8000/v1")
    assert (mii.name, mii.base_url) == ("mii", "http://mii:8001/v1")
    for target in (vllm, mii):
        assert (target.ignore_eos, target.temperature, target.top_k) == (False, 1.0, 1)


def test_the_staging_sweep_file_as_written() -> None:
    config = resolve([file_source(SWEEPS / "staging.toml")], RunConfig).config
    assert config.load.rates_rps == (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)
    assert config.output.out_dir == Path("results/staging")
    staging, baseline = config.run_targets()
    assert staging.headers == {"X-Loadgen-Run": "staging-sweep"}
    assert baseline.headers == {}
    assert (staging.request_timeout_s, baseline.request_timeout_s) == (600.0, 3600.0)
    for target in (staging, baseline):
        assert (target.endpoint, target.api_key_env) == ("chat", "STAGING_API_KEY")
        assert target.model == "meta-llama/Llama-2-7b-chat-hf"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[load]\nnum_request = 3\n",
            "Additional properties are not allowed ('num_request' was unexpected)",
        ),
        ("rates = [1]\n", "Additional properties are not allowed ('rates' was unexpected)"),
        (
            '[[targets]]\nname = "a"\nbase-url = "http://a"\n',
            "Additional properties are not allowed ('base-url' was unexpected)",
        ),
    ],
    ids=["in-a-section", "top-level", "in-a-targets-entry"],
)
def test_the_schema_rejects_an_unknown_key(schema: dict[str, Any], text: str, message: str) -> None:
    assert schema_errors(schema, tomllib.loads(text)) == [message]


@pytest.mark.parametrize(
    "text",
    [
        "load:\n  rates_rps: 1:4:1\n",
        "load:\n  rates_rps: [1, .inf]\n  slos: ttft=0.5\n",
        "load:\n  rates_rps: [1]\ntarget:\n  headers:\n    - X-A: '1'\n",
        "load:\n  rates_rps: [1]\ntarget:\n  headers: 'X-A: 1'\n",
        "load:\n  rates_rps: [1]\ntarget:\n  extra_body: '{\"seed\": 1}'\n",
    ],
    ids=["rate-range-text", "slo-text", "headers-list-of-tables", "header-text", "body-text"],
)
def test_the_schema_accepts_what_a_sweep_file_may_hold(
    schema: dict[str, Any], tmp_path: Path, text: str
) -> None:
    # Each document resolves: the schema of sweep files must not call it wrong.
    resolve([file_source(write(tmp_path, "s.yaml", text))], RunConfig)
    assert schema_errors(schema, yaml.safe_load(text)) == []


def test_a_dumped_document_validates(schema: dict[str, Any]) -> None:
    document = {"load": {"rates_rps": [1, "inf"]}, "targets": [{"name": "a"}]}
    config = resolve([data_source(document, "body")], RunConfig).config
    assert schema_errors(schema, config.model_dump(mode="json")) == []
