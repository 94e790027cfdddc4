"""A burst of fast-changing values is delivered whole: every value, in order, none dropped."""

from __future__ import annotations

import asyncio

from asyncua import Client, ua

from simulators.opcua import SimulatorServer
from telemetry.acquisition import EndpointSupervisor, SampleBuffer, TagSpec
from telemetry.tags import TagTable

from .conftest import WAIT_S, endpoint

WRITABLE = ["feed_rate_l_per_h", "base_rate_l_per_h", "acid_rate_l_per_h", "antifoam_rate_l_per_h",
            "agitation_rpm", "air_flow_slpm", "o2_flow_slpm", "jacket_temp_c", "do_sp_pct", "temperature_sp_c"]
ROUNDS = 150


def burst_value(lo: float, hi: float, k: int) -> float:
    """Distinct consecutive values inside the signal's range (never its 95 % start value)."""
    return lo + (hi - lo) * (0.1 + 0.8 * (k % 100) / 100.0)


async def test_burst_of_ten_tags_at_10ms_sampling_arrives_complete(server: SimulatorServer, peer: Client) -> None:
    names = [f"R1.{s}" for s in WRITABLE]
    ranges = {s.name: (s.lo, s.hi) for s in server.plants[0].signals}
    lohi = [ranges[s] for s in WRITABLE]
    table = TagTable(names)
    samples = SampleBuffer()
    tags = tuple(TagSpec(i, node_id=f"ns=2;s={n}", sampling_interval_ms=10.0, queue_size=1000) for i, n in enumerate(names))
    # a long publishing interval: the whole burst lands in one or two publish responses of >1000 values
    spec = endpoint(server.endpoints[0], tags, publishing_interval_ms=500.0)
    nodes = [peer.get_node(f"ns=2;s={n}") for n in names]
    # start from values no burst value equals, so every burst value is a change
    await peer.write_values(nodes, [ua.Variant(lo + 0.95 * (hi - lo), ua.VariantType.Double) for lo, hi in lohi])
    async with EndpointSupervisor(spec, table, samples) as sup:
        await sup.wait_connected(WAIT_S)
        await asyncio.wait_for(samples.wait_total(len(names)), WAIT_S)
        samples.drain()
        for k in range(ROUNDS):
            await peer.write_values(nodes, [ua.Variant(burst_value(lo, hi, k), ua.VariantType.Double) for lo, hi in lohi])
        await asyncio.wait_for(samples.wait_total(len(names) * (ROUNDS + 1)), WAIT_S)
        got = samples.drain()
        overflows = sup.stats.overflows
    assert len(got) == len(names) * ROUNDS
    for i in range(len(names)):
        assert [s.value for s in got if s.tag == i] == [burst_value(*lohi[i], k) for k in range(ROUNDS)]
    assert overflows == 0
