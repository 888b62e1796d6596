"""The reference paper's dataset format: a JSON list or JSONL of {"prompt", "max_tokens"}."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from loadgen.core.records import RequestSpec
from loadgen.workloads import DatasetError


def _spec_from(entry: Any, where: str) -> RequestSpec:
    """One entry of the file as a RequestSpec; DatasetError naming `where` when malformed."""
    if not isinstance(entry, dict):
        raise DatasetError(f"{where}: expected an object with 'prompt' and 'max_tokens'")
    prompt, max_tokens = entry.get("prompt"), entry.get("max_tokens")
    if not isinstance(prompt, str):
        raise DatasetError(f"{where}: 'prompt' must be a string")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise DatasetError(f"{where}: 'max_tokens' must be a positive integer")
    return RequestSpec(prompt=prompt, max_tokens=max_tokens)


def _entries(path: Path, text: bytes) -> list[tuple[Any, str]]:
    """Each entry of a JSON list or JSONL file with where it came from."""
    stripped = text.lstrip()
    if stripped.startswith(b"["):
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise DatasetError(f"{path}: not valid JSON ({exc})") from None
        return [(entry, f"{path}: entry {i}") for i, entry in enumerate(data)]
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                entries.append((orjson.loads(line), f"{path}:{number}"))
            except orjson.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{number}: not valid JSON ({exc})") from None
    return entries


def load_prompt_file(path: Path) -> list[RequestSpec]:
    """All requests of a {"prompt", "max_tokens"} JSON list or JSONL file, in file order."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    specs = [_spec_from(entry, where) for entry, where in _entries(path, text)]
    if not specs:
        raise DatasetError(f"{path}: no requests in the file")
    return specs
