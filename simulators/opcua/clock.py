"""Wall-clock ticks that drive the simulation: real time in production, stepped by hand in tests.

The server asks its clock for ticks; each tick says how many *wall* seconds passed, and the
server advances the plant by ``speed * wall_s`` of process time, then publishes. A test swaps
in :class:`ManualClock` so a 48 h batch runs in as many ticks as it likes with no sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol


class Clock(Protocol):
    """Source of simulation ticks, consumed by exactly one server loop."""

    def ticks(self, since: float | None = None) -> AsyncIterator[float]:
        """Yield the wall seconds elapsed since the previous tick, forever.

        ``since`` is the event-loop time (``loop.time()``) the first tick counts from: the
        moment the consumer anchored process time 0 to the wall clock (default: when the
        iteration starts). The consumer finishes its work for a tick before asking for the
        next one, so a clock may use the request for the next tick as "the previous tick is
        done".
        """
        ...


class RealTimeClock:
    """Ticks every ``tick_s`` wall seconds on a fixed grid.

    Scheduling on a grid (not ``sleep(tick_s)`` after the work) keeps the cadence steady;
    a late tick reports the real elapsed time so process time never drifts from wall time.
    Elapsed time per tick is capped at ``max_tick_s`` so a suspended laptop does not make
    the plant jump hours in one step.
    """

    def __init__(self, tick_s: float = 0.1, max_tick_s: float = 2.0) -> None:
        if not tick_s > 0:
            raise ValueError(f"tick_s must be > 0, got {tick_s!r}")
        self.tick_s = tick_s
        self.max_tick_s = max(max_tick_s, tick_s)

    async def ticks(self, since: float | None = None) -> AsyncIterator[float]:
        loop = asyncio.get_running_loop()
        last = loop.time() if since is None else min(since, loop.time())
        next_due = last + self.tick_s
        while True:
            await asyncio.sleep(max(0.0, next_due - loop.time()))
            now = loop.time()
            # skip whole missed slots rather than bursting to catch up
            while next_due <= now:
                next_due += self.tick_s
            elapsed, last = min(now - last, self.max_tick_s), now
            yield elapsed


class ManualClock:
    """A clock a test steps by hand: ``await clock.advance(wall_s)`` returns once the
    server has advanced the plant and published the new values."""

    def __init__(self) -> None:
        self._pending: asyncio.Queue[tuple[float, asyncio.Future[None]]] = asyncio.Queue()

    async def advance(self, wall_s: float, *, ticks: int = 1) -> None:
        """Deliver ``ticks`` ticks of ``wall_s / ticks`` seconds each and wait until processed."""
        if not wall_s > 0 or ticks < 1:
            raise ValueError(f"need wall_s > 0 and ticks >= 1, got {wall_s!r}, {ticks!r}")
        loop = asyncio.get_running_loop()
        for _ in range(ticks):
            done: asyncio.Future[None] = loop.create_future()
            self._pending.put_nowait((wall_s / ticks, done))
            await done

    async def ticks(self, since: float | None = None) -> AsyncIterator[float]:
        del since  # every tick's length is given by advance()
        while True:
            wall_s, done = await self._pending.get()
            try:
                yield wall_s
            finally:
                # reached when the consumer asks for the next tick (or stops iterating)
                if not done.done():
                    done.set_result(None)
