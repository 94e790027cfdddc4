"""Composition: cascades, split ranges, sequencing, modes through the program."""

from __future__ import annotations

import numpy as np
import pytest

from controllers.pid import PidSpec
from controllers.program import Cascade, LoopSpec, compile_program, sequence, split_range
from tests.controllers.plants import FirstOrderPlant


def test_sequence_uses_each_stage_fully_before_the_next() -> None:
    loop = LoopSpec("do", pv="do_pct", pid=PidSpec(kp=0.0, mode="manual"))
    prog = compile_program([loop], splits=[sequence("do", [("agitation_rpm", 200, 1200),
                                                          ("air_flow_slpm", 1, 10),
                                                          ("o2_flow_slpm", 0, 5)])], n_reactors=5)
    demand = np.array([0.0, 100 / 6, 50.0, 500 / 6, 100.0])
    prog.set_manual_output("do", demand)
    res = prog.step(np.full((1, 5), 30.0), None, 1.0)
    a = res.actuators
    np.testing.assert_allclose(a["agitation_rpm"], [200, 700, 1200, 1200, 1200])
    np.testing.assert_allclose(a["air_flow_slpm"], [1, 1, 5.5, 10, 10])
    np.testing.assert_allclose(a["o2_flow_slpm"], [0, 0, 0, 2.5, 5])
    assert prog.actuator_names == ("agitation_rpm", "air_flow_slpm", "o2_flow_slpm")


def test_split_range_base_and_acid_never_both_on() -> None:
    loop = LoopSpec("ph", pv="ph", pid=PidSpec(kp=0.0, mode="manual", out_lo=-100, out_hi=100))
    prog = compile_program([loop], splits=[split_range("ph", ("acid_rate_l_per_h", 0.2),
                                                       ("base_rate_l_per_h", 0.4))], n_reactors=5)
    prog.set_manual_output("ph", np.array([-100.0, -50.0, 0.0, 50.0, 100.0]))
    a = prog.step(np.full((1, 5), 7.0), None, 1.0).actuators
    np.testing.assert_allclose(a["base_rate_l_per_h"], [0, 0, 0, 0.2, 0.4])
    np.testing.assert_allclose(a["acid_rate_l_per_h"], [0.2, 0.1, 0, 0, 0])


def make_cascade(n: int, inner_hi: float = 100.0):
    outer = LoopSpec("temp", pv="temperature_c", pid=PidSpec(kp=2.0, ti_s=200.0, sp=37.0, out_lo=-1e3, out_hi=1e3))
    inner = LoopSpec("jacket", pv="jacket_c", mv="heater_pct",
                     pid=PidSpec(kp=5.0, ti_s=20.0, out_lo=0.0, out_hi=inner_hi, sp_lo=10.0, sp_hi=60.0))
    return compile_program([inner, outer], cascades=[Cascade("temp", "jacket")], n_reactors=n)


def test_cascade_outer_output_is_inner_setpoint_same_step() -> None:
    prog = make_cascade(3)
    pv = np.array([[20.0, 25.0, 30.0], [30.0, 36.0, 37.0]])  # declared order: jacket, temp
    res = prog.step(pv, None, 1.0)
    comps = prog.components()
    np.testing.assert_allclose(comps["jacket"]["sp"], np.clip(res.mv[1], 10, 60))
    assert prog.stages[1].modes == ["cascade"] * 3
    # Master range is clamped to the slave's setpoint range.
    assert (res.mv[1] <= 60).all() and (res.mv[1] >= 10).all()


def test_cascade_closed_loop_reaches_setpoint() -> None:
    n = 4
    prog = make_cascade(n)
    jacket = FirstOrderPlant(1.0, 30.0, np.full(n, 20.0))   # heater % -> jacket temp
    vessel = FirstOrderPlant(1.0, 300.0, np.full(n, 20.0))  # jacket temp -> broth temp
    for _ in range(4000):
        res = prog.step(np.vstack([jacket.y, vessel.y]), None, 2.0)
        jacket.advance(res.actuators["heater_pct"] * 0.6, 2.0)
        vessel.advance(jacket.y, 2.0)
    np.testing.assert_allclose(vessel.y, 37.0, atol=0.05)


def test_saturated_slave_stops_master_windup() -> None:
    # Heater too weak to reach 37 C: slave saturates high, the master must not integrate on.
    n = 2
    prog = make_cascade(n)
    jacket = FirstOrderPlant(1.0, 30.0, np.full(n, 20.0))
    vessel = FirstOrderPlant(1.0, 300.0, np.full(n, 20.0))
    i_master = []
    for _ in range(3000):
        res = prog.step(np.vstack([jacket.y, vessel.y]), None, 2.0)
        jacket.advance(res.actuators["heater_pct"] * 0.3, 2.0)  # max jacket 30 C
        vessel.advance(jacket.y, 2.0)
        i_master.append(prog.components()["temp"]["i"].copy())
    assert (res.actuators["heater_pct"] == 100.0).all()
    # Over the last 1000 steps the error stays ~7 C, so an unblocked integrator would gain
    # Kp*dt/Ti*e*1000 = 140. Blocked, it only creeps when the slave touches its limit
    # from inside as the vessel settles (< 1 % of that).
    assert (37.0 - vessel.y > 5).all()
    late = np.array(i_master[-1000:])
    unblocked_gain = 2.0 * 2.0 / 200.0 * (37.0 - vessel.y) * 1000
    assert (np.ptp(late, axis=0) < 0.01 * unblocked_gain).all()


def test_slave_auto_to_cascade_and_back_is_bumpless() -> None:
    prog = make_cascade(2)
    pv = np.array([[30.0, 30.0], [36.0, 36.0]])
    prog.set_mode("jacket", "auto")
    prog.set_setpoint("jacket", 42.0)
    for _ in range(20):
        prog.step(pv, None, 1.0)
    # Master tracks the slave's setpoint while the slave is in auto.
    np.testing.assert_allclose(prog.components()["temp"]["out"], 42.0)
    before = prog.components()["jacket"]["sp"].copy()
    prog.set_mode("jacket", "cascade")
    prog.step(pv, None, 1e-6)
    np.testing.assert_allclose(prog.components()["jacket"]["sp"], before, atol=1e-3)
    prog.set_mode("jacket", "auto")
    prog.step(pv, None, 1e-6)
    np.testing.assert_allclose(prog.components()["jacket"]["sp"], before, atol=1e-3)


def test_per_reactor_mode_and_retune() -> None:
    prog = make_cascade(3)
    prog.set_mode("temp", "manual", reactor=1)
    prog.retune("jacket", reactor=2, kp=1.0)
    assert prog.stages[0].modes == ["auto", "manual", "auto"]
    assert prog.stages[1].params("kp").tolist() == [5.0, 5.0, 1.0]


@pytest.mark.parametrize("kwargs,match", [
    ({"cascades": [Cascade("a", "zzz")]}, "unknown loop"),
    ({"cascades": [Cascade("a", "b"), Cascade("b", "a")]}, "cycle"),
    ({"splits": [sequence("a", [("x", 0, 1)])]}, "both mv and a split"),
])
def test_compile_errors(kwargs: dict, match: str) -> None:
    loops = [LoopSpec("a", pv="p1", mv="x"), LoopSpec("b", pv="p2")]
    with pytest.raises(ValueError, match=match):
        compile_program(loops, **kwargs)


def test_step_shape_error_names_expected_shape() -> None:
    prog = make_cascade(2)
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        prog.step(np.zeros((2, 3)), None, 1.0)


def test_sequence_widths_allocate_output_share() -> None:
    sr = sequence("do", [("a", 0, 1), ("b", 0, 1), ("c", 0, 1)], widths=(2, 1, 3))
    assert [(m.u_lo, m.u_hi) for m in sr.maps] == [(0.0, pytest.approx(100 / 3)),
                                                   (pytest.approx(100 / 3), 50.0), (50.0, 100.0)]
    with pytest.raises(ValueError, match="widths"):
        sequence("do", [("a", 0, 1)], widths=(0,))
