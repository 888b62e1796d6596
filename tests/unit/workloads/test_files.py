"""Tests for loadgen.workloads.files: JSON list and JSONL prompt files, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadgen.core.records import RequestSpec
from loadgen.workloads import DatasetError
from loadgen.workloads.files import load_prompt_file

THREE = [
    RequestSpec(prompt="one", max_tokens=1),
    RequestSpec(prompt="two", max_tokens=2),
    RequestSpec(prompt="three", max_tokens=3),
]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_json_list(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.json",
        '[{"prompt": "one", "max_tokens": 1},\n {"prompt": "two", "max_tokens": 2},\n'
        ' {"prompt": "three", "max_tokens": 3, "extra": "ignored"}]\n',
    )
    assert load_prompt_file(path) == THREE


def test_json_list_after_leading_whitespace(tmp_path: Path) -> None:
    path = write(tmp_path, "p.json", '\n\n  [{"prompt": "one", "max_tokens": 1}]')
    assert load_prompt_file(path) == THREE[:1]


def test_jsonl_with_blank_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.jsonl",
        '\n{"prompt": "one", "max_tokens": 1}\n\n   \n'
        '{"prompt": "two", "max_tokens": 2}\r\n{"prompt": "three", "max_tokens": 3}',
    )
    assert load_prompt_file(path) == THREE


def test_unicode_prompt(tmp_path: Path) -> None:
    path = write(tmp_path, "p.jsonl", '{"prompt": "héllo 世界 🙂", "max_tokens": 5}\n')
    assert load_prompt_file(path) == [RequestSpec(prompt="héllo 世界 🙂", max_tokens=5)]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.jsonl"
    with pytest.raises(DatasetError, match="cannot read") as caught:
        load_prompt_file(path)
    assert str(path) in str(caught.value)


def test_invalid_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.jsonl",
        '{"prompt": "one", "max_tokens": 1}\n\n{"prompt": "two", max_tokens: 2}\n',
    )
    with pytest.raises(DatasetError, match="not valid JSON") as caught:
        load_prompt_file(path)
    assert str(caught.value).startswith(f"{path}:3:")


def test_invalid_json_list_names_file(tmp_path: Path) -> None:
    path = write(tmp_path, "p.json", '[{"prompt": "one", "max_tokens": 1},]')
    with pytest.raises(DatasetError, match="not valid JSON") as caught:
        load_prompt_file(path)
    assert str(caught.value).startswith(str(path))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"max_tokens": 4}', "'prompt' must be a string"),
        ('{"prompt": 12, "max_tokens": 4}', "'prompt' must be a string"),
        ('{"prompt": null, "max_tokens": 4}', "'prompt' must be a string"),
        ('{"prompt": "p"}', "'max_tokens' must be a positive integer"),
        ('{"prompt": "p", "max_tokens": 0}', "'max_tokens' must be a positive integer"),
        ('{"prompt": "p", "max_tokens": -3}', "'max_tokens' must be a positive integer"),
        ('{"prompt": "p", "max_tokens": true}', "'max_tokens' must be a positive integer"),
        ('{"prompt": "p", "max_tokens": "4"}', "'max_tokens' must be a positive integer"),
        ('{"prompt": "p", "max_tokens": 4.0}', "'max_tokens' must be a positive integer"),
        ('["p", 4]', "expected an object"),
        ('"just a prompt"', "expected an object"),
    ],
)
def test_bad_jsonl_entry_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, "p.jsonl", '{"prompt": "ok", "max_tokens": 1}\n' + line + "\n")
    with pytest.raises(DatasetError, match=message) as caught:
        load_prompt_file(path)
    assert str(caught.value).startswith(f"{path}:2:")


def test_bad_json_list_entry_names_file_and_entry(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.json",
        '[{"prompt": "ok", "max_tokens": 1}, {"prompt": "p", "max_tokens": false}]',
    )
    with pytest.raises(DatasetError, match="'max_tokens' must be a positive integer") as caught:
        load_prompt_file(path)
    assert str(caught.value).startswith(f"{path}: entry 1:")


@pytest.mark.parametrize("text", ["", "\n\n  \n", "[]", "  [ ]\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "p.jsonl", text)
    with pytest.raises(DatasetError, match="no requests in the file") as caught:
        load_prompt_file(path)
    assert str(path) in str(caught.value)
