"""Tests for loadgen.config_file: reading TOML/YAML sweep files, their options and targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadgen.config import ConfigError
from loadgen.config_file import SweepFile, TargetEntry, read_sweep_file

TOML = """
num-requests = 200
rates = [1, 2, 4]
headers = {X-Team = "perf"}

[[targets]]
name = "vllm"
base-url = "http://a:8000"
model = "m1"

[[targets]]
name = "mii"
base_url = "http://b:8000"
"""

YAML = """
num_requests: 200
rates: [1, 2, 4]
header:
  X-Team: perf
targets:
  - name: vllm
    base_url: http://a:8000
    model: m1
  - name: mii
    base-url: http://b:8000
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    """The message of the ConfigError that reading `path` must raise."""
    with pytest.raises(ConfigError) as caught:
        read_sweep_file(path)
    return str(caught.value)


def target_error(tmp_path: Path, target: str) -> str:
    """The error for a TOML file with one [[targets]] entry whose body is `target`."""
    return error_of(write(tmp_path, "s.toml", f"rates = [1]\n[[targets]]\n{target}\n"))


# --- parsing ------------------------------------------------------------------------------------


def test_toml_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", TOML)
    sweep = read_sweep_file(path)
    assert sweep.path == path
    assert dict(sweep.options) == {
        "num_requests": 200,
        "rates": [1, 2, 4],
        "header": {"X-Team": "perf"},
    }
    assert sweep.targets == (
        TargetEntry("vllm", {"base_url": "http://a:8000", "model": "m1"}),
        TargetEntry("mii", {"base_url": "http://b:8000"}),
    )


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".YAML"])
def test_yaml_gives_the_same_sweep_as_toml(tmp_path: Path, suffix: str) -> None:
    from_toml = read_sweep_file(write(tmp_path, "s.toml", TOML))
    from_yaml = read_sweep_file(write(tmp_path, f"s{suffix}", YAML))
    assert dict(from_yaml.options) == dict(from_toml.options)
    assert from_yaml.targets == from_toml.targets
    assert from_yaml.path.suffix == suffix


def test_slos_alias_and_dashes(tmp_path: Path) -> None:
    sweep = read_sweep_file(
        write(tmp_path, "s.toml", 'slos = "ttft=1"\nmax-concurrency = 8\nrate-range = "1:3:1"\n')
    )
    assert dict(sweep.options) == {
        "slo": "ttft=1",
        "max_concurrency": 8,
        "rate_range": "1:3:1",
    }
    assert sweep.targets == ()


def test_target_keys_are_normalised(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.toml",
        '[[targets]]\nname = "t"\nbase-url = "u"\napi-key-env = "K"\nheaders = ["A: 1"]\n',
    )
    (target,) = read_sweep_file(path).targets
    assert target.name == "t"
    assert dict(target.options) == {"base_url": "u", "api_key_env": "K", "header": ["A: 1"]}


def test_empty_yaml_gives_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "")
    assert read_sweep_file(path) == SweepFile(path, {}, ())


def test_empty_toml_gives_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", "# nothing\n")
    assert read_sweep_file(path) == SweepFile(path, {}, ())


def test_base_url_alone_without_targets_is_an_option(tmp_path: Path) -> None:
    sweep = read_sweep_file(write(tmp_path, "s.toml", 'base_url = "http://h"\ntargets = []\n'))
    assert dict(sweep.options) == {"base_url": "http://h"}
    assert sweep.targets == ()


# --- file errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["num-requests = 1\nnum_requests = 2\n", 'header = "A: 1"\nheaders = "B: 2"\n'],
)
def test_key_given_twice(tmp_path: Path, text: str) -> None:
    message = error_of(write(tmp_path, "s.toml", text))
    assert "given twice" in message
    assert "s.toml" in message


def test_key_given_twice_in_a_target(tmp_path: Path) -> None:
    message = target_error(tmp_path, 'name = "t"\nbase_url = "u"\nbase-url = "v"')
    assert "given twice" in message


def test_unknown_suffix(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "s.json", "{}"))
    assert "s.json" in message
    assert ".toml, .yaml or .yml" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    message = error_of(path)
    assert message.startswith(f"{path}: cannot read")


def test_directory_cannot_be_read(tmp_path: Path) -> None:
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    assert "cannot read" in error_of(folder)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_bytes(b"model = '\xff\xfe'\n")
    assert "not UTF-8" in error_of(path)


def test_invalid_toml(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "s.toml", "rates = [1,\n"))
    assert message.startswith(f"{tmp_path / 's.toml'}: not valid TOML")


def test_invalid_yaml(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "s.yaml", "rates: [1, 2\nmodel: x\n"))
    assert message.startswith(f"{tmp_path / 's.yaml'}: not valid YAML")
    assert "\n" not in message


@pytest.mark.parametrize(("text", "kind"), [("- 1\n- 2\n", "list"), ("just text\n", "str")])
def test_top_level_must_be_a_table(tmp_path: Path, text: str, kind: str) -> None:
    message = error_of(write(tmp_path, "s.yaml", text))
    assert "must hold a table of options" in message
    assert kind in message


@pytest.mark.parametrize(
    "text",
    [
        'targets = "a"\n',
        "targets = [1, 2]\n",
        '[targets]\nname = "a"\nbase_url = "u"\n',
    ],
)
def test_targets_must_be_a_list_of_tables(tmp_path: Path, text: str) -> None:
    assert "targets must be a list of tables" in error_of(write(tmp_path, "s.toml", text))


def test_targets_null_in_yaml(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "s.yaml", "targets:\n"))
    assert "targets must be a list of tables" in message


# --- target errors ------------------------------------------------------------------------------


def test_target_needs_a_name(tmp_path: Path) -> None:
    message = target_error(tmp_path, 'base_url = "u"')
    assert "targets[0]" in message
    assert "needs a name" in message


@pytest.mark.parametrize(
    "name",
    ['"a b"', '"../x"', '"x/y"', '""', '".hidden"', '"-x"', "7", f'"{"n" * 65}"'],
)
def test_target_bad_name(tmp_path: Path, name: str) -> None:
    assert "needs a name" in target_error(tmp_path, f'name = {name}\nbase_url = "u"')


@pytest.mark.parametrize("name", ["a", "vllm-0.6_tp2", "A.B", "9", "n" * 64])
def test_target_good_name(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, "s.toml", f'[[targets]]\nname = "{name}"\nbase_url = "u"\n')
    assert read_sweep_file(path).targets[0].name == name


def test_target_needs_a_base_url(tmp_path: Path) -> None:
    message = target_error(tmp_path, 'name = "alpha"\nmodel = "m"')
    assert "targets[0] (alpha)" in message
    assert "needs a base_url" in message


@pytest.mark.parametrize("key", ["rates", "num_requests", "dataset", "seed", "slo"])
def test_target_key_not_allowed(tmp_path: Path, key: str) -> None:
    message = target_error(tmp_path, f'name = "alpha"\nbase_url = "u"\n{key} = "1"')
    assert f"(alpha): {key} cannot differ between targets" in message


def test_second_target_is_named_in_its_error(tmp_path: Path) -> None:
    text = '[[targets]]\nname = "a"\nbase_url = "u"\n[[targets]]\nname = "b"\n'
    assert "targets[1] (b): needs a base_url" in error_of(write(tmp_path, "s.toml", text))


def test_duplicate_target_names(tmp_path: Path) -> None:
    text = (
        '[[targets]]\nname = "same"\nbase_url = "u"\n'
        '[[targets]]\nname = "other"\nbase_url = "v"\n'
        '[[targets]]\nname = "same"\nbase_url = "w"\n'
    )
    message = error_of(write(tmp_path, "s.toml", text))
    assert "two targets are named 'same'" in message


def test_base_url_beside_targets(tmp_path: Path) -> None:
    text = 'base_url = "http://h"\n[[targets]]\nname = "a"\nbase_url = "u"\n'
    message = error_of(write(tmp_path, "s.toml", text))
    assert "give base_url in each target" in message
