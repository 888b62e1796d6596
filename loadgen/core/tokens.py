"""The token estimate used when neither the server nor a tokenizer gives a count (pure)."""

from __future__ import annotations

# Characters per token of English text with Llama/GPT-style BPE vocabularies.
CHARS_PER_TOKEN_ESTIMATE = 4.0


def estimate_tokens(text: str) -> int:
    """About one token per 4 characters of `text`; at least 1 for any non-empty text."""
    return max(1, round(len(text) / CHARS_PER_TOKEN_ESTIMATE)) if text else 0
