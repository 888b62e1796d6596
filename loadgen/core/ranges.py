"""Integer ranges given as text: "N" or "LOW:HIGH", both ends included (pure)."""

from __future__ import annotations


def parse_int_range(text: str, unit: str, least: int) -> tuple[int, int]:
    """(low, high) from "N" (low = high = N) or "LOW:HIGH"; ValueError naming `unit` when the
    text is neither, or unless `least <= LOW <= HIGH`."""
    low_text, colon, high_text = text.strip().partition(":")
    try:
        low = int(low_text)
        high = int(high_text) if colon else low
    except ValueError:
        raise ValueError(f"expected N or LOW:HIGH {unit}, got {text!r}") from None
    if not least <= low <= high:
        raise ValueError(f"need {least} <= LOW <= HIGH {unit}, got {text!r}")
    return low, high
