"""Property-based tests of the PID bank (hypothesis)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from hypothesis import given, settings, strategies as st

from controllers.pid import PidBank, PidSpec
from tests.controllers.plants import FirstOrderPlant

N = 4
DT_MAX = 30.0
wild_float = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                       st.floats(-1e3, 1e3))
wild_dt = st.one_of(st.sampled_from([0.0, -1.0, math.nan, math.inf, 1e300, 1e-300]),
                    st.floats(1e-3, 100.0))


@st.composite
def specs(draw: st.DrawFn) -> PidSpec:
    lo = draw(st.floats(-100, 100))
    hi = lo + draw(st.floats(0, 200))
    return PidSpec(
        kp=draw(st.floats(0, 50)), ti_s=draw(st.sampled_from([math.inf, 0.1, 5.0, 100.0])),
        td_s=draw(st.sampled_from([0.0, 0.5, 10.0])), b=draw(st.floats(0, 1)), c=draw(st.floats(0, 1)),
        out_lo=lo, out_hi=hi, out_rate_per_s=draw(st.sampled_from([math.inf, 0.1, 5.0])),
        sp_rate_per_s=draw(st.sampled_from([math.inf, 0.5])), deadband=draw(st.sampled_from([0.0, 0.3])),
        action=draw(st.sampled_from(["reverse", "direct"])), bad_pv=draw(st.sampled_from(["hold", "safe"])),
        safe_out=draw(st.floats(lo, hi)), sp=draw(st.floats(-50, 50)), out0=draw(st.floats(lo, hi)),
        mode=draw(st.sampled_from(["auto", "manual"])))


steps = st.lists(st.tuples(st.lists(wild_float, min_size=N, max_size=N),
                           st.lists(st.booleans(), min_size=N, max_size=N),
                           wild_dt, st.lists(wild_float, min_size=N, max_size=N)),
                 min_size=1, max_size=25)


@settings(max_examples=150, deadline=None)
@given(st.lists(specs(), min_size=N, max_size=N), steps)
def test_outputs_stay_in_limits_and_rate(spec_list: list[PidSpec], seq: list) -> None:
    bank = PidBank(spec_list, dt_max_s=DT_MAX)
    lo = np.array([s.out_lo for s in spec_list])
    hi = np.array([s.out_hi for s in spec_list])
    rate = np.array([s.out_rate_per_s for s in spec_list])
    prev = bank.out.copy()
    for pv, ok, dt, ff in seq:
        out = bank.step(np.array(pv), np.array(ok), dt, ff=np.array(ff)).copy()
        assert np.isfinite(out).all()
        assert (out >= lo).all() and (out <= hi).all()
        eff_dt = min(dt, DT_MAX) if (dt > 0 and math.isfinite(dt)) else 0.0
        allowed = rate * eff_dt if eff_dt > 0 else np.zeros(N)
        assert (np.abs(out - prev) <= allowed * (1 + 1e-9) + 1e-9).all()
        prev = out


@settings(max_examples=150, deadline=None)
@given(st.lists(specs(), min_size=N, max_size=N),
       st.lists(st.floats(-100, 100), min_size=N, max_size=N),
       st.integers(1, 20), st.sampled_from(["manual", "auto"]))
def test_mode_switch_never_bumps(spec_list: list[PidSpec], pv_list: list[float], warmup: int,
                                 new_mode: str) -> None:
    # Equal dt everywhere except the switch step, which is tiny: without a bump the output
    # can only move by O(dt); a bumping implementation jumps by P + D at once.
    old_mode = "auto" if new_mode == "manual" else "manual"
    bank = PidBank([replace(sp, mode=old_mode) for sp in spec_list])
    pv = np.array(pv_list)
    for _ in range(warmup):
        bank.step(pv, None, 1.0)
    before = bank.out.copy()
    comps = bank.components()
    bank.set_mode(None, new_mode)  # type: ignore[arg-type]
    dt = 1e-7
    out = bank.step(pv, None, dt)
    kp = np.array([s.kp for s in spec_list])
    ti = np.array([s.ti_s for s in spec_list])
    tf = np.array([s.td_s / s.deriv_filter_n if s.td_s > 0 else np.inf for s in spec_list])
    e = np.abs(bank.sp_eff - pv) + 1.0
    bound = dt * (kp * e / ti + np.abs(comps["d"]) / tf) + 1e-9 * (1 + np.abs(before))
    assert (np.abs(out - before) <= bound).all()
    assert bank.modes == [new_mode] * N


def naive_pi(kp: float, ti: float, lo: float, hi: float):
    """The same PI law with output clamping only (no anti-windup): the baseline."""
    state = {"i": 0.0}

    def step(e: float, dt: float) -> float:
        state["i"] += kp * dt / ti * e
        return min(max(kp * e + state["i"], lo), hi)
    return step


@settings(max_examples=60, deadline=None)
@given(st.floats(0.5, 5.0), st.floats(5.0, 60.0), st.integers(100, 400))
def test_anti_windup_recovers_faster_than_without(kp: float, ti: float, saturated_steps: int) -> None:
    # Setpoint unreachable (plant gain limits y to 10) for a while, then back in range:
    # the loop with anti-windup leaves saturation and reaches the new setpoint sooner.
    dt, lo, hi = 1.0, 0.0, 10.0
    bank = PidBank([PidSpec(kp=kp, ti_s=ti, out_lo=lo, out_hi=hi, sp=20.0)])
    naive = naive_pi(kp, ti, lo, hi)
    pa, pb = FirstOrderPlant(1.0, 10.0, [0.0]), FirstOrderPlant(1.0, 10.0, [0.0])
    for _ in range(saturated_steps):
        pa.advance(bank.step(pa.y, None, dt), dt)
        pb.advance(np.array([naive(20.0 - pb.y[0], dt)]), dt)
    bank.set_setpoint(0, 5.0)

    def settle_time(step_fn, plant) -> int:
        for k in range(5000):
            plant.advance(step_fn(plant), dt)
            if abs(plant.y[0] - 5.0) < 0.25:
                return k
        return 5000
    t_aw = settle_time(lambda p: bank.step(p.y, None, dt), pa)
    t_naive = settle_time(lambda p: np.array([naive(5.0 - p.y[0], dt)]), pb)
    assert t_aw < t_naive
