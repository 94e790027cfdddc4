"""Closed loop against the simulated E. coli plant, in-process and in lock-step.

read -> one program step for all loops of all reactors -> write -> advance(dt). The batch
starts with a large inoculum so that batch end (detected from the OUR collapse) and about
three hours of exponential feeding fit in a fast test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

process = pytest.importorskip("simulators.process")

from controllers import (LoopSpec, OurDropTrigger, FeedTotaliser, PidSpec, compile_program,  # noqa: E402
                         exponential_feed_l_per_h, sequence, split_range)

N_REACTORS = 4
DT_S = 10.0
T_END_S = 5.0 * 3600
RTOL = 1e-4  # plant integrator tolerance: ample for control, 3x faster than the default
X0_G_PER_L, S0_G_PER_L, V0_L = 3.0, 10.0, 5.5
Y_XS, M_S, S_F, MU_SET = 0.51, 0.04, 500.0, 0.25  # recipe values for the exponential feed
AGITATION = ("agitation_rpm", 300.0, 700.0)
AIR = ("air_flow_slpm", 2.0, 5.0)
O2 = ("o2_flow_slpm", 0.0, 2.0)
STAGE_WIDTHS = (2.0, 1.0, 3.0)  # O2 enrichment has the steepest effect per slpm


@dataclass
class Run:
    t_s: np.ndarray            # (steps,)
    pv: dict[str, np.ndarray]  # name -> (steps, n)
    act: dict[str, np.ndarray]
    feed_start_s: np.ndarray   # (n,)


def program(n: int):
    loops = [
        LoopSpec("do", pv="do_pct", sp_tag="do_sp_pct",
                 pid=PidSpec(kp=1.5, ti_s=60.0, out_lo=0.0, out_hi=100.0, sp=30.0, out0=20.0)),
        LoopSpec("ph", pv="ph", sp_tag="ph_sp",
                 pid=PidSpec(kp=300.0, ti_s=300.0, out_lo=-100.0, out_hi=100.0, sp=7.0)),
        # Jacket = setpoint (fed forward) + PID correction; limits are the TCU range.
        LoopSpec("temperature", pv="temperature_c", mv="jacket_temp_c", sp_tag="temperature_sp_c",
                 pid=PidSpec(kp=15.0, ti_s=300.0, out_lo=4.0, out_hi=80.0, sp=37.0)),
    ]
    return compile_program(loops, splits=[sequence("do", [AGITATION, AIR, O2], widths=STAGE_WIDTHS),
                                          split_range("ph", ("acid_rate_l_per_h", 0.3), ("base_rate_l_per_h", 0.3))],
                           n_reactors=n)


@pytest.fixture(scope="module")
def run() -> Run:
    return simulate()


def simulate() -> Run:
    """The lock-step scenario (also usable from a REPL to look at the trajectories)."""
    plant = process.make_plant("ecoli", N_REACTORS, seed=3, rtol=RTOL, biomass_g_per_l=X0_G_PER_L,
                               glucose_g_per_l=S0_G_PER_L)
    prog = program(N_REACTORS)
    trigger = OurDropTrigger(N_REACTORS, drop_fraction=0.6)
    pump = FeedTotaliser.create(N_REACTORS, pump_max_l_per_h=1.0, total_max_l=4.0, volume_max_l=9.5,
                                pump_rate_l_per_h_per_s=0.001)
    names = ("do_pct", "ph", "temperature_c")
    sp_names = ("do_sp_pct", "ph_sp", "temperature_sp_c")
    ts, pvs, acts = [], {k: [] for k in names}, {}
    while plant.time_s < T_END_S:
        r = plant.read()
        v, good, t = r.values, r.good, r.time_s
        ff = np.zeros((3, N_REACTORS))
        ff[2] = v["temperature_sp_c"]
        res = prog.step(np.vstack([v[k] for k in names]), np.vstack([good[k] for k in names]), DT_S,
                        sp=np.vstack([v[k] for k in sp_names]), ff=ff)
        trigger.update(t, v["our_mmol_per_l_h"], good["our_mmol_per_l_h"])
        demand = exponential_feed_l_per_h(t, trigger.t_start_s, MU_SET, Y_XS, M_S,
                                          X0_G_PER_L + Y_XS * S0_G_PER_L, V0_L, S_F)
        res.actuators["feed_rate_l_per_h"] = pump.step(demand, v["volume_l"], DT_S)
        for name, value in res.actuators.items():
            plant.write(name, value)
        plant.advance(DT_S)
        ts.append(t)
        for k in names:
            pvs[k].append(v[k])
        for k, a in res.actuators.items():
            acts.setdefault(k, []).append(a)
    return Run(np.array(ts), {k: np.array(x) for k, x in pvs.items()},
               {k: np.array(x) for k, x in acts.items()}, trigger.t_start_s.copy())


def fed_batch_window(run: Run) -> np.ndarray:
    """(steps, n) mask: exponential feed running, first 30 min of transients excluded."""
    return run.t_s[:, None] >= run.feed_start_s[None, :] + 1800.0


def test_feed_started_at_batch_end_and_ran_hours(run: Run) -> None:
    assert np.isfinite(run.feed_start_s).all()
    assert ((T_END_S - run.feed_start_s) > 2.5 * 3600).all()
    feed = run.act["feed_rate_l_per_h"]
    # The pump follows the exponential law (within the rate-limited start-up).
    late = run.t_s >= run.feed_start_s.max() + 1800
    expected = exponential_feed_l_per_h(run.t_s[late, None], run.feed_start_s, MU_SET, Y_XS, M_S,
                                        X0_G_PER_L + Y_XS * S0_G_PER_L, V0_L, S_F)
    np.testing.assert_allclose(feed[late], expected, rtol=1e-9)


@pytest.mark.parametrize("signal,sp,tol", [("do_pct", 30.0, 5.0), ("ph", 7.0, 0.05), ("temperature_c", 37.0, 0.2)])
def test_loops_hold_setpoints_during_exponential_feed(run: Run, signal: str, sp: float, tol: float) -> None:
    window = fed_batch_window(run)
    assert window.sum(axis=0).min() * DT_S > 2 * 3600  # hours of data per reactor
    err = np.abs(run.pv[signal][window] - sp)
    assert err.max() <= tol, f"{signal}: max |error| {err.max():.3f} > {tol}"


def test_do_cascade_sequences_agitation_then_air_then_o2(run: Run) -> None:
    agit, air, o2 = (run.act[k] for k in ("agitation_rpm", "air_flow_slpm", "o2_flow_slpm"))
    eps = 1e-9
    # Air only above its minimum once agitation is at maximum; O2 only once air is at maximum.
    assert (agit[air > AIR[1] + eps] >= AGITATION[2] - eps).all()
    assert (air[o2 > O2[1] + eps] >= AIR[2] - eps).all()
    # ... and every stage was actually reached in every reactor as the demand grew.
    assert (agit.max(axis=0) >= AGITATION[2] - eps).all()
    assert (air.max(axis=0) >= AIR[2] - eps).all()
    assert (o2.max(axis=0) > O2[1] + 0.1).all()
    first = lambda a, lvl: np.argmax(a > lvl, axis=0)  # noqa: E731
    assert (first(agit, AGITATION[1] + 1) < first(air, AIR[1] + 0.01)).all()
    assert (first(air, AIR[1] + 0.01) < first(o2, O2[1] + 0.01)).all()
