"""Tests for loadgen.cli.commands: `config show|schema`, and the usage errors of the others."""

from __future__ import annotations

import tomllib
from pathlib import Path

import orjson
import pytest

from loadgen.cli import build_parser, main
from loadgen.cli.run import resolved_run, run_flags
from loadgen.config import RunConfig

SECRET = "Bearer sekrit-123"
# The configuration's sections, in the order every dump and the schema list them.
SECTIONS = [
    *("target", "targets", "load", "workload", "output", "metrics", "sim", "cluster"),
    "capacity",
]


def show(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The stdout of `loadgen config show ARGV`, which must succeed."""
    assert main(["config", "show", *argv]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def sweep_config(*argv: str) -> RunConfig:
    """The configuration `loadgen sweep ARGV` would run with."""
    return resolved_run(build_parser().parse_args(["sweep", *argv]), run_flags("sweep")).config


def usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line of `loadgen ARGV`, which must exit 2."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err
    return captured.err


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- config show --------------------------------------------------------------------------------


def test_show_marks_the_source_of_each_value_that_is_no_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "sweep.toml", "[load]\nrates_rps = [1, 2]\nnum_requests = 50\n")
    monkeypatch.setenv("LOADGEN_SEED", "3")
    lines = show(["--config", str(path), "--trim", "5"], capsys).splitlines()
    assert lines[0] == (
        "# loadgen configuration; a comment says where a value that is no default came from"
    )
    assert f"rates_rps = [1.0, 2.0]  # {path}: load.rates_rps" in lines
    assert f"num_requests = 50  # {path}: load.num_requests" in lines
    assert "trim = 5  # --trim" in lines
    assert "seed = 3  # LOADGEN_SEED" in lines
    assert 'arrival = "poisson"' in lines
    assert 'gpu = "a100"' in lines
    assert [line for line in lines if line.startswith("[")] == [
        "[target]",
        "[load]",
        "[workload]",
        "[output]",
        "[metrics]",
        "[sim]",
        "[cluster]",
        "[capacity]",
    ]


def test_show_hides_header_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        "sweep.toml",
        "[load]\nrates_rps = 1\n"
        f"[[targets]]\nname = 'a'\nbase_url = 'http://a:8000'\nheaders = {{X-Own = '{SECRET}'}}\n",
    )
    monkeypatch.setenv("LOADGEN_HEADER", f"X-Env: {SECRET}")
    argv = ["--config", str(path), "--header", f"Authorization: {SECRET}"]
    text = show(argv, capsys)
    assert "sekrit" not in text
    assert 'headers = { "X-Env" = "***", "Authorization" = "***" }  # --header' in text
    assert f'headers = {{ "X-Own" = "***" }}  # {path}: targets[0].headers' in text
    as_json = show([*argv, "--format", "json"], capsys)
    assert "sekrit" not in as_json
    data = orjson.loads(as_json)
    assert data["config"]["target"]["headers"] == {"X-Env": "***", "Authorization": "***"}
    assert data["config"]["targets"][0]["headers"] == {"X-Own": "***"}


def test_show_as_json_names_the_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "sweep.yaml", "workload:\n  dataset: s2s\n")
    monkeypatch.setenv("LOADGEN_BASE_URL", "http://env-host:9000")
    data = orjson.loads(
        show(["--config", str(path), "--rates", "1,inf", "--format", "json"], capsys)
    )
    assert data["sources"] == {
        "workload.dataset": f"{path}: workload.dataset",
        "target.base_url": "LOADGEN_BASE_URL",
        "load.rates_rps": "--rates",
    }
    assert list(data["config"]) == SECTIONS
    assert data["config"]["target"]["base_url"] == "http://env-host:9000/v1"
    assert data["config"]["load"]["rates_rps"] == [1.0, "inf"]
    assert data["config"]["load"]["num_requests"] == 1000
    assert data["config"]["workload"]["dataset"] == "s2s"
    assert data["config"]["output"] == {"out_dir": None}


def test_show_toml_parses(capsys: pytest.CaptureFixture[str]) -> None:
    data = tomllib.loads(
        show(["--rates", "1,inf", "--extra-body", '{"n": {"a": [1, "x"]}}'], capsys)
    )
    assert data["load"]["rates_rps"] == [1.0, "inf"]  # as a sweep file may write it
    assert data["load"]["trim"] == 100
    assert data["target"]["extra_body"] == {"n": {"a": [1, "x"]}}
    assert data["target"]["stream"] is True
    assert "base_url" not in data["target"]  # unset: TOML has no null
    assert data["sim"]["model"] == "llama-2-7b"


def test_show_toml_read_back_is_the_same_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = [
        "--rates",
        "1,2,inf",
        "--trim",
        "5",
        "--num-requests",
        "50",
        "--slo",
        "ttft=0.5,e2e=2",
        "--base-url",
        "http://h:8000",
        "--model",
        'we"ird\\name ü',
        "--no-ignore-eos",
        "--temperature",
        "0.5",
        "--extra-body",
        '{"seed": 7, "n": {"a": [1, "x"]}}',
        "--dataset",
        "s2s",
        "--shuffle",
        "--out",
        str(tmp_path / "out dir"),
        "--metrics-port",
        "0",
        "--pushgateway",
        "http://pg:9091",
        "--gpu",
        "h100",
        "--sim-model",
        "mistral-7b",
        "--max-num-seqs",
        "8",
    ]
    path = write(tmp_path, "shown.toml", show(flags, capsys))
    again = sweep_config("--config", str(path))
    assert again == sweep_config(*flags)
    assert again.target.model == 'we"ird\\name ü'
    assert again.load.rates_rps == (1.0, 2.0, float("inf"))
    assert again.output.out_dir == tmp_path / "out dir"


def test_show_toml_of_duration_and_targets_reads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = write(
        tmp_path,
        "sweep.toml",
        "[target]\nmodel = 'common'\nextra_body = {a = 1}\n"
        "[load]\nrates_rps = [10]\nduration_s = 60\ntrim = 5\nslos = {e2e = 2}\n"
        "[[targets]]\nname = 'alpha'\nbase_url = 'http://a:8000'\nextra_body = {b = 2}\n"
        "[[targets]]\nname = 'beta'\nbase_url = 'http://b:9000/v1'\nmodel = 'own'\n",
    )
    text = show(["--config", str(sweep)], capsys)
    assert tomllib.loads(text)["targets"] == [
        {"name": "alpha", "base_url": "http://a:8000/v1", "extra_body": {"b": 2}},
        {"name": "beta", "base_url": "http://b:9000/v1", "model": "own"},
    ]
    again = sweep_config("--config", str(write(tmp_path, "shown.toml", text)))
    assert again == sweep_config("--config", str(sweep))
    assert again.targets[0].extra_body == {"a": 1, "b": 2}
    assert (again.load.duration_s, again.load.trim) == (60.0, 5)


def test_show_toml_without_slos_reads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The plainest case: no SLOs given, so the shown file holds `slos = {}`.
    flags = ["--rates", "1,2", "--trim", "5"]
    text = show(flags, capsys)
    assert "slos = {}" in text.splitlines()
    again = sweep_config("--config", str(write(tmp_path, "shown.toml", text)))
    assert again == sweep_config(*flags)


def test_show_json_config_read_back_is_the_same_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--rates", "1,inf", "--slo", "e2e=2", "--header", "X-A: 1", "--seed", "4"]
    data = orjson.loads(show([*flags, "--format", "json"], capsys))
    data["config"]["target"]["headers"] = {"X-A": "1"}  # header values are given again
    path = tmp_path / "shown.json"
    path.write_bytes(orjson.dumps(data["config"]))
    assert sweep_config("--config", str(path)) == sweep_config(*flags)


def test_show_refuses_hidden_header_values_read_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = show(["--rates", "1", "--slo", "e2e=2", "--header", "X-A: 1"], capsys)
    path = write(tmp_path, "shown.toml", text)
    err = usage_error(["config", "show", "--config", str(path)], capsys)
    assert err.startswith(f"error: {path}: target.headers: "), err
    assert "X-A: its value was not written to results" in err


def test_show_without_rates_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(["config", "show"], capsys)
    assert err == "error: --rates or --rate-range: no request rate given\n"


def test_show_toml_of_a_null_in_a_body_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = usage_error(["config", "show", "--rates", "1", "--extra-body", '{"a": null}'], capsys)
    assert err == "error: extra_body: None has no TOML form; use --format json\n"
    data = orjson.loads(
        show(["--rates", "1", "--extra-body", '{"a": null}', "--format", "json"], capsys)
    )
    assert data["config"]["target"]["extra_body"] == {"a": None}


def test_show_format_is_toml_or_json(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["config", "show", "--rates", "1", "--format", "yaml"])
    assert caught.value.code == 2
    assert capsys.readouterr().err == (
        "loadgen config show: error: argument --format: invalid choice: 'yaml' "
        "(choose from 'toml', 'json') (see --help)\n"
    )


# --- config schema ------------------------------------------------------------------------------


def test_schema_is_json_with_the_sections(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema"]) == 0
    schema = orjson.loads(capsys.readouterr().out)
    assert list(schema["properties"]) == SECTIONS
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False


def test_config_needs_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["config"])
    assert caught.value.code == 2
    assert capsys.readouterr().err == (
        "loadgen config: error: the following arguments are required: action (see --help)\n"
    )


# --- sim, dataset describe, report: what fails before anything starts ---------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--port", "70000"],
            "error: --port: must be less than or equal to 65535 (got '70000')\n",
        ),
        (
            ["--model", "nope"],
            "error: --model: unknown model 'nope'; choose from llama-2-7b, llama-2-13b, "
            "mistral-7b, vicuna-7b-16k\n",
        ),
        (["--time-scale", "0"], "error: --time-scale: must be greater than 0 (got '0')\n"),
    ],
)
def test_sim_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert usage_error(["sim", *argv], capsys) == message


def test_dataset_describe_synthetic(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["dataset", "describe", "synthetic", "--num-requests", "10"]
    assert main([*argv, "--input-len", "16", "--output-len", "8", "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out) == {
        "count": 10,
        "input_tokens": {"min": 16, "p50": 16.0, "mean": 16.0, "p90": 16.0, "max": 16},
        "output_tokens": {"min": 8, "p50": 8.0, "mean": 8.0, "p90": 8.0, "max": 8},
        "tokens_source": "estimate",
    }


def test_dataset_describe_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(["dataset", "describe", "s2s", "--num-requests", "0"], capsys)
    assert err == "error: --num-requests: must be greater than or equal to 1 (got '0')\n"


def test_report_of_a_missing_folder_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(["report", str(tmp_path / "nothing")], capsys)
    assert (
        err
        == f"error: {tmp_path / 'nothing'}/summary.json: cannot read (No such file or directory)\n"
    )
