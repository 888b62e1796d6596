"""A labelled Prometheus histogram that takes many observations at once (numpy, no per-sample loop).

prometheus_client's Histogram observes one value per call; a stream of 256 tokens has 255
inter-token gaps, and at a thousand requests a second that loop would cost a core. This one
bins a whole array with `numpy.searchsorted` and is exported through a custom collector.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import cast

import numpy as np
import numpy.typing as npt
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# prometheus_client's own spelling of bucket bounds ("0.005", "1.0", "1e+06"), typed.
_go_float = cast(Callable[[float], str], floatToGoString)


class _Series:
    """Bucket counts (non-cumulative, +Inf last) and the sum of one label set."""

    __slots__ = ("counts", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = np.zeros(buckets + 1, dtype=np.int64)
        self.total = 0.0


class BatchHistogram(Collector):
    """A histogram family `name` with `labelnames`, bounds `buckets` (upper, increasing)."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = np.asarray(buckets, dtype=np.float64)
        self._series: dict[tuple[str, ...], _Series] = {}

    def observe(self, labels: tuple[str, ...], values_s: npt.ArrayLike) -> None:
        """Add every value of `values_s` to the series `labels` (in labelnames order)."""
        values = np.asarray(values_s, dtype=np.float64).ravel()
        if values.size == 0:
            return
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = _Series(len(self.bounds))
        # side="left": a value equal to a bound belongs to that bucket (le is inclusive).
        slots = np.searchsorted(self.bounds, values, side="left")
        series.counts += np.bincount(slots, minlength=len(self.bounds) + 1)
        series.total += float(values.sum())

    def collect(self) -> Iterator[Metric]:
        """The family with one cumulative series per label set seen."""
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        edges = [*(_go_float(bound) for bound in self.bounds), "+Inf"]
        for labels, series in self._series.items():
            cumulative = np.cumsum(series.counts).tolist()
            family.add_metric(list(labels), list(zip(edges, cumulative, strict=True)), series.total)
        yield family

    def describe(self) -> Iterator[Metric]:
        """The family, empty (lets the registry check names without collecting)."""
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
