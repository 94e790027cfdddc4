"""Samples acquired since the recorder last took them, plus the OPC UA DataValue decoding."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timezone

from asyncua import ua

from telemetry.tags import Sample

# a source that sends no timestamp often sends the FILETIME epoch (1601) or year 1
_NO_TIME_BEFORE = datetime(1900, 1, 1, tzinfo=timezone.utc)
# StatusCode InfoType "DataValue" (bit 10) with the Overflow bit (bit 7): the server's queue dropped values
_INFO_TYPE_DATAVALUE = 0x400
_OVERFLOW = 0x80


class SampleBuffer:
    """Every sample acquisition stored into the TagTable, in arrival order, until drained.

    Unbounded on purpose: losing nothing is the recorder's promise, and the recorder drains
    this every control period into the durable local store.
    """

    def __init__(self) -> None:
        self._samples: list[Sample] = []
        #: samples appended since creation (never reset; for self-metrics)
        self.total = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def append(self, sample: Sample) -> None:
        self._samples.append(sample)
        self.total += 1
        if self._waiters:
            self._wake()

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

    def drain(self) -> list[Sample]:
        """Hand over the buffered samples and start a new batch (called by the recorder)."""
        out, self._samples = self._samples, []
        return out

    def __len__(self) -> int:
        return len(self._samples)


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
