"""``SimulatorServer``: serve simulated fermenters over OPC UA on a process clock.

::

    plant = make_plant("ecoli", 3)
    async with SimulatorServer(plant, port=4840, speed=60) as srv:
        print(srv.endpoints)          # ['opc.tcp://127.0.0.1:4840/fermentry/']
        await asyncio.Event().wait()

Each clock tick advances every plant by ``speed * wall_s`` of process time and publishes
a snapshot; subscriptions see the change. ``opcua_restart`` faults (and :meth:`restart`)
take an endpoint off the network and drop its sessions and subscriptions, then bring it
back on the same port with the same NodeIds, so clients have to reconnect and resubscribe
exactly as after a real PLC reboot, while the process itself keeps running.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol
from urllib.parse import urlparse

from asyncua import Server, ua
from asyncua.server.binary_server_asyncio import BinaryServer

from simulators.opcua.address_space import (
    NAMESPACE_URI, NS, AddressSpace, ReactorRef, build_address_space, install_lean_datachange, invalidate,
    publish,
)
from simulators.opcua import deadband, fastpath
from simulators.opcua.clock import Clock, RealTimeClock
from simulators.opcua.security import SecurityConfig, apply_security
from simulators.opcua.write_guard import GuardedAttributeService
from simulators.plant import Plant

# asyncua server patches: process-wide, server side only (clients are untouched)
deadband.install()
fastpath.install()
install_lean_datachange()

_log = logging.getLogger(__name__)

APPLICATION_URI = "urn:fermentry:simulator:server"


class FaultLike(Protocol):
    """The fields of ``simulators.process.faults.Fault`` the server uses."""

    kind: str
    at_s: float
    duration_s: float | None
    reactor: int | None


@dataclass
class _Endpoint:
    reactors: list[ReactorRef]
    port: int  # requested; the bound one after the first start
    server: Server | None = None
    space: AddressSpace | None = None
    online: bool = False


@dataclass
class _Outage:
    fault: FaultLike
    started: bool = False
    endpoints: list[_Endpoint] = field(default_factory=list)


class SimulatorServer:
    """One or more OPC UA endpoints serving the reactors of one or more plants.

    Parameters
    ----------
    plants
        A plant, or several (their reactors are numbered ``R1..RN`` in order).
    host, port
        Where to listen. ``port=0`` picks a free port (see :attr:`endpoints`). With
        ``endpoint_per_reactor`` reactor ``k`` (1-based) listens on ``port + k - 1``,
        or on its own free port when ``port`` is 0.
    clock
        Tick source; :class:`RealTimeClock` (100 ms) by default, :class:`ManualClock`
        in tests.
    speed
        Process seconds per wall second (1 = real time; 600 = a 48 h batch in 4.8 min).
    security
        ``None`` serves an unsecured endpoint with anonymous access.
    faults
        Fault schedule; only ``opcua_restart`` entries concern the server: at ``at_s``
        of process time the endpoint (of ``reactor``, 0-based, or all when None) goes
        off line for ``duration_s`` of process time.
    start_time
        Wall datetime of process time 0, the base of source timestamps. Default: now
        minus the plants' current process time.
    fast_paths
        Serve batched scalar writes and encode publish responses through
        :mod:`simulators.opcua.fastpath` (same bytes and results at a fraction of the cost);
        False leaves everything to asyncua's generic codec, for benchmarks and equivalence tests.
    freeze_heap
        Once started, move every object the process holds into the collector's permanent
        generation (``gc.freeze``) until :meth:`stop`. An address space of 100 reactors is
        ~1.2M objects that live as long as the server, and each full collection traversed
        them all: 300-450 ms pauses of the whole server, a write or publish stuck behind
        each. Frozen, they are skipped (pauses of 2-25 ms); memory is still freed by reference
        counting, only cyclic garbage among them waits for :meth:`stop`.
    publish_on_tick
        Send each tick's data changes to the subscribers at once, as a server whose
        publishing cycle is aligned with its scan cycle does, instead of at the next
        boundary of asyncua's free-running publishing timer (on average half a publishing
        interval later). Never more often than the subscription's publishing interval
        from this path; the timer still publishes keep-alives and changes from writes.
    """

    def __init__(
        self,
        plants: Plant | Sequence[Plant],
        *,
        host: str = "127.0.0.1",
        port: int = 4840,
        clock: Clock | None = None,
        speed: float = 1.0,
        endpoint_per_reactor: bool = False,
        security: SecurityConfig | None = None,
        faults: Sequence[FaultLike] = (),
        start_time: datetime | None = None,
        path: str = "/fermentry/",
        application_uri: str = APPLICATION_URI,
        fast_paths: bool = True,
        freeze_heap: bool = True,
        publish_on_tick: bool = True,
    ) -> None:
        self.plants: tuple[Plant, ...] = (plants,) if isinstance(plants, Plant) else tuple(plants)
        if not self.plants:
            raise ValueError("no plant to serve")
        self.speed = speed
        self.host = host
        self.path = path if path.startswith("/") else "/" + path
        self.security = security
        self.application_uri = application_uri
        self.fast_paths = fast_paths
        self.freeze_heap = freeze_heap
        self.publish_on_tick = publish_on_tick
        # subscription -> monotonic time of its last publish from the tick path
        self._published_at: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        self._frozen = False
        self._clock: Clock = clock if clock is not None else RealTimeClock()
        self.reactors = [
            ReactorRef(f"R{k + 1}", plant, index)
            for k, (plant, index) in enumerate((p, i) for p in self.plants for i in range(p.n_reactors))
        ]
        if endpoint_per_reactor:
            self._endpoints = [_Endpoint([ref], port + k if port else 0) for k, ref in enumerate(self.reactors)]
        else:
            self._endpoints = [_Endpoint(list(self.reactors), port)]
        self._anchor_start_time = start_time is None
        self.start_time = start_time or datetime.now(timezone.utc) - timedelta(seconds=self.process_time_s)
        self._outages = [
            _Outage(f) for f in sorted(faults, key=lambda f: f.at_s) if f.kind == "opcua_restart"
        ]
        self._anchored_at: float | None = None  # loop.time() of the start_time anchor
        self._task: asyncio.Task[None] | None = None
        self._tick = asyncio.Condition()
        self.tick_count = 0

    # ----------------------------------------------------------------- properties
    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"speed must be a finite number > 0, got {value!r}")
        self._speed = float(value)

    @property
    def process_time_s(self) -> float:
        return float(self.plants[0].time_s)

    @property
    def endpoints(self) -> list[str]:
        """Endpoint URLs, one per server, with the bound ports (valid after start)."""
        return [self._url(ep.port) for ep in self._endpoints]

    @property
    def ports(self) -> list[int]:
        return [ep.port for ep in self._endpoints]

    def is_online(self, endpoint: int = 0) -> bool:
        return self._endpoints[endpoint].online

    def _url(self, port: int) -> str:
        return f"opc.tcp://{self.host}:{port}{self.path}"

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> SimulatorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    async def start(self) -> None:
        """Build and open every endpoint, publish the first snapshot, start ticking."""
        try:
            for ep in self._endpoints:
                await self._open(ep)
            if self._anchor_start_time:
                # Building the address space takes seconds for many reactors; anchor process
                # time 0 when the clock starts ticking, so that at 1x a source timestamp is the
                # wall time the value was produced (latency measurements depend on it). The
                # clock counts its first tick from this same instant: the republish below and
                # the heap freeze take tens of ms for many reactors, and process time must not
                # fall behind wall time by them (every source timestamp would look that old).
                self._anchored_at = asyncio.get_running_loop().time()
                self.start_time = datetime.now(timezone.utc) - timedelta(seconds=self.process_time_s)
                for ep in self._endpoints:
                    if ep.server is not None and ep.space is not None:
                        await ep.server.write_attribute_value(
                            ua.NodeId("Simulation.start_time", NS),
                            ua.DataValue(ua.Variant(self.start_time, ua.VariantType.DateTime)))
                        ep.space.publisher = None  # republish every node with the new anchor
                        await self._publish(ep)
        except BaseException:
            await self.stop()
            raise
        if self.freeze_heap:
            gc.freeze()
            self._frozen = True
        self._task = asyncio.create_task(self._run(), name="fermentry-simulator-clock")

    async def stop(self) -> None:
        """Stop ticking and close every endpoint (idempotent)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for ep in self._endpoints:
            if ep.server is not None:
                server, ep.server, ep.online = ep.server, None, False
                # shield: a cancelled caller must not leave a listening socket behind
                await asyncio.shield(server.stop())
        if self._frozen:
            self._frozen = False
            gc.unfreeze()  # what this server left behind may be collected again

    async def restart(self, down_s: float = 0.0, *, reactor: int | None = None) -> None:
        """Take endpoint(s) off line, wait ``down_s`` wall seconds, bring them back.

        ``reactor`` (0-based) picks the endpoint holding that reactor; None: all.
        """
        endpoints = self._endpoints_for(reactor)
        for ep in endpoints:
            await self._go_offline(ep)
        if down_s > 0:
            await asyncio.sleep(down_s)
        for ep in endpoints:
            await self._go_online(ep)

    async def go_offline(self, *, reactor: int | None = None) -> None:
        for ep in self._endpoints_for(reactor):
            await self._go_offline(ep)

    async def go_online(self, *, reactor: int | None = None) -> None:
        for ep in self._endpoints_for(reactor):
            await self._go_online(ep)

    async def wait_ticks(self, n: int = 1) -> None:
        """Return after ``n`` more ticks have been processed (advanced and published)."""
        target = self.tick_count + n
        async with self._tick:
            await self._tick.wait_for(lambda: self.tick_count >= target)

    def _endpoints_for(self, reactor: int | None) -> list[_Endpoint]:
        if reactor is None:
            return list(self._endpoints)
        ref = self.reactors[reactor]
        return [ep for ep in self._endpoints if ref in ep.reactors]

    # ---------------------------------------------------------------- endpoints
    async def _open(self, ep: _Endpoint) -> None:
        server = Server()
        await server.init()
        server.disable_clock(True)  # its 1 s ServerStatus loop makes every stop() wait 1 s
        names = "+".join(r.name for r in ep.reactors) if len(ep.reactors) <= 3 else f"{len(ep.reactors)} reactors"
        server.set_server_name(f"Fermentry simulator ({names})")
        await server.set_application_uri(self.application_uri)
        server.set_endpoint(self._url(ep.port))
        if self.security is not None:
            await apply_security(server, self.security)
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            server.set_identity_tokens([ua.AnonymousIdentityToken])
        idx = await server.register_namespace(NAMESPACE_URI)
        if idx != NS:
            raise RuntimeError(f"{NAMESPACE_URI} got namespace index {idx}, expected {NS}")
        space = await build_address_space(server, ep.reactors)
        server.iserver.attribute_service = GuardedAttributeService(
            server.iserver.attribute_service, space.bindings, on_applied=lambda binding, _: invalidate(space, binding))
        if self.fast_paths:
            fastpath.enable(server.iserver)
        await server.write_attribute_value(
            ua.NodeId("Simulation.start_time", NS), ua.DataValue(ua.Variant(self.start_time, ua.VariantType.DateTime))
        )
        ep.server, ep.space = server, space
        await self._publish(ep)
        await server.start()
        bound = server.bserver.port if server.bserver is not None else ep.port
        if bound != ep.port:
            ep.port = bound
            _advertise_port(server, self._url(bound))
        ep.online = True
        _log.info("serving %s at %s", names, self._url(ep.port))

    async def _go_offline(self, ep: _Endpoint) -> None:
        if ep.server is None or not ep.online:
            return
        ep.online = False
        await _drop_network(ep.server)
        _log.warning("endpoint %s off line (simulated server restart)", self._url(ep.port))

    async def _go_online(self, ep: _Endpoint) -> None:
        if ep.server is None or ep.online:
            return
        await self._publish(ep)
        await _listen(ep.server, self.host, ep.port)
        ep.online = True
        _log.warning("endpoint %s back on line", self._url(ep.port))

    # --------------------------------------------------------------------- clock
    async def _run(self) -> None:
        ticks = self._clock.ticks(since=self._anchored_at)
        try:
            async for wall_s in ticks:
                dt_s = wall_s * self._speed
                if dt_s > 0:
                    for plant in self.plants:
                        plant.advance(dt_s)
                await self._apply_outages()
                for ep in self._endpoints:
                    if ep.online:
                        await self._publish(ep)
                        if self.publish_on_tick:
                            await self._send_now(ep)
                async with self._tick:
                    self.tick_count += 1
                    self._tick.notify_all()
        except Exception:
            # the clock task has no awaiting caller; say why the process froze, once
            _log.exception("simulation clock stopped")
            raise
        finally:
            await ticks.aclose()  # type: ignore[attr-defined]

    async def _send_now(self, ep: _Endpoint) -> None:
        """Publish the subscriptions holding this tick's changes (see ``publish_on_tick``)."""
        assert ep.server is not None
        now = time.monotonic()
        for sub in list(ep.server.iserver.subscription_service.subscriptions.values()):
            # asyncua internals (InternalSubscription): the queued changes and the interval
            if not sub._triggered_datachanges:
                continue
            last = self._published_at.get(sub)
            if last is not None and now - last < sub.data.RevisedPublishingInterval / 1000.0:
                continue
            self._published_at[sub] = now
            await sub.publish_results()

    async def _publish(self, ep: _Endpoint) -> None:
        assert ep.server is not None and ep.space is not None
        readings = {id(p): p.read() for p in {id(r.plant): r.plant for r in ep.reactors}.values()}
        await publish(ep.server, ep.space, readings, self.start_time, self._speed)

    async def _apply_outages(self) -> None:
        now_s = self.process_time_s
        for outage in self._outages:
            fault = outage.fault
            if not outage.started and now_s >= fault.at_s:
                outage.started = True
                outage.endpoints = [ep for ep in self._endpoints_for(fault.reactor) if ep.online]
                for ep in outage.endpoints:
                    await self._go_offline(ep)
            if outage.started and outage.endpoints and now_s >= fault.at_s + (fault.duration_s or 0.0):
                for ep in outage.endpoints:
                    await self._go_online(ep)
                outage.endpoints = []


# asyncua has no public "restart the network side" call; these two helpers are the only
# places that touch its internals (BinaryServer, _external_sessions, _policies, limits).
async def _drop_network(server: Server) -> None:
    """Close the listener and every connection, and end every client session.

    Sessions with subscriptions would otherwise outlive their connection (asyncua keeps
    them for transfer, Part 4 6.7); a rebooted server remembers none of them.
    """
    if server.bserver is not None:
        await server.bserver.stop()
        server.bserver = None
    for session in list(server.iserver._external_sessions.values()):
        await session.close_session(True)


async def _listen(server: Server, host: str, port: int) -> None:
    bserver = BinaryServer(server.iserver, host, port, server.limits)
    bserver.set_policies(server._policies)
    await bserver.start()
    server.bserver = bserver


def _advertise_port(server: Server, url: str) -> None:
    """After binding port 0, advertise the real port in GetEndpoints/FindServers."""
    server.endpoint = urlparse(url)
    for edp in server.iserver.endpoints:
        edp.EndpointUrl = url
        edp.Server.DiscoveryUrls = [url]
