"""Benchmark: vectorized stiff model of 1000 E. coli fed-batches vs SciPy LSODA one reactor at a time.

Scenario (open loop, no sensors): 15 g/L glucose batch with acetate overflow (glucose
depletion ~10.5 h, then acetate re-consumption; open-loop base from 8 to 14 h); at 16 h an
exponential glucose feed (mu_set 0.12 1/h) with ratio-dosed ammonia and stirrer/air stepped
up; the feed is capped at 0.1 L/h; induction at 34 h. DO falls as the density rises.
Output every 60 s of process time for 48 h.

Run: ``python bench/simulation.py [n_reactors]``. Prints ``RATIO``/``FIGURE`` lines.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

import numpy as np
from scipy.integrate import solve_ivp

from simulators.process import ecoli
from simulators.process.inputs import Inputs, take
from simulators.process.simulate import Segment, simulate
from simulators.process.vessel import VesselParams

HORIZON_S = 48 * 3600.0
OUTPUT_S = 60.0
RTOL = 3e-6
MAIN_STATES = ("biomass_g", "glucose_g", "acetate_g", "product_g", "volume_l", "ph", "temperature_c")
RECORDED = (*MAIN_STATES, "do_mmol_per_l")


def scenario(n: int) -> list[Segment]:
    def inputs(**kw: float) -> Inputs:
        base = {
            "feed_rate_l_per_h": 0.0, "base_rate_l_per_h": 0.0, "acid_rate_l_per_h": 0.0, "antifoam_rate_l_per_h": 0.0,
            "agitation_rpm": 600.0, "air_flow_slpm": 5.0, "o2_flow_slpm": 0.0, "jacket_temp_c": 37.0, "induction": 0.0,
            "foaming_per_h": 0.0, "cooling_failed": 0.0,
        }
        base.update(kw)
        other = {k: base.pop(k) for k in ("feed_growth_per_h", "base_per_feed_l_per_l") if k in base}
        return Inputs(**{k: np.full(n, float(v)) for k, v in base.items()}, **other)

    mu_set, x_v_g, f_max, t_feed_h = 0.12, 30.0, 0.1, 16.0
    f0 = (mu_set / ecoli.Y_XS_G_PER_G + ecoli.M_S_G_PER_G_H) * x_v_g / ecoli.S_F_G_PER_L
    t_cap_s = (t_feed_h + np.log(f_max / f0) / mu_set) * 3600.0
    fed = {"agitation_rpm": 1000.0, "air_flow_slpm": 10.0, "base_per_feed_l_per_l": 0.25, "jacket_temp_c": 35.0}
    return [
        Segment(0.0, inputs()),
        Segment(8 * 3600.0, inputs(base_rate_l_per_h=0.006)),  # open-loop base for the late-batch acid
        Segment(14 * 3600.0, inputs()),
        Segment(t_feed_h * 3600.0, inputs(feed_rate_l_per_h=f0, feed_growth_per_h=mu_set, **fed)),
        Segment(t_cap_s, inputs(feed_rate_l_per_h=f_max, **fed)),
        Segment(34 * 3600.0, inputs(feed_rate_l_per_h=f_max, induction=1.0, **fed)),
    ]


def lsoda_one(y0: np.ndarray, k: ecoli.Kinetics, segs: list[Segment], t_out: np.ndarray, rtol: float, atol: np.ndarray) -> np.ndarray:
    """The same RHS for one reactor through scipy's LSODA, restarted at each segment."""
    vp = VesselParams()
    y = y0[:, 0].copy()
    out = np.empty((t_out.size, y.size))
    for i, seg in enumerate(segs):
        a = seg.start_s / 3600.0
        b = (segs[i + 1].start_s if i + 1 < len(segs) else t_out[-1]) / 3600.0
        u = seg.inputs
        if np.any(np.asarray(u.feed_growth_per_h) != 0.0):
            u = replace(u, feed_total_at_start_l=np.array([y[ecoli.IV + 5]]))

        def f(_t: float, yy: np.ndarray, u: Inputs = u) -> np.ndarray:
            return ecoli.rhs(yy[:, None], u, k, vp, False)[0][:, 0]

        sel = (t_out / 3600.0 > a) & (t_out / 3600.0 <= b)
        sol = solve_ivp(f, (a, b), y, method="LSODA", t_eval=t_out[sel] / 3600.0, rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(sol.message)
        out[sel] = sol.y.T
        y = sol.y[:, -1] if sel.any() and np.isclose(sol.t[-1], b) else solve_ivp(f, (a, b), y, method="LSODA", rtol=rtol, atol=atol).y[:, -1]
    return out


def main(n: int = 1000, n_baseline: int = 3, n_reference: int = 2, repeats: int = 3) -> None:
    vp = VesselParams()
    rng = np.random.default_rng(0)
    y0 = ecoli.initial_state(n, vp, rng)
    k = ecoli.random_kinetics(n, rng)
    segs = scenario(n)
    t_out = np.arange(1, int(HORIZON_S / OUTPUT_S) + 1) * OUTPUT_S
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        traj = simulate(ecoli.MODEL, y0, k, segs, t_out, vessel_params=vp, rtol=RTOL, record=RECORDED)
        walls.append(time.perf_counter() - t0)
    wall = float(np.median(walls))
    print(f"vectorized ROS34PW2 (rtol {RTOL:g}): {n} reactors x 48 h, {t_out.size} outputs each: median {wall:.3f} s over {repeats}, {traj.steps} vector steps")
    walls_end = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        simulate(ecoli.MODEL, y0, k, segs, t_out[-1:], vessel_params=vp, rtol=RTOL)
        walls_end.append(time.perf_counter() - t0)
    wall_end = float(np.median(walls_end))
    print(f"  same run recording only the end state: median {wall_end:.3f} s (the 1-min record costs {wall - wall_end:.2f} s)")

    atol = ecoli.ATOL[:, 0]
    lanes = np.linspace(0, n - 1, n_baseline).astype(int)
    lsoda_walls = []
    for r in lanes:
        segs_r = [Segment(s.start_s, take(s.inputs, [r])) for s in segs]
        t0 = time.perf_counter()
        lsoda_one(y0[:, [r]], k.take(np.array([r])), segs_r, t_out, 1e-6, atol)
        lsoda_walls.append(time.perf_counter() - t0)
    per_reactor = float(np.median(lsoda_walls))
    print(f"scipy LSODA (rtol 1e-6, same RHS, one reactor at a time): median {per_reactor:.3f} s per reactor, x{n} = {per_reactor * n:.1f} s")

    max_err = do_err = lsoda_err = 0.0
    print("tight reference: LSODA rtol 1e-10 (checked against Radau); errors relative to each state's largest value in the run")
    for r in lanes[:n_reference]:
        segs_r = [Segment(s.start_s, take(s.inputs, [r])) for s in segs]
        ref = lsoda_one(y0[:, [r]], k.take(np.array([r])), segs_r, t_out, 1e-10, atol * 1e-4)
        base = lsoda_one(y0[:, [r]], k.take(np.array([r])), segs_r, t_out, 1e-6, atol)
        for j, name in enumerate(RECORDED):
            # Relative to the state's scale over the run: glucose sits near zero under feed limitation.
            ref_i = ref[:, ecoli.STATES.index(name)]
            scale = np.max(np.abs(ref_i))
            err = float(np.max(np.abs(traj.y[:, j, r] - ref_i)) / scale)
            print(f"  reactor {r} {name:14s} max rel err {err:.2e} (scale {scale:.4g})")
            if name == "do_mmol_per_l":
                do_err = max(do_err, err)
            else:
                max_err = max(max_err, err)
                lsoda_err = max(lsoda_err, float(np.max(np.abs(base[:, ecoli.STATES.index(name)] - ref_i)) / scale))
    final = traj.y_end
    conc = lambda row: final[ecoli.STATES.index(row)] / final[ecoli.STATES.index("volume_l")]  # noqa: E731
    print(f"end of run (median over reactors): X {np.median(conc('biomass_g')):.1f} g/L, acetate {np.median(conc('acetate_g')):.2f} g/L, "
          f"titre {np.median(conc('product_g')):.2f} g/L, V {np.median(final[ecoli.STATES.index('volume_l')]):.2f} L")
    print(f"RATIO sim_vs_lsoda {per_reactor * n / wall:.1f}")
    print(f"FIGURE sim_max_rel_err {max_err:.3e}  (biomass, glucose, acetate, product, volume, pH, T)")
    print(f"FIGURE sim_do_max_rel_err {do_err:.3e}")
    print(f"FIGURE lsoda_1e-6_max_rel_err {lsoda_err:.3e}")
    print(f"FIGURE sim_realtime_factor_{n} {HORIZON_S / wall:.0f}")
    print(f"FIGURE sim_realtime_factor_{n}_end_state_only {HORIZON_S / wall_end:.0f}")
    print(f"FIGURE sim_wall_s_{n} {wall:.3f}")
    print(f"FIGURE lsoda_wall_s_per_reactor {per_reactor:.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
