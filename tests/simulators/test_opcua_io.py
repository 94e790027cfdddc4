"""Subscriptions, process clock and (refused) writes over a real loopback connection."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta

from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio
from asyncua import Client, ua

from simulators.opcua import ManualClock, SimulatorServer
from tests.simulators.conftest import SPEED, make_ecoli

# one server for the module (start-up costs ~1-2 s); tests only assert changes they cause
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def shared() -> AsyncIterator[tuple[SimulatorServer, ManualClock]]:
    clock = ManualClock()
    async with SimulatorServer(make_ecoli(2), port=0, clock=clock, speed=SPEED) as srv:
        yield srv, clock


@pytest.fixture
def server(shared: tuple[SimulatorServer, ManualClock]) -> SimulatorServer:
    return shared[0]


@pytest.fixture
def clock(shared: tuple[SimulatorServer, ManualClock]) -> ManualClock:
    return shared[1]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def client(shared: tuple[SimulatorServer, ManualClock]) -> AsyncIterator[Client]:
    async with Client(shared[0].endpoints[0], timeout=5) as c:
        yield c


class _Collector:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[ua.DataValue] = asyncio.Queue()

    def datachange_notification(self, node: object, val: object, data: object) -> None:
        self.queue.put_nowait(data.monitored_item.Value)  # type: ignore[attr-defined]


async def test_subscription_sees_process_time_advance_with_the_clock(
    server: SimulatorServer, client: Client, clock: ManualClock
) -> None:
    collector = _Collector()
    sub = await client.create_subscription(20, collector)
    await sub.subscribe_data_change(client.get_node("ns=2;s=R1.process_time_s"))
    first = await asyncio.wait_for(collector.queue.get(), 5)
    await clock.advance(10.0)  # 10 s wall * 60 = 600 s process
    second = await asyncio.wait_for(collector.queue.get(), 5)
    assert second.Value.Value - first.Value.Value == pytest.approx(10.0 * SPEED)
    assert second.SourceTimestamp - first.SourceTimestamp == timedelta(seconds=10.0 * SPEED)
    assert second.SourceTimestamp == server.start_time + timedelta(seconds=server.process_time_s)


async def test_measurement_source_timestamps_follow_process_time(
    server: SimulatorServer, client: Client, clock: ManualClock
) -> None:
    before = server.process_time_s
    await clock.advance(30.0)
    assert server.process_time_s == pytest.approx(before + 30.0 * SPEED)
    dv = await client.get_node("ns=2;s=R2.do_pct").read_data_value()
    assert dv.StatusCode.is_good()
    assert dv.SourceTimestamp == server.start_time + timedelta(seconds=server.process_time_s)
    assert math.isclose(dv.Value.Value, float(server.plants[0].read().values["do_pct"][1]))


async def test_feed_written_over_opcua_raises_the_volume(
    server: SimulatorServer, client: Client, clock: ManualClock
) -> None:
    feed = client.get_node("ns=2;s=R1.feed_rate_l_per_h")
    volume = [client.get_node(f"ns=2;s=R{k}.volume_l") for k in (1, 2)]
    before = [await v.read_value() for v in volume]
    hi = (await (await feed.get_child("0:EURange")).read_value()).High
    await feed.write_value(ua.DataValue(ua.Variant(hi / 2, ua.VariantType.Double)))
    assert float(server.plants[0].read().values["feed_rate_l_per_h"][0]) == pytest.approx(hi / 2)
    await clock.advance(60.0, ticks=6)  # one process hour
    after = [await v.read_value() for v in volume]
    # reactor 1 gained roughly the fed volume (evaporation/sampling aside); reactor 2 was not fed
    assert after[0] - before[0] > 0.3 * hi / 2
    assert after[0] - before[0] > after[1] - before[1] + 0.3 * hi / 2


@pytest.mark.parametrize(
    ("variant", "status"),
    [
        (ua.Variant(1e9, ua.VariantType.Double), ua.StatusCodes.BadOutOfRange),
        (ua.Variant(-1.0, ua.VariantType.Double), ua.StatusCodes.BadOutOfRange),
        (ua.Variant(math.nan, ua.VariantType.Double), ua.StatusCodes.BadOutOfRange),
        (ua.Variant(math.inf, ua.VariantType.Double), ua.StatusCodes.BadOutOfRange),
        (ua.Variant("0.5", ua.VariantType.String), ua.StatusCodes.BadTypeMismatch),
        (ua.Variant(True, ua.VariantType.Boolean), ua.StatusCodes.BadTypeMismatch),
    ],
    ids=["above", "below", "nan", "inf", "string", "bool"],
)
async def test_bad_write_is_refused_and_the_plant_is_unchanged(
    server: SimulatorServer, client: Client, variant: ua.Variant, status: int
) -> None:
    plant = server.plants[0]
    before = plant.read().values["agitation_rpm"].copy()
    node = client.get_node("ns=2;s=R2.agitation_rpm")
    with pytest.raises(ua.UaStatusCodeError) as err:
        await node.write_value(ua.DataValue(variant))
    assert err.value.code == status
    np.testing.assert_array_equal(plant.read().values["agitation_rpm"], before)
    assert await node.read_value() == before[1]


async def test_measurement_is_read_only(server: SimulatorServer, client: Client) -> None:
    node = client.get_node("ns=2;s=R1.do_pct")
    before = await node.read_value()
    with pytest.raises(ua.UaStatusCodeError) as err:
        await node.write_value(ua.DataValue(ua.Variant(42.0, ua.VariantType.Double)))
    assert err.value.code == ua.StatusCodes.BadNotWritable
    assert await node.read_value() == before


async def test_batch_write_reports_status_per_node(server: SimulatorServer, client: Client) -> None:
    nodes = [client.get_node(n) for n in ("ns=2;s=R1.do_sp_pct", "ns=2;s=R2.do_sp_pct", "ns=2;s=R1.ph_sp")]
    values = [ua.DataValue(ua.Variant(v, ua.VariantType.Double)) for v in (35.0, 1e6, 6.9)]
    params = ua.WriteParameters()
    for node, value in zip(nodes, values, strict=True):
        params.NodesToWrite.append(ua.WriteValue(NodeId=node.nodeid, AttributeId=ua.AttributeIds.Value, Value=value))
    results = await client.uaclient.write(params)  # one Write request, three results
    assert [r.value for r in results] == [ua.StatusCodes.Good, ua.StatusCodes.BadOutOfRange, ua.StatusCodes.Good]
    readings = server.plants[0].read().values
    assert (readings["do_sp_pct"][0], readings["ph_sp"][0]) == (35.0, 6.9)
    assert readings["do_sp_pct"][1] != 1e6


async def test_integer_write_is_stored_as_double(server: SimulatorServer, client: Client) -> None:
    node = client.get_node("ns=2;s=R1.agitation_rpm")
    lo = (await (await node.get_child("0:EURange")).read_value()).Low
    await node.write_value(ua.DataValue(ua.Variant(int(lo) + 1, ua.VariantType.Int32)))
    dv = await node.read_data_value()
    assert (dv.Value.VariantType, dv.Value.Value) == (ua.VariantType.Double, float(int(lo) + 1))
