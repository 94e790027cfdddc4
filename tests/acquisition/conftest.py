"""Fixtures for acquisition tests: the real OPC UA simulator on free loopback ports, a TCP proxy
that can freeze a live connection, and an event log tests can wait on."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from asyncua import Client

from simulators.opcua import ManualClock, SimulatorServer
from simulators.plant import Plant
from telemetry.acquisition import EndpointSpec, TagSpec
from telemetry.acquisition.events import AcquisitionEvent
from telemetry.tags import TagTable

SPEED = 60.0  # one manual wall second = one process minute
N_REACTORS = 3
WAIT_S = 10.0  # upper bound on any awaited event; tests finish far sooner


def make_plant(n_reactors: int = N_REACTORS, **kwargs: Any) -> Plant:
    from simulators.process import make_plant as factory

    return factory("ecoli", n_reactors, seed=3, **kwargs)


def tag_names(plant: Plant, n_reactors: int = N_REACTORS) -> list[str]:
    return [f"R{k}.{s.name}" for k in range(1, n_reactors + 1) for s in plant.signals]


def tag_specs(names: list[str], table: TagTable, **kwargs: Any) -> tuple[TagSpec, ...]:
    return tuple(TagSpec(table.index[n], node_id=f"ns=2;s={n}", **kwargs) for n in names)


def endpoint(url: str, tags: tuple[TagSpec, ...], **kwargs: Any) -> EndpointSpec:
    defaults: dict[str, Any] = dict(
        name="sim", publishing_interval_ms=50.0, reconnect_initial_s=0.05, reconnect_max_s=0.2,
        connect_timeout_s=3.0, request_timeout_s=2.0,
    )
    defaults.update(kwargs)
    return EndpointSpec(url=url, tags=tags, **defaults)


class EventLog:
    """Collects acquisition events; ``await log.next(Kind)`` waits for the next one of a kind."""

    def __init__(self) -> None:
        self.events: list[AcquisitionEvent] = []
        self._changed = asyncio.Event()
        self.hooks: list[Callable[[AcquisitionEvent], None]] = []

    def __call__(self, event: AcquisitionEvent) -> None:
        for hook in self.hooks:
            hook(event)
        self.events.append(event)
        self._changed.set()

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_count(self, kind: type, n: int, timeout_s: float = WAIT_S) -> Any:
        async def _wait() -> Any:
            while len(self.of(kind)) < n:
                self._changed.clear()
                await self._changed.wait()
            return self.of(kind)[n - 1]

        return await asyncio.wait_for(_wait(), timeout_s)


class FreezableProxy:
    """A loopback TCP forwarder; ``freeze()`` stops traffic on live connections without closing them,
    which is what a hung server or a dead switch looks like to a client."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, path: str = "/fermentry/") -> str:
        return f"opc.tcp://127.0.0.1:{self.port}{path}"

    def freeze(self) -> None:
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in self._writers:
            w.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers += [writer, up_writer]
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await src.read(65536):
                await self._flowing.wait()
                dst.write(data)
                await dst.drain()
        dst.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def plant() -> Plant:
    return make_plant()


@pytest_asyncio.fixture
async def server(plant: Plant, clock: ManualClock) -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(plant, port=0, clock=clock, speed=SPEED) as srv:
        yield srv


@pytest_asyncio.fixture
async def peer(server: SimulatorServer) -> AsyncIterator[Client]:
    """An independent client: the test's own view of the server."""
    c = Client(server.endpoints[0], timeout=5)
    await c.connect()
    yield c
    with contextlib.suppress(Exception):
        await c.disconnect()


@pytest.fixture
def events() -> EventLog:
    return EventLog()
