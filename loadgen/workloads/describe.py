"""Length statistics of a workload: input and output tokens per request, like the paper's Fig. 3."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from loadgen.core.records import RequestSpec
from loadgen.workloads.prefixes import SharedPrefixSpec
from loadgen.workloads.tokens import TokenCounter

_STATS = ("min", "p50", "mean", "p90", "max")


def _texts(spec: RequestSpec) -> list[str]:
    """The texts whose tokens make up `spec`'s input: every message's content, else the prompt."""
    if spec.messages is not None:
        return [message.get("content", "") for message in spec.messages]
    return [spec.prompt]


def _count_all(texts: Sequence[str], counter: TokenCounter) -> list[int]:
    """Tokens in each of `texts`, in one batch when the counter can batch."""
    batch: Callable[[Sequence[str]], Sequence[int]] | None = getattr(counter, "count_batch", None)
    if batch is not None:
        return [int(n) for n in batch(list(texts))]
    return [counter.count(text) for text in texts]


def input_tokens(specs: Sequence[RequestSpec], counter: TokenCounter) -> list[int]:
    """Input tokens per spec: `tokens_in` when set, else counted (summed over messages)."""
    totals = [spec.tokens_in or 0 for spec in specs]
    owners: list[int] = []
    texts: list[str] = []
    for i, spec in enumerate(specs):
        if spec.tokens_in is None:
            parts = _texts(spec)
            owners.extend([i] * len(parts))
            texts.extend(parts)
    for owner, count in zip(owners, _count_all(texts, counter), strict=True):
        totals[owner] += count
    return totals


def token_lengths(
    specs: Sequence[RequestSpec], counter: TokenCounter
) -> tuple[list[int], list[int]]:
    """Input tokens and output budgets (`max_tokens`) per spec, in spec order."""
    return input_tokens(specs, counter), [spec.max_tokens for spec in specs]


def _stats(values: npt.NDArray[np.int64]) -> dict[str, int | float | None]:
    """min, p50, mean, p90, max of `values` (tokens); None for each when there are none."""
    if values.size == 0:
        return dict.fromkeys(_STATS)
    return {
        "min": int(values.min()),
        "p50": float(np.percentile(values, 50)),
        "mean": float(values.mean()),
        "p90": float(np.percentile(values, 90)),
        "max": int(values.max()),
    }


def prefix_sharing(specs: Sequence[RequestSpec], inputs: Sequence[int]) -> dict[str, Any] | None:
    """How `specs` share prefixes, None when none do.

    `used`: distinct prefixes; `tokens`: tokens per prefix; `share`: the fraction of input
    tokens (`inputs`, per spec) that are prefix; `reusable`: the fraction a prefix cache
    holding every prefix after its first use would not compute again.
    """
    shared = [spec for spec in specs if isinstance(spec, SharedPrefixSpec)]
    if not shared:
        return None
    total = sum(inputs)
    prefix_total = sum(spec.prefix_tokens for spec in shared)
    first_uses = {spec.prefix_index: spec.prefix_tokens for spec in shared}
    reusable = prefix_total - sum(first_uses.values())
    return {
        "used": len(first_uses),
        "tokens": max(first_uses.values()),
        "share": prefix_total / total if total else None,
        "reusable": reusable / total if total else None,
    }


def describe(specs: Sequence[RequestSpec], counter: TokenCounter) -> dict[str, Any]:
    """Count and length statistics (tokens) of `specs`' inputs and output budgets.

    A `prefixes` entry (`prefix_sharing`) is added when the requests share prefixes.
    """
    inputs, outputs = token_lengths(specs, counter)
    summary = {
        "count": len(specs),
        "input_tokens": _stats(np.asarray(inputs, dtype=np.int64)),
        "output_tokens": _stats(np.asarray(outputs, dtype=np.int64)),
        "tokens_source": counter.source,
    }
    sharing = prefix_sharing(specs, inputs)
    if sharing is not None:
        summary["prefixes"] = sharing
    return summary


def _cell(value: int | float | None) -> str:
    """One table cell: ints as they are, floats with one decimal, missing as "-"."""
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.1f}"


def describe_text(summary: dict[str, Any]) -> str:
    """A plain-text table of a `describe` summary, for the terminal."""
    rows = [["", *_STATS]]
    for label, key in (("input", "input_tokens"), ("output", "output_tokens")):
        rows.append([label, *(_cell(summary[key][stat]) for stat in _STATS)])
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
    lines = [
        f"requests: {summary['count']}  (tokens: {summary['tokens_source']})",
        *(
            "  ".join(
                cell.ljust(width) if col == 0 else cell.rjust(width)
                for col, (cell, width) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
            for row in rows
        ),
    ]
    sharing = summary.get("prefixes")
    if sharing is not None:
        lines.append(_sharing_line(sharing))
    return "\n".join(lines) + "\n"


def _sharing_line(sharing: dict[str, Any]) -> str:
    """One line on the shared prefixes of a `describe` summary."""
    share, reusable = sharing["share"], sharing["reusable"]
    line = f"shared prefixes: {sharing['used']} used, {sharing['tokens']} tokens each"
    if share is not None and reusable is not None:
        line += (
            f"; {100 * share:.1f}% of input tokens are prefix, "
            f"{100 * reusable:.1f}% reusable from a warm prefix cache"
        )
    return line
