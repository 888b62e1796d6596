"""Loaders for real dataset formats (ShareGPT, Alpaca, chat messages) and format detection."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol, get_args

from loadgen.core.records import RequestSpec
from loadgen.workloads import DatasetError
from loadgen.workloads.files import load_prompt_file, parse_json, positive_int, read_entries
from loadgen.workloads.tokens import TokenCounter

Format = Literal["prompts", "sharegpt", "alpaca", "messages"]
FORMATS: tuple[Format, ...] = get_args(Format)

_UNDERSTOOD = (
    'prompts ({"prompt", "max_tokens"}), sharegpt ("conversations"), '
    'alpaca ("instruction"), messages ("messages")'
)
_HUMAN = frozenset({"human", "user"})
_MODEL = frozenset({"gpt", "assistant", "chatgpt", "bard", "bing", "model"})
_CHAT_ROLES = ("system", "developer", "user", "assistant", "tool")
_CHUNK = 1 << 16  # bytes read at a time while looking for the first entry of a JSON list
# A whole JSON string, a bracket, or a lone quote: a string cut off by the end of the buffer.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|"', re.DOTALL)


@dataclass(frozen=True, slots=True)
class _Cut:
    """The paper's length cut in tokens (e.g. L2S: 1100..1500 in, <= 120 out); None is open."""

    min_input: int | None
    max_input: int | None
    max_output: int | None

    def labels(self) -> list[str]:
        """One label per bound that is set, in the order bounds are checked."""
        bounds = (
            (self.min_input, "below min_input"),
            (self.max_input, "above max_input"),
            (self.max_output, "above max_output"),
        )
        return [f"{label}={value}" for value, label in bounds if value is not None]

    def reason(self, spec: RequestSpec) -> str | None:
        """The label of the first bound `spec` fails, or None when it is kept."""
        tokens_in = spec.tokens_in or 0
        if self.min_input is not None and tokens_in < self.min_input:
            return f"below min_input={self.min_input}"
        if self.max_input is not None and tokens_in > self.max_input:
            return f"above max_input={self.max_input}"
        if self.max_output is not None and spec.max_tokens > self.max_output:
            return f"above max_output={self.max_output}"
        return None


def _keep(
    path: Path, specs: Iterable[RequestSpec], read: str, unusable: str | None, cut: _Cut
) -> list[RequestSpec]:
    """The specs that pass `cut`; DatasetError with every count when none is left."""
    kept, dropped = [], Counter[str]()
    for spec in specs:
        reason = cut.reason(spec)
        if reason is None:
            kept.append(spec)
        else:
            dropped[reason] += 1
    if kept:
        return kept
    removed = ([unusable] if unusable else []) + [f"{dropped[x]} {x}" for x in cut.labels()]
    detail = f"; removed {', '.join(removed)}" if removed else ""
    raise DatasetError(f"{path}: no usable entries: read {read}{detail}")


def _turn(turn: Any, where: str) -> tuple[str, str]:
    """(speaker in lower case, text) of a ShareGPT turn in any known key spelling."""
    if isinstance(turn, dict):
        speaker = turn.get("from", turn.get("role"))
        text = turn.get("value", turn.get("content"))
        if isinstance(speaker, str) and isinstance(text, str):
            return speaker.lower(), text
    raise DatasetError(
        f"{where}: expected a turn with string 'from' and 'value' (or 'role' and 'content')"
    )


def _sharegpt_pair(entry: Any, where: str) -> tuple[str, str] | None:
    """(first human turn, first model turn after it), or None when there is no such pair."""
    if not isinstance(entry, dict) or not isinstance(entry.get("conversations"), list):
        raise DatasetError(f"{where}: expected an object with a 'conversations' list")
    turns = [_turn(turn, f"{where}, turn {i}") for i, turn in enumerate(entry["conversations"])]
    human = next((i for i, (who, _) in enumerate(turns) if who in _HUMAN), None)
    if human is None or not turns[human][1].strip():
        return None
    answer = next((text for who, text in turns[human + 1 :] if who in _MODEL), None)
    return None if answer is None else (turns[human][1], answer)


def load_sharegpt(
    path: Path | str,
    counter: TokenCounter,
    *,
    min_input: int | None = None,
    max_input: int | None = None,
    max_output: int | None = None,
) -> list[RequestSpec]:
    """ShareGPT conversations as requests: first human turn in, first answer's length out."""
    path = Path(path)
    entries = read_entries(path)
    pairs = [_sharegpt_pair(entry, where) for entry, where in entries]
    specs = (
        RequestSpec(
            prompt=prompt,
            max_tokens=max(1, counter.count(answer)),
            tokens_in=counter.count(prompt),
        )
        for prompt, answer in (pair for pair in pairs if pair is not None)
    )
    missing = pairs.count(None)
    unusable = f"{missing} without a human prompt and a model answer after it" if missing else None
    cut = _Cut(min_input, max_input, max_output)
    return _keep(path, specs, f"{len(entries)} conversations", unusable, cut)


def _alpaca_spec(entry: Any, where: str, counter: TokenCounter) -> RequestSpec:
    """One Alpaca entry: instruction (+ blank line + input when given), output's length."""
    if not isinstance(entry, dict):
        raise DatasetError(f"{where}: expected an object with 'instruction' and 'output'")
    instruction, extra, output = entry.get("instruction"), entry.get("input"), entry.get("output")
    if not isinstance(instruction, str) or not instruction.strip():
        raise DatasetError(f"{where}: 'instruction' must be a non-empty string")
    if extra is not None and not isinstance(extra, str):
        raise DatasetError(f"{where}: 'input' must be a string")
    if not isinstance(output, str):
        raise DatasetError(f"{where}: 'output' must be a string")
    prompt = f"{instruction}\n\n{extra}" if extra and extra.strip() else instruction
    return RequestSpec(
        prompt=prompt, max_tokens=max(1, counter.count(output)), tokens_in=counter.count(prompt)
    )


def load_alpaca(
    path: Path | str,
    counter: TokenCounter,
    *,
    min_input: int | None = None,
    max_input: int | None = None,
    max_output: int | None = None,
) -> list[RequestSpec]:
    """Alpaca {"instruction", "input", "output"} entries as requests, in file order."""
    path = Path(path)
    entries = read_entries(path)
    specs = [_alpaca_spec(entry, where, counter) for entry, where in entries]
    cut = _Cut(min_input, max_input, max_output)
    return _keep(path, specs, f"{len(entries)} entries", None, cut)


def _message(message: Any, where: str) -> dict[str, str]:
    """One OpenAI chat message reduced to its role and string content."""
    if not isinstance(message, dict):
        raise DatasetError(f"{where}: expected an object with 'role' and 'content'")
    role, content = message.get("role"), message.get("content")
    if not isinstance(role, str) or role not in _CHAT_ROLES:
        raise DatasetError(f"{where}: 'role' must be one of {', '.join(_CHAT_ROLES)}, not {role!r}")
    if not isinstance(content, str):
        raise DatasetError(f"{where}: 'content' must be a string")
    return {"role": role, "content": content}


def _messages_spec(
    entry: Any, where: str, counter: TokenCounter, default_max_tokens: int
) -> RequestSpec:
    """One {"messages", "max_tokens"?} object as a chat request."""
    raw = entry.get("messages") if isinstance(entry, dict) else None
    if not isinstance(raw, list) or not raw:
        raise DatasetError(f"{where}: expected an object with a non-empty 'messages' list")
    messages = tuple(_message(message, f"{where}: message {i}") for i, message in enumerate(raw))
    users = [message["content"] for message in messages if message["role"] == "user"]
    if not users:
        raise DatasetError(f"{where}: no message with role 'user'")
    max_tokens = entry.get("max_tokens", default_max_tokens)
    if not positive_int(max_tokens):
        raise DatasetError(f"{where}: 'max_tokens' must be a positive integer")
    return RequestSpec(
        prompt=users[-1],
        max_tokens=max_tokens,
        tokens_in=sum(counter.count(message["content"]) for message in messages),
        messages=messages,
    )


def load_messages(
    path: Path | str,
    counter: TokenCounter,
    *,
    default_max_tokens: int = 256,
    min_input: int | None = None,
    max_input: int | None = None,
    max_output: int | None = None,
) -> list[RequestSpec]:
    """JSONL of {"messages": [...], "max_tokens"?} chat requests; input counts every message."""
    path = Path(path)
    entries = read_entries(path)
    specs = [_messages_spec(entry, where, counter, default_max_tokens) for entry, where in entries]
    cut = _Cut(min_input, max_input, max_output)
    return _keep(path, specs, f"{len(entries)} entries", None, cut)


def _scan(buf: bytes, pos: int, depth: int) -> tuple[int | None, int, int]:
    """Follow brackets from `pos` until the outer list's first entry (or the list) closes.

    Returns (end or None when `buf` ran out first, where to resume, nesting depth there).
    """
    for match in _TOKENS.finditer(buf, pos):
        token = match.group()
        if token == b'"':
            return None, match.start(), depth
        if token.startswith(b'"'):
            continue
        depth += 1 if token in (b"[", b"{") else -1
        if depth <= 1 and token in (b"]", b"}"):
            return match.end(), match.end(), depth
    return None, len(buf), depth


def _first_list_entry(path: Path, file: BinaryIO, buf: bytes) -> Any:
    """The first entry of the JSON list in `file` (`buf` read so far), read no further."""
    opening = buf.index(b"[")
    end, pos, depth = None, opening, 0
    while end is None:
        end, pos, depth = _scan(buf, pos, depth)
        if end is None:
            more = file.read(max(_CHUNK, len(buf)))  # doubling: linear in the entry's size
            if not more:
                raise DatasetError(f"{path}: not valid JSON (the list is not closed)")
            buf += more
    entries = parse_json(buf[opening:end] + (b"]" if depth == 1 else b""), str(path))
    if not entries:
        raise DatasetError(f"{path}: no entries in the file")
    return entries[0]


def _first_entry(path: Path) -> Any:
    """The first entry of a JSON list or JSONL file, parsing only that entry."""
    try:
        with path.open("rb") as file:
            head = file.read(_CHUNK)
            if head.lstrip().startswith(b"["):
                return _first_list_entry(path, file, head)
            file.seek(0)
            for number, line in enumerate(file, start=1):
                if line.strip():
                    return parse_json(line, f"{path}:{number}")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    raise DatasetError(f"{path}: no entries in the file")


def detect_format(path: Path | str) -> Format:
    """The dataset format of `path`, judged by its first entry (the only one parsed)."""
    path = Path(path)
    entry = _first_entry(path)
    if isinstance(entry, dict):
        if "prompt" in entry and "max_tokens" in entry:
            return "prompts"
        if "conversations" in entry:
            return "sharegpt"
        if "instruction" in entry:
            return "alpaca"
        if "messages" in entry:
            return "messages"
    seen = f"keys {sorted(entry)}" if isinstance(entry, dict) else f"a JSON {type(entry).__name__}"
    raise DatasetError(
        f"{path}: unknown dataset format; the first entry ({seen}) fits none of {_UNDERSTOOD}"
    )


def _load_prompts(
    path: Path | str,
    counter: TokenCounter,
    *,
    min_input: int | None = None,
    max_input: int | None = None,
    max_output: int | None = None,
) -> list[RequestSpec]:
    """A {"prompt", "max_tokens"} file with input counts filled in, cut like the others."""
    path = Path(path)
    specs = [
        spec if spec.tokens_in is not None else replace(spec, tokens_in=counter.count(spec.prompt))
        for spec in load_prompt_file(path)
    ]
    cut = _Cut(min_input, max_input, max_output)
    return _keep(path, specs, f"{len(specs)} entries", None, cut)


class _Loader(Protocol):
    """The shape every format's loader has."""

    def __call__(
        self,
        path: Path | str,
        counter: TokenCounter,
        *,
        min_input: int | None = None,
        max_input: int | None = None,
        max_output: int | None = None,
    ) -> list[RequestSpec]: ...


_LOADERS: dict[Format, _Loader] = {
    "prompts": _load_prompts,
    "sharegpt": load_sharegpt,
    "alpaca": load_alpaca,
    "messages": load_messages,
}


def _known(fmt: str) -> Format:
    """`fmt` as a Format; ValueError when it names none."""
    for known in FORMATS:
        if fmt == known:
            return known
    raise ValueError(f"dataset format must be auto or one of {', '.join(FORMATS)}, not {fmt!r}")


def load_dataset(
    path: Path | str,
    counter: TokenCounter,
    fmt: str = "auto",
    *,
    min_input: int | None = None,
    max_input: int | None = None,
    max_output: int | None = None,
) -> list[RequestSpec]:
    """Requests of a dataset file in file order; `fmt` is "auto" or one of FORMATS."""
    path = Path(path)
    loader = _LOADERS[detect_format(path) if fmt == "auto" else _known(fmt)]
    return loader(path, counter, min_input=min_input, max_input=max_input, max_output=max_output)
