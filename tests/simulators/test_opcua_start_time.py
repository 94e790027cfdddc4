"""Process time 0 is anchored when the simulator starts ticking, not when it was built, so at
1x a source timestamp is the wall time the value was produced."""

from __future__ import annotations

from datetime import datetime, timezone

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
