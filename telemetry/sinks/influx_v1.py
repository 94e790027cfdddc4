"""InfluxDB 1.x write API sink: ``POST /write?db=&rp=&precision=ns`` (servers older than 1.8)."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Sequence

import urllib3

from telemetry.errors import SinkUnavailable
from telemetry.sinks.base import error_from_response


class InfluxV1Sink:
    """Writes line protocol to an InfluxDB 1.x ``/write`` endpoint.

    Parameters
    ----------
    url : str
        Server base URL, e.g. ``http://127.0.0.1:8086``.
    database, retention_policy : str
        Target database and retention policy (None: the database's default policy).
    username, password : str, optional
        Sent as HTTP basic auth when given.
    timeout_s : float
        Connect + read timeout of one request.
    name : str, optional
        Cursor name in the store; default ``influx_v1:<url>/<database>``.
    """

    def __init__(
        self,
        url: str,
        *,
        database: str,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        name: str | None = None,
    ) -> None:
        self.name = name or f"influx_v1:{url.rstrip('/')}/{database}"
        params = {"db": database, "precision": "ns"}
        if retention_policy:
            params["rp"] = retention_policy
        self._write_url = f"{url.rstrip('/')}/write?{urllib.parse.urlencode(params)}"
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        if username is not None:
            self._headers.update(urllib3.make_headers(basic_auth=f"{username}:{password or ''}"))
        # the forwarder owns retries; urllib3 must not retry or follow redirects behind its back
        self._pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=timeout_s), maxsize=2)

    async def write(self, lines: Sequence[str] | bytes) -> None:
        if not lines:
            return
        body = lines if isinstance(lines, bytes) else "\n".join(lines).encode("utf-8")
        await asyncio.to_thread(self._post, body)

    def _post(self, body: bytes) -> None:
        try:
            response = self._pool.request("POST", self._write_url, body=body, headers=self._headers)
        except urllib3.exceptions.HTTPError as exc:
            raise SinkUnavailable(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if response.status >= 300:
            raise error_from_response(response.status, response.data, response.headers)

    async def close(self) -> None:
        self._pool.clear()
