"""``fermentry simulate`` and ``fermentry demo`` as a user runs them (subprocesses)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest
from asyncua import Client

FERMENTRY = str(Path(sys.executable).with_name("fermentry"))


async def _read_line(proc: asyncio.subprocess.Process, timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not line:
        err = await proc.stderr.read() if proc.stderr else b""
        pytest.fail(f"fermentry exited early ({proc.returncode}): {err.decode()[-2000:]}")
    return line.decode().strip()


async def test_simulate_prints_endpoints_serves_and_exits_cleanly_on_sigint() -> None:
    args = ["simulate", "--reactors", "2", "--port", "0", "--speed", "120", "--status-every", "0.5"]
    proc = await asyncio.create_subprocess_exec(
        FERMENTRY, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        urls = [await _read_line(proc)]
        assert all(u.startswith("opc.tcp://127.0.0.1:") and u.endswith("/fermentry/") for u in urls)
        async with Client(urls[-1], timeout=5) as c:
            reactor = "R2"
            assert 0.0 <= await c.get_node(f"ns=2;s={reactor}.do_pct").read_value() <= 100.0
        status = await _read_line(proc)
        assert status.startswith("t=") and "R1[" in status
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert "stopped at process time" in out.decode()
        assert "Traceback" not in err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_demo_runs_for_its_duration_and_summarises() -> None:
    proc = await asyncio.create_subprocess_exec(
        # the lead registers `fermentry demo`; until then the module runs the same parser
        sys.executable, "-m", "simulators.cli", "demo", "--duration", "2", "--every", "1", "--speed", "600",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    text = out.decode()
    assert "summary:" in text
    for reactor in ("R1", "R2", "R3"):
        assert f"  {reactor}: do_pct" in text
