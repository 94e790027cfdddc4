"""The forwarder: the runner that moves points from the durable store to one sink.

One forwarder per sink. It reads the store in id order from the sink's own durable cursor,
sends batches (about 5000 lines, two in flight so the server works while an answer travels
back), and moves the cursor only past batches the sink accepted, in order, so the store is the
outbox and nothing is lost by an outage, a crash or a shutdown:

* transport errors, 429, 5xx: the same batch is sent again after a back-off; ``Retry-After`` is
  honoured, otherwise exponential back-off with jitter;
* 413: the batch is split in halves (and later reads use the smaller size);
* 400 and other 4xx: the batch is bisected until the refused lines are alone; those go to the
  store's dead-letter table with the server's reason, every other line is delivered;
* 401/403: the cursor stays, the forwarder enters the ``auth_failed`` alarm state and tries
  again slowly, so the data flows once someone fixes the credentials;
* new points appended during an outage queue up behind the backlog, which drains in order.

Delivery is at-least-once: a batch whose answer was lost is sent again. InfluxDB keeps one
value per series and timestamp, so a repeat overwrites itself; VictoriaMetrics does so only with
``-dedup.minScrapeInterval`` set (otherwise it keeps both copies).

State changes are logged once (one error when the sink starts failing, one "recovered"), never
per attempt. The clock-free back-off uses an injectable ``sleep`` so tests need not wait.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from telemetry.errors import SinkAuthError, SinkError, SinkRejected, SinkTooLarge
from telemetry.sinks.base import Sink
from telemetry.store import Store, StoredRun
from telemetry.tasks import cancel_and_wait

log = logging.getLogger(__name__)

ForwarderState = Literal["starting", "ok", "retrying", "auth_failed", "stopped"]


@dataclass
class ForwarderMetrics:
    """Self-metrics of one forwarder (read them any time; the forwarder updates them in place)."""

    points_forwarded: int = 0
    batches_sent: int = 0
    retries: int = 0
    splits: int = 0
    dead_lettered: int = 0
    cursor: int = 0
    lag_points: int = 0
    """Points stored but not yet acknowledged by this sink."""
    state: ForwarderState = "starting"
    last_error: str | None = None


class Forwarder:
    """Forward the store's points to ``sink`` in order, from the sink's own durable cursor.

    Parameters
    ----------
    store : Store
        The outbox.
    sink : Sink
        Where the lines go. The forwarder closes it when it stops.
    batch_size : int
        Lines per request when nothing forces smaller ones.
    max_in_flight : int
        Requests sent before the first is answered. 2 keeps the server busy while the answer
        to the previous batch travels back (a drain over a 50 ms link is otherwise capped at
        one batch per round trip); the cursor still moves strictly in order.
    backoff_initial_s, backoff_max_s : float
        Exponential back-off range (with jitter) after transport errors and 5xx without
        ``Retry-After``.
    retry_after_max_s : float
        Upper bound on a server's ``Retry-After``, so a broken header cannot park us for days.
    auth_retry_s : float
        Pause between attempts while credentials are refused.
    idle_poll_s : float
        Longest wait for new data without an append notification (another process may append).
    start : {"oldest", "latest"}
        Where a sink with no cursor yet starts (see ``Store.register_sink``).
    sleep : callable
        ``await sleep(seconds)`` used for every back-off: tests inject a fake one.
    rng : callable
        Uniform [0, 1) random numbers for the jitter.
    """

    def __init__(
        self,
        store: Store,
        sink: Sink,
        *,
        batch_size: int = 5000,
        max_in_flight: int = 2,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 60.0,
        retry_after_max_s: float = 300.0,
        auth_retry_s: float = 60.0,
        idle_poll_s: float = 1.0,
        start: Literal["oldest", "latest"] = "oldest",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self._max_in_flight = max_in_flight
        self.store = store
        self.sink = sink
        self.name = sink.name
        self.metrics = ForwarderMetrics()
        self._batch_size = batch_size
        self._batch_limit = batch_size
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._retry_after_max_s = retry_after_max_s
        self._auth_retry_s = auth_retry_s
        self._idle_poll_s = idle_poll_s
        self._start = start
        self._sleep = sleep
        self._rng = rng
        self._stopping = asyncio.Event()
        self._new_data = asyncio.Event()
        self._acked = asyncio.Event()
        self._latest_id = 0
        self._task: asyncio.Task[None] | None = None
        self._failures = 0

    # ---------------------------------------------------------------------------- lifecycle

    def start(self) -> asyncio.Task[None]:
        """Run in a background task (call from a running event loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"forwarder {self.name}")
        return self._task

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop within ``timeout_s``: finish or abandon the batch in flight, close the sink.

        Nothing is lost: points not acknowledged stay in the store for the next start.
        """
        self._stopping.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(timeout_s):
                    await asyncio.shield(self._task)
            except TimeoutError:
                await cancel_and_wait([self._task], timeout_s)
        await self.sink.close()

    async def __aenter__(self) -> Forwarder:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_acked(self, point_id: int) -> None:
        """Return once every point up to ``point_id`` is acknowledged (or dead-lettered)."""
        while self.metrics.cursor < point_id:
            self._acked.clear()
            if self._task is not None and self._task.done():
                self._task.result()
                raise RuntimeError(f"forwarder {self.name} stopped at cursor {self.metrics.cursor} < {point_id}")
            await self._acked.wait()

    # --------------------------------------------------------------------------------- loop

    async def run(self) -> None:
        """Forward until :meth:`stop`; the runner owns retries, so only bugs escape from here."""
        loop = asyncio.get_running_loop()

        def on_append(last_id: int) -> None:
            loop.call_soon_threadsafe(self._on_append, last_id)

        self.store.add_listener(on_append)
        try:
            self.metrics.cursor = await asyncio.to_thread(self.store.register_sink, self.name, start=self._start)
            self._latest_id = await asyncio.to_thread(self.store.last_id)
            self._update_lag()
            self._acked.set()
            await self._forward()
        finally:
            self.store.remove_listener(on_append)
            self.metrics.state = "stopped"
            self._acked.set()

    async def _forward(self) -> None:
        """Keep up to ``max_in_flight`` consecutive runs in delivery; ack in id order.

        The cursor moves only past runs that are wholly delivered (or dead-lettered) and whose
        predecessors are too, so a later run finishing first never skips an earlier one.
        """
        in_flight: deque[tuple[StoredRun, asyncio.Task[bool]]] = deque()
        read_pos = self.metrics.cursor
        try:
            while not self._stopping.is_set():
                self._new_data.clear()
                while len(in_flight) < self._max_in_flight:
                    run = await asyncio.to_thread(self.store.read_run, read_pos, self._batch_limit)
                    if run is None:
                        break
                    read_pos = run.last_id
                    in_flight.append((run, asyncio.create_task(self._deliver(run), name=f"forward {self.name}")))
                if not in_flight:
                    if self.metrics.state == "starting":
                        self._enter("ok")
                    await self._wait_any(self._new_data.wait(), timeout_s=self._idle_poll_s)
                    continue
                waiters: list[asyncio.Future[Any]] = [task for _, task in in_flight]
                new_data = None
                if len(in_flight) < self._max_in_flight:  # a free slot: new data may fill it
                    new_data = asyncio.ensure_future(self._new_data.wait())
                    waiters.append(new_data)
                await self._wait_any(asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED))
                if new_data is not None:
                    new_data.cancel()
                if not await self._ack_delivered(in_flight):
                    return  # stopped before a run was delivered
            # Stopping: the writes already on the wire finish (their threads cannot be recalled,
            # and the server may accept them anyway) and are acknowledged, so the next start does
            # not send them again. ``stop`` bounds this wait.
            if in_flight:
                await asyncio.wait([task for _, task in in_flight])
                await self._ack_delivered(in_flight)
        finally:
            for _, task in in_flight:
                task.cancel()
            await asyncio.gather(*(task for _, task in in_flight), return_exceptions=True)

    async def _ack_delivered(self, in_flight: deque[tuple[StoredRun, asyncio.Task[bool]]]) -> bool:
        """Acknowledge the finished, delivered runs at the head of ``in_flight``; False when the
        head finished undelivered (stopped first), which ends forwarding."""
        acked = None
        delivered = True
        while in_flight and in_flight[0][1].done():
            run, task = in_flight.popleft()
            if not task.result():
                delivered = False
                break
            acked = run.last_id
        if acked is not None:
            await self._ack(acked)
        return delivered

    def _on_append(self, last_id: int) -> None:
        self._latest_id = max(self._latest_id, last_id)
        self._update_lag()
        self._new_data.set()

    async def _deliver(self, run: StoredRun) -> bool:
        """Send one run (splitting, dead-lettering, retrying as needed); True once all of it is
        delivered or dead-lettered, False when stopped first. The caller acknowledges."""
        chunks: deque[StoredRun] = deque([run])
        while chunks and not self._stopping.is_set():
            chunk = chunks[0]
            try:
                await self.sink.write(chunk.body)
            except SinkAuthError as exc:
                self._enter("auth_failed", exc)
                self.metrics.retries += 1
                await self._pause(self._auth_retry_s)
                continue
            except (SinkTooLarge, SinkRejected) as exc:
                n = chunk.count
                if isinstance(exc, SinkTooLarge):
                    self._batch_limit = max(1, n // 2)
                chunks.popleft()
                if n == 1:
                    await self._dead_letter(chunk, exc)
                    continue
                half = n // 2
                lines = chunk.lines
                chunks.extendleft([StoredRun.from_lines(chunk.first_id + half, lines[half:]),
                                   StoredRun.from_lines(chunk.first_id, lines[:half])])
                self.metrics.splits += 1
                continue
            except SinkError as exc:
                if not exc.retryable:
                    raise  # a SinkError subclass this runner does not know: a bug, surface it
                self._enter("retrying", exc)
                self.metrics.retries += 1
                await self._pause(self._retry_delay(exc))
                continue
            chunks.popleft()
            self.metrics.points_forwarded += chunk.count
            self.metrics.batches_sent += 1
            self._enter("ok")
        return not chunks

    async def _dead_letter(self, point: StoredRun, exc: SinkError) -> None:
        reason = str(exc)
        await asyncio.to_thread(self.store.dead_letter, self.name, [(point.first_id, point.lines[0], reason)])
        self.metrics.dead_lettered += 1
        log.warning("sink %s refused point %d for good (%s); kept in dead letters", self.name, point.first_id, reason)

    async def _ack(self, point_id: int) -> None:
        await asyncio.to_thread(self.store.ack, self.name, point_id)
        self.metrics.cursor = point_id
        self._update_lag()
        self._acked.set()

    def _update_lag(self) -> None:
        self.metrics.lag_points = max(0, self._latest_id - self.metrics.cursor)

    # ------------------------------------------------------------------------------ back-off

    def _retry_delay(self, exc: SinkError) -> float:
        if exc.retry_after_s is not None:
            return min(exc.retry_after_s, self._retry_after_max_s)
        ceiling = min(self._backoff_max_s, self._backoff_initial_s * 2.0 ** min(max(self._failures - 1, 0), 30))
        # "equal jitter": at least half the ceiling, so retries of many forwarders spread out
        return ceiling / 2 + self._rng() * ceiling / 2

    async def _pause(self, delay_s: float) -> None:
        await self._wait_any(self._sleep(delay_s))

    async def _wait_any(self, awaitable: Awaitable[object], *, timeout_s: float | None = None) -> None:
        """Wait for ``awaitable``, a stop request, or the timeout, whichever comes first."""
        waiter = asyncio.ensure_future(awaitable)
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({waiter, stopper}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, stopper):
                task.cancel()
            await asyncio.gather(waiter, stopper, return_exceptions=True)

    def _enter(self, state: ForwarderState, exc: SinkError | None = None) -> None:
        previous = self.metrics.state
        if exc is not None:
            self._failures += 1
            self.metrics.last_error = str(exc)
        if state == previous:
            return
        self.metrics.state = state
        if state == "auth_failed":
            log.error("sink %s refuses our credentials (%s); data is kept, retrying every %.0f s",
                      self.name, exc, self._auth_retry_s)
        elif state == "retrying":
            log.error("sink %s failing (%s); data is kept and will be sent when it recovers", self.name, exc)
        elif state == "ok" and previous in ("retrying", "auth_failed"):
            log.info("sink %s recovered after %d failed attempts; %d points behind",
                     self.name, self._failures, self.metrics.lag_points)
        if state == "ok":
            self._failures = 0
