"""Sinks (where recorded points go) and the forwarder that feeds them from the local store."""

from telemetry.sinks.base import Sink, error_from_response, parse_retry_after
from telemetry.sinks.forwarder import Forwarder, ForwarderMetrics
from telemetry.sinks.influx_api import api_for_version, detect_api, make_influx_sink
from telemetry.sinks.influx_v1 import InfluxV1Sink
from telemetry.sinks.influx_v2 import InfluxV2Sink

__all__ = [
    "Forwarder",
    "ForwarderMetrics",
    "InfluxV1Sink",
    "InfluxV2Sink",
    "Sink",
    "api_for_version",
    "detect_api",
    "error_from_response",
    "make_influx_sink",
    "parse_retry_after",
]
