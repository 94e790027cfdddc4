"""``fermentry demo`` as a user runs it: simulators + service, a status table, a summary."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from telemetry.store import Store

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_controls_and_records(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    proc = subprocess.Popen(
        [sys.executable, "-m", "telemetry.cli", "demo", "--duration", "6", "--every", "2", "--store", str(store_dir)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        # a hang: ask the process where it is (thread stacks, then asyncio tasks), then fail
        proc.send_signal(signal.SIGUSR2)
        proc.send_signal(signal.SIGUSR1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(3)
        proc.kill()
        stdout, stderr = proc.communicate()
        pytest.fail(f"the 6 s demo did not end within 120 s; its stacks:\n{stderr[-12000:]}")
    result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert "reactor" in out and "DO %" in out  # the status table
    for reactor in ("R1", "R2", "R3"):
        assert f"  {reactor}  phase " in out  # one summary line per reactor
    assert "0 failed" in out
    store = Store(store_dir / "fermentry.sqlite3")
    for reactor in ("R1", "R2", "R3"):
        loops = store.query("loop", tags={"reactor": reactor, "loop": "do"})
        assert loops, f"no DO loop records for {reactor}"
        assert loops[-1].parsed().fields["pv_ok"] is True
    assert store.query("sample", tags={"reactor": "R1", "signal": "do_pct"})
