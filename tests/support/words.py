"""A token counter for tests whose counts are easy to work out by hand."""

from __future__ import annotations

from loadgen.core.records import TokensSource


class Words:
    """A deterministic counter: one token per whitespace-separated word."""

    @property
    def source(self) -> TokensSource:
        return "tokenizer"

    def count(self, text: str) -> int:
        return len(text.split())


WORDS = Words()
