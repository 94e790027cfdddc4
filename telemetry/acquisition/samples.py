"""Samples acquired since the recorder last took them, plus the OPC UA DataValue decoding."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timezone

import numpy as np
from asyncua import ua

from telemetry.tags import Sample, SampleColumns

# a source that sends no timestamp often sends the FILETIME epoch (1601) or year 1
_NO_TIME_BEFORE = datetime(1900, 1, 1, tzinfo=timezone.utc)
# StatusCode InfoType "DataValue" (bit 10) with the Overflow bit (bit 7): the server's queue dropped values
_INFO_TYPE_DATAVALUE = 0x400
_OVERFLOW = 0x80


class SampleBuffer:
    """Every sample acquisition stored into the TagTable, in arrival order, until drained.

    Unbounded on purpose: losing nothing is the recorder's promise, and the recorder drains
    this every control period into the durable local store.

    Acquisition appends whole publish responses as columns (:meth:`append_columns`); single
    samples (:meth:`append`) are kept in arrival order among them. :meth:`drain_columns`
    hands everything over as one :class:`SampleColumns`; :meth:`drain` as Sample objects.

    A subclass that overrides :meth:`append` to see every sample, and not
    :meth:`append_columns`, still sees every sample: its columns are appended one sample
    at a time through its ``append`` (correct but slow; override ``append_columns`` too).
    """

    #: set per subclass: append_columns must feed each sample to an overridden append
    _per_sample: bool = False

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls._per_sample = cls.append is not SampleBuffer.append and cls.append_columns is SampleBuffer.append_columns

    def __init__(self) -> None:
        self._chunks: list[SampleColumns] = []
        self._singles: list[Sample] = []  # appended one by one since the last chunk
        self._len = 0
        #: samples appended since creation (never reset; for self-metrics)
        self.total = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def append(self, sample: Sample) -> None:
        self._singles.append(sample)
        self._added(1)

    def append_columns(self, columns: SampleColumns) -> None:
        """Append many samples, in row order. The arrays are kept, not copied: do not modify them."""
        if self._per_sample:
            for sample in columns.samples():
                self.append(sample)
            return
        n = len(columns.tag)
        if not n:
            return
        self._close_singles()
        self._chunks.append(columns)
        self._added(n)

    def _added(self, n: int) -> None:
        self._len += n
        self.total += n
        if self._waiters:
            self._wake()

    def _close_singles(self) -> None:
        """Turn the single samples into a chunk, so that arrival order is the order of chunks."""
        if self._singles:
            singles, self._singles = self._singles, []
            self._chunks.append(SampleColumns.from_samples(singles))

    async def wait_total(self, total: int) -> None:
        """Return once ``total`` samples have been appended since creation (a recorder's wake-up)."""
        if self.total >= total:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((total, waiter))
        try:
            await waiter
        finally:
            self._waiters = [(n, w) for n, w in self._waiters if w is not waiter]

    def _wake(self) -> None:
        for n, waiter in self._waiters:
            if self.total >= n and not waiter.done():
                waiter.set_result(None)

    def drain_columns(self) -> SampleColumns:
        """Hand over the buffered samples as columns, in arrival order, and start a new batch."""
        self._close_singles()
        chunks, self._chunks, self._len = self._chunks, [], 0
        if not chunks:
            return SampleColumns.empty()
        if len(chunks) == 1:
            return chunks[0]
        return SampleColumns(*(np.concatenate(column) for column in zip(*chunks)))

    def drain(self) -> list[Sample]:
        """Hand over the buffered samples as Sample objects and start a new batch."""
        if not self._chunks:  # only single samples: hand over the very objects appended
            out, self._singles, self._len = self._singles, [], 0
            return out
        return self.drain_columns().samples()

    def __len__(self) -> int:
        return self._len


def posix_seconds(when: datetime | None) -> float | None:
    """POSIX seconds of an OPC UA DateTime, None when the source sent none."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)  # OPC UA DateTime is UTC
    if when < _NO_TIME_BEFORE:
        return None
    return when.timestamp()


def decode_datavalue(dv: ua.DataValue | None, received_wall_s: float) -> tuple[object, float, int, bool]:
    """(value, source_time_s, status, overflow) of one DataValue.

    The source time falls back to the server timestamp, then to our receive time, so a
    sample is never recorded without a time. ``status`` is the raw 32-bit status code
    (0 is Good); ``overflow`` says the server's monitored-item queue lost values before this one.
    """
    if dv is None:
        return None, received_wall_s, ua.StatusCodes.BadNoData, False
    value = dv.Value.Value if dv.Value is not None else None
    status = dv.StatusCode.value if dv.StatusCode is not None else 0
    t = posix_seconds(dv.SourceTimestamp)
    if t is None:
        t = posix_seconds(dv.ServerTimestamp)
    if t is None or not math.isfinite(t):
        t = received_wall_s
    overflow = (status & _INFO_TYPE_DATAVALUE) != 0 and (status & _OVERFLOW) != 0
    return value, t, status, overflow
