"""The control grid follows source time, not wall time, and never drifts."""

import asyncio

import pytest

from telemetry.process_clock import ProcessClock


async def test_ticks_fall_on_grid_points_of_source_time() -> None:
    clock = ProcessClock(period_s=5.0)
    ticks = []
    for t in (100.2, 103.0, 105.1, 107.0, 110.0, 111.0, 123.9):
        clock.observe(t)
        tick = await clock.next_tick(timeout_s=0)
        if tick is not None:
            ticks.append(tick)
    # 105.1 crosses 105, 110.0 reaches 110, 123.9 passes 115 and 120: one catch-up tick at 120.
    assert ticks == [(105.0, 0.0), (110.0, 5.0), (120.0, 10.0)]


async def test_clock_never_runs_backwards() -> None:
    clock = ProcessClock(period_s=1.0)
    clock.observe(50.5)
    clock.observe(49.0)
    assert clock.now_s == 50.5
    clock.observe(51.0)
    assert await clock.next_tick(timeout_s=0) == (51.0, 0.0)


async def test_no_tick_without_new_source_time() -> None:
    clock = ProcessClock(period_s=1.0)
    clock.observe(10.0)
    assert await clock.next_tick(timeout_s=0.01) is None


async def test_waiter_wakes_when_grid_point_is_crossed() -> None:
    clock = ProcessClock(period_s=2.0)
    clock.observe(0.5)
    waiter = asyncio.ensure_future(clock.next_tick(timeout_s=5))
    await asyncio.sleep(0)
    assert not waiter.done()
    clock.observe(2.0)
    assert await waiter == (2.0, 0.0)


@pytest.mark.parametrize("period", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_period_is_refused(period: float) -> None:
    with pytest.raises(ValueError, match="control period"):
        ProcessClock(period)


async def test_due_at_stamps_the_arrival_of_the_sample_that_crossed_the_grid() -> None:
    wall = iter([10.0, 20.0, 30.0])
    clock = ProcessClock(period_s=5.0, clock=lambda: next(wall))
    clock.observe(1.0)  # first observation: nothing due yet, the clock is not read
    clock.observe(6.0)  # crosses 5.0 -> stamped 10.0
    clock.observe(7.0)  # still due, not re-stamped
    assert clock.due_at == 10.0
    assert await clock.next_tick(timeout_s=0) == (5.0, 0.0)
    clock.observe(11.0)  # crosses 10.0 -> stamped 20.0
    assert clock.due_at == 20.0


async def test_cancel_arriving_with_the_tick_is_not_lost() -> None:
    """The tick and the cancellation land in the same loop iteration: the waiter must end.

    ``asyncio.wait_for`` on Python 3.11 returned the tick and dropped the cancellation
    here, and the service's scan loop then ran on after shutdown (a hung ``fermentry demo``).
    """
    clock = ProcessClock(period_s=1.0)
    clock.observe(10.5)
    waiter = asyncio.ensure_future(clock.next_tick(timeout_s=5))
    await asyncio.sleep(0)  # the waiter is suspended on the grid event
    clock.observe(11.2)  # crosses 11: the tick is due ...
    waiter.cancel()  # ... and the shutdown cancels in the same iteration
    with pytest.raises(asyncio.CancelledError):
        await waiter
