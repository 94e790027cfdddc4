"""The process clock and the fixed control grid.

Every ``dt`` the controllers see is *process* time, read from the sources' timestamps,
so a loop tuned against a fermenter at 1x behaves the same against a simulator at
100x (ARCHITECTURE.md, decision 4). Scans fall on a fixed grid ``k * period`` of that
clock: a late scan does not shift the grid, so there is no drift, and several missed
grid points collapse into one scan whose ``dt`` covers them (the controllers limit
what a large ``dt`` may do).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable


class ProcessClock:
    """Tracks process time from source timestamps and wakes the scan on grid points.

    Parameters
    ----------
    period_s : float
        Control period, seconds of process time (> 0).
    clock : callable
        Monotonic wall clock (s) that stamps when a grid point became due (``due_at``),
        so the service can measure its own latency from there to the outputs written.

    Acquisition calls :meth:`observe` with each source timestamp (cheap: one compare);
    the scan task awaits :meth:`next_tick`.
    """

    def __init__(self, period_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not (period_s > 0 and math.isfinite(period_s)):
            raise ValueError(f"control period must be a positive number of seconds, got {period_s!r}")
        self.period_s = period_s
        self.now_s = -math.inf  # latest process time seen
        self._next_due_s = math.inf
        self._last_tick_s: float | None = None
        self._due = asyncio.Event()
        self._clock = clock
        #: monotonic time the sample that crossed the latest grid point arrived
        self.due_at = math.nan

    def observe(self, source_time_s: float) -> None:
        """Advance the clock to ``source_time_s`` if it is later (never backwards)."""
        if source_time_s > self.now_s:
            self.now_s = source_time_s
            if self._next_due_s == math.inf:
                # First observation: the first scan is at the next grid point.
                self._next_due_s = (math.floor(source_time_s / self.period_s) + 1) * self.period_s
            elif source_time_s >= self._next_due_s and not self._due.is_set():
                self.due_at = self._clock()
                self._due.set()

    async def next_tick(self, timeout_s: float | None = None) -> tuple[float, float] | None:
        """Wait for the next grid point; return ``(tick_time_s, dt_s)`` of process time.

        ``tick_time_s`` is the grid point reached (the latest one when several were
        passed); ``dt_s`` is the process time since the previous tick (0 on the first).
        Returns None when ``timeout_s`` (wall seconds) passes with no tick: the caller
        then runs a watchdog scan, because silent sources must still raise alarms.
        """
        if not self._due.is_set():
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
                # arrives as the event is set, and a cancelled scan loop then runs on forever
                async with asyncio.timeout(timeout_s):
                    await self._due.wait()
            except TimeoutError:
                return None
        self._due.clear()
        tick = math.floor(self.now_s / self.period_s) * self.period_s
        self._next_due_s = tick + self.period_s
        dt = 0.0 if self._last_tick_s is None else tick - self._last_tick_s
        self._last_tick_s = tick
        return tick, dt
