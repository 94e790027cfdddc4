"""The simulation clocks on their own (no OPC UA)."""

from __future__ import annotations

import asyncio

import pytest

from simulators.opcua import ManualClock, RealTimeClock


async def test_real_time_clock_reports_the_wall_time_that_passed() -> None:
    loop = asyncio.get_running_loop()
    clock = RealTimeClock(tick_s=0.01)
    ticks = clock.ticks()
    start = loop.time()
    elapsed = [await anext(ticks) for _ in range(5)]
    await ticks.aclose()  # type: ignore[attr-defined]
    assert all(e > 0 for e in elapsed)
    # the sum of reported ticks is the wall time that passed: process time cannot drift
    assert sum(elapsed) == pytest.approx(loop.time() - start, abs=0.01)


async def test_real_time_clock_counts_its_first_tick_from_the_given_anchor() -> None:
    loop = asyncio.get_running_loop()
    anchor = loop.time() - 0.2  # e.g. the server anchored process time 0, then spent 200 ms starting
    ticks = RealTimeClock(tick_s=0.01).ticks(since=anchor)
    first = await anext(ticks)
    await ticks.aclose()  # type: ignore[attr-defined]
    assert first >= 0.2
    assert first == pytest.approx(loop.time() - anchor, abs=0.01)


async def test_manual_clock_advance_returns_after_the_consumer_took_the_tick() -> None:
    clock = ManualClock()
    seen: list[float] = []

    async def consume() -> None:
        async for wall_s in clock.ticks():
            await asyncio.sleep(0)  # the consumer does some async work per tick
            seen.append(wall_s)

    task = asyncio.create_task(consume())
    await clock.advance(3.0, ticks=3)
    assert seen == [1.0, 1.0, 1.0]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize(("wall_s", "ticks"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
async def test_manual_clock_rejects_empty_steps(wall_s: float, ticks: int) -> None:
    with pytest.raises(ValueError):
        await ManualClock().advance(wall_s, ticks=ticks)


def test_real_time_clock_needs_a_positive_tick() -> None:
    with pytest.raises(ValueError):
        RealTimeClock(tick_s=0)
