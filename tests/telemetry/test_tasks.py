"""Shutdown cannot hang on a task whose cancellation got lost."""

from __future__ import annotations

import asyncio
import logging

import pytest

from telemetry.tasks import cancel_and_wait


async def test_a_task_that_drops_its_first_cancellation_is_cancelled_again() -> None:
    cleaned = asyncio.Event()

    async def loop_that_swallows_once() -> None:
        swallowed = False
        try:
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    if swallowed:
                        raise
                    swallowed = True  # what a racing wait_for does
        finally:
            cleaned.set()

    task = asyncio.create_task(loop_that_swallows_once(), name="swallower")
    await asyncio.sleep(0)
    assert await cancel_and_wait([task], timeout_s=5.0, grace_s=0.05) is True
    assert task.cancelled() and cleaned.is_set()


async def test_cleanup_gets_its_grace_before_a_second_cancel() -> None:
    closed = asyncio.Event()
    release = asyncio.Event()

    async def polite_close() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await release.wait()  # a CloseSession round trip
            closed.set()

    task = asyncio.create_task(polite_close())
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait([task], timeout_s=5.0, grace_s=5.0))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()  # still in its cleanup, not interrupted
    release.set()
    assert await stopper is True
    assert closed.is_set()


async def test_a_task_that_never_stops_is_named_and_left(caplog: pytest.LogCaptureFixture) -> None:
    let_go = asyncio.Event()

    async def stubborn() -> None:
        while not let_go.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                pass

    task = asyncio.create_task(stubborn(), name="stubborn-loop")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="telemetry.tasks"):
        assert await cancel_and_wait([task], timeout_s=0.3, grace_s=0.05) is False
    assert "stubborn-loop" in caplog.text
    assert not task.done()
    let_go.set()  # the test's own clean-up
    task.cancel()
    await task


async def test_a_crashed_task_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    async def crash() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(crash(), name="crasher")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="telemetry.tasks"):
        assert await cancel_and_wait([task], timeout_s=1.0) is True
    assert "crasher" in caplog.text and "boom" in caplog.text


async def test_task_dump_names_each_task_and_where_it_waits() -> None:
    import io

    from telemetry.diagnostics import dump_tasks

    gate = asyncio.Event()

    async def parked_on_the_gate() -> None:
        await gate.wait()

    task = asyncio.create_task(parked_on_the_gate(), name="parked")
    await asyncio.sleep(0)
    out = io.StringIO()
    text = dump_tasks(out)
    gate.set()
    await task
    assert text in out.getvalue()
    assert "name='parked'" in text and "in parked_on_the_gate" in text and "await gate.wait()" in text
