"""Process time 0 is anchored when the simulator starts ticking, not when it was built, so at
1x a source timestamp is the wall time the value was produced."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from asyncua import Client, ua

from simulators.opcua import ManualClock, SimulatorServer
from tests.simulators.conftest import make_ecoli


async def test_source_timestamps_are_anchored_at_start() -> None:
    srv = SimulatorServer(make_ecoli(2), port=0, clock=ManualClock())
    built_at = srv.start_time
    before_start = datetime.now(timezone.utc)
    await srv.start()
    try:
        after_start = datetime.now(timezone.utc)
        assert built_at < before_start <= srv.start_time <= after_start
        async with Client(srv.endpoints[0], timeout=5) as client:
            dv = await client.get_node(ua.NodeId.from_string("ns=2;s=R1.do_pct")).read_data_value()
            assert dv.SourceTimestamp.replace(tzinfo=timezone.utc) == srv.start_time  # process time 0
            anchor = await client.get_node(ua.NodeId.from_string("ns=2;s=Simulation.start_time")).read_value()
            assert anchor.replace(tzinfo=timezone.utc) == srv.start_time
    finally:
        await srv.stop()


async def test_an_explicit_start_time_is_kept() -> None:
    fixed = datetime(2026, 1, 1, tzinfo=timezone.utc)
    srv = SimulatorServer(make_ecoli(1), port=0, clock=ManualClock(), start_time=fixed)
    await srv.start()
    try:
        assert srv.start_time == fixed
    finally:
        await srv.stop()


class _RecordingClock(ManualClock):
    """A manual clock that keeps the anchor the server asked it to count from."""

    since: float | None = None

    def ticks(self, since: float | None = None):  # type: ignore[override]
        self.since = since
        return super().ticks(since)


async def test_the_clock_counts_from_the_start_time_anchor() -> None:
    # building and republishing the address space takes a while after the anchor; a clock
    # that counted from its own first iteration would leave process time (and every source
    # timestamp) behind wall time by that much
    loop = asyncio.get_running_loop()
    clock = _RecordingClock()
    srv = SimulatorServer(make_ecoli(3), port=0, clock=clock)
    await srv.start()
    try:
        await asyncio.sleep(0)  # let the clock task ask for its ticks
        assert clock.since is not None
        wall_since_anchor = (datetime.now(timezone.utc) - srv.start_time).total_seconds()
        assert loop.time() - clock.since == pytest.approx(wall_since_anchor, abs=0.005)
    finally:
        await srv.stop()
