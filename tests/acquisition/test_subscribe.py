"""Subscriptions against the real simulator: values, source times, status, deadband, faults."""

from __future__ import annotations

import asyncio
import time

import numpy as np
from asyncua import Client, ua

from simulators.opcua import ManualClock, SimulatorServer
from simulators.process.faults import Fault
from telemetry.acquisition import EndpointSupervisor, SampleBuffer, TagSpec, TagsRejected, stale_after_s
from telemetry.acquisition.samples import posix_seconds
from telemetry.tags import TagTable

from .conftest import SPEED, WAIT_S, EventLog, endpoint, make_plant, tag_names, tag_specs


async def test_all_signals_of_three_reactors_arrive_with_source_time_and_status(
    server: SimulatorServer, clock: ManualClock, peer: Client, events: EventLog
) -> None:
    names = tag_names(server.plants[0])
    table = TagTable(names)
    samples = SampleBuffer()
    spec = endpoint(server.endpoints[0], tag_specs(names, table))
    async with EndpointSupervisor(spec, table, samples, on_event=events) as sup:
        await sup.wait_connected(WAIT_S)
        await asyncio.wait_for(samples.wait_total(len(names)), WAIT_S)  # initial values
        before = samples.total
        first_source_time = table.source_time_s.copy()
        await clock.advance(1.0)
        # the server publishes one tick's changes at one instant, so they share a publish
        # response, which is ingested whole: the first new sample means all have arrived
        await asyncio.wait_for(samples.wait_total(before + 1), WAIT_S)
        nodes = [peer.get_node(f"ns=2;s={n}") for n in names]
        truth = await peer.read_attributes(nodes)
    for name, dv in zip(names, truth):
        i = table.index[name]
        assert table.status[i] == dv.StatusCode.value, name
        # a value that did not change is not re-sent (trigger StatusValue): it keeps its first time
        assert table.source_time_s[i] in (posix_seconds(dv.SourceTimestamp), first_source_time[i]), name
        if dv.StatusCode.is_good():
            assert table.value[i] == dv.Value.Value, name
        else:
            assert np.isnan(table.value[i]), name
    # process time of the source is carried: one manual second at SPEED is a process minute
    do = table.index["R1.do_pct"]
    assert abs(table.source_time_s[do] - (server.start_time.timestamp() + server.process_time_s)) < 1e-3
    assert server.process_time_s >= SPEED
    assert (table.source_time_s > first_source_time).sum() >= 10
    assert samples.total == len(samples.drain()) and samples.total > len(names)


async def test_browse_path_and_namespace_uri_forms_resolve(server: SimulatorServer, events: EventLog) -> None:
    table = TagTable(["a", "b", "c", "missing"])
    tags = (
        TagSpec(0, browse_path="R2/Sensors/do_pct"),
        TagSpec(1, node_id="nsu=urn:fermentry:simulator;s=R2.do_pct"),
        TagSpec(2, node_id="ns=2;s=R2.do_pct"),
        TagSpec(3, browse_path="R2/Sensors/no_such_signal"),
    )
    samples = SampleBuffer()
    async with EndpointSupervisor(endpoint(server.endpoints[0], tags), table, samples, on_event=events) as sup:
        await sup.wait_connected(WAIT_S)
        await asyncio.wait_for(samples.wait_total(4), WAIT_S)
    assert np.isfinite(table.value[0]) and table.value[0] == table.value[1] == table.value[2]
    assert table.status[3] == ua.StatusCodes.BadNodeIdUnknown
    rejected = events.of(TagsRejected)
    assert rejected and rejected[0].tag_ids == (3,)


async def test_deadband_filters_small_changes_but_keeps_the_tag_fresh(server: SimulatorServer, peer: Client) -> None:
    table = TagTable(["R1.do_sp_pct", "R1.temperature_sp_c"])
    tags = (
        TagSpec(0, node_id="ns=2;s=R1.do_sp_pct", deadband_abs=5.0),
        TagSpec(1, node_id="ns=2;s=R1.temperature_sp_c"),
    )
    samples = SampleBuffer()
    spec = endpoint(server.endpoints[0], tags)
    do_sp, t_sp = peer.get_node("ns=2;s=R1.do_sp_pct"), peer.get_node("ns=2;s=R1.temperature_sp_c")
    await peer.write_values([do_sp, t_sp], [ua.Variant(30.0, ua.VariantType.Double), ua.Variant(36.0, ua.VariantType.Double)])
    async with EndpointSupervisor(spec, table, samples) as sup:
        await sup.wait_connected(WAIT_S)
        await asyncio.wait_for(samples.wait_total(2), WAIT_S)
        assert table.value[0] == 30.0
        # both writes land in the same server instant, so the same publish response
        n = samples.total
        await peer.write_values([do_sp, t_sp], [ua.Variant(32.0, ua.VariantType.Double), ua.Variant(36.5, ua.VariantType.Double)])
        await asyncio.wait_for(samples.wait_total(n + 1), WAIT_S)
        assert [s.tag for s in samples.drain()[-1:]] == [1]
        assert table.value[0] == 30.0 and table.value[1] == 36.5  # 2 %-points is inside the deadband
        n = samples.total
        await peer.write_values([do_sp, t_sp], [ua.Variant(40.0, ua.VariantType.Double), ua.Variant(37.0, ua.VariantType.Double)])
        await asyncio.wait_for(samples.wait_total(n + 2), WAIT_S)
        assert table.value[0] == 40.0
        # keep-alives refresh the filtered tag: it stays usable with no data change
        session = sup.session
        assert session is not None
        k = session.stats.publish_responses
        while session.stats.publish_responses < k + 4:
            await asyncio.wait_for(_next_publish(session), WAIT_S)
        now = time.monotonic()
        assert table.usable(now, stale_after_s([spec], 2)).all()


async def _next_publish(session) -> None:  # type: ignore[no-untyped-def]
    k = session.stats.publish_responses
    while session.stats.publish_responses == k:
        await asyncio.sleep(session.spec.publishing_interval_s / 2)


async def test_failed_do_probe_arrives_as_bad(clock: ManualClock, events: EventLog) -> None:
    plant = make_plant(faults=[Fault("do_probe_failure", at_s=30.0, reactor=1)])
    names = ["R1.do_pct", "R2.do_pct", "R3.do_pct"]
    table = TagTable(names)
    samples = SampleBuffer()
    async with SimulatorServer(plant, port=0, clock=clock, speed=SPEED) as srv:
        spec = endpoint(srv.endpoints[0], tag_specs(names, table))
        async with EndpointSupervisor(spec, table, samples, on_event=events) as sup:
            await sup.wait_connected(WAIT_S)
            await asyncio.wait_for(samples.wait_total(3), WAIT_S)
            assert table.usable(time.monotonic(), 1.0).all()
            await clock.advance(1.0)  # 60 s of process time: past the fault
            while not table.status[1] & 0x80000000:
                await asyncio.wait_for(samples.wait_total(samples.total + 1), WAIT_S)
    bad = [s for s in samples.drain() if s.tag == 1 and s.status & 0x80000000]
    assert bad and np.isnan(bad[-1].value)
    assert table.status[1] & 0xC0000000 == 0x80000000
    assert not table.status[0] & 0x80000000 and not table.status[2] & 0x80000000
