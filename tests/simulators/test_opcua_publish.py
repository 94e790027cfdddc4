"""Publishing only what changed: unchanged signals are not rewritten, yet stay fresh for the
service; changes of value or status always reach subscribers."""

from __future__ import annotations

import asyncio
import time

from asyncua import Client, ua

from simulators.opcua import ManualClock, SimulatorServer
from simulators.process.faults import Fault
from telemetry.acquisition import EndpointSpec, EndpointSupervisor, SampleBuffer, TagSpec
from telemetry.tags import TagTable

WAIT_S = 10.0
SPEED = 60.0  # as the server fixture: one manual wall second is one process minute
ACTUATOR = "ns=2;s=R1.feed_rate_l_per_h"  # the plant never changes it on its own
SENSOR = "ns=2;s=R1.do_pct"


async def test_unchanged_signal_keeps_the_timestamps_of_its_last_change(
    server: SimulatorServer, clock: ManualClock, client: Client
) -> None:
    actuator, sensor = client.get_node(ACTUATOR), client.get_node(SENSOR)
    before = await actuator.read_data_value()
    sensor_before = await sensor.read_data_value()
    await clock.advance(1.0, ticks=3)
    after = await actuator.read_data_value()
    sensor_after = await sensor.read_data_value()
    assert after.Value == before.Value and after.StatusCode.is_good()
    assert after.SourceTimestamp == before.SourceTimestamp
    assert sensor_after.SourceTimestamp > sensor_before.SourceTimestamp


async def test_a_written_demand_is_republished_with_a_new_source_time(
    server: SimulatorServer, clock: ManualClock, client: Client
) -> None:
    actuator = client.get_node(ACTUATOR)
    before = await actuator.read_data_value()
    signal = next(s for s in server.plants[0].signals if s.name == "feed_rate_l_per_h")
    target = (signal.lo + signal.hi) / 2
    assert target != before.Value.Value
    await actuator.write_value(ua.DataValue(ua.Variant(target, ua.VariantType.Double)))
    await clock.advance(1.0)
    after = await actuator.read_data_value()
    assert after.Value.Value == target
    expected = server.start_time.timestamp() + server.process_time_s
    assert abs(after.SourceTimestamp.timestamp() - expected) < 1e-3


async def test_unchanged_signal_stays_fresh_for_the_service(server: SimulatorServer, clock: ManualClock) -> None:
    names = ["R1.feed_rate_l_per_h", "R1.do_pct"]
    table = TagTable(names)
    samples = SampleBuffer()
    tags = tuple(TagSpec(table.index[n], node_id=f"ns=2;s={n}") for n in names)
    spec = EndpointSpec(url=server.endpoints[0], tags=tags, name="sim", publishing_interval_ms=50.0,
                        connect_timeout_s=3.0, request_timeout_s=2.0)
    async with EndpointSupervisor(spec, table, samples) as sup:
        await sup.wait_connected(WAIT_S)
        await asyncio.wait_for(samples.wait_total(len(names)), WAIT_S)
        first_received = table.received_s.copy()
        n_actuator = sum(1 for s in samples.drain() if s.tag == 0)
        for _ in range(5):  # several publishing intervals, each with a tick
            await clock.advance(0.1)
            await asyncio.sleep(0.06)
        assert not any(s.tag == 0 for s in samples.drain())  # not re-sent...
        assert n_actuator == 1
        assert table.received_s[0] > first_received[0]  # ...but proven current by publish responses
        assert table.usable(time.monotonic(), 3 * spec.publishing_interval_s).all()


async def test_a_status_change_is_sent_even_inside_a_deadband(clock: ManualClock) -> None:
    from simulators.process import make_plant

    plant = make_plant("ecoli", 1, seed=1, faults=[Fault("do_probe_failure", at_s=30.0, duration_s=60.0, reactor=0)])
    received: list[ua.DataValue] = []

    class Handler:
        def datachange_notification(self, node: object, val: object, data: object) -> None:
            received.append(data.monitored_item.Value)  # type: ignore[attr-defined]

    async with SimulatorServer(plant, port=0, clock=clock, speed=SPEED) as srv, Client(srv.endpoints[0]) as c:
        sub = await c.create_subscription(50, Handler())
        await sub.deadband_monitor(c.get_node(SENSOR), deadband_val=1e6, deadbandtype=1)
        for _ in range(3):  # through the failure (30..90 s process time) and back
            await clock.advance(1.0)
            await asyncio.sleep(0.15)
        await sub.delete()
    statuses = [dv.StatusCode.value for dv in received]
    assert statuses[0] == ua.StatusCodes.Good
    assert ua.StatusCodes.BadSensorFailure in statuses
    assert statuses[-1] == ua.StatusCodes.Good  # recovery is a status change too


async def test_a_tick_reaches_subscribers_at_once_and_no_faster_than_their_interval(clock: ManualClock) -> None:
    """publish_on_tick: a tick's changes go out when the tick is done, not at the next
    boundary of the subscription's free-running timer; and the tick path publishes a
    subscription at most once per publishing interval."""
    from simulators.process import make_plant

    plant = make_plant("ecoli", 1, seed=1)
    received: asyncio.Queue[ua.DataValue] = asyncio.Queue()

    class Handler:
        def datachange_notification(self, node: object, val: object, data: object) -> None:
            received.put_nowait(data.monitored_item.Value)  # type: ignore[attr-defined]

    async with SimulatorServer(plant, port=0, clock=clock, speed=SPEED) as srv, Client(srv.endpoints[0]) as c:
        sub = await c.create_subscription(30_000, Handler())  # the timer publishes every 30 s
        await sub.subscribe_data_change(c.get_node(SENSOR))
        await clock.advance(1.0)
        # the timer published once when the subscription started, before the item existed:
        # only the tick path can deliver this within the wait
        expected = srv.start_time.timestamp() + srv.process_time_s
        stamps = []
        while not stamps or abs(stamps[-1] - expected) > 1e-3:  # the initial value, then the tick's
            stamps.append((await asyncio.wait_for(received.get(), WAIT_S)).SourceTimestamp.timestamp())
        assert len(stamps) <= 2
        (internal,) = srv._endpoints[0].server.iserver.subscription_service.subscriptions.values()
        await clock.advance(1.0)  # a second tick within the interval: kept for the timer
        assert internal._triggered_datachanges
        assert received.empty()
        await sub.delete()
