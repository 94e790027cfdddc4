"""Simulators -> OPC UA -> service -> local store -> real databases, and a database outage.

Parametrized over the two write paths: InfluxDB 1.6 (``influxd``, v1 ``/write`` API, bucket
``db/autogen``) and VictoriaMetrics (``/api/v2/write`` through influxdb-client). The local
store is the truth: what the database holds is compared point by point with it.

VictoriaMetrics notes (measured on the installed server): it keeps every copy of a sample
written twice unless ``-dedup.minScrapeInterval`` is set (``tests/servers.py`` sets 1ms, which
at-least-once delivery needs to read back once per timestamp), it stores millisecond timestamps, drops string fields, and it acknowledges a
write before the data is on disk: a SIGKILL loses acknowledged samples. Its outage is
therefore a clean stop (SIGTERM); influxd (WAL fsync per write) is SIGKILLed.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.opcua import ManualClock, SimulatorServer
from telemetry.lineproto import parse_line
from telemetry.service.runner import Service
from telemetry.store import Store
from tests.servers import InfluxDB1Server, VictoriaMetricsServer, require_binary
from tests.service.conftest import ScanWatch, drive, eventually

pytestmark = pytest.mark.servers

# (measurement, sorted tag items) -> {time_ns: fields}
SeriesPoints = dict[tuple[str, tuple[tuple[str, str], ...]], dict[int, dict[str, Any]]]


class Database:
    """One real database behind the service: how to configure the sink, read back, fail."""

    def __init__(self, kind: str, tmp: Path) -> None:
        self.kind = kind
        if kind == "influxd":
            self.server: InfluxDB1Server | VictoriaMetricsServer = InfluxDB1Server(require_binary("influxd"), tmp)
        else:
            self.server = VictoriaMetricsServer(require_binary("victoria-metrics"), tmp)
        self.server.start()
        if isinstance(self.server, InfluxDB1Server):
            self.server.create_database("fermentry")

    def influx_section(self) -> dict[str, Any]:
        # api "auto": /ping tells 1.6 (-> v1 /write) from VictoriaMetrics (-> v2 through influxdb-client)
        bucket = "fermentry/autogen" if self.kind == "influxd" else "fermentry"
        return {"url": self.server.url, "bucket": bucket, "flush_interval_s": 0.2, "max_backoff_s": 1.0}

    def outage_begins(self) -> None:
        if self.kind == "influxd":
            self.server.kill()
        else:
            self.server.stop()  # see the module docstring: VM loses acknowledged data on SIGKILL

    def points(self) -> SeriesPoints:
        """Everything the database holds, keyed like :func:`store_points` (VM: ms timestamps)."""
        out: SeriesPoints = {}
        if isinstance(self.server, InfluxDB1Server):
            for measurement in ("sample", "loop", "event"):
                for row in self.server.rows(f'SELECT * FROM "{measurement}" GROUP BY *', "fermentry"):
                    tags = {k: v for k, v in row.items() if k not in FIELDS[measurement] | {"time", "_measurement"}}
                    fields = {k: row[k] for k in FIELDS[measurement] if row.get(k) is not None}
                    key = (measurement, tuple(sorted(tags.items())))
                    assert row["time"] not in out.get(key, {}), f"{key} has two points at {row['time']}"
                    out.setdefault(key, {})[row["time"]] = fields
            return out
        for series in self.server.export('{__name__=~"(sample|loop|event)_.*"}'):
            labels = dict(series["metric"])
            name = labels.pop("__name__")
            samples = list(zip(series["timestamps"], series["values"], strict=True))
            measurement, field = name.split("_", 1)
            if field in STRING_FIELDS[measurement]:
                continue  # VictoriaMetrics keeps no strings (it writes a 0 under their name)
            times = [t for t, _ in samples]
            assert len(times) == len(set(times)), f"{name}{labels}: a timestamp twice"
            points = out.setdefault((measurement, tuple(sorted(labels.items()))), {})
            for t_ms, value in samples:
                points.setdefault(t_ms, {})[field] = value
        return out


STRING_FIELDS = {"sample": set(), "loop": {"mode"}, "event": {"message", "batch"}}
FIELDS = {
    "sample": {"value", "good", "quality"},
    "loop": {"sp", "pv", "mv", "p", "i", "d", "ff", "mode", "saturated", "pv_ok"},
    "event": {"message", "batch", "count"},
}


def store_points(store: Store, *, up_to_id: int | None = None, ms: bool = False, numeric_only: bool = False) -> SeriesPoints:
    """The store's points as the database should hold them: one per series and timestamp
    (a later line overwrites an earlier one, as in both servers)."""
    out: SeriesPoints = {}
    for p in store.read_after(0, 10**9):
        if up_to_id is not None and p.id > up_to_id:
            break
        parsed = parse_line(p.line)
        fields = dict(parsed.fields)
        if numeric_only:  # VictoriaMetrics: numbers only, booleans as 0/1
            fields = {k: float(v) for k, v in fields.items() if not isinstance(v, str)}
        t = p.time_ns // 1_000_000 if ms else p.time_ns
        key = (parsed.measurement, tuple(sorted(parsed.tags.items())))
        out.setdefault(key, {}).setdefault(t, {}).update(fields)
    return out


@pytest.fixture(params=["influxd", "victoria-metrics"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    db = Database(request.param, Path(tempfile.mkdtemp(dir=tmp_path)))
    try:
        yield db
    finally:
        db.server.stop()


async def _started(cfg: Any) -> tuple[Service, ScanWatch]:
    service = Service(cfg)
    watch = ScanWatch(service)
    await service.start()
    for sup in service.supervisors.values():
        await sup.wait_connected(timeout_s=15)
    return service, watch


async def _all_forwarded(service: Service, timeout_s: float = 30.0) -> None:
    """Every point committed so far is acknowledged by the database."""
    await eventually(lambda: bool(service.forwarders), timeout_s=timeout_s, what="the forwarder to start")
    last = service.store.last_id()
    await asyncio.wait_for(service.forwarders[0].wait_acked(last), timeout_s)


def _compare(db: Database, store: Store, acked_id: int) -> tuple[SeriesPoints, SeriesPoints]:
    """Check the database against the store; return both for further checks.

    The database holds every point up to the forwarder's cursor, nothing the store does not
    hold, and (checked in ``Database.points``) each series and timestamp once.
    """
    vm = db.kind != "influxd"
    in_db = db.points()
    acked = store_points(store, up_to_id=acked_id, ms=vm, numeric_only=vm)
    stored = store_points(store, ms=vm, numeric_only=vm)
    missing = {k: sorted(set(v) - set(in_db.get(k, {})))[:3] for k, v in acked.items()
               if set(v) - set(in_db.get(k, {}))}
    assert not missing, f"{len(missing)} series miss points in {db.kind}, e.g. {list(missing.items())[:3]}"
    extra = {k: sorted(set(v) - set(stored.get(k, {})))[:3] for k, v in in_db.items()
             if set(v) - set(stored.get(k, {}))}
    assert not extra, f"{db.kind} holds points the store does not: {list(extra.items())[:3]}"
    return in_db, acked


async def test_every_reactor_arrives_with_its_values_and_tags(
    database: Database, sim: SimulatorServer, sim_clock: ManualClock, make_config: Callable[..., Any]
) -> None:
    service, watch = await _started(make_config(sim.endpoints[0], influx=database.influx_section()))
    try:
        await drive(sim_clock, watch, steps=8)
        await _all_forwarded(service)
    finally:
        await service.stop()
    store = Store(service.store_path)
    acked_id = store.cursors()["influxdb"]
    in_db, acked = _compare(database, store, acked_id)
    # Same values, not just the same timestamps: every field of every forwarded point
    # (exactly in influxd; VictoriaMetrics keeps about 12 significant digits).
    for key, points in acked.items():
        for t, fields in points.items():
            want = fields if database.kind == "influxd" else pytest.approx(fields, rel=1e-11, abs=0.0)
            assert in_db[key][t] == want, f"{key} at {t}: {in_db[key][t]} != {fields}"
    # Every reactor and the signals and loops that matter, tagged with the simulator's batch ids.
    batches = dict(zip(("R1", "R2", "R3"), sim.plants[0].batch_ids))
    for reactor, batch in batches.items():
        for signal, unit in (("do_pct", "%"), ("ph", "pH"), ("temperature_c", "degC")):
            key = ("sample", (("batch", batch), ("reactor", reactor), ("signal", signal), ("unit", unit)))
            assert len(in_db.get(key, {})) >= 1, f"no {reactor}.{signal} in {database.kind}: {sorted(in_db)[:5]}"
        for loop in ("do", "ph", "temperature"):
            key = ("loop", (("batch", batch), ("loop", loop), ("reactor", reactor)))
            assert len(in_db.get(key, {})) >= 5, f"{reactor}/{loop}: {len(in_db.get(key, {}))} loop points"


async def test_database_outage_under_load_loses_nothing_and_duplicates_nothing(
    database: Database, sim: SimulatorServer, sim_clock: ManualClock, make_config: Callable[..., Any]
) -> None:
    service, watch = await _started(make_config(sim.endpoints[0], influx=database.influx_section()))
    try:
        await drive(sim_clock, watch, steps=4)
        await _all_forwarded(service)
        before_outage = service.store.last_id()
        forwarder = service.forwarders[0]
        database.outage_begins()
        await drive(sim_clock, watch, steps=12)
        await eventually(lambda: forwarder.metrics.state == "retrying", what="the forwarder to notice the outage")
        during_outage = service.store.last_id()
        assert forwarder.metrics.cursor < during_outage  # the outage really held points back
        database.server.start()
        await drive(sim_clock, watch, steps=3)
        await _all_forwarded(service)
        assert forwarder.metrics.state == "ok" and forwarder.metrics.retries > 0
    finally:
        await service.stop()
    store = Store(service.store_path)
    in_db, acked = _compare(database, store, store.cursors()["influxdb"])
    # Counts per series: the database holds exactly one point per series and timestamp of the store.
    outage_keys = store_points(store, up_to_id=during_outage, ms=database.kind != "influxd")
    assert during_outage - before_outage > 100
    for key in outage_keys:
        assert len(in_db[key]) == len(acked[key]), f"{key}: {len(in_db[key])} in {database.kind}, {len(acked[key])} stored"
