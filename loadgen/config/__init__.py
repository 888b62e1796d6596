"""The one configuration model of a run, and the sources that fill it (files, env, flags)."""

from loadgen.config.model import (
    LoadConfig,
    MetricsConfig,
    OutputConfig,
    RunConfig,
    ServeConfig,
    SimConfig,
    TargetConfig,
    WorkloadConfig,
)
from loadgen.config.sources import ConfigError, Resolved, Source, resolve

__all__ = [
    "ConfigError",
    "LoadConfig",
    "MetricsConfig",
    "OutputConfig",
    "Resolved",
    "RunConfig",
    "ServeConfig",
    "SimConfig",
    "Source",
    "TargetConfig",
    "WorkloadConfig",
    "resolve",
]
