"""Stack dumps of a running process, on a signal, for hangs that only show up in the field.

``kill -USR1 <pid>`` prints every asyncio task with its stack (what each coroutine is
awaiting) to stderr; ``kill -USR2 <pid>`` prints every thread's stack from the C level,
which works even when the event loop itself is stuck in synchronous code.
"""

from __future__ import annotations

import asyncio
import faulthandler
import io
import signal
import sys
from typing import TextIO


def dump_tasks(file: TextIO | None = None) -> str:
    """Every task of the running loop with the stack it is suspended in; also returned."""
    out = io.StringIO()
    tasks = sorted(asyncio.all_tasks(), key=lambda t: t.get_name())
    out.write(f"--- {len(tasks)} asyncio tasks ---\n")
    for task in tasks:
        out.write(f"{task!r}\n")
        task.print_stack(limit=12, file=out)
    out.write("--- end of tasks ---\n")
    text = out.getvalue()
    print(text, file=file or sys.stderr, flush=True)
    return text


def install(loop: asyncio.AbstractEventLoop) -> None:
    """Dump tasks on SIGUSR1 (from the loop) and threads on SIGUSR2 (from C, at once)."""
    if not hasattr(signal, "SIGUSR1"):
        return
    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    faulthandler.register(signal.SIGUSR2, all_threads=True, chain=False)
