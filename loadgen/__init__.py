"""loadgen: an open-loop load generator for OpenAI-compatible LLM serving endpoints.

The public API: the configuration model, `run` (and `run_config` for a running event loop),
and the types a run reports with::

    import loadgen

    config = loadgen.RunConfig.model_validate(
        {"load": {"rates_rps": [5, 10], "num_requests": 300, "trim": 50}}
    )
    outcome = loadgen.run(config)  # no base_url: the built-in simulated server
    for step in outcome.targets[0].steps:
        print(step.target_rate_rps, step.trimmed.sequence_throughput_rps)

Names are imported on first use, so `import loadgen` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from loadgen.version import __version__

if TYPE_CHECKING:
    from loadgen.cluster.run import run
    from loadgen.config import (
        ConfigError,
        LoadConfig,
        MetricsConfig,
        OutputConfig,
        RunConfig,
        SimConfig,
        TargetConfig,
        WorkloadConfig,
    )
    from loadgen.core.events import RunObserver, RunOutcome, StepProgress, TargetInfo, TargetOutcome
    from loadgen.core.records import Distribution, RequestRecord, StepFigures, StepSummary
    from loadgen.runtime.run import run_config

__all__ = [
    "ConfigError",
    "Distribution",
    "LoadConfig",
    "MetricsConfig",
    "OutputConfig",
    "RequestRecord",
    "RunConfig",
    "RunObserver",
    "RunOutcome",
    "SimConfig",
    "StepFigures",
    "StepProgress",
    "StepSummary",
    "TargetConfig",
    "TargetInfo",
    "TargetOutcome",
    "WorkloadConfig",
    "__version__",
    "run",
    "run_config",
]
# Where each public name lives (imported on first use).
_HOME = {
    **dict.fromkeys(
        ("ConfigError", "LoadConfig", "MetricsConfig", "OutputConfig", "RunConfig", "SimConfig",
         "TargetConfig", "WorkloadConfig"),
        "loadgen.config",
    ),
    **dict.fromkeys(
        ("RunObserver", "RunOutcome", "StepProgress", "TargetInfo", "TargetOutcome"),
        "loadgen.core.events",
    ),
    **dict.fromkeys(
        ("Distribution", "RequestRecord", "StepFigures", "StepSummary"), "loadgen.core.records"
    ),
    "run": "loadgen.cluster.run",
    "run_config": "loadgen.runtime.run",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    """The public names, imported from their modules on first use."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'loadgen' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
