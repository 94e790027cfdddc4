"""Stopping asyncio tasks so that a shutdown cannot hang on a lost cancellation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], timeout_s: float, *, grace_s: float = 2.0) -> bool:
    """Cancel the tasks and wait for them, cancelling again while any is still running.

    A cancellation can be lost: on Python 3.11 ``asyncio.wait_for`` (which asyncua uses
    for every request) returns its result instead of raising when the cancellation
    arrives just as the awaited thing completes, and a loop around it then runs on. One
    ``cancel()`` and an unbounded wait would hang the shutdown. This gives the tasks
    ``grace_s`` to finish their cleanup (a polite CloseSession), then cancels again every
    0.2 s, and gives up after ``timeout_s``, logging the tasks left running.

    Returns True when every task has ended.
    """
    tasks = list(tasks)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    pending = {task for task in tasks if not task.done()}
    for task in pending:
        task.cancel()
    if pending:
        _done, pending = await asyncio.wait(pending, timeout=max(0.0, min(grace_s, timeout_s)))
    while pending:
        for task in pending:
            task.cancel()
        remaining = deadline - loop.time()
        if remaining <= 0:
            log.error("tasks still running %.1f s after they were cancelled: %s", timeout_s,
                      ", ".join(sorted(task.get_name() for task in pending)))
            return False
        _done, pending = await asyncio.wait(pending, timeout=min(0.2, remaining))
    for task, outcome in zip(tasks, await asyncio.gather(*tasks, return_exceptions=True)):
        if isinstance(outcome, Exception):  # a crash, not the cancellation: say so
            log.error("task %s had failed: %r", task.get_name(), outcome, exc_info=outcome)
    return True
