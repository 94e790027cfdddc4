"""The publish pipeline: several PublishRequests wait on the server, responses are handled in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asyncua import Client, ua

from simulators.opcua import ManualClock, SimulatorServer
from telemetry.acquisition.publish_loop import install_publish_pipeline
from tests.acquisition.conftest import WAIT_S


class _Times:
    """Collects the process_time_s notifications of one node, in the order they are handled."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.arrived = asyncio.Event()

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.values.append(float(val))
        self.arrived.set()

    async def wait_count(self, n: int) -> None:
        async def enough() -> None:
            while len(self.values) < n:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), WAIT_S)


def _waiting_requests(server: SimulatorServer) -> int:
    """PublishRequests the server holds for its (one) client connection."""
    bserver = server._endpoints[0].server.bserver  # type: ignore[union-attr]
    return sum(len(protocol.processor._publish_requests) for protocol in bserver.clients)


async def _until(predicate: Any) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), WAIT_S)


async def test_requests_wait_on_the_server_and_values_arrive_in_order(server: SimulatorServer,
                                                                      clock: ManualClock) -> None:
    async with Client(server.endpoints[0], timeout=5) as client:
        install_publish_pipeline(client.uaclient.session, depth=3)
        times = _Times()
        sub = await client.create_subscription(10, times)
        await sub.subscribe_data_change(client.get_node(ua.NodeId("R1.process_time_s", 2)))
        await times.wait_count(1)
        # with nothing to publish, the server holds what the client keeps outstanding (asyncua: 1)
        await _until(lambda: _waiting_requests(server) >= 2)
        for k in range(20):
            await clock.advance(1.0)
            await times.wait_count(k + 2)
        assert times.values == sorted(times.values) and len(set(times.values)) == len(times.values)
        assert len(times.values) == 21


async def test_the_loop_ends_when_the_server_has_no_subscription(server: SimulatorServer) -> None:
    async with Client(server.endpoints[0], timeout=5) as client:
        session = client.uaclient.session
        install_publish_pipeline(session, depth=2)
        sub = await client.create_subscription(10, _Times())
        task = session._publish_task
        assert task is not None and not task.done()
        await sub.delete()  # the server answers the outstanding requests with BadNoSubscription
        await asyncio.wait_for(task, WAIT_S)
        assert task.exception() is None


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth"):
        install_publish_pipeline(object(), depth=0)  # type: ignore[arg-type]


async def test_a_lost_connection_is_logged_once_per_outage_without_a_traceback(
        server: SimulatorServer, caplog: pytest.LogCaptureFixture) -> None:
    client = Client(server.endpoints[0], timeout=5)
    await client.connect()
    try:
        session = client.uaclient.session
        sent = 0
        publish = session.publish

        async def counted(acks: Any = None) -> Any:
            nonlocal sent
            sent += 1
            return await publish(acks)

        session.publish = counted  # type: ignore[method-assign]
        install_publish_pipeline(session, depth=3)
        await client.create_subscription(10, _Times())
        await _until(lambda: _waiting_requests(server) >= 2)
        caplog.clear()
        before = sent
        await server.go_offline()  # every connection drops: all three requests fail together
        await _until(lambda: any("publishing stopped" in r.getMessage() for r in caplog.records))
        # the loop retries, and the retry fails too: a third round of three requests is sent
        # only after the second round's failure was handled. Still one report.
        await _until(lambda: sent >= before + 9)
        stopped = [r for r in caplog.records if "publishing stopped" in r.getMessage()]
        assert len(stopped) == 1
        assert stopped[0].levelname == "WARNING" and stopped[0].exc_info is None
        assert not any("crashed" in r.getMessage() for r in caplog.records)
    finally:
        await server.go_online()
        session._publish_task.cancel()  # type: ignore[union-attr]
        await asyncio.gather(session._publish_task, return_exceptions=True)
        try:
            await client.disconnect()
        except Exception:  # noqa: BLE001 - the connection is gone already
            pass
