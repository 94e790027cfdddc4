"""The service against a real simulator over OPC UA: control, recording, faults, restarts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from simulators.opcua import ManualClock, SimulatorServer
from telemetry.service.runner import Service
from telemetry.store import Store
from tests.service.conftest import ScanWatch, drive


async def _started(cfg: Any, **kwargs: Any) -> tuple[Service, ScanWatch]:
    service = Service(cfg, **kwargs)
    watch = ScanWatch(service)
    await service.start()
    for sup in service.supervisors.values():
        await sup.wait_connected(timeout_s=15)
    return service, watch


def _loop_rows(store: Store, reactor: str, loop: str) -> list[dict[str, Any]]:
    rows = store.query("loop", tags={"reactor": reactor, "loop": loop})
    return [p.parsed().fields | {"time_ns": p.time_ns} for p in rows]


async def test_service_controls_and_records_every_reactor(
    sim: SimulatorServer, sim_clock: ManualClock, make_config: Callable[..., Any]
) -> None:
    service, watch = await _started(make_config(sim.endpoints[0]))
    try:
        await drive(sim_clock, watch, steps=12)
    finally:
        await service.stop()
    store = Store(service.store_path)
    for reactor in ("R1", "R2", "R3"):
        for signal in ("do_pct", "ph", "temperature_c", "agitation_rpm"):
            samples = store.query("sample", tags={"reactor": reactor, "signal": signal})
            assert samples, f"no samples of {reactor}.{signal}"
            fields = samples[-1].parsed().fields
            assert fields["good"] is True and "value" in fields
        for loop in ("do", "ph", "temperature"):
            rows = _loop_rows(store, reactor, loop)
            assert len(rows) >= 10, f"{reactor}/{loop}: {len(rows)} loop records"
            assert rows[-1]["mode"] == "auto" and rows[-1]["pv_ok"] is True
    # The outputs reached the plant: what the loops asked is what the simulator holds.
    plant = sim.plants[0]
    actuators = plant.read().values
    last = {r: _loop_rows(store, r, "temperature")[-1]["mv"] for r in ("R1", "R2", "R3")}
    np.testing.assert_allclose(actuators["jacket_temp_c"], [last["R1"], last["R2"], last["R3"]], rtol=1e-9)
    # Batch ids came from the simulator and tag every point.
    assert set(service.batch_of.values()) == set(plant.batch_ids)


async def test_shadow_mode_computes_but_never_writes(
    sim: SimulatorServer, sim_clock: ManualClock, make_config: Callable[..., Any]
) -> None:
    plant = sim.plants[0]
    before = {k: v.copy() for k, v in plant.read().values.items() if k in ("agitation_rpm", "jacket_temp_c")}
    service, watch = await _started(make_config(sim.endpoints[0]), write_mode="shadow")
    try:
        await drive(sim_clock, watch, steps=6)
    finally:
        await service.stop()
    after = plant.read().values
    for name, values in before.items():
        np.testing.assert_array_equal(after[name], values)
    rows = _loop_rows(Store(service.store_path), "R1", "temperature")
    assert len(rows) >= 5  # computed and recorded all the same


async def test_bad_probe_goes_to_safe_output_with_alarm_and_no_crash(make_config: Callable[..., Any]) -> None:
    from simulators.process import make_plant
    from simulators.process.faults import Fault

    clock = ManualClock()
    probe_fails = Fault(kind="do_probe_failure", at_s=30.0, duration_s=None, reactor=1, signal=None, magnitude=None)
    plant = make_plant("ecoli", 3, seed=7, faults=[probe_fails])
    async with SimulatorServer(plant, port=0, clock=clock, speed=1.0) as sim:
        cfg = make_config(sim.endpoints[0])
        safe_output = next(lp.safe_output for lp in cfg.loops_for("R2") if lp.name == "do")
        service, watch = await _started(cfg)
        try:
            await drive(clock, watch, steps=30)
        finally:
            await service.stop()
    store = Store(service.store_path)
    events = [p.parsed() for p in store.query("event", tags={"reactor": "R2", "kind": "bad_pv"})]
    assert any(e.tags["severity"] == "alarm" and "do" in str(e.fields["message"]) for e in events)
    rows = _loop_rows(store, "R2", "do")
    assert rows[-1]["pv_ok"] is False
    # the DO loop's configured safe output, reached under its rate limit
    assert rows[-1]["mv"] == pytest.approx(safe_output)
    # the bad value itself was recorded with its quality, never as a good value
    do_samples = [p.parsed().fields for p in store.query("sample", tags={"reactor": "R2", "signal": "do_pct"})]
    assert do_samples[-1]["good"] is False and "value" not in do_samples[-1]
    # other reactors were not affected
    assert _loop_rows(store, "R1", "do")[-1]["pv_ok"] is True
