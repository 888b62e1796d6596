"""The reference paper's dataset format: a JSON list or JSONL of {"prompt", "max_tokens"}."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeGuard

import orjson

from loadgen.core.records import RequestSpec
from loadgen.workloads import DatasetError


def positive_int(value: Any) -> TypeGuard[int]:
    """True for an int >= 1 (bool excluded)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def parse_json(text: bytes, where: str) -> Any:
    """`text` parsed as JSON; DatasetError naming `where` when it is not."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise DatasetError(f"{where}: not valid JSON ({exc})") from None


def read_entries(path: Path) -> list[tuple[Any, str]]:
    """Each entry of a JSON list or JSONL file with where it came from (one parse)."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if text.lstrip().startswith(b"["):
        data = parse_json(text, str(path))
        if not isinstance(data, list):
            raise DatasetError(f"{path}: expected a JSON list of entries")
        return [(entry, f"{path}: entry {i}") for i, entry in enumerate(data)]
    return [
        (parse_json(line, f"{path}:{number}"), f"{path}:{number}")
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def _spec_from(entry: Any, where: str) -> RequestSpec:
    """One entry of the file as a RequestSpec; DatasetError naming `where` when malformed."""
    if not isinstance(entry, dict):
        raise DatasetError(f"{where}: expected an object with 'prompt' and 'max_tokens'")
    prompt, max_tokens = entry.get("prompt"), entry.get("max_tokens")
    if not isinstance(prompt, str):
        raise DatasetError(f"{where}: 'prompt' must be a string")
    if not positive_int(max_tokens):
        raise DatasetError(f"{where}: 'max_tokens' must be a positive integer")
    return RequestSpec(prompt=prompt, max_tokens=max_tokens)


def load_prompt_file(path: Path) -> list[RequestSpec]:
    """All requests of a {"prompt", "max_tokens"} JSON list or JSONL file, in file order."""
    specs = [_spec_from(entry, where) for entry, where in read_entries(path)]
    if not specs:
        raise DatasetError(f"{path}: no requests in the file")
    return specs
