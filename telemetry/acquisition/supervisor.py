"""One supervisor per endpoint: connect, watch, reconnect with back-off, resubscribe.

State machine (logged and reported once per change, never once per attempt)::

    starting --connect ok--> connected --loss--> lost --connect ok--> connected ...
    starting --connect fails--> lost (tags disconnected) --...

On a loss the endpoint's tags are marked disconnected in the TagTable at once, so the
control scan holds its loops on the next period instead of acting on old values. Every
reconnect builds a fresh ``asyncua.Client`` (a client whose connect hung, or whose
channel broke half-way, is never reused) under a bounded connect timeout.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Literal

import numpy as np
from asyncua import Client

from telemetry.acquisition.backoff import Backoff
from telemetry.acquisition.client import AcquisitionStats, ClientFactory, EndpointSession, Sleep, default_client_factory
from telemetry.acquisition.errors import AcquisitionError, EndpointUnavailable
from telemetry.acquisition.events import AcquisitionEvent, EndpointConnected, EndpointLost, EndpointRecovered
from telemetry.acquisition.samples import SampleBuffer
from telemetry.acquisition.spec import EndpointSpec
from telemetry.tags import TagTable
from telemetry.tasks import cancel_and_wait

_log = logging.getLogger(__name__)
SupervisorState = Literal["starting", "connected", "lost", "stopped"]


_STOP_TIMEOUT_S = 10.0  # a supervisor's close is bounded well inside this (polite close <= 1 s per step)


class EndpointSupervisor:
    """Keeps one endpoint's tags flowing into the TagTable for as long as it runs.

    Parameters
    ----------
    spec : EndpointSpec
    table : TagTable
        Shared by all endpoints; this supervisor writes only ``spec``'s tag ids.
    samples : SampleBuffer, optional
        Where every stored sample is appended for the recorder (may be shared).
    on_event : callable, optional
        Called with each :mod:`~telemetry.acquisition.events` event; must not block.
    clock : callable
        Monotonic seconds; the TagTable's ``received_s`` clock.
    wall_clock : callable
        POSIX seconds, used as source time only when the server sent no timestamp.
    sleep : callable
        ``asyncio.sleep`` or a test's fake, for back-off and watchdog waits.
    client_factory : callable
        ``spec -> asyncua.Client``; a test may hand in a client for another port.
    rng : random.Random, optional
        Jitter source of the reconnect back-off.

    Use ``async with EndpointSupervisor(...) as sup:`` or ``start()``/``stop()``.
    """

    def __init__(
        self,
        spec: EndpointSpec,
        table: TagTable,
        samples: SampleBuffer | None = None,
        *,
        on_event: Callable[[AcquisitionEvent], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        client_factory: ClientFactory = default_client_factory,
        rng: random.Random | None = None,
    ) -> None:
        for tag in spec.tags:
            if not 0 <= tag.tag_id < len(table):
                raise ValueError(f"endpoint {spec.name}: tag id {tag.tag_id} is outside the TagTable (size {len(table)})")
        self.spec = spec
        self.table = table
        self.samples = samples if samples is not None else SampleBuffer()
        self.stats = AcquisitionStats()
        self.state: SupervisorState = "starting"
        self.last_error: AcquisitionError | None = None
        self._on_event = on_event or (lambda event: None)
        self._clock, self._wall_clock, self._sleep = clock, wall_clock, sleep
        self._client_factory = client_factory
        self._backoff = Backoff(spec.reconnect_initial_s, spec.reconnect_max_s, rng=rng)
        self._tag_ids = np.array([t.tag_id for t in spec.tags], dtype=np.intp)
        self._session: EndpointSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    # ---- public ------------------------------------------------------------------------
    @property
    def client(self) -> Client | None:
        """The live asyncua client, None while disconnected (the Actuator writes through it)."""
        return self._session.client if self._session is not None else None

    @property
    def session(self) -> EndpointSession | None:
        return self._session

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        """Return once connected (raises TimeoutError after ``timeout_s``)."""
        async with asyncio.timeout(timeout_s):
            await self._connected.wait()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"acquisition-{self.spec.name}")

    async def stop(self) -> None:
        """Stop supervising and close the connection (bounded; safe to call twice)."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait([task], _STOP_TIMEOUT_S)
        self.state = "stopped"

    async def __aenter__(self) -> EndpointSupervisor:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ---- the loop ----------------------------------------------------------------------
    async def _run(self) -> None:
        lost_since: float | None = None
        attempts = 0
        ever_connected = False
        try:
            while True:
                attempts += 1
                try:
                    async with asyncio.timeout(self.spec.connect_timeout_s):
                        session = await self._open()
                except asyncio.TimeoutError:
                    error: AcquisitionError = EndpointUnavailable(
                        f"{self.spec.name}: connect did not finish within {self.spec.connect_timeout_s} s"
                    )
                except AcquisitionError as exc:
                    error = exc
                else:
                    self._became_connected(session, lost_since, attempts, ever_connected)
                    lost_since, attempts, ever_connected = None, 0, True
                    reason = await session.wait_lost()
                    lost_since = self._became_lost(reason)
                    self._session = None
                    await session.close()
                    continue
                self.last_error = error
                if lost_since is None:
                    lost_since = self._became_lost(str(error))
                else:
                    _log.debug("%s: reconnect attempt %d failed: %s", self.spec.name, attempts, error)
                # a refusal (certificate, password) needs an operator: retry, but at the slowest pace
                delay = self._backoff.next_delay() if error.retryable else self.spec.reconnect_max_s
                await self._sleep(delay)
        finally:
            self._connected.clear()
            session, self._session = self._session, None
            if session is not None:
                await asyncio.shield(session.close())

    async def _open(self) -> EndpointSession:
        return await EndpointSession.open(
            self.spec,
            self.table,
            self.samples,
            self.stats,
            on_event=self._on_event,
            client_factory=self._client_factory,
            clock=self._clock,
            wall_clock=self._wall_clock,
            sleep=self._sleep,
        )

    def _became_connected(self, session: EndpointSession, lost_since: float | None, attempts: int, ever_connected: bool) -> None:
        self._session = session
        self._backoff.reset()
        self.state = "connected"
        self.last_error = None
        self._connected.set()
        n_tags = len(session.node_ids)
        if lost_since is None or not ever_connected:
            if lost_since is not None:
                _log.warning("%s: connected after %d attempt(s)", self.spec.name, attempts)
            else:
                _log.info("%s: connected, %d tag(s), mode %s", self.spec.name, n_tags, self.spec.mode)
            self._on_event(EndpointConnected(self.spec.name, n_tags, self.spec.mode))
        if lost_since is not None:
            downtime_s = self._clock() - lost_since
            self.stats.reconnects += ever_connected
            _log.warning("%s: recovered after %.1f s (%d attempt(s))", self.spec.name, downtime_s, attempts)
            self._on_event(EndpointRecovered(self.spec.name, downtime_s, attempts))

    def _became_lost(self, reason: str) -> float:
        now = self._clock()
        self.table.mark_disconnected(self._tag_ids)
        self._connected.clear()
        self.state = "lost"
        _log.warning("%s: lost: %s", self.spec.name, reason)
        self._on_event(EndpointLost(self.spec.name, reason))
        return now
