"""Mass balances and analytic cases of the process models."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.process import ecoli, make_plant

# (time to apply, signal, value): rates change while samples are drawn and water evaporates.
SCHEDULE = [
    (0.0, "air_flow_slpm", 8.0),
    (1800.0, "feed_rate_l_per_h", 0.02),
    (3000.0, "base_rate_l_per_h", 0.004),
    (4000.0, "acid_rate_l_per_h", 0.001),
    (5000.0, "antifoam_rate_l_per_h", 0.002),
    (6500.0, "feed_rate_l_per_h", 0.05),
    (8000.0, "base_rate_l_per_h", 0.0),
]
STEP_S = 250.0


def _run_schedule(organism: str, **initial: float) -> tuple[object, dict[str, float]]:
    plant = make_plant(organism, 3, sample_interval_s=2000.0, sensor_noise=False, **initial)
    pumped = {"feed_rate_l_per_h": 0.0, "base_rate_l_per_h": 0.0, "acid_rate_l_per_h": 0.0, "antifoam_rate_l_per_h": 0.0}
    rates = dict(pumped)
    for i in range(40):
        t = i * STEP_S
        for at, name, value in SCHEDULE:
            if at == t:
                plant.write(name, value)
                rates[name] = value if name in rates else 0.0
        plant.advance(STEP_S)
        for name in pumped:
            pumped[name] += rates[name] * STEP_S / 3600.0
    return plant, pumped


@pytest.mark.parametrize("organism", ["ecoli", "cho"])
def test_volume_balance_is_exact(organism: str) -> None:
    plant, pumped = _run_schedule(organism)
    s = plant.state  # type: ignore[attr-defined]
    # Pump totalisers equal what was written, integrated by hand.
    for name, total in (("feed_total_l", "feed_rate_l_per_h"), ("base_total_l", "base_rate_l_per_h"),
                        ("acid_total_l", "acid_rate_l_per_h"), ("antifoam_total_l", "antifoam_rate_l_per_h")):
        np.testing.assert_allclose(s[name], pumped[total], rtol=1e-12, atol=1e-12, err_msg=name)
    assert (plant.sampled_total_l == 0.05).all()  # type: ignore[attr-defined]  # samples at 2000 s ... 10000 s
    assert (s["evaporated_l"] > 1e-4).all()
    v0 = plant.initial_state_array[plant.model.vessel_row]  # type: ignore[attr-defined]
    expected = v0 + sum(pumped.values()) - plant.sampled_total_l - s["evaporated_l"]  # type: ignore[attr-defined]
    np.testing.assert_allclose(s["volume_l"], expected, rtol=0, atol=1e-12)


def test_ecoli_carbon_balance_closes() -> None:
    plant, pumped = _run_schedule("ecoli", biomass_g_per_l=2.0)  # enough growth for CO2 to matter
    y0 = plant.initial_state_array  # type: ignore[attr-defined]
    y = plant.state_array  # type: ignore[attr-defined]
    carbon_in = ecoli.carbon_mmol(y0) + pumped["feed_rate_l_per_h"] * ecoli.S_F_G_PER_L * ecoli.C_GLUCOSE
    carbon_out = ecoli.carbon_mmol(y) + y[ecoli.STATES.index("co2_total_mmol")] + plant.sampled_carbon_mmol  # type: ignore[attr-defined]
    assert (y[ecoli.STATES.index("co2_total_mmol")] > 0.05 * carbon_in).all()  # a balance that CO2 matters in
    np.testing.assert_allclose(carbon_out, carbon_in, rtol=5e-3)


def test_exponential_feed_below_critical_rate_sets_growth_rate() -> None:
    """X V grows as exp(mu_set t) when the feed covers growth at mu_set plus maintenance."""
    mu_set = 0.2
    assert mu_set < ecoli.MU_CRIT_PER_H
    x0, v0 = 5.0, 5.5
    plant = make_plant("ecoli", 1, sensor_noise=False, spread=False, biomass_g_per_l=x0, glucose_g_per_l=0.02, volume_l=v0)
    plant.write("agitation_rpm", 1200.0)
    plant.write("air_flow_slpm", 15.0)
    dt = 120.0
    xv = []
    for i in range(int(10 * 3600 / dt)):
        t_h = i * dt / 3600.0
        feed = (mu_set / ecoli.Y_XS_G_PER_G + ecoli.M_S_G_PER_G_H) * x0 * v0 * np.exp(mu_set * t_h) / ecoli.S_F_G_PER_L
        plant.write("feed_rate_l_per_h", feed)
        plant.write("base_rate_l_per_h", 0.3 * feed)  # ammonia for the N taken up
        plant.advance(dt)
        xv.append(plant.state["biomass_g"][0])
    t = np.arange(1, len(xv) + 1) * dt / 3600.0
    late = t > 4.0  # after the feed-limited quasi-steady state is reached
    mu_measured = np.polyfit(t[late], np.log(xv)[late], 1)[0]
    assert mu_measured == pytest.approx(mu_set, rel=0.03)
    tv = plant.true_values()
    assert tv["acetate_g_per_l"][0] < 0.05 and tv["glucose_g_per_l"][0] < 0.1  # no overflow, glucose-limited


@pytest.mark.parametrize("organism", ["ecoli", "cho"])
def test_quasi_steady_our_equals_oxygen_transfer(organism: str) -> None:
    plant = make_plant(organism, 2, sensor_noise=False)
    plant.advance(8 * 3600.0 if organism == "ecoli" else 3 * 86400.0)
    tv = plant.true_values()
    otr = tv["kla_per_h"] * (tv["c_star_mmol_per_l"] - tv["do_mmol_per_l"])
    assert (tv["our_mmol_per_l_h"] > 1.0).all()
    np.testing.assert_allclose(tv["our_mmol_per_l_h"], otr, rtol=5e-3)
