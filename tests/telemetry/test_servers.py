"""The real-server fixtures work: each server takes line protocol and gives it back."""

from __future__ import annotations

import pytest

from tests.servers import InfluxDB1Server, VictoriaMetricsServer, http

pytestmark = pytest.mark.servers


def test_influxd_write_and_read_back(influxd_server: InfluxDB1Server, influxd_db: str) -> None:
    influxd_server.write(
        ['sample,reactor=R1,signal=do_pct value=41.5,quality=0i 1000', "sample,reactor=R2,signal=do_pct value=39 2000"],
        influxd_db,
    )
    rows = influxd_server.rows("SELECT value FROM sample GROUP BY *", influxd_db)
    got = sorted((r["reactor"], r["time"], r["value"]) for r in rows)
    assert got == [("R1", 1000, 41.5), ("R2", 2000, 39.0)]


def test_vm_write_and_read_back(vm_server: VictoriaMetricsServer, fresh_name: str) -> None:
    status, _, body = http(
        "POST",
        f"{vm_server.url}/api/v2/write?bucket=b&precision=ns",
        body=f"{fresh_name},reactor=R1 value=7.25 1700000000000000000".encode(),
    )
    assert status == 204, body
    samples = vm_server.samples(f"{fresh_name}_value")
    assert samples == {(f"{fresh_name}_value", (("reactor", "R1"),)): [(1700000000000, 7.25)]}


def test_influxd_restarts_with_its_data(influxd_factory, fresh_name: str) -> None:
    server = influxd_factory()
    server.create_database(fresh_name)
    server.write(["m v=1 5"], fresh_name)
    port = server.port
    server.kill()
    server.start()
    assert server.port == port
    assert [r["v"] for r in server.rows("SELECT v FROM m", fresh_name)] == [1]
