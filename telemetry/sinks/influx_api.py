"""Choosing the InfluxDB write API for a server: v1 ``/write`` or v2 ``/api/v2/write``.

The server's version comes from the ``X-Influxdb-Version`` header of ``/ping``:
1.x before 1.8 -> ``"v1"``; 1.8+, 2.x, 3.x -> ``"v2"``. A server that answers ``/ping`` without
the header (VictoriaMetrics does) or with a version we cannot parse gets ``"v2"``: every current
server and VictoriaMetrics accept ``/api/v2/write``. The user can always force the choice.
"""

from __future__ import annotations

import re
from typing import Literal

import urllib3

from telemetry.errors import ConfigError, SinkUnavailable
from telemetry.sinks.base import Sink
from telemetry.sinks.influx_v1 import InfluxV1Sink
from telemetry.sinks.influx_v2 import InfluxV2Sink

ApiVersion = Literal["v1", "v2"]

_VERSION = re.compile(r"v?(\d+)\.(\d+)")


def api_for_version(version_header: str | None) -> ApiVersion:
    """``"v1"`` for InfluxDB 1.0-1.7, else ``"v2"`` (see module docstring)."""
    if not version_header:
        return "v2"
    match = _VERSION.match(version_header.strip())
    if match is None:
        return "v2"
    major, minor = int(match.group(1)), int(match.group(2))
    return "v1" if major == 1 and minor < 8 else "v2"


def detect_api(url: str, *, timeout_s: float = 5.0) -> ApiVersion:
    """Ask ``/ping`` which API the server at ``url`` takes.

    Raises
    ------
    SinkUnavailable
        When the server does not answer (the caller may retry or fall back to a configured API).
    """
    pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=timeout_s))
    try:
        response = pool.request("GET", f"{url.rstrip('/')}/ping")
    except urllib3.exceptions.HTTPError as exc:
        raise SinkUnavailable(f"{url}/ping: {type(exc).__name__}: {exc}") from exc
    finally:
        pool.clear()
    return api_for_version(response.headers.get("X-Influxdb-Version"))


def make_influx_sink(
    url: str,
    *,
    api: ApiVersion | Literal["auto"] = "auto",
    database: str | None = None,
    retention_policy: str | None = None,
    bucket: str | None = None,
    org: str = "-",
    token: str | None = None,
    username: str | None = None,
    password: str | None = None,
    timeout_s: float = 10.0,
    name: str | None = None,
) -> Sink:
    """Build the right sink for an InfluxDB-compatible server.

    For a v2 sink to a 1.x server (1.8+), ``database``/``retention_policy`` become the bucket
    ``database/retention-policy`` and ``username``/``password`` the token ``username:password``.
    """
    chosen: ApiVersion = detect_api(url, timeout_s=timeout_s) if api == "auto" else api
    if chosen not in ("v1", "v2"):
        raise ConfigError(f"api must be 'auto', 'v1' or 'v2', got {api!r}")
    if chosen == "v1":
        if database is None:
            raise ConfigError(f"{url} takes the InfluxDB v1 API, which needs a database name")
        return InfluxV1Sink(
            url,
            database=database,
            retention_policy=retention_policy,
            username=username,
            password=password,
            timeout_s=timeout_s,
            name=name,
        )
    if bucket is None:
        if database is None:
            raise ConfigError(f"{url} takes the InfluxDB v2 API, which needs a bucket (or a 1.x database)")
        bucket = f"{database}/{retention_policy}" if retention_policy else database
    if token is None and username is not None:
        token = f"{username}:{password or ''}"
    return InfluxV2Sink(url, bucket=bucket, org=org, token=token, timeout_s=timeout_s, name=name)
