"""Push a run's metrics to a Prometheus Pushgateway after every step, for one-shot runs."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, pushadd_to_gateway

from loadgen.core.events import RunObserver, StepProgress
from loadgen.core.records import RequestRecord, StepSummary

PUSH_JOB = "loadgen"
_PUSH_TIMEOUT_S = 5.0


class PushOnStepEnd(RunObserver):
    """Pushes `registry` to `url` at each step's end, grouped by job "loadgen" and `run_id`.

    It POSTs (pushadd): series of other runs and jobs are never deleted. Put it after the
    exporter that fills `registry`, so the push carries the step that just ended.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        url: str,
        run_id: str,
        on_warning: Callable[[str], None],
    ) -> None:
        self._registry = registry
        self._url = url
        self._grouping = {"run_id": run_id}
        self._on_warning = on_warning

    def on_step_end(
        self, progress: StepProgress, summary: StepSummary, records: list[RequestRecord]
    ) -> None:
        """Push now; a gateway that fails is a warning, not a failed run."""
        try:
            pushadd_to_gateway(
                self._url,
                job=PUSH_JOB,
                registry=self._registry,
                grouping_key=self._grouping,
                timeout=_PUSH_TIMEOUT_S,
            )
        except OSError as exc:  # URLError and HTTPError are OSErrors
            self._on_warning(f"push to the Pushgateway at {self._url} failed: {exc}")
