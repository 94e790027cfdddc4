"""The simulated fermenter behind the Plant contract: signals, writes, determinism, dt independence."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.plant import OutOfRange, Plant, UnknownSignal
from simulators.process import make_plant

COMMON = {
    "do_pct", "ph", "temperature_c", "pressure_bar", "volume_l", "offgas_o2_pct", "offgas_co2_pct", "our_mmol_per_l_h",
    "cer_mmol_per_l_h", "rq", "feed_total_l", "base_total_l", "acid_total_l", "foam", "glucose_g_per_l", "titer_g_per_l",
    "feed_rate_l_per_h", "base_rate_l_per_h", "acid_rate_l_per_h", "antifoam_rate_l_per_h", "agitation_rpm", "air_flow_slpm",
    "o2_flow_slpm", "jacket_temp_c", "induction", "do_sp_pct", "ph_sp", "temperature_sp_c",
}
SPECIFIC = {
    "ecoli": {"od600", "acetate_g_per_l"},
    "cho": {"vcd_e6_cells_per_ml", "viability_pct", "lactate_g_per_l", "glutamine_mmol_per_l", "ammonia_mmol_per_l"},
}


@pytest.mark.parametrize("organism", ["ecoli", "cho"])
def test_plant_carries_the_canonical_signals(organism: str) -> None:
    plant = make_plant(organism, 3)
    assert isinstance(plant, Plant)
    names = {s.name for s in plant.signals}
    assert names == COMMON | SPECIFIC[organism]
    plant.advance(600.0)
    r = plant.read()
    assert set(r.values) == names == set(r.good) == set(r.sample_time_s)
    for name, v in r.values.items():
        assert v.shape == (3,) and v.dtype == np.float64, name
    assert r.time_s == plant.time_s == 600.0
    assert len(set(plant.batch_ids)) == 3 and plant.phases == ["batch"] * 3


@pytest.mark.parametrize("organism", ["ecoli", "cho"])
def test_phases_follow_feed_and_induction(organism: str) -> None:
    plant = make_plant(organism, 2)
    plant.write("feed_rate_l_per_h", 0.01, reactor=1)
    plant.advance(60.0)
    assert plant.phases == ["batch", "fed-batch"]
    plant.write("induction", 1.0)
    plant.advance(60.0)
    assert plant.phases == (["induced", "induced"] if organism == "ecoli" else ["batch", "fed-batch"])


@pytest.mark.parametrize(
    ("name", "value", "reactor", "error"),
    [
        ("feed_rate_l_per_h", 5.0, None, OutOfRange),
        ("agitation_rpm", -1.0, 0, OutOfRange),
        ("ph_sp", float("nan"), None, OutOfRange),
        ("jacket_temp_c", np.array([30.0, 31.0]), None, OutOfRange),  # wrong shape for 3 reactors
        ("jacket_temp_c", np.array([30.0, 31.0, 200.0]), None, OutOfRange),  # one element out of range
        ("air_flow_slpm", 1.0, 7, OutOfRange),
        ("do_pct", 30.0, None, UnknownSignal),
        ("no_such_signal", 1.0, None, UnknownSignal),
    ],
)
def test_bad_writes_raise_and_change_nothing(name: str, value: object, reactor: int | None, error: type[Exception]) -> None:
    plant = make_plant("ecoli", 3, seed=4)
    before = plant.read().values
    with pytest.raises(error):
        plant.write(name, value, reactor=reactor)  # type: ignore[arg-type]
    after = plant.read().values
    for k in before:
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)


def test_writes_reach_one_or_all_reactors() -> None:
    plant = make_plant("ecoli", 3)
    plant.write("agitation_rpm", 900.0, reactor=2)
    plant.write("air_flow_slpm", np.array([1.0, 2.0, 3.0]))
    r = plant.read()
    np.testing.assert_array_equal(r.values["agitation_rpm"], [600.0, 600.0, 900.0])
    np.testing.assert_array_equal(r.values["air_flow_slpm"], [1.0, 2.0, 3.0])


@pytest.mark.parametrize("dt_s", [0.0, -1.0, float("inf"), float("nan")])
def test_advance_rejects_bad_dt(dt_s: float) -> None:
    with pytest.raises(ValueError):
        make_plant("ecoli", 1).advance(dt_s)


def _run(seed: int) -> dict[str, np.ndarray]:
    plant = make_plant("ecoli", 4, seed=seed)
    for _ in range(12):
        plant.advance(900.0)
    return plant.read().values


def test_runs_are_deterministic_for_a_seed() -> None:
    a, b, c = _run(7), _run(7), _run(8)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert not np.allclose(a["do_pct"], c["do_pct"])


@pytest.mark.parametrize("organism", ["ecoli", "cho"])
def test_any_dt_gives_the_same_trajectory(organism: str) -> None:
    """dt = 1 s and dt = 600 s across a stiff moment (E. coli: glucose depletion at ~20 min)."""
    init = {"glucose_g_per_l": 1.0, "biomass_g_per_l": 4.0} if organism == "ecoli" else {}
    fine = make_plant(organism, 2, sensor_noise=False, **init)
    coarse = make_plant(organism, 2, sensor_noise=False, **init)
    for _ in range(3):
        for _ in range(600):
            fine.advance(1.0)
        coarse.advance(600.0)
        a, b = fine.state, coarse.state
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=2e-5, atol=1e-6, err_msg=k)
    assert fine.time_s == pytest.approx(coarse.time_s, abs=1e-6)


def test_atline_analytes_arrive_sampled_and_late() -> None:
    plant = make_plant("ecoli", 2, sample_interval_s=3600.0, assay_delay_s=1200.0, sensor_noise=False)
    plant.advance(3600.0 + 600.0)
    r = plant.read()
    assert not r.good["glucose_g_per_l"].any() and np.isnan(r.values["glucose_g_per_l"]).all()
    plant.advance(700.0)
    r = plant.read()
    assert r.good["glucose_g_per_l"].all()
    np.testing.assert_array_equal(r.sample_time_s["glucose_g_per_l"], 3600.0)
    assert r.sample_time_s["do_pct"][0] == r.time_s == 4900.0
    # the reported value is the one at sampling time, not now
    assert (r.values["glucose_g_per_l"] > plant.true_values()["glucose_g_per_l"]).all()
