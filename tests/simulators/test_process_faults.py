"""Faults take effect at their time, and only then."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulators.process import FAULT_KINDS, Fault, FaultError, load_faults, make_plant

AT_S = 2 * 3600.0
REPO = Path(__file__).resolve().parents[2]


def _pair(fault: Fault, **writes: float) -> tuple[object, object]:
    plants = [make_plant("ecoli", 2, seed=5, faults=faults) for faults in ([], [fault])]
    for p in plants:
        for k, v in writes.items():
            p.write(k, v)
    return plants[0], plants[1]


def _advance(plants: tuple[object, object], dt: float) -> None:
    for p in plants:
        p.advance(dt)  # type: ignore[attr-defined]


CASES = {
    "sensor_drift": (Fault("sensor_drift", AT_S, signal="ph", magnitude=0.5, reactor=1), {}),
    "stuck_sensor": (Fault("stuck_sensor", AT_S, signal="do_pct", reactor=1), {}),
    "do_probe_failure": (Fault("do_probe_failure", AT_S, reactor=1), {}),
    "feed_pump_blockage": (Fault("feed_pump_blockage", AT_S, reactor=1), {"feed_rate_l_per_h": 0.02}),
    "air_supply_loss": (Fault("air_supply_loss", AT_S, reactor=1), {}),
    "cooling_failure": (Fault("cooling_failure", AT_S, reactor=1), {}),
    "foaming": (Fault("foaming", AT_S, reactor=1), {}),
    "opcua_restart": (Fault("opcua_restart", AT_S, duration_s=60.0), {}),
}


def _effect(kind: str, ref: dict[str, np.ndarray], hit: dict[str, np.ndarray], good: dict[str, np.ndarray], truth: tuple[dict, dict]) -> bool:
    """Whether reactor 1 shows the fault's signature 1 h after onset (reactor 0 never does)."""
    if kind == "sensor_drift":
        return abs(hit["ph"][1] - ref["ph"][1] - 0.5) < 0.05
    if kind == "stuck_sensor":
        return hit["do_pct"][1] != ref["do_pct"][1] and abs(hit["do_pct"][1] - ref["do_pct"][1]) > 1.0
    if kind == "do_probe_failure":
        return not good["do_pct"][1] and np.isnan(hit["do_pct"][1])
    if kind == "feed_pump_blockage":
        return ref["feed_total_l"][1] - hit["feed_total_l"][1] > 0.019
    if kind == "air_supply_loss":
        return truth[1]["do_mmol_per_l"][1] < 0.5 * truth[0]["do_mmol_per_l"][1]
    if kind == "cooling_failure":
        return truth[1]["temperature_c"][1] > truth[0]["temperature_c"][1] + 3.0
    if kind == "foaming":
        return hit["foam"][1] == 1.0 and ref["foam"][1] == 0.0 and truth[1]["pressure_bar"][1] > truth[0]["pressure_bar"][1]
    if kind == "opcua_restart":  # for the OPC UA server only: the process does not see it
        return all(np.array_equal(ref[k], hit[k], equal_nan=True) for k in ref)
    raise AssertionError(kind)


def test_every_kind_has_a_case() -> None:
    assert set(CASES) == set(FAULT_KINDS)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_fault_acts_at_its_time_on_its_reactor(kind: str) -> None:
    fault, writes = CASES[kind]
    plants = _pair(fault, **writes)
    _advance(plants, AT_S - 1.0)
    before = [p.read() for p in plants]  # type: ignore[attr-defined]
    for k in before[0].values:
        np.testing.assert_array_equal(before[0].values[k], before[1].values[k], err_msg=f"{k} changed before the fault")
    if kind == "cooling_failure":  # at onset the operator asks the jacket to cool down
        for p in plants:
            p.write("jacket_temp_c", 30.0)  # type: ignore[attr-defined]
    _advance(plants, 1.0 + 3600.0)
    ref, hit = (p.read() for p in plants)  # type: ignore[attr-defined]
    truth = tuple(p.true_values() for p in plants)  # type: ignore[attr-defined]
    assert _effect(kind, ref.values, hit.values, hit.good, truth)  # type: ignore[arg-type]
    if kind != "opcua_restart":
        # Splitting the step at the fault edge perturbs reactor 0 only within integration tolerance.
        for k in ("do_pct", "ph", "temperature_c", "feed_total_l"):
            np.testing.assert_allclose(ref.values[k][0], hit.values[k][0], rtol=1e-3, err_msg=f"{k}: reactor 0 was hit")


def test_fault_with_duration_ends() -> None:
    plant = make_plant("ecoli", 1, faults=[Fault("do_probe_failure", 600.0, duration_s=600.0)])
    plant.advance(900.0)
    assert not plant.read().good["do_pct"][0]
    plant.advance(400.0)
    assert plant.read().good["do_pct"][0]


def test_example_fault_file_loads() -> None:
    faults = load_faults(REPO / "config" / "faults.example.toml")
    assert {f.kind for f in faults} == set(FAULT_KINDS)
    make_plant("ecoli", 4, faults=faults).advance(3600.0)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[[fault]]\nkind = "meteor"\nat_h = 1\n', "meteor"),
        ('[[fault]]\nkind = "foaming"\n', "at_h"),
        ('[[fault]]\nkind = "stuck_sensor"\nat_h = 1\n', "needs a signal"),
        ('[[fault]]\nkind = "foaming"\nat_h = 1\ncolour = "red"\n', "colour"),
    ],
)
def test_bad_fault_files_name_the_problem(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "f.toml"
    path.write_text(toml)
    with pytest.raises(FaultError, match=message) as info:
        load_faults(path)
    assert "fault[0]" in str(info.value)
