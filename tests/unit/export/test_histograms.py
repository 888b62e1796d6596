"""Tests for loadgen.export.histograms: BatchHistogram, read back through the text exposition."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from loadgen.export.histograms import BatchHistogram
from tests.support.prom_samples import Samples, samples, series


def le_texts(found: Samples, name: str) -> list[str]:
    """The `le` label values of `name`_bucket, in exposition order (dicts keep it)."""
    return [dict(key)["le"] for sample, key in found if sample == f"{name}_bucket"]


def make(
    registry: CollectorRegistry, bounds: tuple[float, ...] = (0.005, 0.1, 1.0)
) -> BatchHistogram:
    """A two-label BatchHistogram `req_seconds` registered on `registry`."""
    histogram = BatchHistogram("req_seconds", "Request time (s).", ("route", "code"), bounds)
    registry.register(histogram)
    return histogram


def test_buckets_are_cumulative_and_le_is_inclusive() -> None:
    registry = CollectorRegistry()
    histogram = make(registry)
    # 0.001, 0.005 <= 0.005; 0.05, 0.1 <= 0.1; 0.5, 1.0 <= 1.0; 2.0, 7.0 only in +Inf.
    histogram.observe(("a", "200"), np.array([0.001, 0.005, 0.05, 0.1, 0.5, 1.0, 2.0, 7.0]))
    found = samples(registry)
    a = {"route": "a", "code": "200"}
    assert series(found, "req_seconds_bucket", **a, le="0.005") == 2
    assert series(found, "req_seconds_bucket", **a, le="0.1") == 4
    assert series(found, "req_seconds_bucket", **a, le="1.0") == 6
    assert series(found, "req_seconds_bucket", **a, le="+Inf") == 8
    assert series(found, "req_seconds_count", **a) == 8
    # 0.001 + 0.005 + 0.05 + 0.1 + 0.5 + 1.0 + 2.0 + 7.0
    assert series(found, "req_seconds_sum", **a) == pytest.approx(10.656)
    assert le_texts(found, "req_seconds") == ["0.005", "0.1", "1.0", "+Inf"]


def test_observations_accumulate_and_label_sets_stay_apart() -> None:
    registry = CollectorRegistry()
    histogram = make(registry)
    histogram.observe(("a", "200"), [0.05])
    histogram.observe(("b", "500"), [3.0, 0.003])
    histogram.observe(("a", "200"), [[0.5, 0.1]])  # any shape: flattened
    found = samples(registry)
    a = {"route": "a", "code": "200"}
    b = {"route": "b", "code": "500"}
    a_buckets = [
        series(found, "req_seconds_bucket", **a, le=le) for le in ("0.005", "0.1", "1.0", "+Inf")
    ]
    b_buckets = [
        series(found, "req_seconds_bucket", **b, le=le) for le in ("0.005", "0.1", "1.0", "+Inf")
    ]
    assert a_buckets == [0, 2, 3, 3]  # 0.05, 0.1 | 0.5
    assert b_buckets == [1, 1, 1, 2]  # 0.003 | 3.0
    assert series(found, "req_seconds_count", **a) == 3
    assert series(found, "req_seconds_sum", **a) == pytest.approx(0.65)
    assert series(found, "req_seconds_count", **b) == 2
    assert series(found, "req_seconds_sum", **b) == pytest.approx(3.003)
    # Two label sets, each with 4 buckets + _count + _sum: nothing else.
    assert len(found) == 12


def test_empty_arrays_add_nothing() -> None:
    registry = CollectorRegistry()
    histogram = make(registry)
    histogram.observe(("a", "200"), [])
    histogram.observe(("a", "200"), np.empty(0))
    assert samples(registry) == {}
    histogram.observe(("a", "200"), [0.5])
    histogram.observe(("a", "200"), np.array([], dtype=np.float64))
    histogram.observe(("b", "500"), [])
    found = samples(registry)
    assert series(found, "req_seconds_count", route="a", code="200") == 1
    assert series(found, "req_seconds_sum", route="a", code="200") == 0.5
    assert ("req_seconds_count", frozenset({("route", "b"), ("code", "500")})) not in found


def test_unobserved_family_is_registered_without_series() -> None:
    registry = CollectorRegistry()
    make(registry)
    text = generate_latest(registry).decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert families["req_seconds"].type == "histogram"
    assert families["req_seconds"].documentation == "Request time (s)."
    assert families["req_seconds"].samples == []


def test_name_collision_is_refused_by_the_registry() -> None:
    registry = CollectorRegistry()
    make(registry)
    twin = BatchHistogram("req_seconds", "Again.", ("route",), (1.0,))
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(twin)
    # The histogram's derived sample names are taken too.
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Gauge("req_seconds_count", "Clashes with the histogram's _count.", registry=registry)


def test_bucket_labels_are_written_as_prometheus_writes_them() -> None:
    registry = CollectorRegistry()
    histogram = make(registry, bounds=(0.001, 0.005, 1, 2.5, 2560))
    histogram.observe(("a", "200"), [0.001])
    found = samples(registry)
    assert le_texts(found, "req_seconds") == ["0.001", "0.005", "1.0", "2.5", "2560.0", "+Inf"]


def test_large_bucket_labels_match_the_client_library() -> None:
    registry = CollectorRegistry()
    histogram = make(registry, bounds=(1.0, 1e6, 2e7))
    histogram.observe(("a", "200"), [0.5])
    assert le_texts(samples(registry), "req_seconds") == ["1.0", "1e+06", "2e+07", "+Inf"]
