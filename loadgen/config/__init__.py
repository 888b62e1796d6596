"""The one configuration model of a run, and the sources that fill it (files, env, flags)."""

from loadgen.config.cluster import ClusterConfig, WorkerConfig
from loadgen.config.model import (
    LoadConfig,
    MetricsConfig,
    OutputConfig,
    RunConfig,
    TargetConfig,
    WorkloadConfig,
)
from loadgen.config.sim import ServeConfig, SimConfig
from loadgen.config.sources import ConfigError, Resolved, Source, resolve

__all__ = [
    "ClusterConfig",
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
    "WorkerConfig",
    "WorkloadConfig",
    "resolve",
]
