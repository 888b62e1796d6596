"""Multi-turn conversations of a dataset file as sessions: ShareGPT and chat-messages JSONL.

Each user (human) message followed by a model (assistant) answer is a turn whose budget is the
answer's length; a last user message without an answer is a turn with the entry's
`max_tokens` (else `default_max_tokens`). A leading system message stays the session's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadgen.workloads import DatasetError
from loadgen.workloads.files import positive_int, read_entries
from loadgen.workloads.loaders import detect_format
from loadgen.workloads.sessions import Session, Turn
from loadgen.workloads.tokens import TokenCounter

_USER = frozenset({"human", "user"})
_MODEL = frozenset({"gpt", "assistant", "chatgpt", "bard", "bing", "model"})
_FORMATS = ("sharegpt", "messages")


def _messages(entry: Any, where: str) -> tuple[list[tuple[str, str]], Any]:
    """(role, text) of every message of an entry, in order, and its `max_tokens` (or None)."""
    if isinstance(entry, dict) and isinstance(entry.get("conversations"), list):
        raw, role_key, text_key = entry["conversations"], "from", "value"
    elif isinstance(entry, dict) and isinstance(entry.get("messages"), list):
        raw, role_key, text_key = entry["messages"], "role", "content"
    else:
        raise DatasetError(f"{where}: expected a 'conversations' or 'messages' list")
    messages = []
    for i, message in enumerate(raw):
        role = message.get(role_key, message.get("role")) if isinstance(message, dict) else None
        text = message.get(text_key, message.get("content")) if isinstance(message, dict) else None
        if not isinstance(role, str) or not isinstance(text, str):
            raise DatasetError(f"{where}, message {i}: expected a string role and text")
        messages.append((role.lower(), text))
    return messages, entry.get("max_tokens")


def _session(entry: Any, where: str, counter: TokenCounter, default_max: int) -> Session | None:
    """The entry's conversation as a session; None when it has no user message."""
    messages, last_budget = _messages(entry, where)
    system = messages[0][1] if messages and messages[0][0] == "system" else None
    turns: list[Turn] = []
    user: str | None = None
    for role, text in messages[1 if system is not None else 0 :]:
        if role in _USER and text.strip():
            user = text
        elif role in _MODEL and user is not None:
            count = counter.count(text)
            turns.append(Turn(user, max(1, count), text, 0.0, counter.count(user), count))
            user = None
    if user is not None:
        budget = last_budget if last_budget is not None else default_max
        if not positive_int(budget):
            raise DatasetError(f"{where}: 'max_tokens' must be a positive integer")
        turns.append(Turn(user, budget, "", 0.0, counter.count(user), 0))
    return Session(tuple(turns), system) if turns else None


def load_conversations(
    path: Path | str, counter: TokenCounter, fmt: str = "auto", *, default_max_tokens: int = 256
) -> tuple[Session, ...]:
    """The multi-turn conversations of a ShareGPT or chat-messages file, in file order."""
    path = Path(path)
    kind = detect_format(path) if fmt == "auto" else fmt
    if kind not in _FORMATS:
        raise DatasetError(
            f"{path}: multi-turn sessions need a sharegpt or messages dataset, not {kind}"
        )
    entries = read_entries(path)
    found = [_session(entry, where, counter, default_max_tokens) for entry, where in entries]
    sessions = tuple(session for session in found if session is not None)
    if not sessions:
        raise DatasetError(f"{path}: no conversation with a user message in {len(entries)}")
    return sessions
