"""Real database servers as plain processes on free loopback ports, and their pytest fixtures.

No Docker engine runs on our machines, so tests (and ``bench/pipeline.py``) start InfluxDB 1.x
(``influxd``) and VictoriaMetrics (``victoria-metrics``) themselves, each in its own temporary
folder. A server object can be stopped, killed and started again on the same port with the same
data, which is what the outage tests need.

The bench imports this module through ``sys.path``; the server classes do not need pytest, only
the fixtures at the bottom do.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

_APT_HINT = {
    "influxd": "sudo apt-get install -y influxdb",
    "victoria-metrics": "sudo apt-get install -y victoria-metrics",
}


def free_port() -> int:
    """Return a TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found is None and Path("/usr/bin", name).exists():
        found = str(Path("/usr/bin", name))
    return found


def require_binary(name: str) -> str:
    """Path of ``name``; a missing binary fails the test run in CI and skips it elsewhere."""
    found = find_binary(name)
    if found is not None:
        return found
    message = f"{name} not found; install it with: {_APT_HINT.get(name, 'apt-get install ' + name)}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout_s: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request; returns (status, headers, body) for every status, raises on no answer."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class ServerProcess:
    """A server binary run as a child process on a fixed loopback port and data folder."""

    name = "server"
    ready_path = "/ping"
    start_timeout_s = 30.0
    stop_timeout_s = 10.0

    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = "127.0.0.1"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = self.root / "server.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        """Start (or restart) on the same port and data folder; returns once the server answers."""
        if self.running:
            return
        log = open(self._log, "ab")  # noqa: SIM115 - handed to the child, closed in stop()
        self._proc = subprocess.Popen(
            self.argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.root
        )
        self._log_handle = log
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        delay = 0.01
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self._proc.returncode}; log:\n{self.log_tail()}")
            try:
                status, _, _ = http("GET", self.url + self.ready_path, timeout_s=1.0)
                if status < 300:
                    return
            except OSError:
                pass
            time.sleep(delay)  # polling a child process for readiness: there is no event to wait on
            delay = min(delay * 2, 0.2)
        self.kill()
        raise RuntimeError(f"{self.name} not ready after {self.start_timeout_s} s; log:\n{self.log_tail()}")

    def stop(self) -> None:
        """Terminate gracefully (bounded wait), then kill."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=self.stop_timeout_s)
        self._close_log()

    def kill(self) -> None:
        """SIGKILL: what a crash or an OOM kill looks like to the clients."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(timeout=self.stop_timeout_s)
        self._close_log()

    def _close_log(self) -> None:
        handle = getattr(self, "_log_handle", None)
        if handle is not None:
            handle.close()
            self._log_handle = None

    def log_tail(self, n_chars: int = 4000) -> str:
        try:
            return self._log.read_text(errors="replace")[-n_chars:]
        except OSError:
            return ""

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class InfluxDB1Server(ServerProcess):
    """InfluxDB 1.x (``influxd``), read back with InfluxQL on ``/query``.

    Parameters
    ----------
    auth_enabled : bool
        Start with ``auth-enabled = true``; an admin user ``admin``/``admin-password`` is created
        right after start-up (1.x lets the first admin be created without credentials).
    max_body_size : int
        ``[http] max-body-size`` in bytes: a small value makes the server answer 413.
    """

    name = "influxd"
    admin_user = "admin"
    admin_password = "admin-password"

    def __init__(
        self, binary: str, root: Path, *, auth_enabled: bool = False, max_body_size: int = 25_000_000
    ) -> None:
        super().__init__(binary, root)
        self.auth_enabled = auth_enabled
        self.max_body_size = max_body_size
        self.rpc_port = free_port()
        self._admin_created = False

    def config_text(self) -> str:
        d = self.root
        return f"""
reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{d / 'meta'}"
  logging-enabled = false

[data]
  dir = "{d / 'data'}"
  wal-dir = "{d / 'wal'}"
  wal-fsync-delay = "0s"
  index-version = "inmem"
  query-log-enabled = false

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {str(self.auth_enabled).lower()}
  log-enabled = false
  pprof-enabled = false
  max-body-size = {self.max_body_size}

[logging]
  level = "warn"
  suppress-logo = true

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false
"""

    def argv(self) -> list[str]:
        config = self.root / "influxdb.conf"
        config.write_text(self.config_text())
        return [self.binary, "run", "-config", str(config)]

    def start(self) -> None:
        super().start()
        if self.auth_enabled and not self._admin_created:
            self.query(
                f"CREATE USER {self.admin_user} WITH PASSWORD '{self.admin_password}' WITH ALL PRIVILEGES",
                method="POST",
                auth=False,
            )
            self._admin_created = True

    def query(
        self, q: str, db: str | None = None, *, method: str = "GET", auth: bool = True
    ) -> list[dict[str, Any]]:
        """Run InfluxQL; returns the ``series`` of the first statement (``[]`` when empty).

        Times come back as integer nanoseconds (``epoch=ns``).
        """
        params = {"q": q, "epoch": "ns"}
        if db is not None:
            params["db"] = db
        headers = self._auth_headers() if auth else {}
        encoded = urllib.parse.urlencode(params)
        if method == "GET":
            status, _, body = http("GET", f"{self.url}/query?{encoded}", headers=headers)
        else:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            status, _, body = http("POST", f"{self.url}/query", body=encoded.encode(), headers=headers)
        if status != 200:
            raise RuntimeError(f"InfluxQL {q!r} -> {status}: {body[:500]!r}")
        result = json.loads(body)["results"][0]
        if "error" in result:
            raise RuntimeError(f"InfluxQL {q!r}: {result['error']}")
        return list(result.get("series", []))

    def _auth_headers(self) -> dict[str, str]:
        if not self.auth_enabled:
            return {}
        token = base64.b64encode(f"{self.admin_user}:{self.admin_password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def create_database(self, db: str) -> None:
        self.query(f'CREATE DATABASE "{db}"', method="POST")

    def write(self, lines: Sequence[str], db: str) -> None:
        """Write line protocol straight through ``/write`` (test set-up, not the code under test)."""
        params = {"db": db, "precision": "ns"}
        status, _, body = http(
            "POST",
            f"{self.url}/write?{urllib.parse.urlencode(params)}",
            body="\n".join(lines).encode(),
            headers=self._auth_headers(),
        )
        if status != 204:
            raise RuntimeError(f"write -> {status}: {body[:500]!r}")

    def rows(self, q: str, db: str) -> list[dict[str, Any]]:
        """InfluxQL rows flattened to dicts, tags included (one dict per point)."""
        out: list[dict[str, Any]] = []
        for series in self.query(q, db):
            tags = series.get("tags", {})
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                row.update(tags)
                row["_measurement"] = series["name"]
                out.append(row)
        return out


class VictoriaMetricsServer(ServerProcess):
    """VictoriaMetrics single node; takes InfluxDB line protocol on ``/write`` and ``/api/v2/write``.

    Line ``m,tag=a f=1`` becomes metric ``m_f{tag="a"}``; string fields are ignored. Read back
    with :meth:`export`, which first forces a flush so fresh data is visible at once.
    """

    name = "victoria-metrics"
    ready_path = "/health"

    def argv(self) -> list[str]:
        return [
            self.binary,
            f"-httpListenAddr={self.host}:{self.port}",
            f"-storageDataPath={self.root / 'data'}",
            "-retentionPeriod=100y",  # tests write process times far in the past
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=ERROR",
            "-http.shutdownDelay=0s",
            # Fermentry delivers at least once; without deduplication VictoriaMetrics keeps
            # every copy of a resent sample (InfluxDB overwrites the same series+timestamp).
            "-dedup.minScrapeInterval=1ms",
        ]

    def flush(self) -> None:
        status, _, body = http("GET", f"{self.url}/internal/force_flush")
        if status != 200:
            raise RuntimeError(f"force_flush -> {status}: {body[:200]!r}")

    def export(self, match: str = '{__name__!=""}') -> list[dict[str, Any]]:
        """All samples of the series matching ``match``, one dict per series (JSON lines format)."""
        self.flush()
        # "end" defaults to now: a simulator faster than real time writes future timestamps.
        body = urllib.parse.urlencode({"match[]": match, "start": "0", "end": str(4 * 10**9)}).encode()
        status, _, data = http(
            "POST",
            f"{self.url}/api/v1/export",
            body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        if status != 200:
            raise RuntimeError(f"export {match!r} -> {status}: {data[:500]!r}")
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    def samples(self, match: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[int, float]]]:
        """``{(metric name, sorted labels): [(time_ms, value), ...]}`` for ``match``."""
        out: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[int, float]]] = {}
        for series in self.export(match):
            labels = dict(series["metric"])
            name = labels.pop("__name__")
            key = (name, tuple(sorted(labels.items())))
            out.setdefault(key, []).extend(zip(series["timestamps"], series["values"], strict=True))
        return out


# --------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def influxd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1Server]:
    """One plain InfluxDB 1.x for the session; use ``fresh_name`` for an isolated database."""
    server = InfluxDB1Server(require_binary("influxd"), tmp_path_factory.mktemp("influxd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetricsServer]:
    """One VictoriaMetrics for the session; isolate tests by a fresh measurement or bucket name."""
    server = VictoriaMetricsServer(require_binary("victoria-metrics"), tmp_path_factory.mktemp("vm"))
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def fresh_name() -> str:
    """A unique, identifier-safe name for a database, bucket or measurement."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture()
def influxd_db(influxd_server: InfluxDB1Server, fresh_name: str) -> str:
    """A freshly created database on the session's InfluxDB 1.x."""
    influxd_server.create_database(fresh_name)
    return fresh_name


@pytest.fixture()
def influxd_factory(tmp_path: Path) -> Iterator[Any]:
    """Start extra InfluxDB 1.x servers with their own options (auth, small max body size, or
    one a test may kill); all are stopped at the end of the test."""
    binary = require_binary("influxd")
    started: list[InfluxDB1Server] = []

    def make(**options: Any) -> InfluxDB1Server:
        server = InfluxDB1Server(binary, Path(tempfile.mkdtemp(dir=tmp_path)), **options)
        started.append(server)
        server.start()
        return server

    yield make
    for server in started:
        server.stop()
