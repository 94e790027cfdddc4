"""Batched writes with limits, rate limits, retries, read-back and shadow mode, against the simulator."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio
from asyncua import Client, ua
from hypothesis import given
from hypothesis import strategies as st

from simulators.opcua import SimulatorServer
from telemetry.acquisition import Actuator, EndpointSupervisor, FixedClient, OutputSpec, limit_outputs
from telemetry.acquisition.limits import LIMIT_HELD, LIMIT_HI, LIMIT_LO, LIMIT_RATE
from telemetry.tags import TagTable

from .conftest import WAIT_S, endpoint


class WriteCounter:
    """Counts the WriteRequests a real client sends, and their size (wraps, does not replace,
    the session's request sending)."""

    def __init__(self, client: Client) -> None:
        self.calls: list[int] = []
        session = client.uaclient.session
        inner = session._send_request

        async def send(request: object, *args: object, **kwargs: object) -> object:
            if isinstance(request, ua.WriteRequest):
                self.calls.append(len(request.Parameters.NodesToWrite))
            return await inner(request, *args, **kwargs)

        session._send_request = send  # type: ignore[method-assign]


@pytest_asyncio.fixture
async def writer(server: SimulatorServer) -> AsyncIterator[Client]:
    c = Client(server.endpoints[0], timeout=5)
    await c.connect()
    yield c
    await c.disconnect()


async def _server_values(peer: Client, node_ids: list[str]) -> list[float]:
    return [float(v) for v in await peer.read_values([peer.get_node(n) for n in node_ids])]


def _outputs(**overrides: dict[str, float]) -> list[OutputSpec]:
    base = {
        "R1.feed_rate_l_per_h": dict(lo=0.0, hi=1.0),
        "R2.feed_rate_l_per_h": dict(lo=0.0, hi=1.0),
        "R1.agitation_rpm": dict(lo=100.0, hi=1200.0),
        "R1.do_sp_pct": dict(lo=10.0, hi=60.0),
    }
    for key, kw in overrides.items():
        base[key.replace("__", ".")] = {**base.get(key.replace("__", "."), {}), **kw}
    return [OutputSpec(k, f"ns=2;s={k}", **kw) for k, kw in base.items()]  # type: ignore[arg-type]


async def test_batch_is_one_write_call_and_reads_back(writer: Client, peer: Client) -> None:
    counter = WriteCounter(writer)
    actuator = Actuator(FixedClient(writer), _outputs())
    wanted = {"R1.feed_rate_l_per_h": 0.25, "R2.feed_rate_l_per_h": 0.5, "R1.agitation_rpm": 700.0, "R1.do_sp_pct": 35.0}
    results = await actuator.write(wanted, process_time_s=100.0)
    assert counter.calls == [4]
    for key, value in wanted.items():
        r = results[key]
        assert (r.action, r.status, r.attempts, r.verified, r.read_back) == ("written", 0, 1, True, value)
    assert await _server_values(peer, [f"ns=2;s={k}" for k in wanted]) == list(wanted.values())


async def test_server_refusal_surfaces_retried_a_bounded_number_of_times(writer: Client, peer: Client) -> None:
    # a misconfigured limit above the server's EURange: the server is the next line of defence
    actuator = Actuator(FixedClient(writer), _outputs(R1__agitation_rpm=dict(hi=1e6)), max_attempts=3)
    counter = WriteCounter(writer)
    before = await _server_values(peer, ["ns=2;s=R1.agitation_rpm"])
    results = await actuator.write({"R1.agitation_rpm": 5e5, "R1.feed_rate_l_per_h": 0.3}, process_time_s=10.0)
    bad = results["R1.agitation_rpm"]
    assert bad.action == "failed" and bad.attempts == 3
    assert bad.statuses == (ua.StatusCodes.BadOutOfRange,) * 3 and bad.verified is None
    assert results["R1.feed_rate_l_per_h"].action == "written" and results["R1.feed_rate_l_per_h"].attempts == 1
    assert counter.calls == [2, 1, 1]  # retries carry only the failed output
    assert await _server_values(peer, ["ns=2;s=R1.agitation_rpm"]) == before


async def test_limits_and_rate_limits_clamp_before_writing(writer: Client, peer: Client) -> None:
    outputs = _outputs(R1__feed_rate_l_per_h=dict(max_rate_per_s=0.001))
    actuator = Actuator(FixedClient(writer), outputs)
    await actuator.write({"R1.feed_rate_l_per_h": 0.0}, process_time_s=0.0)
    results = await actuator.write(
        {"R1.feed_rate_l_per_h": 1.0, "R2.feed_rate_l_per_h": 7.0, "R1.agitation_rpm": 5.0}, process_time_s=100.0
    )
    assert (results["R1.feed_rate_l_per_h"].value, results["R1.feed_rate_l_per_h"].limited) == (pytest.approx(0.1), "rate")
    assert (results["R2.feed_rate_l_per_h"].value, results["R2.feed_rate_l_per_h"].limited) == (1.0, "hi")
    assert (results["R1.agitation_rpm"].value, results["R1.agitation_rpm"].limited) == (100.0, "lo")
    server = await _server_values(peer, ["ns=2;s=R1.feed_rate_l_per_h", "ns=2;s=R2.feed_rate_l_per_h", "ns=2;s=R1.agitation_rpm"])
    assert server == [pytest.approx(0.1), 1.0, 100.0]


async def test_rate_limit_starts_from_the_value_the_device_holds(writer: Client, peer: Client) -> None:
    await peer.write_values([peer.get_node("ns=2;s=R1.do_sp_pct")], [ua.Variant(40.0, ua.VariantType.Double)])
    actuator = Actuator(FixedClient(writer), _outputs(R1__do_sp_pct=dict(max_rate_per_s=0.1)))
    results = await actuator.write({"R1.do_sp_pct": 10.0}, process_time_s=50.0)
    # first write of the run: no time has passed since the seed, so nothing moves
    assert results["R1.do_sp_pct"].value == 40.0 and results["R1.do_sp_pct"].limited == "rate"
    results = await actuator.write({"R1.do_sp_pct": 10.0}, process_time_s=80.0)
    assert results["R1.do_sp_pct"].value == pytest.approx(37.0)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
async def test_non_finite_output_is_held_not_written(writer: Client, peer: Client, bad: float) -> None:
    actuator = Actuator(FixedClient(writer), _outputs())
    await actuator.write({"R1.feed_rate_l_per_h": 0.4}, process_time_s=0.0)
    counter = WriteCounter(writer)
    results = await actuator.write({"R1.feed_rate_l_per_h": bad}, process_time_s=10.0)
    r = results["R1.feed_rate_l_per_h"]
    assert (r.action, r.value, r.attempts) == ("held", 0.4, 0)
    assert counter.calls == []
    assert await _server_values(peer, ["ns=2;s=R1.feed_rate_l_per_h"]) == [0.4]


async def test_shadow_mode_never_writes(writer: Client, peer: Client) -> None:
    keys = ["R1.feed_rate_l_per_h", "R1.agitation_rpm"]
    before = await _server_values(peer, [f"ns=2;s={k}" for k in keys])
    counter = WriteCounter(writer)
    actuator = Actuator(FixedClient(writer), _outputs(R1__agitation_rpm=dict(max_rate_per_s=1.0)), mode="shadow")
    for t in (0.0, 10.0, 20.0):
        results = await actuator.write({"R1.feed_rate_l_per_h": 0.9, "R1.agitation_rpm": 1100.0}, process_time_s=t)
    assert counter.calls == []
    assert await _server_values(peer, [f"ns=2;s={k}" for k in keys]) == before
    assert results["R1.feed_rate_l_per_h"].action == "shadow" and results["R1.feed_rate_l_per_h"].value == 0.9
    # the shadow trajectory is rate-limited as a real one would be: 20 s at 1 rpm/s from the device value
    assert results["R1.agitation_rpm"].value == pytest.approx(min(1100.0, before[1] + 20.0))


async def test_actuator_on_a_supervised_endpoint_reports_not_connected_while_down(server: SimulatorServer) -> None:
    table = TagTable(["R1.do_pct"])
    spec = endpoint(server.endpoints[0], ())
    sup = EndpointSupervisor(spec, table)
    actuator = Actuator(sup, _outputs())
    results = await actuator.write({"R1.feed_rate_l_per_h": 0.2}, process_time_s=0.0)
    assert results["R1.feed_rate_l_per_h"].action == "not_connected"
    async with sup:
        await sup.wait_connected(WAIT_S)
        results = await actuator.write({"R1.feed_rate_l_per_h": 0.2}, process_time_s=1.0)
    assert results["R1.feed_rate_l_per_h"].verified is True


finite = st.floats(-1e6, 1e6, allow_nan=False)


@given(
    req=st.lists(st.one_of(finite, st.just(math.nan), st.just(math.inf)), min_size=1, max_size=8),
    last=finite, dt=st.floats(0, 1e4), lo=st.floats(-1e3, 0), span=st.floats(0, 1e3), rate=st.floats(0, 10),
)
def test_limited_outputs_respect_range_and_rate(req: list[float], last: float, dt: float, lo: float, span: float, rate: float) -> None:
    n = len(req)
    hi = lo + span
    last_in = float(np.clip(last, lo, hi))
    value, limit = limit_outputs(np.array(req), np.full(n, last_in), np.full(n, dt), np.full(n, lo), np.full(n, hi), np.full(n, rate))
    assert np.all((value >= lo) & (value <= hi))
    assert np.all(np.abs(value - last_in) <= rate * dt * (1 + 1e-12) + 1e-9)
    held = ~np.isfinite(np.array(req))
    assert np.all(limit[held] == LIMIT_HELD) and np.all(value[held] == last_in)
    untouched = limit == 0
    assert np.all(value[untouched] == np.array(req)[untouched])
    assert set(limit.tolist()) <= {0, LIMIT_LO, LIMIT_HI, LIMIT_RATE, LIMIT_HELD}


def test_limit_outputs_checks_shapes() -> None:
    with pytest.raises(ValueError, match="shape"):
        limit_outputs(np.zeros(2), np.zeros(3), np.zeros(2), np.zeros(2), np.ones(2), np.ones(2))
