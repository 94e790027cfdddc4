"""InfluxDB v2 write API sink through ``influxdb-client`` (InfluxDB 2.x, 3.x, 1.8+, VictoriaMetrics).

Lines go to ``WriteApi.write`` as one pre-joined string with the ``SYNCHRONOUS`` mode, in a worker
thread: the client then does no Point conversion and no batching of its own (our forwarder does
both), and its ``ApiException`` carries status, body and headers for the error translation.
The async client would need aiohttp, which the project does not otherwise depend on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import urllib3

from telemetry.errors import SinkUnavailable
from telemetry.sinks.base import error_from_response


class InfluxV2Sink:
    """Writes line protocol to ``/api/v2/write``.

    Parameters
    ----------
    url : str
        Server base URL.
    bucket : str
        Bucket; for an InfluxDB 1.8+ server ``database/retention-policy`` (or just ``database``).
    org : str
        Organisation (ignored by 1.8 and VictoriaMetrics; ``"-"`` is fine there).
    token : str, optional
        API token; for InfluxDB 1.8 with auth, ``"username:password"``.
    timeout_s : float
        Timeout of one request.
    gzip : bool
        Compress request bodies (worth it over slow links, costs CPU on loopback).
    name : str, optional
        Cursor name in the store; default ``influx_v2:<url>/<bucket>``.
    """

    def __init__(
        self,
        url: str,
        *,
        bucket: str,
        org: str = "-",
        token: str | None = None,
        timeout_s: float = 10.0,
        gzip: bool = False,
        name: str | None = None,
    ) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.name = name or f"influx_v2:{url.rstrip('/')}/{bucket}"
        self._bucket = bucket
        self._org = org
        self._client = InfluxDBClient(
            url=url, token=token or "", org=org, timeout=int(timeout_s * 1000), enable_gzip=gzip, retries=False
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

    async def write(self, lines: Sequence[str] | bytes) -> None:
        if not lines:
            return
        await asyncio.to_thread(self._write, lines if isinstance(lines, bytes) else "\n".join(lines))

    def _write(self, body: str | bytes) -> None:
        from influxdb_client.client.write_api import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self._write_api.write(self._bucket, self._org, body, write_precision=WritePrecision.NS)
        except ApiException as exc:
            raise error_from_response(exc.status or 0, exc.body, exc.headers) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise SinkUnavailable(f"{self.name}: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        self._write_api.close()
        self._client.close()
