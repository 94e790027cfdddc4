"""Endpoint-per-reactor mode and server restarts (manual and from the fault schedule)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from asyncua import Client, ua

from simulators.opcua import ManualClock, SimulatorServer
from tests.simulators.conftest import make_ecoli


async def _connect_fails(url: str) -> bool:
    try:
        async with Client(url, timeout=2):
            return False
    except (OSError, TimeoutError, ua.UaError):
        return True


async def test_restart_drops_clients_and_comes_back_on_the_same_port(server: SimulatorServer, client: Client) -> None:
    url, port = server.endpoints[0], server.ports[0]
    node_id = "ns=2;s=R1.do_sp_pct"
    await client.get_node(node_id).read_value()
    await server.go_offline()
    assert not server.is_online()
    assert await _connect_fails(url)
    with pytest.raises((ConnectionError, ua.UaError, TimeoutError)):
        await client.get_node(node_id).read_value()
    await server.go_online()
    assert server.ports[0] == port
    async with Client(url, timeout=5) as again:
        assert await again.get_node(node_id).read_value() == float(server.plants[0].read().values["do_sp_pct"][0])


@dataclass(frozen=True)
class _Fault:  # same fields as simulators.process.faults.Fault
    kind: str
    at_s: float
    duration_s: float | None
    reactor: int | None = None
    signal: str | None = None
    magnitude: float | None = None


@pytest.mark.parametrize("endpoint_per_reactor", [False, True], ids=["shared", "per-reactor"])
async def test_opcua_restart_fault_takes_the_endpoint_down_for_its_duration(endpoint_per_reactor: bool) -> None:
    clock = ManualClock()
    fault = _Fault("opcua_restart", at_s=600.0, duration_s=1200.0, reactor=0)
    async with SimulatorServer(make_ecoli(2), port=0, clock=clock, speed=60.0, faults=[fault],
                               endpoint_per_reactor=endpoint_per_reactor) as srv:
        if endpoint_per_reactor:
            await _assert_each_endpoint_serves_only_its_reactor(srv)
        await clock.advance(9.0)  # t = 540 s: before the fault
        assert srv.is_online(0)
        await clock.advance(2.0)  # t = 660 s: down
        assert not srv.is_online(0)
        assert await _connect_fails(srv.endpoints[0])
        if endpoint_per_reactor:  # the other vessel's controller keeps running
            assert srv.is_online(1)
        await clock.advance(10.0)  # t = 1260 s: still inside 600..1800
        assert not srv.is_online(0)
        await clock.advance(10.0)  # t = 1860 s: back
        assert srv.is_online(0)
        async with Client(srv.endpoints[0], timeout=5) as c:
            assert await c.get_node("ns=2;s=R1.process_time_s").read_value() == pytest.approx(1860.0)


async def _assert_each_endpoint_serves_only_its_reactor(srv: SimulatorServer) -> None:
    assert len(srv.endpoints) == 2 and len(set(srv.ports)) == 2
    for k, url in enumerate(srv.endpoints, start=1):
        async with Client(url, timeout=5) as c:
            names = {(await n.read_browse_name()).Name for n in await c.nodes.objects.get_children()}
            assert f"R{k}" in names and f"R{3 - k}" not in names
            # every server keeps the shared naming contract: ns=2, R<k>
            assert (await c.get_namespace_array())[2] == "urn:fermentry:simulator"
            assert await c.get_node(f"ns=2;s=R{k}.do_pct").read_value() == pytest.approx(
                float(srv.plants[0].read().values["do_pct"][k - 1]))
