"""Tests for loadgen.workloads.loaders: ShareGPT, Alpaca, chat messages, detection, filters."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from loadgen.core.records import RequestSpec
from loadgen.workloads import DatasetError
from loadgen.workloads.loaders import (
    detect_format,
    load_alpaca,
    load_dataset,
    load_messages,
    load_sharegpt,
)
from tests.support.words import WORDS


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


SHAREGPT = """[
 {"id": "a", "conversations": [
   {"from": "human", "value": "one two three"}, {"from": "gpt", "value": "four five"}]},
 {"id": "b", "conversations": [
   {"from": "gpt", "value": "hello there friend"}, {"from": "human", "value": "tell me a story"},
   {"from": "gpt", "value": "once upon a time"}, {"from": "human", "value": "more"},
   {"from": "gpt", "value": "x"}]},
 {"id": "c", "conversations": [{"from": "human", "value": "no answer here"}]},
 {"id": "d", "conversations": [
   {"role": "user", "content": "what is up"}, {"role": "assistant", "content": "the sky"}]},
 {"id": "e", "conversations": [
   {"from": "system", "value": "be brief"}, {"from": "user", "value": "hi"},
   {"from": "human", "value": "second human"}, {"from": "assistant", "value": "a b c d e f"}]},
 {"id": "f", "conversations": []},
 {"id": "g", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": ""}]}
]"""

SHAREGPT_SPECS = {
    "a": RequestSpec(prompt="one two three", max_tokens=2, tokens_in=3),
    "b": RequestSpec(prompt="tell me a story", max_tokens=4, tokens_in=4),
    "d": RequestSpec(prompt="what is up", max_tokens=2, tokens_in=3),
    "e": RequestSpec(prompt="hi", max_tokens=6, tokens_in=1),
    "g": RequestSpec(prompt="q", max_tokens=1, tokens_in=1),
}

ALPACA = """[
 {"instruction": "Name three colors.", "input": "", "output": "red green blue"},
 {"instruction": "Translate to French.", "input": "good morning", "output": "bonjour"},
 {"instruction": "Say nothing.", "output": ""},
 {"instruction": "Add.", "input": "   ", "output": "x y"}
]"""

ALPACA_SPECS = [
    RequestSpec(prompt="Name three colors.", max_tokens=3, tokens_in=3),
    RequestSpec(prompt="Translate to French.\n\ngood morning", max_tokens=1, tokens_in=5),
    RequestSpec(prompt="Say nothing.", max_tokens=1, tokens_in=2),
    RequestSpec(prompt="Add.", max_tokens=2, tokens_in=1),
]

MESSAGES = (
    '{"messages": [{"role": "system", "content": "be terse"},'
    ' {"role": "user", "content": "first question"},'
    ' {"role": "assistant", "content": "an answer"},'
    ' {"role": "user", "content": "follow up please", "name": "ignored"}], "max_tokens": 7}\n'
    "\n"
    '{"messages": [{"role": "user", "content": "hello"}]}\n'
)

CHAT = (
    {"role": "system", "content": "be terse"},
    {"role": "user", "content": "first question"},
    {"role": "assistant", "content": "an answer"},
    {"role": "user", "content": "follow up please"},
)


# ShareGPT


def test_sharegpt_pairs_first_human_with_first_answer_after_it(tmp_path: Path) -> None:
    specs = load_sharegpt(write(tmp_path, "s.json", SHAREGPT), WORDS)
    assert specs == [SHAREGPT_SPECS[key] for key in "abdeg"]


def test_sharegpt_jsonl_layout(tmp_path: Path) -> None:
    text = (
        '{"conversations": [{"from": "human", "value": "a b"}, {"from": "gpt", "value": "c"}]}\n'
        '{"conversations": [{"from": "gpt", "value": "only a model"}]}\n'
    )
    assert load_sharegpt(write(tmp_path, "s.jsonl", text), WORDS) == [
        RequestSpec(prompt="a b", max_tokens=1, tokens_in=2)
    ]


@pytest.mark.parametrize(
    ("min_input", "max_input", "max_output", "kept"),
    [
        (None, None, None, "abdeg"),
        (2, None, None, "abd"),
        (None, 3, None, "adeg"),
        (None, None, 2, "adg"),
        (2, 3, 2, "ad"),
        (4, 4, 4, "b"),
    ],
)
def test_sharegpt_filters(
    tmp_path: Path, min_input: int | None, max_input: int | None, max_output: int | None, kept: str
) -> None:
    path = write(tmp_path, "s.json", SHAREGPT)
    specs = load_sharegpt(
        path, WORDS, min_input=min_input, max_input=max_input, max_output=max_output
    )
    assert specs == [SHAREGPT_SPECS[key] for key in kept]


def test_sharegpt_nothing_usable_counts_every_filter(tmp_path: Path) -> None:
    path = write(tmp_path, "s.json", SHAREGPT)
    with pytest.raises(DatasetError) as caught:
        load_sharegpt(path, WORDS, min_input=2, max_input=3, max_output=1)
    assert str(caught.value) == (
        f"{path}: no usable entries: read 7 conversations; removed 2 without a human prompt and"
        " a model answer after it, 2 below min_input=2, 1 above max_input=3,"
        " 2 above max_output=1"
    )


def test_sharegpt_without_any_pair(tmp_path: Path) -> None:
    path = write(tmp_path, "s.json", '[{"conversations": [{"from": "gpt", "value": "hi"}]}]')
    with pytest.raises(DatasetError) as caught:
        load_sharegpt(path, WORDS)
    assert str(caught.value) == (
        f"{path}: no usable entries: read 1 conversations;"
        " removed 1 without a human prompt and a model answer after it"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"conversations": []}, "text"]', "entry 1: expected an object with a 'conversations'"),
        ('[{"id": "x"}]', "entry 0: expected an object with a 'conversations' list"),
        ('[{"conversations": {"from": "human"}}]', "entry 0: expected an object"),
        ('[{"conversations": [{"from": "human"}]}]', "entry 0, turn 0: expected a turn"),
        (
            '[{"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": 3}]}]',
            "entry 0, turn 1: expected a turn",
        ),
        ('[{"conversations": ["hello"]}]', "entry 0, turn 0: expected a turn"),
    ],
)
def test_sharegpt_wrong_shape(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "s.json", text)
    with pytest.raises(DatasetError, match=message) as caught:
        load_sharegpt(path, WORDS)
    assert str(caught.value).startswith(f"{path}: entry")


# Alpaca


def test_alpaca_with_and_without_input(tmp_path: Path) -> None:
    assert load_alpaca(write(tmp_path, "a.json", ALPACA), WORDS) == ALPACA_SPECS


def test_alpaca_filters(tmp_path: Path) -> None:
    path = write(tmp_path, "a.json", ALPACA)
    assert load_alpaca(path, WORDS, min_input=2, max_output=2) == ALPACA_SPECS[1:3]
    with pytest.raises(DatasetError) as caught:
        load_alpaca(path, WORDS, max_input=4, max_output=0)
    assert str(caught.value) == (
        f"{path}: no usable entries: read 4 entries; removed 1 above max_input=4,"
        " 3 above max_output=0"
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('"just text"', "expected an object with 'instruction' and 'output'"),
        ('{"input": "x", "output": "y"}', "'instruction' must be a non-empty string"),
        ('{"instruction": " ", "output": "y"}', "'instruction' must be a non-empty string"),
        ('{"instruction": 5, "output": "y"}', "'instruction' must be a non-empty string"),
        ('{"instruction": "i", "input": 5, "output": "y"}', "'input' must be a string"),
        ('{"instruction": "i", "input": ""}', "'output' must be a string"),
        ('{"instruction": "i", "output": null}', "'output' must be a string"),
    ],
)
def test_alpaca_wrong_shape(tmp_path: Path, entry: str, message: str) -> None:
    path = write(tmp_path, "a.json", '[{"instruction": "ok", "output": "ok"}, ' + entry + "]")
    with pytest.raises(DatasetError, match=message) as caught:
        load_alpaca(path, WORDS)
    assert str(caught.value).startswith(f"{path}: entry 1:")


# Chat messages


def test_messages(tmp_path: Path) -> None:
    specs = load_messages(write(tmp_path, "m.jsonl", MESSAGES), WORDS)
    assert specs == [
        RequestSpec(prompt="follow up please", max_tokens=7, tokens_in=9, messages=CHAT),
        RequestSpec(
            prompt="hello",
            max_tokens=256,
            tokens_in=1,
            messages=({"role": "user", "content": "hello"},),
        ),
    ]


def test_messages_default_max_tokens(tmp_path: Path) -> None:
    specs = load_messages(write(tmp_path, "m.jsonl", MESSAGES), WORDS, default_max_tokens=64)
    assert [spec.max_tokens for spec in specs] == [7, 64]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"messages": []}', "expected an object with a non-empty 'messages' list"),
        ('{"prompt": "x", "max_tokens": 3}', "expected an object with a non-empty 'messages'"),
        ('[{"role": "user", "content": "x"}]', "expected an object with a non-empty 'messages'"),
        ('{"messages": ["hi"]}', "message 0: expected an object with 'role' and 'content'"),
        (
            '{"messages": [{"role": "user", "content": "x"}, {"role": "robot", "content": "x"}]}',
            "message 1: 'role' must be one of system, developer, user, assistant, tool",
        ),
        ('{"messages": [{"role": ["user"], "content": "x"}]}', "message 0: 'role' must be"),
        ('{"messages": [{"content": "x"}]}', "message 0: 'role' must be"),
        ('{"messages": [{"role": "user"}]}', "message 0: 'content' must be a string"),
        (
            '{"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}',
            "message 0: 'content' must be a string",
        ),
        ('{"messages": [{"role": "system", "content": "x"}]}', "no message with role 'user'"),
        (
            '{"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}',
            "'max_tokens' must be a positive integer",
        ),
        (
            '{"messages": [{"role": "user", "content": "x"}], "max_tokens": true}',
            "'max_tokens' must be a positive integer",
        ),
        (
            '{"messages": [{"role": "user", "content": "x"}], "max_tokens": "5"}',
            "'max_tokens' must be a positive integer",
        ),
    ],
)
def test_messages_validation_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    good = '{"messages": [{"role": "user", "content": "fine"}]}'
    path = write(tmp_path, "m.jsonl", good + "\n\n" + line + "\n")
    with pytest.raises(DatasetError, match=message) as caught:
        load_messages(path, WORDS)
    assert str(caught.value).startswith(f"{path}:3: ")


# Errors every loader shares


Loader = Callable[..., list[RequestSpec]]
LOADERS: list[Loader] = [load_sharegpt, load_alpaca, load_messages]


@pytest.mark.parametrize("loader", LOADERS)
def test_missing_file(tmp_path: Path, loader: Loader) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(DatasetError, match="cannot read") as caught:
        loader(path, WORDS)
    assert str(caught.value).startswith(str(path))


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(("name", "text"), [("x.json", "[{},]"), ("x.jsonl", "{}\n{nope}\n")])
def test_not_json(tmp_path: Path, loader: Loader, name: str, text: str) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(DatasetError, match="not valid JSON") as caught:
        loader(path, WORDS)
    where = f"{path}:2:" if name.endswith("l") else f"{path}:"
    assert str(caught.value).startswith(where)


@pytest.mark.parametrize(
    ("loader", "noun"),
    [(load_sharegpt, "conversations"), (load_alpaca, "entries"), (load_messages, "entries")],
)
@pytest.mark.parametrize("text", ["", "\n  \n", "[]"])
def test_empty_file(tmp_path: Path, loader: Loader, noun: str, text: str) -> None:
    path = write(tmp_path, "x.json", text)
    with pytest.raises(DatasetError) as caught:
        loader(path, WORDS)
    assert str(caught.value) == f"{path}: no usable entries: read 0 {noun}"


# Format detection


FIRST_ENTRIES = {
    "prompts": '{"prompt": "p", "max_tokens": 3}',
    "sharegpt": '{"id": "1", "conversations": [{"from": "human", "value": "x"}]}',
    "alpaca": '{"instruction": "i", "input": "", "output": "o"}',
    "messages": '{"messages": [{"role": "user", "content": "x"}], "max_tokens": 4}',
}


@pytest.mark.parametrize("fmt", sorted(FIRST_ENTRIES))
def test_detect_json_list(tmp_path: Path, fmt: str) -> None:
    entry = FIRST_ENTRIES[fmt]
    path = write(tmp_path, "d.json", f"\n [\n  {entry},\n  {entry}\n]\n")
    assert detect_format(path) == fmt


@pytest.mark.parametrize("fmt", sorted(FIRST_ENTRIES))
def test_detect_jsonl(tmp_path: Path, fmt: str) -> None:
    entry = FIRST_ENTRIES[fmt]
    path = write(tmp_path, "d.jsonl", f"\n\n{entry}\n{entry}\n")
    assert detect_format(str(path)) == fmt


def test_detect_parses_only_the_first_entry(tmp_path: Path) -> None:
    listed = write(tmp_path, "d.json", '[{"conversations": []}, this is not JSON')
    lines = write(tmp_path, "d.jsonl", '{"instruction": "i"}\nthis is not JSON\n')
    assert (detect_format(listed), detect_format(lines)) == ("sharegpt", "alpaca")


def test_detect_skips_brackets_and_escapes_inside_strings(tmp_path: Path) -> None:
    text = r'[{"x": "a \"}] [{ \\", "y": ["}", {"z": "]"}], "instruction": "i"}, garbage'
    assert detect_format(write(tmp_path, "d.json", text)) == "alpaca"


@pytest.mark.parametrize("shift", range(6))
def test_detect_first_entry_longer_than_a_read(tmp_path: Path, shift: int) -> None:
    # Escaped quotes and brackets straddle every 64 KiB read boundary at some shift.
    value = "a" * shift + r"\"}]{[\\" * 30_000
    text = '[{"messages": [], "note": "' + value + '"}, not JSON'
    assert detect_format(write(tmp_path, "d.json", text)) == "messages"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"text": "x"}]', "first entry \\(keys \\['text'\\]\\) fits none of"),
        ('{"prompt": "p"}\n', "first entry \\(keys \\['prompt'\\]\\) fits none of"),
        ("[1, {}]", "first entry \\(a JSON int\\) fits none of"),
        ('[["a", "b"], {}]', "first entry \\(a JSON list\\) fits none of"),
        ('"text"\n', "first entry \\(a JSON str\\) fits none of"),
    ],
)
def test_detect_unknown_lists_formats(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "d.json", text)
    with pytest.raises(DatasetError, match=message) as caught:
        detect_format(path)
    text_of_error = str(caught.value)
    assert text_of_error.startswith(f"{path}: unknown dataset format")
    for fmt in ("prompts", "sharegpt", "alpaca", "messages"):
        assert fmt in text_of_error


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no entries in the file"),
        ("\n \n", "no entries in the file"),
        ("[ ]", "no entries in the file"),
        ('[{"conversations": [', "not valid JSON \\(the list is not closed\\)"),
        ('[{"conversations": "open string', "not valid JSON \\(the list is not closed\\)"),
        ('[{"conversations": }]', "not valid JSON"),
    ],
)
def test_detect_errors_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "d.json", text)
    with pytest.raises(DatasetError, match=message) as caught:
        detect_format(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_detect_bad_jsonl_line_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", "\n\n{nope}\n")
    with pytest.raises(DatasetError, match="not valid JSON") as caught:
        detect_format(path)
    assert str(caught.value).startswith(f"{path}:3: ")


def test_detect_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(DatasetError, match="cannot read") as caught:
        detect_format(path)
    assert str(caught.value).startswith(str(path))


# load_dataset


PROMPTS = '[{"prompt": "a b c", "max_tokens": 5}, {"prompt": "a", "max_tokens": 50}]'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SHAREGPT, [SHAREGPT_SPECS[key] for key in "abdeg"]),
        (ALPACA, ALPACA_SPECS),
        (
            PROMPTS,
            [
                RequestSpec(prompt="a b c", max_tokens=5, tokens_in=3),
                RequestSpec(prompt="a", max_tokens=50, tokens_in=1),
            ],
        ),
    ],
)
def test_load_dataset_auto(tmp_path: Path, text: str, expected: list[RequestSpec]) -> None:
    assert load_dataset(write(tmp_path, "d.json", text), WORDS) == expected


def test_load_dataset_auto_messages(tmp_path: Path) -> None:
    path = write(tmp_path, "m.jsonl", MESSAGES)
    assert load_dataset(path, WORDS) == load_messages(path, WORDS)
    assert load_dataset(path, WORDS, min_input=2)[0].messages == CHAT
    assert len(load_dataset(path, WORDS, min_input=2)) == 1


def test_load_dataset_passes_filters(tmp_path: Path) -> None:
    path = write(tmp_path, "s.json", SHAREGPT)
    specs = load_dataset(path, WORDS, "sharegpt", min_input=2, max_input=3, max_output=2)
    assert specs == [SHAREGPT_SPECS["a"], SHAREGPT_SPECS["d"]]
    alpaca = load_dataset(write(tmp_path, "a.json", ALPACA), WORDS, max_input=2)
    assert alpaca == [ALPACA_SPECS[2], ALPACA_SPECS[3]]


def test_load_dataset_prompts_filters(tmp_path: Path) -> None:
    path = write(tmp_path, "p.json", PROMPTS)
    assert load_dataset(path, WORDS, "prompts", max_output=10) == [
        RequestSpec(prompt="a b c", max_tokens=5, tokens_in=3)
    ]
    with pytest.raises(DatasetError) as caught:
        load_dataset(path, WORDS, min_input=5)
    assert str(caught.value) == (
        f"{path}: no usable entries: read 2 entries; removed 2 below min_input=5"
    )


def test_load_dataset_explicit_format_wins(tmp_path: Path) -> None:
    path = write(tmp_path, "s.json", SHAREGPT)
    with pytest.raises(DatasetError, match="'instruction' must be a non-empty string"):
        load_dataset(path, WORDS, "alpaca")


def test_load_dataset_unknown_format_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="auto or one of prompts, sharegpt, alpaca, messages"):
        load_dataset(write(tmp_path, "s.json", SHAREGPT), WORDS, "csv")


@pytest.mark.parametrize("fmt", ["auto", "prompts", "sharegpt"])
def test_load_dataset_missing_file(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(DatasetError, match="cannot read") as caught:
        load_dataset(path, WORDS, fmt)
    assert str(caught.value).startswith(str(path))
