"""Forwarders against real servers: delivery, outage, 400/413/401 handling, back-off, shutdown."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from telemetry.errors import SinkAuthError, SinkRejected, SinkTooLarge, SinkUnavailable
from telemetry.lineproto import encode_columns
from telemetry.sinks import (
    Forwarder,
    InfluxV1Sink,
    InfluxV2Sink,
    api_for_version,
    detect_api,
    error_from_response,
    make_influx_sink,
    parse_retry_after,
)
from telemetry.store import Store
from tests.servers import InfluxDB1Server, VictoriaMetricsServer

T0_NS = 1_700_000_000 * 10**9


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "outbox.sqlite3") as s:
        yield s


async def quick_sleep(_seconds: float) -> None:
    """Back-off stand-in: yields to the loop briefly instead of waiting the real delay."""
    await asyncio.sleep(0.01)


def samples(measurement: str, n: int, start: int = 0) -> list[str]:
    i = np.arange(start, start + n)
    return encode_columns(
        measurement,
        {"reactor": [f"R{k % 4}" for k in i], "signal": "do_pct"},
        {"value": i * 0.5, "quality": np.zeros(n, dtype=np.int64)},
        T0_NS + i * 10**6,
    ).lines


def influxd_points(server: InfluxDB1Server, db: str, measurement: str) -> list[tuple[str, int, float]]:
    rows = server.rows(f'SELECT value FROM "{measurement}" GROUP BY reactor', db)
    return sorted((r["reactor"], r["time"], r["value"]) for r in rows)


def expected_points(n: int) -> list[tuple[str, int, float]]:
    return sorted((f"R{k % 4}", T0_NS + k * 10**6, k * 0.5) for k in range(n))


# --------------------------------------------------------------------- version and errors


@pytest.mark.parametrize(
    ("header", "api"),
    [("1.6.7~rc0", "v1"), ("1.7.11", "v1"), ("1.8.10", "v2"), ("v2.7.4", "v2"), ("3.0.1", "v2"), (None, "v2"), ("x", "v2")],
)
def test_api_for_version(header: str | None, api: str) -> None:
    assert api_for_version(header) == api


@pytest.mark.servers
def test_detect_api_on_real_servers(influxd_server: InfluxDB1Server, vm_server: VictoriaMetricsServer) -> None:
    assert (detect_api(influxd_server.url), detect_api(vm_server.url)) == ("v1", "v2")


@pytest.mark.parametrize(
    ("status", "headers", "error", "retry_after"),
    [
        (400, {}, SinkRejected, None),
        (401, {}, SinkAuthError, None),
        (403, {}, SinkAuthError, None),
        (413, {}, SinkTooLarge, None),
        (429, {"Retry-After": "12"}, SinkUnavailable, 12.0),
        (503, {"retry-after": "3.5"}, SinkUnavailable, 3.5),
        (500, {}, SinkUnavailable, None),
    ],
)
def test_error_from_response(status, headers, error, retry_after) -> None:
    exc = error_from_response(status, b"boom", headers)
    assert type(exc) is error and exc.status == status and exc.retry_after_s == retry_after
    assert "boom" in str(exc)


def test_retry_after_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now_s=1445412480.0) == 30.0


# ---------------------------------------------------------------------------- delivery


@pytest.mark.servers
async def test_forward_to_victoria_metrics_v2(store: Store, vm_server: VictoriaMetricsServer, fresh_name: str) -> None:
    sink = make_influx_sink(vm_server.url, bucket="plant")
    assert isinstance(sink, InfluxV2Sink)
    ids = store.append(samples(fresh_name, 1200))
    async with Forwarder(store, sink, batch_size=500) as forwarder:
        await asyncio.wait_for(forwarder.wait_acked(ids[-1]), 30)
    got = vm_server.samples(f"{fresh_name}_value")
    flat = sorted((dict(labels)["reactor"], t, v) for (_, labels), vals in got.items() for t, v in vals)
    assert flat == sorted((r, t // 10**6, v) for r, t, v in expected_points(1200))
    assert forwarder.metrics.points_forwarded == 1200 and forwarder.metrics.batches_sent == 3
    assert store.cursor(sink.name) == ids[-1] and forwarder.metrics.lag_points == 0


@pytest.mark.servers
async def test_forward_to_influxd_v1(store: Store, influxd_server: InfluxDB1Server, influxd_db: str) -> None:
    sink = make_influx_sink(influxd_server.url, database=influxd_db)
    assert isinstance(sink, InfluxV1Sink)
    ids = store.append(samples("sample", 1200))
    async with Forwarder(store, sink, batch_size=500) as forwarder:
        await asyncio.wait_for(forwarder.wait_acked(ids[-1]), 30)
        more = store.append(samples("sample", 100, start=1200))  # arrives while running
        await asyncio.wait_for(forwarder.wait_acked(more[-1]), 30)
    assert influxd_points(influxd_server, influxd_db, "sample") == expected_points(1300)


@pytest.mark.servers
@pytest.mark.slow
async def test_outage_loses_nothing_and_duplicates_nothing(store: Store, influxd_factory, fresh_name: str) -> None:
    server: InfluxDB1Server = influxd_factory()
    server.create_database(fresh_name)
    sink = InfluxV1Sink(server.url, database=fresh_name, timeout_s=2.0)
    forwarder = Forwarder(store, sink, batch_size=300, sleep=quick_sleep)
    forwarder.start()
    first = store.append(samples("sample", 600))
    await asyncio.wait_for(forwarder.wait_acked(first[-1]), 30)

    await asyncio.to_thread(server.kill)
    last = None
    for k in range(5):  # the plant keeps recording during the outage
        last = store.append(samples("sample", 200, start=600 + 200 * k))
        await asyncio.sleep(0)
    while forwarder.metrics.state != "retrying":
        await asyncio.sleep(0.01)
    assert store.cursor(sink.name) == first[-1]

    await asyncio.to_thread(server.start)
    tail = store.append(samples("sample", 300, start=1600))  # new points behind the backlog
    await asyncio.wait_for(forwarder.wait_acked(tail[-1]), 60)
    await forwarder.stop()
    assert last is not None and tail[0] == last[-1] + 1
    assert forwarder.metrics.state == "stopped" and forwarder.metrics.retries > 0
    got = influxd_points(server, fresh_name, "sample")
    assert got == expected_points(1900)  # every series+timestamp exactly once


@pytest.mark.servers
async def test_bad_lines_are_dead_lettered_and_the_rest_delivered(
    store: Store, influxd_server: InfluxDB1Server, influxd_db: str
) -> None:
    lines = [f"conflict x={i}i {T0_NS + i}" for i in range(16)]
    lines[11] = f'conflict x="text" {T0_NS + 11}'  # field type conflict: influxd answers 400
    ids = store.append(lines)
    async with Forwarder(store, InfluxV1Sink(influxd_server.url, database=influxd_db)) as forwarder:
        await asyncio.wait_for(forwarder.wait_acked(ids[-1]), 30)
    (letter,) = store.dead_letters()
    assert (letter.point_id, letter.line) == (ids[11], lines[11])
    assert "conflict" in letter.reason and "400" in letter.reason
    rows = influxd_server.rows("SELECT x FROM conflict", influxd_db)
    assert sorted(r["time"] - T0_NS for r in rows) == [i for i in range(16) if i != 11]
    assert forwarder.metrics.dead_lettered == 1 and forwarder.metrics.splits > 0


@pytest.mark.servers
async def test_too_large_batches_are_split(store: Store, influxd_factory, fresh_name: str) -> None:
    server: InfluxDB1Server = influxd_factory(max_body_size=4000)
    server.create_database(fresh_name)
    ids = store.append(samples("sample", 500))  # ~80 bytes a line: one batch is ~40 kB
    async with Forwarder(store, InfluxV1Sink(server.url, database=fresh_name), batch_size=500) as forwarder:
        await asyncio.wait_for(forwarder.wait_acked(ids[-1]), 30)
    assert influxd_points(server, fresh_name, "sample") == expected_points(500)
    assert store.dead_letters() == [] and forwarder.metrics.splits > 0


@pytest.mark.servers
async def test_refused_credentials_keep_the_data(store: Store, influxd_factory, fresh_name: str) -> None:
    server: InfluxDB1Server = influxd_factory(auth_enabled=True)
    server.create_database(fresh_name)
    ids = store.append(samples("sample", 50))
    paused = asyncio.Event()

    async def note_pause(_seconds: float) -> None:
        paused.set()
        await asyncio.sleep(3600)  # parked until stop()

    wrong = InfluxV1Sink(server.url, database=fresh_name, username="admin", password="wrong", name="influx")
    forwarder = Forwarder(store, wrong, sleep=note_pause)
    forwarder.start()
    await asyncio.wait_for(paused.wait(), 30)
    assert forwarder.metrics.state == "auth_failed" and "401" in (forwarder.metrics.last_error or "")
    await forwarder.stop(timeout_s=5)
    assert store.cursor("influx") == 0 and store.dead_letters() == []

    fixed = InfluxV1Sink(
        server.url, database=fresh_name, username=server.admin_user, password=server.admin_password, name="influx"
    )
    async with Forwarder(store, fixed) as forwarder:
        await asyncio.wait_for(forwarder.wait_acked(ids[-1]), 30)
    assert influxd_points(server, fresh_name, "sample") == expected_points(50)


# ------------------------------------------------------------- back-off and shutdown


class ScriptedServer:
    """A real loopback HTTP server answering writes from a script of (status, headers)."""

    def __init__(self, script: list[tuple[int, dict[str, str]]], hold: threading.Event | None = None) -> None:
        self.script = list(script)
        self.bodies: list[bytes] = []
        self.hold = hold
        self.received = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.set()
                if outer.hold is not None:
                    outer.hold.wait(30)
                status, headers = outer.script.pop(0) if outer.script else (204, {})
                if status == 204:
                    outer.bodies.append(body)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize(
    ("script", "expected_delays"),
    [
        ([(429, {"Retry-After": "7"}), (503, {"Retry-After": "2"})], [7.0, 2.0]),
        ([(503, {}), (502, {}), (500, {}), (503, {})], [0.25, 0.5, 1.0, 2.0]),  # 0.5 s start, jitter at 0
        ([(503, {"Retry-After": "9999"})], [300.0]),
    ],
)
async def test_back_off_honours_retry_after_else_exponential(store: Store, script, expected_delays) -> None:
    server = ScriptedServer(script)
    delays: list[float] = []

    async def record(seconds: float) -> None:
        delays.append(seconds)

    try:
        ids = store.append(samples("sample", 10))
        sink = InfluxV1Sink(server.url, database="db")
        async with Forwarder(store, sink, sleep=record, rng=lambda: 0.0) as forwarder:
            await asyncio.wait_for(forwarder.wait_acked(ids[-1]), 30)
    finally:
        server.close()
    assert delays == expected_delays
    assert server.bodies == ["\n".join(p.line for p in store.read_after(0, 100)).encode()]
    assert forwarder.metrics.retries == len(script)


async def test_stop_is_bounded_and_keeps_unacked_points(store: Store) -> None:
    hold = threading.Event()
    server = ScriptedServer([], hold=hold)
    try:
        ids = store.append(samples("sample", 10))
        forwarder = Forwarder(store, InfluxV1Sink(server.url, database="db", timeout_s=30), batch_size=5)
        forwarder.start()
        assert await asyncio.to_thread(server.received.wait, 10)  # a write is in flight, held
        loop = asyncio.get_running_loop()
        started = loop.time()
        await forwarder.stop(timeout_s=0.2)
        assert loop.time() - started < 2.0
        assert store.cursor(forwarder.name) == 0 and ids[-1] == 10
    finally:
        server.close()


async def test_stop_lets_the_writes_in_flight_finish_and_acknowledges_them(store: Store) -> None:
    """A batch on the wire when ``stop`` is called is answered by the server: it must count as
    delivered, or the next start would send it a second time."""
    hold = threading.Event()
    server = ScriptedServer([], hold=hold)
    try:
        ids = store.append(samples("sample", 10))
        forwarder = Forwarder(store, InfluxV1Sink(server.url, database="db", timeout_s=30), batch_size=5)
        forwarder.start()
        assert await asyncio.to_thread(server.received.wait, 10)  # a write is in flight, held
        stopping = asyncio.create_task(forwarder.stop(timeout_s=30))
        await asyncio.sleep(0)  # stop() has begun: the stop request is set before the answer
        assert not stopping.done()
        hold.set()  # the server answers the writes already sent
        await asyncio.wait_for(stopping, 30)
    finally:
        server.close()
    # the two held requests are answered in either order: compare the lines, not the bodies' order
    sent = sorted(line for body in server.bodies for line in body.decode().split("\n"))
    acked = store.cursor(forwarder.name)
    assert acked > 0, "the answered write was not acknowledged"
    # acknowledged exactly what the server accepted (one or both batches of 5), and no more
    assert sent == sorted(p.line for p in store.read_after(0, acked))
    assert acked in (5, ids[-1])


async def test_two_batches_in_flight_and_the_cursor_moves_only_in_order(store: Store) -> None:
    first_may_answer, second_answered = threading.Event(), threading.Event()
    bodies: list[bytes] = []
    ids = store.append(samples("sample", 10))
    first_batch = "\n".join(p.line for p in store.read_after(0, 5)).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            bodies.append(body)
            # The two requests race to the server, so a batch is known by its content, not arrival order.
            is_first = body == first_batch
            if is_first:
                first_may_answer.wait(30)  # the first batch's answer is slow
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            if not is_first:
                second_answered.set()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        sink = InfluxV1Sink(f"http://127.0.0.1:{httpd.server_address[1]}", database="db")
        async with Forwarder(store, sink, batch_size=5) as forwarder:
            # the second batch went out and was answered while the first was still unanswered
            assert await asyncio.to_thread(second_answered.wait, 10)
            while forwarder.metrics.batches_sent < 1:
                await asyncio.sleep(0.01)
            assert forwarder.metrics.cursor == 0 and store.cursor(forwarder.name) == 0
            first_may_answer.set()
            await asyncio.wait_for(forwarder.wait_acked(ids[-1]), 10)
        assert store.cursor(forwarder.name) == 10
        assert len(bodies) == 2 and first_batch in bodies
        assert b"\n".join(sorted(bodies, key=lambda b: b != first_batch)) == (
            "\n".join(p.line for p in store.read_after(0, 10)).encode()
        )
    finally:
        first_may_answer.set()
        httpd.shutdown()
        httpd.server_close()
