"""Multi-turn chat sessions: turns sent one after another, each carrying the history (pure).

A session's turn k is sent after turn k - 1's answer ended plus its think time, with every
earlier user message and answer before its own message, so a server's prefix cache can serve
the history. The answers the history carries are the workload's (a dataset's recorded answers,
or generated text of the answer's length), not the server's, so every step sends the same
bytes for the same seed whatever the server answered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from loadgen.core.ranges import parse_int_range
from loadgen.core.records import RequestSpec
from loadgen.workloads.text import prose_batch, question_batch

SESSIONS_SCENARIO = "chat-sessions"


@dataclass(frozen=True, slots=True)
class Turn:
    """One turn: the user's message, its answer budget (tokens), the answer the history keeps
    after it, the think time before it is sent (s), and token counts where known."""

    user: str
    max_tokens: int
    answer: str
    think_s: float = 0.0
    user_tokens: int | None = None
    answer_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Session:
    """A conversation sent turn by turn, after an optional system message."""

    turns: tuple[Turn, ...]
    system: str | None = None

    def request(self, turn: int) -> RequestSpec:
        """The request of turn `turn` (from 0): the history, then its user message."""
        messages: list[Mapping[str, str]] = []
        if self.system is not None:
            messages.append({"role": "system", "content": self.system})
        for earlier in self.turns[:turn]:
            messages.append({"role": "user", "content": earlier.user})
            messages.append({"role": "assistant", "content": earlier.answer})
        current = self.turns[turn]
        messages.append({"role": "user", "content": current.user})
        return RequestSpec(
            prompt=transcript(messages),
            max_tokens=current.max_tokens,
            tokens_in=self._tokens_in(turn),
            messages=tuple(messages),
        )

    def _tokens_in(self, turn: int) -> int | None:
        """The history's and the message's tokens, when every part's count is known."""
        counts: list[int | None] = [t.user_tokens for t in self.turns[: turn + 1]]
        counts += [t.answer_tokens for t in self.turns[:turn]]
        if self.system is not None or any(count is None for count in counts):
            return None
        return sum(count or 0 for count in counts)


def transcript(messages: Sequence[Mapping[str, str]]) -> str:
    """Chat messages as one completions prompt, ending where the assistant's answer starts."""
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join([*lines, "Assistant:"])


class SessionWorkload(Protocol):
    """Produces the sessions of one step, in start order."""

    @property
    def name(self) -> str:
        """A short name for results and labels."""
        ...

    def sessions(self, num_sessions: int, rng: np.random.Generator) -> Sequence[Session]:
        """`num_sessions` sessions, deterministic for `rng`'s seed."""
        ...


def parse_turns(text: str) -> tuple[int, int]:
    """Turns per session from "N" or "LOW:HIGH" (uniform, both included)."""
    return parse_int_range(text, "turns", 1)


def think_times_s(count: int, mean_s: float, rng: np.random.Generator) -> list[float]:
    """`count` think times (s), exponential with mean `mean_s` (all 0 when it is 0)."""
    if mean_s <= 0:
        return [0.0] * count
    return [float(t) for t in rng.exponential(mean_s, size=count)]


@dataclass(frozen=True, slots=True)
class ChatSessions:
    """Generated sessions: `turns` turns each, user messages of `user_len` words (about a token
    each), answers of `answer_len` tokens, exponential think times of mean `think_s` (s)."""

    turns: tuple[int, int]
    user_len: int
    answer_len: int
    think_s: float
    name: str = SESSIONS_SCENARIO

    def sessions(self, num_sessions: int, rng: np.random.Generator) -> Sequence[Session]:
        """`num_sessions` sessions, deterministic for `rng`'s seed."""
        low, high = self.turns
        counts = rng.integers(low, high + 1, size=num_sessions).tolist()
        total = sum(counts)
        users = question_batch([self.user_len] * total, rng)
        answers = prose_batch([self.answer_len] * total, rng)
        thinks = think_times_s(total, self.think_s, rng)
        made, at = [], 0
        for count in counts:
            turns = tuple(
                Turn(
                    user=users[i],
                    max_tokens=self.answer_len,
                    answer=answers[i],
                    think_s=0.0 if i == at else thinks[i],
                    user_tokens=self.user_len,
                    answer_tokens=self.answer_len,
                )
                for i in range(at, at + count)
            )
            made.append(Session(turns))
            at += count
        return made


@dataclass(frozen=True, slots=True)
class RecordedSessions:
    """A dataset's conversations as sessions, in file order (repeating as needed), or in a
    seeded random order when `shuffle`; think times drawn as ChatSessions' are."""

    conversations: tuple[Session, ...]
    name: str
    think_s: float = 0.0
    shuffle: bool = False

    def sessions(self, num_sessions: int, rng: np.random.Generator) -> Sequence[Session]:
        """`num_sessions` sessions, deterministic for `rng`'s seed."""
        pool = len(self.conversations)
        order = np.arange(num_sessions) % pool
        if self.shuffle:
            order = rng.permutation(np.resize(rng.permutation(pool), num_sessions))
        made = []
        for index in order.tolist():
            session = self.conversations[index]
            thinks = think_times_s(len(session.turns), self.think_s, rng)
            turns = tuple(
                replace(turn, think_s=0.0 if k == 0 else thinks[k])
                for k, turn in enumerate(session.turns)
            )
            made.append(Session(turns, session.system))
        return made
