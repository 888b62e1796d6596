"""Counting tokens of text: exact with a tokenizer (a later slice), else a documented estimate."""

from __future__ import annotations

from typing import Protocol

from loadgen.core.records import TokensSource
from loadgen.core.tokens import estimate_tokens


class TokenCounter(Protocol):
    """Counts the tokens of a text; `source` says how exact the counts are."""

    @property
    def source(self) -> TokensSource:
        """ "tokenizer" for exact counts, "estimate" for the character-based estimate."""
        ...

    def count(self, text: str) -> int:
        """Tokens in `text`."""
        ...


class EstimateCounter:
    """About one token per 4 characters (English text, BPE vocabularies); at least 1 if any."""

    @property
    def source(self) -> TokensSource:
        """Always "estimate"."""
        return "estimate"

    def count(self, text: str) -> int:
        """Estimated tokens in `text`."""
        return estimate_tokens(text)
