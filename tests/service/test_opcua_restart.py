"""The simulator's OPC UA server restarted under the running service.

Two cases: one PLC of three restarts (one endpoint per reactor: the other reactors keep the
process clock and the control scans going, so the orphaned reactor's loops are seen holding
scan by scan), and the only endpoint restarts (no data at all: the watchdog raises the alarms).
In both the service records ``connection_lost`` and ``connection_recovered``, the loops report
``pv_ok=False`` with a ``bad_pv`` alarm while the data is stale, hold their output, and resume
without a bump: neither the loop output nor any actuator jumps by more than the loop's rate
limit allows.
"""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from simulators.opcua import ManualClock, SimulatorServer
from telemetry.demo import DEFAULT_CONFIG
from telemetry.service.runner import Service
from telemetry.store import Store
from tests.service.conftest import STEP_S, ScanWatch, drive, eventually

DEMO = tomllib.loads(DEFAULT_CONFIG.read_text())
LOOPS = {lp["name"]: lp for lp in DEMO["loops"]}
# actuator -> (loop, out_lo, out_hi, mv_at_lo, mv_at_hi): how far one scan may move it
ACTUATOR_MAPS = {
    s["mv"]: (lp["name"], s["out_lo"], s["out_hi"], s["mv_at_lo"], s["mv_at_hi"])
    for lp in DEMO["loops"] for s in lp.get("sequence", []) + lp.get("split_range", [])
} | {"jacket_temp_c": ("temperature", 0.0, 1.0, 0.0, 1.0)}


def config(urls: list[str], store: Path) -> Any:
    """The demo configuration with one endpoint per URL; reactor k on endpoint k (or all on one)."""
    from telemetry.config import validate_config

    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    template = data["endpoints"].pop("sim")
    data["reactor_defaults"].pop("endpoint")
    data["reactor_defaults"]["sampling_interval_ms"] = 0.0
    for k, url in enumerate(urls):
        data["endpoints"][f"plc{k + 1}"] = {**template, "url": url, "publishing_interval_ms": 50.0,
                                            "reconnect_min_s": 0.2, "reconnect_max_s": 0.5}
    for k, reactor in enumerate(("R1", "R2", "R3")):
        data["reactors"][reactor]["endpoint"] = f"plc{min(k, len(urls) - 1) + 1}"
    data["store"]["path"] = str(store)
    return validate_config(data, source="test.toml", base_dir=DEFAULT_CONFIG.parent)


@pytest_asyncio.fixture(params=["one_plc_of_three", "whole_server"])
async def plant_server(request: pytest.FixtureRequest, sim_clock: ManualClock) -> AsyncIterator[SimulatorServer]:
    from simulators.process import make_plant

    async with SimulatorServer(make_plant("ecoli", 3, seed=11), port=0, clock=sim_clock, speed=1.0,
                               endpoint_per_reactor=request.param == "one_plc_of_three") as srv:
        yield srv


def record_writes(service: Service) -> list[tuple[float, dict[str, float]]]:
    """Every scan's output requests as the service hands them to the actuators: (scan time s, requests)."""
    log: list[tuple[float, dict[str, float]]] = []
    write = service._write

    async def recording(requests: dict[str, float], t_s: float) -> None:
        log.append((t_s, dict(requests)))
        await write(requests, t_s)

    service._write = recording  # type: ignore[method-assign]
    return log


def _loop_rows(store: Store, reactor: str, loop: str) -> list[dict[str, Any]]:
    return [p.parsed().fields | {"time_ns": p.time_ns}
            for p in store.query("loop", tags={"reactor": reactor, "loop": loop})]


def _events(store: Store, reactor: str, kind: str) -> list[tuple[int, str, str]]:
    return [(p.time_ns, p.parsed().tags["severity"], str(p.parsed().fields["message"]))
            for p in store.query("event", tags={"reactor": reactor, "kind": kind})]


async def test_server_restart_alarms_holds_and_resumes_bumplessly(
    plant_server: SimulatorServer, sim_clock: ManualClock, tmp_path: Path
) -> None:
    sim = plant_server
    whole = len(sim.endpoints) == 1
    victim = 1  # R2 (0-based); with one endpoint every reactor goes with it
    plant = sim.plants[0]
    service = Service(config(sim.endpoints, tmp_path / "store"))
    watch = ScanWatch(service)
    writes = record_writes(service)
    await service.start()
    lost_endpoint = "plc1" if whole else "plc2"
    try:
        for sup in service.supervisors.values():
            await sup.wait_connected(timeout_s=15)
        await drive(sim_clock, watch, steps=10)
        held = {name: float(plant.read().values[name][victim]) for name in ACTUATOR_MAPS}
        last_good_scan_s = writes[-1][0]

        await sim.go_offline(reactor=victim)
        supervisor = service.supervisors[lost_endpoint]
        await eventually(lambda: supervisor.state == "lost", what="the service to notice the restart")
        if whole:
            # no source time advances: the watchdog scan judges staleness on the wall clock
            n = service.stats.watchdog_scans
            await sim_clock.advance(STEP_S * 4)
            await eventually(lambda: service.stats.watchdog_scans > n, timeout_s=10, what="a watchdog scan")
        else:
            await drive(sim_clock, watch, steps=4)  # R1 and R3 keep the scans going
        # nothing reached the orphaned reactor's actuators meanwhile
        assert {name: float(plant.read().values[name][victim]) for name in ACTUATOR_MAPS} == held

        scans_before_recovery = service.stats.scans
        await sim.go_online(reactor=victim)
        await eventually(lambda: supervisor.state == "connected", timeout_s=15, what="the reconnect")
        writes.clear()
        await drive(sim_clock, watch, steps=6)
    finally:
        await service.stop()

    store = Store(service.store_path)
    reactor = f"R{victim + 1}"
    lost = _events(store, reactor, "connection_lost")
    recovered = _events(store, reactor, "connection_recovered")
    assert [s for _, s, _ in lost] == ["alarm"] and [s for _, s, _ in recovered] == ["cleared"]
    assert lost[0][0] <= recovered[0][0]
    bad_pv = _events(store, reactor, "bad_pv")
    for loop in LOOPS:
        mine = [s for _, s, m in bad_pv if f"loop {loop}:" in m]
        assert mine == ["alarm", "cleared"], f"{reactor}/{loop} bad_pv events: {mine}"
    if not whole:  # the other PLCs never went away
        assert not _events(store, "R1", "connection_lost") and not _events(store, "R1", "bad_pv")

    for loop, spec in LOOPS.items():
        rows = _loop_rows(store, reactor, loop)
        bad = [i for i, r in enumerate(rows) if r["pv_ok"] is False]
        assert bad or whole, f"{reactor}/{loop}: no scan saw the stale data"
        # held: while the data was stale the output stayed where it was
        before = rows[bad[0] - 1]["mv"] if bad else rows[scans_before_recovery - 1]["mv"]
        assert all(rows[i]["mv"] == pytest.approx(before) for i in bad), f"{reactor}/{loop} did not hold"
        # resumed bumplessly: from the held value, each step within the rate limit
        after = [r for r in rows[(bad[-1] + 1 if bad else scans_before_recovery):]]
        assert len(after) >= 5 and all(r["pv_ok"] for r in after)
        mvs = np.array([before] + [r["mv"] for r in after])
        dts = np.diff([rows[bad[-1]]["time_ns"] if bad else rows[scans_before_recovery - 1]["time_ns"]]
                      + [r["time_ns"] for r in after]) / 1e9
        limit = spec["out_rate_per_s"] * dts + 1e-9
        assert np.all(np.abs(np.diff(mvs)) <= limit), f"{reactor}/{loop} bumped: mv {mvs}, dt {dts}"

    # no actuator bumped: every write after the recovery is within the loop's rate limit (mapped
    # through its split range / sequence stage onto the actuator) of the value the plant held
    assert len(writes) >= 5
    for name, (loop, out_lo, out_hi, mv_lo, mv_hi) in ACTUATOR_MAPS.items():
        per_s = LOOPS[loop]["out_rate_per_s"] * abs(mv_hi - mv_lo) / abs(out_hi - out_lo)
        last_t, last_value = last_good_scan_s, held[name]
        for t_s, requests in writes:
            value = requests.get(f"{reactor}.{name}")
            if value is None:
                continue
            assert abs(value - last_value) <= per_s * (t_s - last_t) + 1e-9, \
                f"{reactor}.{name} bumped from {last_value} to {value} in {t_s - last_t} s"
            last_t, last_value = t_s, value
