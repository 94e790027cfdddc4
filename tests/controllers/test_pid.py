"""Unit and analytic tests of the PID bank."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controllers.pid import PidBank, PidSpec
from tests.controllers.plants import FirstOrderPlant


def run_closed_loop(bank: PidBank, plant: FirstOrderPlant, steps: int, dt: float) -> np.ndarray:
    for _ in range(steps):
        u = bank.step(plant.y, None, dt)
        plant.advance(u, dt)
    return plant.y


@pytest.mark.parametrize("kp,k_plant", [(0.5, 2.0), (2.0, 1.0), (4.0, 0.5)])
def test_p_only_reaches_known_offset(kp: float, k_plant: float) -> None:
    sp = 10.0
    bank = PidBank([PidSpec(kp=kp, sp=sp, out_lo=-1e6, out_hi=1e6)])
    plant = FirstOrderPlant(k_plant, 20.0, [0.0])
    y = run_closed_loop(bank, plant, 600, 1.0)
    expected = k_plant * kp * sp / (1 + k_plant * kp)
    assert y[0] == pytest.approx(expected, rel=1e-6)


def test_pi_removes_offset_for_every_row() -> None:
    n = 5
    specs = [PidSpec(kp=kp, ti_s=30.0, sp=sp, out_lo=-100, out_hi=100)
             for kp, sp in zip(np.linspace(0.5, 2, n), np.linspace(-5, 5, n))]
    bank = PidBank(specs)
    plant = FirstOrderPlant(1.5, 20.0, np.zeros(n))
    y = run_closed_loop(bank, plant, 2000, 1.0)
    np.testing.assert_allclose(y, np.linspace(-5, 5, n), atol=1e-6)


def test_direct_action_drives_output_up_when_pv_above_sp() -> None:
    bank = PidBank([PidSpec(kp=1.0, sp=5.0, action="direct", out_lo=-50, out_hi=50),
                    PidSpec(kp=1.0, sp=5.0, action="reverse", out_lo=-50, out_hi=50)])
    out = bank.step(np.array([8.0, 8.0]), None, 1.0)
    np.testing.assert_allclose(out, [3.0, -3.0])


def test_setpoint_weight_b_scales_setpoint_step_kick() -> None:
    bank = PidBank([PidSpec(kp=2.0, b=b, sp=0.0, out_lo=-100, out_hi=100) for b in (0.0, 0.5, 1.0)])
    bank.step(np.zeros(3), None, 1.0)
    bank.set_setpoint(None, 10.0)
    out = bank.step(np.zeros(3), None, 1.0)
    np.testing.assert_allclose(out, [0.0, 10.0, 20.0])


def test_derivative_on_measurement_ignores_setpoint_step_but_c1_kicks() -> None:
    bank = PidBank([PidSpec(kp=1.0, td_s=10.0, b=0.0, c=c, sp=0.0, out_lo=-1e3, out_hi=1e3) for c in (0.0, 1.0)])
    bank.step(np.zeros(2), None, 1.0)
    bank.set_setpoint(None, 1.0)
    out = bank.step(np.zeros(2), None, 1.0)
    # Backward difference with Tf = Td/N = 1 s: D = Kp*Td/(Tf+dt) * Δ(c*sp).
    np.testing.assert_allclose(out, [0.0, 10.0 / 2.0])


def test_derivative_filter_is_first_order() -> None:
    bank = PidBank([PidSpec(kp=1.0, td_s=10.0, deriv_filter_n=5.0, out_lo=-1e3, out_hi=1e3)])
    bank.step(np.array([0.0]), None, 1.0)
    d_terms = []
    pv = 0.0
    for _ in range(5):
        pv += 1.0  # ramp: derivative of -pv is -1 per s -> D -> -Kp*Td = -10
        bank.step(np.array([pv]), None, 1.0)
        d_terms.append(bank.components()["d"][0])
    tf = 2.0
    expected, dv = [], 0.0
    for _ in range(5):
        dv = tf / (tf + 1) * dv + 10.0 / (tf + 1) * (-1.0)
        expected.append(dv)
    np.testing.assert_allclose(d_terms, expected)


def test_setpoint_ramp_and_clamp() -> None:
    bank = PidBank([PidSpec(kp=0.0, sp=0.0, sp_rate_per_s=0.5, sp_lo=-1.0, sp_hi=3.0)])
    bank.step(np.zeros(1), None, 1.0)
    bank.set_setpoint(0, 10.0)
    seen = [float(bank.step(np.zeros(1), None, 1.0)[0] * 0 + bank.sp_eff[0]) for _ in range(8)]
    assert seen == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0, 3.0]


def test_deadband_zeroes_small_errors_without_step_at_edge() -> None:
    bank = PidBank([PidSpec(kp=1.0, deadband=0.5, sp=0.0, out_lo=-10, out_hi=10)] * 3)
    out = bank.step(np.array([0.3, 0.5, 1.5]), None, 1.0)
    np.testing.assert_allclose(out, [0.0, 0.0, -1.0])


def test_feedforward_adds_to_output() -> None:
    bank = PidBank([PidSpec(kp=1.0, sp=1.0, out_lo=-10, out_hi=10)])
    out = bank.step(np.zeros(1), None, 1.0, ff=np.array([2.5]))
    assert out[0] == pytest.approx(3.5)


@pytest.mark.parametrize("policy,expected", [("hold", 4.0), ("safe", 1.0)])
def test_invalid_pv_holds_or_goes_safe_and_freezes_integrator(policy: str, expected: float) -> None:
    bank = PidBank([PidSpec(kp=1.0, ti_s=10.0, sp=4.0, bad_pv=policy, safe_out=1.0, out_lo=-10, out_hi=10)])
    bank.step(np.array([0.0]), None, 1.0)  # out = 4 + 0.4
    bank.retune(0, ti_s=math.inf)  # freeze integral growth to make the held value exact
    out_before = bank.step(np.array([0.0]), None, 1.0)[0]
    i_before = bank.components()["i"][0]
    for pv, ok in [(np.nan, True), (np.inf, True), (1.0, False)]:
        out = bank.step(np.array([pv]), np.array([ok]), 1.0)
        assert bank.pv_bad[0]
        assert out[0] == pytest.approx(out_before if policy == "hold" else expected)
        assert bank.components()["i"][0] == pytest.approx(i_before)


def test_first_sample_invalid_then_valid_gives_no_derivative_kick() -> None:
    bank = PidBank([PidSpec(kp=1.0, td_s=5.0, sp=0.0, out_lo=-100, out_hi=100)])
    bank.step(np.array([np.nan]), None, 1.0)
    out = bank.step(np.array([3.0]), None, 1.0)
    assert out[0] == pytest.approx(-3.0)  # P only: no derivative from the fictitious start value


@pytest.mark.parametrize("dt", [0.0, -1.0, math.nan, math.inf])
def test_bad_dt_changes_nothing(dt: float) -> None:
    bank = PidBank([PidSpec(kp=1.0, ti_s=5.0, sp=1.0, out_lo=-10, out_hi=10)])
    bank.step(np.zeros(1), None, 1.0)
    before = bank.components()
    bank.step(np.array([5.0]), None, dt)
    after = bank.components()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


def test_huge_dt_is_integrated_as_dt_max() -> None:
    bank = PidBank([PidSpec(kp=1.0, ti_s=100.0, sp=1.0, out_lo=-1e6, out_hi=1e6)], dt_max_s=10.0)
    bank.step(np.zeros(1), None, 1.0)
    i0 = bank.components()["i"][0]
    bank.step(np.zeros(1), None, 1e9)
    assert bank.components()["i"][0] - i0 == pytest.approx(1.0 * 10.0 / 100.0)


def test_retune_one_loop_without_bump_or_touching_others() -> None:
    specs = [PidSpec(kp=1.0, ti_s=50.0, b=0.5, sp=5.0, out_lo=-100, out_hi=100)] * 3
    bank = PidBank(specs)
    pv = np.array([1.0, 2.0, 3.0])
    for _ in range(5):
        bank.step(pv, None, 1.0)
    ref = PidBank(specs)
    for _ in range(5):
        ref.step(pv, None, 1.0)
    bank.retune(1, kp=4.0, b=1.0, deadband=0.2)
    assert bank.params("kp").tolist() == [1.0, 4.0, 1.0]
    out = bank.step(pv, None, 1e-9).copy()
    ref_out = ref.step(pv, None, 1e-9)
    # The retuned row continues exactly where the untouched reference goes (no bump) ...
    assert out[1] == pytest.approx(ref_out[1], abs=1e-9)
    np.testing.assert_array_equal(out[[0, 2]], ref_out[[0, 2]])


def test_retune_rejects_bad_values_and_keeps_old() -> None:
    bank = PidBank([PidSpec(kp=1.0)])
    with pytest.raises(ValueError, match="out_lo"):
        bank.retune(0, out_lo=200.0)
    with pytest.raises(ValueError, match="unknown"):
        bank.retune(0, gain=2.0)
    assert bank.params("out_lo")[0] == 0.0


def test_spec_validation_names_the_problem() -> None:
    with pytest.raises(ValueError, match="ti_s"):
        PidSpec(ti_s=0.0)
    with pytest.raises(ValueError, match="action"):
        PidSpec(action="sideways")  # type: ignore[arg-type]


def test_shape_errors() -> None:
    bank = PidBank([PidSpec()] * 3)
    with pytest.raises(ValueError, match="shape"):
        bank.step(np.zeros(4), None, 1.0)
    with pytest.raises(ValueError, match="pv_ok"):
        bank.step(np.zeros(3), np.ones(2, bool), 1.0)


def test_manual_output_is_applied_with_limits_and_rate() -> None:
    bank = PidBank([PidSpec(kp=1.0, mode="manual", out_lo=0, out_hi=50, out_rate_per_s=10.0)])
    bank.set_manual_output(0, 80.0)
    outs = [float(bank.step(np.zeros(1), None, 1.0)[0]) for _ in range(7)]
    assert outs == [10.0, 20.0, 30.0, 40.0, 50.0, 50.0, 50.0]


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_chunked_bank_equals_unchunked(chunk: int) -> None:
    rng = np.random.default_rng(1)
    n = 37
    specs = [PidSpec(kp=float(rng.uniform(0.1, 3)), ti_s=float(rng.uniform(5, 50)),
                     td_s=float(rng.uniform(0, 3)), b=0.7, c=0.2, deadband=0.05,
                     out_rate_per_s=5.0, sp_rate_per_s=1.0, sp=float(rng.uniform(-1, 1)),
                     out_lo=-20, out_hi=20, bad_pv="safe" if k % 2 else "hold") for k in range(n)]
    a, b = PidBank(specs, chunk=chunk), PidBank(specs, chunk=10_000)
    for _ in range(30):
        pv = rng.normal(size=n)
        pv[rng.random(n) < 0.1] = np.nan
        ok = rng.random(n) > 0.1
        ff = rng.normal(size=n)
        np.testing.assert_array_equal(a.step(pv, ok, 0.5, ff=ff), b.step(pv, ok, 0.5, ff=ff))
