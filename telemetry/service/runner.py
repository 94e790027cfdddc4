"""The service: acquisition -> control scan -> actuation -> recording -> forwarding.

:class:`Service` owns the lifecycle of every part (ARCHITECTURE.md's data flow) and nothing
else: the parts themselves live in ``telemetry.acquisition``, ``controllers``,
``telemetry.store`` and ``telemetry.sinks``. Shutdown is bounded and loses nothing: the
last samples are committed to the local store; points not yet forwarded stay there and go
out on the next start.
"""

from __future__ import annotations

import asyncio
import gc
import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from asyncua import ua

from controllers.feeding import FeedBank
from telemetry.acquisition import (
    Actuator,
    EndpointConnected,
    EndpointLost,
    EndpointRecovered,
    EndpointSupervisor,
    SampleBuffer,
    TagsRejected,
)
from telemetry.acquisition.events import AcquisitionEvent
from telemetry.config import ServiceConfig
from telemetry.errors import SinkError, StoreError
from telemetry.process_clock import ProcessClock
from telemetry.service.feed_state import FeedStateKeeper
from telemetry.service.plan import ServicePlan, build_plan
from telemetry.service.readback import ReadbackCheck
from telemetry.service.recorder import Recorder
from telemetry.service.scan import ControlScan
from telemetry.sinks import Forwarder, make_influx_sink
from telemetry.store import Store
from telemetry.tags import Sample, SampleColumns
from telemetry.tasks import cancel_and_wait

log = logging.getLogger(__name__)


BATCH_REFRESH_S = 60.0  # default wall seconds between reads of the batch-id nodes


class _ClockedSamples(SampleBuffer):
    """A sample buffer that also advances the process clock with each source timestamp."""

    def __init__(self, clock: ProcessClock) -> None:
        super().__init__()
        self._clock = clock

    def append(self, sample: Sample) -> None:
        super().append(sample)
        if not sample.status & 0x80000000:
            self._clock.observe(sample.source_time_s)

    def append_columns(self, columns: SampleColumns) -> None:
        super().append_columns(columns)
        good = columns.source_time_s[(columns.status & 0x80000000) == 0]
        if good.size:
            # the same as observing each in turn: the first sets the grid, the newest advances it
            self._clock.observe(float(good[0]))
            self._clock.observe(float(good.max()))


@dataclass
class ServiceStats:
    scans: int = 0
    watchdog_scans: int = 0
    writes: int = 0
    write_failures: int = 0
    events: int = 0
    last_scan_wall_s: float = 0.0
    scan_latency_s: list[float] = field(default_factory=list)  # source time of newest pv -> outputs written (wall)
    service_latency_s: list[float] = field(default_factory=list)  # sample that made the scan due arrived -> written
    # per scan: (due sample arrived -> scan started, loops computed, outputs written) in s
    scan_phases_s: list[tuple[float, float, float]] = field(default_factory=list)


class Service:
    """Fermentry's main job for one configuration.

    Parameters
    ----------
    cfg : ServiceConfig
        Validated configuration (``telemetry.config.load_config``).
    write_mode : {"write", "shadow"}, optional
        Overrides ``[service] write_mode``.
    env : mapping, optional
        Where ``*_env`` secrets are looked up (default ``os.environ``).
    client_factory : callable, optional
        Builds asyncua clients (tests hand in one for a server on another port).
    clock : callable
        Monotonic seconds; staleness is judged on it.
    """

    def __init__(self, cfg: ServiceConfig, *, write_mode: str | None = None, env: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic, **supervisor_kwargs: object) -> None:
        self.cfg = cfg
        self.env = os.environ if env is None else env
        self.write_mode = write_mode or cfg.service.write_mode
        self.plan: ServicePlan = build_plan(cfg, env=self.env)
        self.clock = clock
        self.process_clock = ProcessClock(cfg.service.control_period_s, clock=clock)
        self.samples = _ClockedSamples(self.process_clock)
        self.batch_of: dict[str, str] = dict(self.plan.batch_ids)
        self.stats = ServiceStats()
        store_dir = Path(cfg.store.path)
        store_dir.mkdir(parents=True, exist_ok=True)
        self.store_path = store_dir / "fermentry.sqlite3"
        self.store = Store(self.store_path)
        self.recorder = Recorder(self.store, self.plan.tag_reactor, self.plan.tag_signal, self.plan.tag_unit)
        feeds = self._build_feeds()
        self.scan = ControlScan(self.plan, feeds, self.recorder, self._event)
        # Feed state survives restarts (feed_state.py); restored per reactor once its batch id is known.
        self.feed_state = None if feeds is None else FeedStateKeeper(feeds, self.plan.reactors, self.store)
        self._batch_known: set[str] = {r for r in self.plan.reactors if r not in self.plan.batch_nodes}
        self._feed_save_task: asyncio.Task[None] | None = None
        self.supervisors = {
            spec.name: EndpointSupervisor(spec, self.plan.table, self.samples, on_event=self._acquisition_event,
                                          clock=clock, **supervisor_kwargs)  # type: ignore[arg-type]
            for spec in self.plan.endpoints
        }
        self.actuators = {
            # verify=False: the read-back comes through the subscription (ReadbackCheck), which
            # saves a Read round trip per scan on the control path.
            name: Actuator(self.supervisors[name], outputs, mode=self.write_mode,  # type: ignore[arg-type]
                           verify=False, name=f"actuator[{name}]")
            for name, outputs in self.plan.outputs.items() if outputs
        }
        self.readback = ReadbackCheck(self.plan.table, 2.0 * self.plan.stale_after_s)
        self.forwarders: list[Forwarder] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._flush_task: asyncio.Task[None] | None = None
        self._heap_frozen = False
        self._counted_until_s: float | None = None
        self._batch_read_due: set[str] = set()
        self._batch_read_at = -math.inf
        self.batch_refresh_s = BATCH_REFRESH_S
        self.on_scan: Callable[[Service], None] | None = None  # the terminal status view hooks in here

    def _build_feeds(self) -> FeedBank | None:
        if not any(self.cfg.feeds_for(r) for r in self.plan.reactors):
            return None
        from telemetry.service.feeds import build_feed_bank

        return build_feed_bank(self.cfg, self.plan.reactors)

    # ---------------------------------------------------------------------------------- events
    def _event(self, time_s: float, reactor: str, kind: str, severity: str, message: str) -> None:
        self.stats.events += 1
        self.recorder.event(time_s, reactor, kind, severity, message, batch=self.batch_of.get(reactor, ""))
        level = logging.WARNING if severity in ("alarm", "error") else logging.INFO
        log.log(level, "%s %s: %s", reactor or "service", kind, message)

    def _now_process_s(self) -> float:
        t = self.process_clock.now_s
        return t if math.isfinite(t) else time.time()

    def _acquisition_event(self, event: AcquisitionEvent) -> None:
        t = self._now_process_s()
        reactors = [r for r, ep in self.plan.reactor_endpoint.items() if ep == event.endpoint]
        if isinstance(event, EndpointLost):
            kind, severity, message = "connection_lost", "alarm", f"endpoint {event.endpoint} lost: {event.reason}"
        elif isinstance(event, EndpointRecovered):
            kind, severity = "connection_recovered", "cleared"
            message = f"endpoint {event.endpoint} recovered after {event.downtime_s:.1f} s"
            self._batch_read_due.add(event.endpoint)
        elif isinstance(event, EndpointConnected):
            kind, severity, message = "connected", "info", f"endpoint {event.endpoint}: {event.n_tags} tags ({event.mode})"
            self._batch_read_due.add(event.endpoint)
        elif isinstance(event, TagsRejected):
            names = ", ".join(self.plan.table.names[i] for i in event.tag_ids[:10])
            kind, severity, message = "tags_rejected", "alarm", f"{event.endpoint}: {names}: {event.reason}"
        else:  # pragma: no cover - a new event type must be handled here
            raise TypeError(f"unknown acquisition event {event!r}")
        for reactor in reactors or [""]:
            self._event(t, reactor, kind, severity, message)

    # ------------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        for sup in self.supervisors.values():
            sup.start()
        if self.cfg.influxdb is not None:
            self._tasks.append(asyncio.create_task(self._start_forwarder(), name="forwarder-start"))
        self._tasks.append(asyncio.create_task(self._scan_loop(), name="scan"))
        if self.cfg.store.retention_days is not None:
            self._tasks.append(asyncio.create_task(self._retention_loop(), name="retention"))

    async def _retention_loop(self) -> None:
        """Drop points older than the retention that every forwarder has taken (hourly)."""
        assert self.cfg.store.retention_days is not None
        keep_ns = int(self.cfg.store.retention_days * 86400e9)
        while True:
            result = await asyncio.to_thread(self.store.prune, time.time_ns() - keep_ns)
            log.debug("retention: %s", result)
            await asyncio.sleep(3600)

    async def _start_forwarder(self) -> None:
        """Build the InfluxDB sink (asking /ping which API to use) and forward from the store.

        A database that is down at start delays only this: the store keeps every point
        meanwhile, and the forwarder catches up from its cursor.
        """
        influx = self.cfg.influxdb
        assert influx is not None
        token = None
        if influx.token_env is not None:
            token = self.env.get(influx.token_env)
            if token is None:
                log.warning("InfluxDB token variable %s is not set; writing without a token", influx.token_env)
        elif influx.token_file is not None:
            token = Path(influx.token_file).read_text().strip()
        delay = 1.0
        while not self._stopping.is_set():
            try:
                sink = await asyncio.to_thread(
                    make_influx_sink, influx.url, api=influx.api, database=influx.database,
                    retention_policy=influx.retention_policy, bucket=influx.bucket, org=influx.org or "-",
                    token=token, timeout_s=influx.timeout_s, name="influxdb")
                break
            except SinkError as exc:
                if delay == 1.0:
                    log.warning("InfluxDB at %s not reachable yet (%s); points stay in the local store", influx.url, exc)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stopping.wait()
                delay = min(delay * 2, influx.max_backoff_s)
        else:
            return
        fwd = Forwarder(self.store, sink, batch_size=influx.batch_size, backoff_max_s=influx.max_backoff_s,
                        idle_poll_s=influx.flush_interval_s)
        fwd.start()
        self.forwarders.append(fwd)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Start, run until ``stop`` is set (or the task is cancelled), then shut down."""
        await self.start()
        try:
            if stop is None:
                await asyncio.Future()
            else:
                await stop.wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Bounded shutdown: stop scanning, commit what was acquired, stop forwarders and clients."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        timeout = self.cfg.service.shutdown_timeout_s
        await cancel_and_wait(self._tasks, timeout)
        await asyncio.shield(self._final_flush())
        for fwd in self.forwarders:
            await fwd.stop(timeout_s=timeout)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(s.stop() for s in self.supervisors.values()), return_exceptions=True)
        await asyncio.shield(self._final_flush())
        await asyncio.shield(self._save_feed_state(final=True))
        self.store.close()
        if self._heap_frozen:
            gc.unfreeze()  # a service stopped in a longer-lived process (tests, the demo) frees its cycles
            self._heap_frozen = False

    async def _final_flush(self) -> None:
        if self._flush_task is not None:
            await asyncio.gather(self._flush_task, return_exceptions=True)
        self.recorder.samples(self.samples.drain_columns(), self.batch_of)
        await self.recorder.flush()

    # ------------------------------------------------------------------------------------ scan
    async def _scan_loop(self) -> None:
        period = self.cfg.service.control_period_s
        # Without new source time the grid cannot advance; after this much wall time a
        # watchdog scan still judges staleness and raises the alarms.
        watchdog_s = max(1.0, float(self.plan.stale_after_s.max(initial=1.0)))
        while not self._stopping.is_set():
            tick = await self.process_clock.next_tick(timeout_s=watchdog_s)
            if self._batch_read_due:
                # an endpoint (re)connected: its samples must carry the plant's batch id, not
                # "unknown", so this read comes before the scan records anything
                await self._read_batch_ids()
            if tick is None:
                await self._watchdog_scan()
            else:
                t_s, dt_s = tick
                await self._scan_once(t_s, dt_s if dt_s > 0 else period)
                if not self._heap_frozen:
                    # Everything alive after the first scan (configuration, plan, the clients'
                    # sessions and node objects) lives as long as the service. Frozen, the
                    # collector stops traversing it: full collections otherwise paused the
                    # loop 60-150 ms at 100 reactors, a scan stuck behind each.
                    gc.freeze()
                    self._heap_frozen = True
            # the periodic re-read runs after the outputs are written: a round trip to the
            # server must not delay a scan
            await self._read_batch_ids()

    def _check_readback(self, t_s: float) -> None:
        new, cleared = self.readback.check(self.clock())
        names = self.plan.table.names
        for tag, written, actual in new:
            self.stats.write_failures += 1
            self._event(t_s, self.plan.tag_reactor[tag], "readback_mismatch", "alarm",
                        f"{names[tag]}: wrote {written:g}, the server reports {actual:g}")
        for tag in cleared:
            self._event(t_s, self.plan.tag_reactor[tag], "readback_mismatch", "cleared",
                        f"{names[tag]}: the server reports the written value again")

    async def _scan_once(self, t_s: float, dt_s: float) -> None:
        self._counted_until_s = t_s + dt_s  # each feed step counts the interval it sets the rate for
        self._check_readback(t_s)
        if self.feed_state is not None and self.feed_state.pending & self._batch_known:
            await self._restore_feed_state(t_s)
        newest_input_s = self.process_clock.now_s  # source time of the newest value this scan uses
        started = self.clock()
        out = self.scan.step(t_s, dt_s, started, self.batch_of)
        computed = self.clock()
        await self._write(out.requests, t_s)
        written = self.clock()
        self.scan.record(out)
        self.stats.scans += 1
        # Newest source timestamp of the scan's inputs -> outputs written: a real latency only
        # when the source clock is wall time (a plant, or a simulator at 1x).
        self.stats.scan_latency_s.append(time.time() - newest_input_s)
        self.stats.service_latency_s.append(written - self.process_clock.due_at)
        self.stats.scan_phases_s.append((started - self.process_clock.due_at, computed - started, written - computed))
        self._record()
        if self.feed_state is not None and (self._feed_save_task is None or self._feed_save_task.done()):
            # A save still running is not awaited: the next scan saves the newer state.
            self._feed_save_task = asyncio.create_task(self._save_feed_state(), name="feed-state-save")
        self.stats.last_scan_wall_s = time.time()
        if self.on_scan is not None:
            self.on_scan(self)

    async def _watchdog_scan(self) -> None:
        self.stats.watchdog_scans += 1
        t_s = self._now_process_s()
        self.scan.check_alarms(t_s, self.clock())
        self._record()
        if self.on_scan is not None:
            self.on_scan(self)

    def _record(self) -> None:
        """Hand this scan's samples to the recorder and commit in the background.

        The next scan must not wait for an fsync: a commit runs in a worker thread while the
        loop keeps acquiring and controlling. Commits never overlap (the recorder's lock), a
        scan that finds one still running adds its points to the next, and a failed commit
        keeps its points for the next try; ``stop()`` awaits the last one.
        """
        self.recorder.samples(self.samples.drain_columns(), self.batch_of)
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.create_task(self._flush(), name="recorder-flush")

    async def _restore_feed_state(self, t_s: float) -> None:
        assert self.feed_state is not None
        events = await asyncio.to_thread(self.feed_state.restore, dict(self.batch_of), set(self._batch_known), t_s)
        for r, feed, kind, message in events:
            self._event(t_s, self.plan.reactors[r], kind, "info", f"feed {feed}: {message}")

    async def _save_feed_state(self, *, final: bool = False) -> None:
        """Commit the feeds' state where it changed (after a scan; once more at shutdown)."""
        if self.feed_state is None:
            return
        if final and self._feed_save_task is not None:
            await asyncio.gather(self._feed_save_task, return_exceptions=True)
        changes = self.feed_state.changes(self.batch_of, self._counted_until_s)
        if not changes:
            return
        try:
            await asyncio.to_thread(self.feed_state.save, changes)
        except StoreError as exc:  # the next scan saves its state again
            log.error("saving the feed state failed: %s", exc)

    async def _flush(self) -> None:
        try:
            await self.recorder.flush()
        except Exception as exc:  # noqa: BLE001 - the points stay queued; logged once per failure
            log.error("local store commit failed, points kept for the next try: %s", exc)

    async def _write(self, requests: dict[str, float], t_s: float) -> None:
        by_endpoint: dict[str, dict[str, float]] = {}
        for key, value in requests.items():
            ep = self.plan.output_endpoint.get(key)
            if ep is not None:
                by_endpoint.setdefault(ep, {})[key] = value
        if not by_endpoint:
            return
        names = list(by_endpoint)
        results = await asyncio.gather(*(self.actuators[ep].write(by_endpoint[ep], t_s) for ep in names))
        now = self.clock()
        index = self.plan.table.index
        for ep, res in zip(names, results):
            for key, r in res.items():
                self.stats.writes += 1
                if r.action == "written" and r.ok and key in index:
                    self.readback.expect(index[key], r.value, now)
                if not r.ok and r.action != "not_connected":
                    self.stats.write_failures += 1
                    reactor = key.split(".", 1)[0]
                    self._event(t_s, reactor, "write_failed", "alarm",
                                f"{key}: {r.action} after {r.attempts} attempt(s), status 0x{r.status:08X}"
                                + ("" if r.verified is not False else f", read back {r.read_back}"))

    async def _read_batch_ids(self) -> None:
        """Read the batch-id strings of endpoints that (re)connected, and of all of them every
        ``batch_refresh_s``: batch ids tag every point, and a new batch re-arms the feeds."""
        now = self.clock()
        if now - self._batch_read_at >= self.batch_refresh_s:
            self._batch_read_due.update(ep for ep, _ in self.plan.batch_nodes.values())
        if not self._batch_read_due:
            return
        self._batch_read_at = now
        due, self._batch_read_due = self._batch_read_due, set()
        for ep in due:
            client = self.supervisors[ep].client
            wanted = [(r, node) for r, (e, node) in self.plan.batch_nodes.items() if e == ep]
            if client is None or not wanted:
                continue
            try:
                nodes = [client.get_node(await _node_id(client, node)) for _, node in wanted]
                values = await client.read_values(nodes)
            except Exception as exc:  # noqa: BLE001 - any failure here just keeps the old batch ids
                log.warning("could not read batch ids from %s: %s", ep, exc)
                self._batch_read_due.add(ep)
                continue
            for (reactor, _), value in zip(wanted, values):
                if isinstance(value, str) and value and self.batch_of.get(reactor) != value:
                    old = self.batch_of.get(reactor)
                    self.batch_of[reactor] = value
                    if reactor in self._batch_known:
                        self._new_batch(reactor, old, value)
                    else:
                        self._event(self._now_process_s(), reactor, "batch", "info", f"batch id {value}")
                self._batch_known.add(reactor)

    def _new_batch(self, reactor: str, old: str | None, new: str) -> None:
        """A new batch started in a running vessel: its feeds start afresh (triggers re-armed,
        totaliser at 0); the loops carry on, they control the vessel, not the batch."""
        t = self._now_process_s()
        self._event(t, reactor, "batch", "info", f"new batch {new} (was {old})")
        feeds = self.scan.feeds
        if isinstance(feeds, FeedBank):
            feeds.reset_reactor(self.plan.reactors.index(reactor))
            self._event(t, reactor, "feed_reset", "info", f"feeds re-armed for batch {new}")


async def _node_id(client: object, text: str) -> ua.NodeId:
    """Parse a NodeId string, resolving an ``nsu=`` namespace URI against the server."""
    if text.startswith("nsu="):
        uri, rest = text[4:].split(";", 1)
        idx = await client.get_namespace_index(uri)  # type: ignore[attr-defined]
        return ua.NodeId.from_string(f"ns={idx};{rest}")
    return ua.NodeId.from_string(text)


__all__ = ["Service", "ServiceStats"]
