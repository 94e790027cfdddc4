"""Fixtures for the OPC UA simulator tests: real asyncua servers on free loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from asyncua import Client, ua

from simulators.opcua import ManualClock, SimulatorServer
from simulators.plant import Plant

SPEED = 60.0  # 1 s of (manual) wall time = 1 min of process time


def make_ecoli(n_reactors: int = 2, **kwargs: object) -> Plant:
    from simulators.process import make_plant

    return make_plant("ecoli", n_reactors, seed=1, **kwargs)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest_asyncio.fixture
async def server(clock: ManualClock) -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(make_ecoli(2), port=0, clock=clock, speed=SPEED) as srv:
        yield srv


@pytest_asyncio.fixture
async def client(server: SimulatorServer) -> AsyncIterator[Client]:
    c = Client(server.endpoints[0], timeout=5)
    await c.connect()
    yield c
    try:
        await c.disconnect()
    except (ConnectionError, TimeoutError, ua.UaError):
        pass  # a test restarted the server under this client
