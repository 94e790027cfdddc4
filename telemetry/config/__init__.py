"""The service configuration: TOML files validated once at start-up.

``load_config(path)`` returns a :class:`ServiceConfig` or raises :class:`ConfigError`, whose
``str()`` is the complete report (every problem with file, field path, value and what is
allowed). ``apply_overrides`` applies command-line values and validates again.
"""

from telemetry.config.errors import ConfigError, Problem
from telemetry.config.load import apply_overrides, load_config, validate_config
from telemetry.config.models import (
    DoSpikeStart,
    DoStatFeed,
    Endpoint,
    ExponentialFeed,
    Feed,
    GlucoseBelowStart,
    ImmediateStart,
    InfluxSection,
    LinearFeed,
    Loop,
    PhStatFeed,
    PiecewiseFeed,
    Reactor,
    ServiceConfig,
    ServiceSection,
    Stage,
    StoreSection,
    Tag,
    TimeStart,
)

__all__ = [
    "ConfigError", "DoSpikeStart", "DoStatFeed", "Endpoint", "ExponentialFeed", "Feed", "GlucoseBelowStart",
    "ImmediateStart", "InfluxSection", "LinearFeed", "Loop", "PhStatFeed", "PiecewiseFeed", "Problem", "Reactor",
    "ServiceConfig", "ServiceSection", "Stage", "StoreSection", "Tag", "TimeStart", "apply_overrides",
    "load_config", "validate_config",
]
