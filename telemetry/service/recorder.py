"""Turns samples, loop internals and events into points, and commits them to the local store.

One :meth:`Recorder.flush` per scan: everything gathered since the last flush goes to disk
in one transaction (a point counts as recorded only once it is committed). The commit runs
in a worker thread so an fsync never stalls the OPC UA callbacks on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from telemetry.lineproto import EncodedBatch, encode_series, series_key
from telemetry.schema import LOOP, SAMPLE, encode_event
from telemetry.store import Store
from telemetry.tags import Sample, SampleColumns

log = logging.getLogger(__name__)

_MODE_NAMES = np.array(["manual", "auto", "cascade"], dtype=object)


class Recorder:
    """Collects one scan's points; ``flush`` commits them.

    Parameters
    ----------
    store : Store
        The durable local store (historian and outbox).
    tag_reactor, tag_signal, tag_unit : sequence of str, shape (n_tags,)
        Series tags of every tag id.
    """

    def __init__(self, store: Store, tag_reactor: Sequence[str], tag_signal: Sequence[str],
                 tag_unit: Sequence[str]) -> None:
        self.store = store
        self._reactor = np.asarray(tag_reactor, dtype=object)
        self._signal = np.asarray(tag_signal, dtype=object)
        self._unit = np.asarray(tag_unit, dtype=object)
        self._reactors = sorted(set(self._reactor.tolist()))
        self._keys: list[str] = []
        self._keys_batches: dict[str, str] | None = None
        self._loop_keys: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[str]] = {}
        self._pending = EncodedBatch()
        self._lock = asyncio.Lock()
        #: points committed since start (self-metric)
        self.committed = 0

    def samples(self, samples: Sequence[Sample] | SampleColumns, batch_of: Mapping[str, str]) -> None:
        """Every acquired value with its quality and source time (measurement ``sample``).

        Accepts the acquisition buffer's columns (the fast path) or a list of Samples.
        """
        if not isinstance(samples, SampleColumns):
            samples = SampleColumns.from_samples(samples)
        if not len(samples.tag):
            return
        status = samples.status.astype(np.int64, copy=False)
        # A bad value is recorded without `value` (NaN fields are dropped) but with its quality.
        value = np.where(status & 0x80000000, np.nan, samples.value)
        self._pending.extend(encode_series(
            self._sample_keys(batch_of), samples.tag,
            {"value": value, "good": (status & 0xC0000000) == 0, "quality": status},
            _seconds_to_ns(samples.source_time_s),
        ))

    def _sample_keys(self, batch_of: Mapping[str, str]) -> list[str]:
        """Series key of every tag id under the current batch ids (rebuilt when a batch changes)."""
        wanted = {r: batch_of.get(r, "unknown") for r in self._reactors}
        if wanted != self._keys_batches:
            self._keys = [
                series_key(SAMPLE, {"reactor": r, "batch": wanted[r], "signal": s, "unit": u})
                for r, s, u in zip(self._reactor.tolist(), self._signal.tolist(), self._unit.tolist())
            ]
            self._keys_batches = wanted
        return self._keys

    def loops(self, scan_time_s: float, reactors: Sequence[str], loop: str, batches: Sequence[str],
              terms: dict[str, npt.NDArray[np.float64]], mode_codes: npt.NDArray[np.float64],
              saturated: npt.NDArray[np.bool_], pv_ok: npt.NDArray[np.bool_]) -> None:
        """One loop's internals for every reactor of a group (measurement ``loop``)."""
        n = len(reactors)
        modes = _MODE_NAMES[np.clip(mode_codes.astype(np.intp), 0, 2)]
        cache_key = (loop, tuple(reactors), tuple(batches))
        keys = self._loop_keys.get(cache_key)
        if keys is None:
            if len(self._loop_keys) > 10_000:  # batch ids change rarely; never grow without bound
                self._loop_keys.clear()
            keys = self._loop_keys[cache_key] = [
                series_key(LOOP, {"reactor": r, "batch": b, "loop": loop}) for r, b in zip(reactors, batches)]
        self._pending.extend(encode_series(
            keys, np.arange(n),
            {**terms, "mode": modes, "saturated": saturated, "pv_ok": pv_ok},
            np.full(n, _seconds_to_ns(np.array([scan_time_s]))[0], dtype=np.int64),
        ))

    def event(self, time_s: float, reactor: str, kind: str, severity: str, message: str, batch: str = "") -> None:
        """An event (alarm, connection change, mode change, feed start) as measurement ``event``."""
        line = encode_event(time_ns=int(_seconds_to_ns(np.array([time_s]))[0]), reactor=reactor, kind=kind,
                            severity=severity, message=message, batch=batch)
        self._pending.add_line(line)

    @property
    def pending(self) -> int:
        return len(self._pending.lines)

    async def flush(self) -> int:
        """Commit everything gathered so far; returns the number of points committed."""
        async with self._lock:
            batch, self._pending = self._pending, EncodedBatch()
            if not batch.lines:
                return 0
            try:
                await asyncio.to_thread(self.store.append, batch)
            except BaseException:
                # Not committed: put the points back in front so the next flush retries them.
                batch.extend(self._pending)
                self._pending = batch
                raise
            self.committed += len(batch.lines)
            return len(batch.lines)


def _seconds_to_ns(t_s: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    # Round to microseconds first: float seconds carry ~0.2 us of noise at today's epoch,
    # and a series needs the same timestamp every time the same value is recorded.
    return (np.round(t_s * 1e6).astype(np.int64)) * 1000
