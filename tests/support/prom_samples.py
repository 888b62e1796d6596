"""Reading a registry the way Prometheus would: exposition text, parsed back into samples."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(registry: CollectorRegistry) -> Samples:
    """Every exposed sample: {(sample name, frozenset of label items): value}."""
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def series(found: Samples, name: str, **labels: str) -> float:
    """The value of sample `name` with exactly `labels`."""
    return found[(name, frozenset(labels.items()))]
