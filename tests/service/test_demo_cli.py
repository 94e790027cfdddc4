"""``fermentry demo`` as a user runs it: simulators + service, a status table, a summary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from telemetry.store import Store

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_controls_and_records(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    result = subprocess.run(
        [sys.executable, "-m", "telemetry.cli", "demo", "--duration", "6", "--every", "2", "--store", str(store_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
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
