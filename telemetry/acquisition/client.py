"""One connected asyncua client for one endpoint: resolve tags, subscribe (or poll), feed the TagTable.

An :class:`EndpointSession` lives from one successful connect to the loss of that
connection; the supervisor (``supervisor.py``) makes a fresh one after every loss, with a
fresh ``asyncua.Client``, so no state of a broken connection leaks into the next.

Why publish responses are handled here and not through asyncua's handler or iterator:
asyncua's iterator-style subscription keeps notifications in a bounded queue (1000 by
default) and drops the oldest when one publish response carries more; its handler path
spawns one task per value. :class:`_TableSubscription` overrides ``publish_callback`` and
stores every value of a publish response straight into the TagTable (one bulk update, no
await), appending the samples for the recorder: nothing is queued on our side, so
nothing can be dropped there. Server-side queues are sized per tag (``TagSpec.queue_size``)
and overflows the server reports (DataValue Overflow bit) are counted.

Decoding: asyncua's generic decoder costs 7-30 us per value depending on the machine, so
a 1300-value response blocks the loop for 10-40 ms. The session's ``publish`` is patched
(this client only) to decode the DataChangeNotifications of our subscriptions straight
into columns (``publish_decode.py``, ~0.1 us per value); a response it does not take goes
to asyncua's decoder, counted in ``AcquisitionStats.decode_fallbacks``.

Freshness with deadbands: a tag inside its deadband sends nothing, yet it is current. The
subscription asks for a keep-alive every publishing interval (MaxKeepAliveCount = 1), so a
healthy server answers every interval, with data or an empty keep-alive; each answer
refreshes ``received_s`` of every live tag of the subscription. When answers stop, tags are
stale after 3 publishing intervals (the TagTable's judgement), and the endpoint is declared
lost after ``keepalive_timeout_s``.

Three PublishRequests are kept outstanding (``publish_loop.py``; asyncua keeps one), so a
publishing cycle never waits for the client to finish with the previous response.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from asyncua import Client, ua
from asyncua.common.subscription import Subscription

from telemetry.acquisition.addressing import browse_path, resolve_node_id, target_node_id
from telemetry.acquisition.errors import AcquisitionError, EndpointUnavailable, map_exceptions
from telemetry.acquisition.events import AcquisitionEvent, TagsRejected
from telemetry.acquisition.publish_decode import (
    DataChangeColumns,
    columns_from_datavalues,
    columns_from_notification,
    install_fast_publish,
)
from telemetry.acquisition.publish_loop import install_publish_pipeline
from telemetry.acquisition.samples import SampleBuffer
from telemetry.acquisition.security import apply_security
from telemetry.acquisition.spec import EndpointSpec, TagSpec
from telemetry.tags import TagTable
from telemetry.tasks import cancel_and_wait

_log = logging.getLogger(__name__)

ClientFactory = Callable[[EndpointSpec], Client]
Sleep = Callable[[float], Awaitable[None]]
_DEADBAND_ABSOLUTE, _DEADBAND_PERCENT = 1, 2


def default_client_factory(spec: EndpointSpec) -> Client:
    """A fresh asyncua client; its own reconnect is off because our supervisor owns that."""
    # asyncua's health probe (a read of ServerState) runs every watchdog interval and
    # detects a connection that is open but silent
    return Client(spec.url, timeout=spec.request_timeout_s, watchdog_intervall=spec.effective_keepalive_timeout_s / 2)


@dataclass
class AcquisitionStats:
    """Self-metrics of one endpoint, cumulative over its sessions."""

    notifications: int = 0  # values stored from data-change notifications
    publish_responses: int = 0  # data or keep-alive
    overflows: int = 0  # values the server reported it dropped from a full queue
    polls: int = 0  # batched read cycles in poll mode
    reconnects: int = 0
    decode_fallbacks: int = 0  # publish responses the fast decoder left to asyncua's generic one


class _TableSubscription(Subscription):
    """A subscription whose publish responses are handed, whole and synchronously, to ``ingest``."""

    def __init__(self, session: Any, params: ua.CreateSubscriptionParameters, ingest: Callable[[ua.NotificationMessage], None]) -> None:
        # a handler object switches asyncua to callback mode (no iterator queue is created);
        # it is never called because publish_callback is overridden
        super().__init__(session, params, handler=_UnusedHandler())
        self._ingest = ingest

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        self.last_publish_at = time.monotonic()
        message = publish_result.NotificationMessage
        if message.NotificationData:
            self.last_sequence_number = int(message.SequenceNumber)
        self._ingest(message)


class _UnusedHandler:
    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:  # pragma: no cover
        raise AssertionError("publish responses are ingested by _TableSubscription")


class EndpointSession:
    """A connected client with its tags resolved and subscribed (or polled).

    Created by :meth:`open`; ends when :meth:`wait_lost` returns, then :meth:`close`.
    """

    def __init__(
        self,
        spec: EndpointSpec,
        client: Client,
        table: TagTable,
        samples: SampleBuffer,
        stats: AcquisitionStats,
        *,
        on_event: Callable[[AcquisitionEvent], None],
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        sleep: Sleep,
    ) -> None:
        self.spec = spec
        self.client = client
        self._table = table
        self._samples = samples
        self.stats = stats
        self._on_event = on_event
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.node_ids: dict[int, ua.NodeId] = {}
        self._live_ids: npt.NDArray[np.intp] = np.empty(0, dtype=np.intp)
        self._live_mask: npt.NDArray[np.bool_] = np.zeros(len(table), dtype=bool)  # by tag id
        self._column_subscriptions: set[int] = set()  # subscription ids decoded into columns
        self.last_publish_s = clock()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscription: _TableSubscription | None = None

    # ---- life cycle -------------------------------------------------------------------
    @classmethod
    async def open(
        cls,
        spec: EndpointSpec,
        table: TagTable,
        samples: SampleBuffer,
        stats: AcquisitionStats,
        *,
        on_event: Callable[[AcquisitionEvent], None],
        client_factory: ClientFactory = default_client_factory,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> EndpointSession:
        """Connect, resolve, subscribe/poll. Raises AcquisitionError; leaves nothing open on failure.

        The caller bounds the whole call with a timeout (a hung connect is cancelled and
        the half-made client torn down here).
        """
        client = client_factory(spec)
        session: EndpointSession | None = None
        try:
            with map_exceptions(spec.name, "security setup"):
                await apply_security(client, spec)
            with map_exceptions(spec.name, "connect"):
                await client.connect(auto_reconnect=False)
            session = cls(spec, client, table, samples, stats, on_event=on_event, clock=clock, wall_clock=wall_clock, sleep=sleep)
            client.connection_lost_callback = session._on_connection_lost
            with map_exceptions(spec.name, "resolve tags"):
                await session._resolve()
            if spec.mode == "subscribe":
                with map_exceptions(spec.name, "subscribe"):
                    await session._subscribe()
                session._tasks.append(asyncio.create_task(session._watchdog(), name=f"{spec.name}-watchdog"))
            else:
                with map_exceptions(spec.name, "first poll"):
                    await session._poll_once()
                session._tasks.append(asyncio.create_task(session._poll_loop(), name=f"{spec.name}-poll"))
            return session
        except BaseException:
            if session is not None:
                await session._cancel_tasks()
            await _close_client(client, spec.request_timeout_s)
            raise

    async def wait_lost(self) -> str:
        """Return (the reason) once this connection is gone."""
        return await asyncio.shield(self._lost)

    def mark_lost(self, reason: str) -> None:
        if not self._lost.done():
            self._lost.set_result(reason)

    async def close(self) -> None:
        """Stop our tasks and the client; bounded in time, safe to call on a dead connection."""
        # after a loss the link is presumed dead: a polite CloseSession gets a moment, not a timeout
        polite_s = 0.2 if self._lost.done() else min(1.0, self.spec.request_timeout_s)
        self.mark_lost("closed")
        await self._cancel_tasks()
        await _close_client(self.client, polite_s)

    async def _cancel_tasks(self) -> None:
        await cancel_and_wait(self._tasks, 5.0)
        self._tasks.clear()

    async def _on_connection_lost(self, exc: Exception) -> None:
        self.mark_lost(f"connection lost: {type(exc).__name__}: {exc}".rstrip(": "))

    # ---- resolving ---------------------------------------------------------------------
    async def _resolve(self) -> None:
        spec = self.spec
        namespaces = await self.client.get_namespace_array()
        rejected: dict[int, str] = {}
        by_path: list[TagSpec] = []
        for tag in spec.tags:
            if tag.node_id is not None:
                try:
                    self.node_ids[tag.tag_id] = resolve_node_id(tag.node_id, namespaces)
                except ValueError as exc:
                    rejected[tag.tag_id] = str(exc)
            else:
                by_path.append(tag)
        if by_path:
            if spec.namespace_uri in namespaces:
                default_ns = namespaces.index(spec.namespace_uri)
                objects = ua.NodeId(ua.ObjectIds.ObjectsFolder)
                for chunk in _chunks(by_path, spec.read_chunk_size):
                    paths = [ua.BrowsePath(StartingNode=objects, RelativePath=browse_path(t.browse_path or "", default_ns)) for t in chunk]
                    results = await self.client.uaclient.translate_browsepaths_to_nodeids(paths)
                    for tag, result in zip(chunk, results):
                        node_id = target_node_id(result)
                        if node_id is None:
                            rejected[tag.tag_id] = f"browse path {tag.browse_path!r}: {result.StatusCode.name}"
                        else:
                            self.node_ids[tag.tag_id] = node_id
            else:
                for tag in by_path:
                    rejected[tag.tag_id] = f"namespace {spec.namespace_uri!r} is not on the server"
        self._reject(rejected, ua.StatusCodes.BadNodeIdUnknown)

    def _reject(self, rejected: dict[int, str], status: int) -> None:
        if not rejected:
            return
        now, wall = self._clock(), self._wall_clock()
        for tag_id in rejected:
            self.node_ids.pop(tag_id, None)
            self._samples.append(self._table.update(tag_id, None, wall, status, now))
        first = next(iter(rejected.values()))
        _log.error("%s: %d tag(s) rejected, e.g. %s", self.spec.name, len(rejected), first)
        self._on_event(TagsRejected(self.spec.name, tuple(sorted(rejected)), first))

    # ---- subscribe mode ----------------------------------------------------------------
    async def _subscribe(self) -> None:
        spec = self.spec
        interval_ms = spec.publishing_interval_ms
        params = ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=interval_ms,
            # the server drops a subscription nobody publishes for: a minute, at least 10 intervals
            RequestedLifetimeCount=max(10, math.ceil(60_000 / interval_ms)),
            RequestedMaxKeepAliveCount=1,  # an answer every interval: see the module docstring
            MaxNotificationsPerPublish=0,  # no limit
            PublishingEnabled=True,
            Priority=0,
        )
        uasession = self.client.uaclient.session
        install_fast_publish(uasession, self._column_subscriptions.__contains__, self._on_decode_fallback)
        install_publish_pipeline(uasession)
        subscription = _TableSubscription(uasession, params, self._ingest)
        await subscription.init()
        # responses that arrive before this are decoded by asyncua: _ingest takes both kinds
        self._column_subscriptions.add(subscription.subscription_id)
        self._subscription = subscription
        tags = {t.tag_id: t for t in spec.tags if t.tag_id in self.node_ids}
        # live before the items exist: initial values may arrive before CreateMonitoredItems returns
        self._set_live(tags)
        rejected: dict[int, str] = {}
        for chunk in _chunks(list(tags.values()), spec.read_chunk_size):
            requests = [self._monitored_item_request(t) for t in chunk]
            results = await subscription.create_monitored_items(requests)
            for tag, result in zip(chunk, results):
                if isinstance(result, ua.StatusCode):
                    rejected[tag.tag_id] = f"{tag.address}: {result.name}"
        if rejected:
            self._set_live({k: v for k, v in tags.items() if k not in rejected})
            self._reject(rejected, ua.StatusCodes.BadNodeIdUnknown)
        self.last_publish_s = self._clock()

    def _set_live(self, tags: dict[int, TagSpec]) -> None:
        self._live_ids = np.fromiter(sorted(tags), dtype=np.intp, count=len(tags))
        self._live_mask[:] = False
        self._live_mask[self._live_ids] = True

    def _on_decode_fallback(self, exc: Exception) -> None:
        self.stats.decode_fallbacks += 1
        # said once loudly: a server whose every response falls back costs a core at high rates
        level = logging.WARNING if self.stats.decode_fallbacks == 1 else logging.DEBUG
        _log.log(level, "%s: publish response left to asyncua's (slow) decoder: %r", self.spec.name, exc)

    def _monitored_item_request(self, tag: TagSpec) -> ua.MonitoredItemCreateRequest:
        interval_ms = self.spec.publishing_interval_ms
        mfilter = None
        if tag.deadband_abs is not None or tag.deadband_pct is not None:
            mfilter = ua.DataChangeFilter(
                Trigger=ua.DataChangeTrigger.StatusValue,
                DeadbandType=_DEADBAND_ABSOLUTE if tag.deadband_abs is not None else _DEADBAND_PERCENT,
                DeadbandValue=float(tag.deadband_abs if tag.deadband_abs is not None else tag.deadband_pct),  # type: ignore[arg-type]
            )
        params = ua.MonitoringParameters(
            ClientHandle=tag.tag_id,  # notifications carry it: handle -> tag id without a lookup table
            SamplingInterval=tag.effective_sampling_interval_ms(interval_ms),
            Filter=mfilter,
            QueueSize=tag.effective_queue_size(interval_ms),
            DiscardOldest=tag.discard_oldest,
        )
        return ua.MonitoredItemCreateRequest(
            ItemToMonitor=ua.ReadValueId(NodeId=self.node_ids[tag.tag_id], AttributeId=ua.AttributeIds.Value),
            MonitoringMode=ua.MonitoringMode.Reporting,
            RequestedParameters=params,
        )

    def _ingest(self, message: ua.NotificationMessage) -> None:
        """Store one publish response. Runs in asyncua's publish loop: no awaits, no I/O."""
        now, wall = self._clock(), self._wall_clock()
        notifications = message.NotificationData or ()
        for notification in notifications:
            if isinstance(notification, ua.StatusChangeNotification) and not notification.Status.is_good():
                # also how asyncua reports a dead transport (BadShutdown): proves nothing is current
                self.mark_lost(f"subscription status {notification.Status.name}")
                return
        self.last_publish_s = now
        self.stats.publish_responses += 1
        # a keep-alive or data proves every live item current; values inside a deadband stay fresh
        self._table.touch(self._live_ids, now)
        for notification in notifications:
            if isinstance(notification, DataChangeColumns):
                self._store(notification, now, wall, subscribed=True)
            elif isinstance(notification, ua.DataChangeNotification):  # decoded by asyncua
                self._store(columns_from_notification(notification), now, wall, subscribed=True)

    def _store(self, columns: DataChangeColumns, now: float, wall: float, *, subscribed: bool) -> None:
        """Store decoded values into the TagTable and the sample buffer, in their order.

        ``subscribed``: the values are notifications (handles are tag ids, only live tags
        count, the Overflow bit reports a full server queue), not the results of a read.
        """
        tags = columns.handle.astype(np.intp)
        value, status, source_time_s = columns.value, columns.status, columns.source_time_s
        if subscribed:
            # an item of a tag rejected meanwhile (or an unknown handle) is not stored
            keep = tags < len(self._live_mask)
            keep[keep] = self._live_mask[tags[keep]]
            if not keep.all():
                tags, value, status, source_time_s = tags[keep], value[keep], status[keep], source_time_s[keep]
            self.stats.overflows += int(np.count_nonzero(columns.overflow[keep]))
        # no usable timestamp: the receive time, so a sample is never recorded without a time
        source_time_s = np.where(np.isnan(source_time_s), wall, source_time_s)
        self.stats.notifications += len(tags)
        self._samples.append_columns(self._table.update_many(tags, value, source_time_s, status, now))

    async def _watchdog(self) -> None:
        """Declare the connection lost when no publish response arrives for keepalive_timeout_s."""
        timeout = self.spec.effective_keepalive_timeout_s
        while True:
            await self._sleep(timeout / 4)
            silent_s = self._clock() - self.last_publish_s
            if silent_s > timeout:
                self.mark_lost(f"no publish response for {silent_s:.1f} s")
                return

    # ---- poll mode ---------------------------------------------------------------------
    async def _poll_once(self) -> None:
        tag_ids = [t.tag_id for t in self.spec.tags if t.tag_id in self.node_ids]
        for chunk in _chunks(tag_ids, self.spec.read_chunk_size):
            params = ua.ReadParameters(
                MaxAge=0,
                TimestampsToReturn=ua.TimestampsToReturn.Both,
                NodesToRead=[ua.ReadValueId(NodeId=self.node_ids[t], AttributeId=ua.AttributeIds.Value) for t in chunk],
            )
            async with asyncio.timeout(self.spec.request_timeout_s):
                values = await self.client.uaclient.read(params)
            self._store(columns_from_datavalues(chunk, values), self._clock(), self._wall_clock(), subscribed=False)
        self.stats.polls += 1
        self.last_publish_s = self._clock()

    async def _poll_loop(self) -> None:
        period = self.spec.publishing_interval_s
        next_due = self._clock() + period
        while True:
            await self._sleep(max(0.0, next_due - self._clock()))
            try:
                with map_exceptions(self.spec.name, "poll"):
                    await self._poll_once()
            except AcquisitionError as exc:
                self.mark_lost(str(exc))
                return
            next_due += period
            if next_due < self._clock():  # fell behind: skip missed slots rather than burst
                next_due = self._clock() + period


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def _close_client(client: Client, timeout_s: float) -> None:
    """Close session, channel and socket, each step bounded: the server may be gone."""
    for step in (client.close_session, client.close_secure_channel):
        try:
            async with asyncio.timeout(timeout_s):
                await step()
        except asyncio.CancelledError:
            raise
        except Exception:  # a dead connection fails here in many ways; closing is best effort
            _log.debug("%s during close of %s", step.__name__, client.server_url.geturl(), exc_info=True)
    client.disconnect_socket()


__all__ = ["AcquisitionStats", "ClientFactory", "EndpointSession", "EndpointUnavailable", "default_client_factory"]
