"""``fermentry run`` killed with SIGKILL mid-run and started again: nothing committed is lost.

The service runs as a user runs it (the ``fermentry`` executable, a TOML file) against a
simulator served from this test's event loop at 25x real time, with an InfluxDB 1.x sink that
is down when the service is killed (so the store holds a backlog the next run must forward).
The local store is read read-only while the service writes, and through ``Store`` once it
is dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from simulators.opcua import RealTimeClock, SimulatorServer
from telemetry.lineproto import parse_line
from telemetry.store import Store
from tests.servers import InfluxDB1Server
from tests.service.conftest import eventually, write_demo_config

pytestmark = pytest.mark.servers

FERMENTRY = str(Path(sys.executable).parent / "fermentry")


class RunningService:
    """``fermentry run`` as a child process, its output in files (a pipe nobody reads would stall it)."""

    def __init__(self, proc: asyncio.subprocess.Process, out: Path, err: Path) -> None:
        self.proc, self.out, self.err = proc, out, err

    @classmethod
    async def start(cls, config: Path, folder: Path, tag: str) -> RunningService:
        out, err = folder / f"{tag}.out", folder / f"{tag}.err"
        with out.open("wb") as fout, err.open("wb") as ferr:
            proc = await asyncio.create_subprocess_exec(FERMENTRY, "run", "--config", str(config),
                                                        stdout=fout, stderr=ferr, stdin=asyncio.subprocess.DEVNULL)
        return cls(proc, out, err)

    def output(self) -> str:
        return f"stdout:\n{self.out.read_text()[-3000:]}\nstderr:\n{self.err.read_text()[-3000:]}"

    def alive(self) -> bool:
        if self.proc.returncode is not None:
            raise AssertionError(f"fermentry run exited with {self.proc.returncode}\n{self.output()}")
        return True

    async def stop(self, sig: int, timeout_s: float = 30.0) -> int:
        self.proc.send_signal(sig)
        return await asyncio.wait_for(self.proc.wait(), timeout_s)

    async def ensure_dead(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


def committed_last_id(path: Path) -> int:
    """Highest committed point id, read without taking a write lock (0 before the file exists)."""
    if not path.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
            row = db.execute("SELECT max(last_id) FROM chunks").fetchone()
    except sqlite3.OperationalError:  # the schema is not created yet
        return 0
    return int(row[0] or 0)


def influx_has(server: InfluxDB1Server, db: str, wanted: set[tuple[str, tuple[tuple[str, str], ...], int]]) -> bool:
    """Whether every (measurement, tags, time_ns) of ``wanted`` is in the database."""
    have: set[tuple[str, tuple[tuple[str, str], ...], int]] = set()
    for measurement in {w[0] for w in wanted}:
        field = {"sample": "quality", "loop": "pv_ok", "event": "count"}[measurement]
        for series in server.query(f'SELECT "{field}" FROM "{measurement}" GROUP BY *', db):
            tags = tuple(sorted(series.get("tags", {}).items()))
            have.update((measurement, tags, values[0]) for values in series["values"])
    return wanted <= have


@pytest_asyncio.fixture
async def fast_sim() -> AsyncIterator[SimulatorServer]:
    from simulators.process import make_plant

    # 25x: one 5 s control period every 0.2 s of wall time
    async with SimulatorServer(make_plant("ecoli", 3, seed=3), port=0, speed=25.0,
                               clock=RealTimeClock(tick_s=0.1)) as srv:
        yield srv


async def test_sigkill_mid_run_loses_no_committed_point(
    fast_sim: SimulatorServer, tmp_path: Path, influxd_factory: Callable[..., InfluxDB1Server]
) -> None:
    influxd_server, influxd_db = influxd_factory(), "plant"
    influxd_server.create_database(influxd_db)
    store_path = tmp_path / "store" / "fermentry.sqlite3"
    config = write_demo_config(
        tmp_path / "plant.toml", url=fast_sim.endpoints[0], store=tmp_path / "store",
        append=f'[influxdb]\nurl = "{influxd_server.url}"\nbucket = "{influxd_db}/autogen"\n'
               "flush_interval_s = 0.2\nmax_backoff_s = 1.0\n")

    first = await RunningService.start(config, tmp_path, "first")
    try:
        await eventually(lambda: first.alive() and committed_last_id(store_path) >= 300, timeout_s=60,
                         what="the first run to commit 300 points")
        # the database goes down too, so the crash leaves a backlog in the store's outbox
        await asyncio.to_thread(influxd_server.kill)
        await eventually(lambda: first.alive() and committed_last_id(store_path) >= 600, timeout_s=60,
                         what="the first run to commit 600 points")
        await first.stop(signal.SIGKILL)
    finally:
        await first.ensure_dead()
    assert first.proc.returncode == -signal.SIGKILL

    with Store(store_path) as store:
        before = {p.id: p.line for p in store.read_after(0, 10**9)}
        forwarded_before = store.cursors().get("influxdb", 0)
    assert len(before) >= 600 and max(before) == len(before)  # ids 1..n, no hole
    assert 0 < forwarded_before < max(before) - 200, f"forwarded up to {forwarded_before} of {max(before)}"
    await asyncio.to_thread(influxd_server.start)

    second = await RunningService.start(config, tmp_path, "second")
    try:
        await eventually(lambda: second.alive() and committed_last_id(store_path) >= max(before) + 300, timeout_s=60,
                         what="the second run to commit new points")
        # what the first run committed reaches the database, from the cursor that survived the kill
        wanted = set()
        for line in before.values():
            parsed = parse_line(line)
            wanted.add((parsed.measurement, tuple(sorted(parsed.tags.items())), parsed.time_ns))
        await eventually(lambda: influx_has(influxd_server, influxd_db, wanted), timeout_s=30, poll_s=0.5,
                         what="the points committed before the kill to reach InfluxDB")
        code = await second.stop(signal.SIGINT)
    finally:
        await second.ensure_dead()
    assert code == 0, second.output()
    assert "stopped:" in second.out.read_text()
    assert "Traceback" not in second.err.read_text(), second.output()

    with Store(store_path) as store:
        after = {p.id: p.line for p in store.read_after(0, 10**9)}
    lost = {i for i, line in before.items() if after.get(i) != line}
    assert not lost, f"{len(lost)} points committed before the kill are gone or changed, e.g. {sorted(lost)[:5]}"
    new = [after[i] for i in sorted(after) if i > max(before)]
    assert len(new) >= 300
    # the new points are new data: later samples of the same reactors, not a replay
    last_before = max(parse_line(line).time_ns for line in before.values() if line.startswith("loop,"))
    new_loops = [parse_line(line) for line in new if line.startswith("loop,")]
    assert new_loops and min(p.time_ns for p in new_loops) > last_before
    assert {p.tags["reactor"] for p in new_loops} == {"R1", "R2", "R3"}
