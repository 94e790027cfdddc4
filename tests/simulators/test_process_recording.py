"""Dense-output recording of :func:`simulate` against runs that stop at every grid point."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.process import ecoli
from simulators.process.inputs import Inputs, take
from simulators.process.integrate import integrate
from simulators.process.simulate import Segment, simulate
from simulators.process.vessel import VesselParams

N_REACTORS = 4
GRID_S = 60.0
HORIZON_S = 3 * 3600.0
FEED_START_S = 1.5 * 3600.0
RECORDED = ("biomass_g", "glucose_g", "acetate_g", "volume_l", "ph", "temperature_c", "do_mmol_per_l")


def _inputs(**kw: float) -> Inputs:
    base = {
        "feed_rate_l_per_h": 0.0, "base_rate_l_per_h": 0.0, "acid_rate_l_per_h": 0.0, "antifoam_rate_l_per_h": 0.0,
        "agitation_rpm": 600.0, "air_flow_slpm": 5.0, "o2_flow_slpm": 0.0, "jacket_temp_c": 37.0, "induction": 0.0,
        "foaming_per_h": 0.0, "cooling_failed": 0.0,
    }
    base.update(kw)
    return Inputs(**{k: np.full(N_REACTORS, v) for k, v in base.items()})


@pytest.fixture(scope="module")
def case() -> tuple[np.ndarray, ecoli.Kinetics, list[Segment]]:
    rng = np.random.default_rng(3)
    y0 = ecoli.initial_state(N_REACTORS, VesselParams(), rng)
    kinetics = ecoli.random_kinetics(N_REACTORS, rng)
    segments = [Segment(0.0, _inputs()), Segment(FEED_START_S, _inputs(feed_rate_l_per_h=0.05, agitation_rpm=900.0))]
    return y0, kinetics, segments


def _stop_at_every_grid_point(y0: np.ndarray, kinetics: ecoli.Kinetics, segments: list[Segment], rtol: float) -> np.ndarray:
    """``(n_grid, n_states, n_reactors)``: integrate from grid point to grid point (no dense output)."""
    vp = VesselParams()
    y, h = y0.copy(), np.full(N_REACTORS, 10.0 / 3600.0)
    grid = np.arange(1, int(HORIZON_S / GRID_S) + 1) * GRID_S
    out = np.empty((grid.size, *y0.shape))
    for k, t in enumerate(grid):
        u = segments[1].inputs if t > FEED_START_S else segments[0].inputs
        if t - GRID_S == FEED_START_S:
            h = np.minimum(h, 10.0 / 3600.0)
        rhs = lambda yy, jac, u=u: ecoli.rhs(yy, u, kinetics, vp, jac)  # noqa: E731
        y, h, _ = integrate(rhs, y, GRID_S / 3600.0, h, rtol=rtol, atol=ecoli.ATOL * rtol / 1e-6, h_max=0.5)
        out[k] = y
    return out


def test_recorded_grid_matches_a_run_stopping_at_each_grid_point(case: tuple[np.ndarray, ecoli.Kinetics, list[Segment]]) -> None:
    y0, kinetics, segments = case
    grid = np.arange(1, int(HORIZON_S / GRID_S) + 1) * GRID_S
    traj = simulate(ecoli.MODEL, y0, kinetics, segments, grid, rtol=3e-6, record=RECORDED)
    ref = _stop_at_every_grid_point(y0, kinetics, segments, rtol=1e-9)
    rows = [ecoli.STATES.index(name) for name in RECORDED]
    assert traj.y.shape == (grid.size, len(RECORDED), N_REACTORS)
    assert np.all(np.isfinite(traj.y))
    # Relative to each state's largest value over the run, as the benchmark scores it.
    scale = np.max(np.abs(ref[:, rows]), axis=0, keepdims=True)
    err = np.max(np.abs(traj.y - ref[:, rows]) / scale, axis=(0, 2))
    do = RECORDED.index("do_mmol_per_l")
    assert float(np.max(np.delete(err, do))) < 1e-4, dict(zip(RECORDED, err))
    # Dissolved O2 is stiff and quasi-steady: the benchmark scores it separately, looser.
    assert err[do] < 5e-4
    np.testing.assert_allclose(traj.y[-1], traj.y_end[rows], rtol=1e-12)


def test_dropping_finished_reactors_does_not_change_the_result(case: tuple[np.ndarray, ecoli.Kinetics, list[Segment]]) -> None:
    y0, kinetics, segments = case
    vp = VesselParams()
    u = segments[0].inputs
    rhs = lambda yy, jac: ecoli.rhs(yy, u, kinetics, vp, jac)  # noqa: E731

    subsets: list[np.ndarray] = []

    def restrict(lanes: np.ndarray):  # noqa: ANN202
        subsets.append(lanes)
        k_sub, u_sub = kinetics.take(lanes), take(u, lanes)
        return lambda yy, jac: ecoli.rhs(yy, u_sub, k_sub, vp, jac)

    t_out = np.arange(1, 61) / 60.0
    kw = {"rtol": 1e-6, "atol": ecoli.ATOL, "h_max": 0.5, "t_out": t_out, "record_rows": np.arange(len(ecoli.STATES))}
    outs = [np.full((t_out.size, N_REACTORS, len(ecoli.STATES)), np.nan) for _ in range(2)]
    # Reactor 0 starts with much smaller steps, so it runs alone at the end.
    h0 = np.array([1e-6, 1e-2, 1e-2, 1e-2])
    plain = integrate(rhs, y0, 1.0, h0, out=outs[0], **kw)
    compact = integrate(rhs, y0, 1.0, h0, out=outs[1], restrict=restrict, **kw)
    assert subsets, "no reactor finished early: the test does not exercise the working-set shrink"
    np.testing.assert_array_equal(plain[0], compact[0])
    np.testing.assert_array_equal(plain[1], compact[1])
    np.testing.assert_array_equal(outs[0], outs[1])
