"""Open-loop simulation of many reactors over a horizon, recorded on a time grid.

For recipes and benchmarks: inputs are piecewise constant (or exponential feeds) over
known segments, so the integrator can take long steps and record the grid by dense
output instead of restarting at every grid point as :meth:`Fermenter.advance` must.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from simulators.process.inputs import Inputs, take
from simulators.process.integrate import integrate
from simulators.process.model import ProcessModel
from simulators.process.vessel import VesselParams

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Segment:
    """Inputs that hold from ``start_s`` until the next segment (or the end)."""

    start_s: float
    inputs: Inputs


@dataclass(frozen=True)
class Trajectory:
    """``y[k, i, r]``: recorded state ``rows[i]`` of reactor ``r`` at ``t_s[k]``; ``steps`` vector steps taken."""

    t_s: FloatArray
    y: FloatArray
    rows: tuple[int, ...]
    steps: int
    y_end: FloatArray


def simulate(
    model: ProcessModel,
    y0: FloatArray,
    kinetics: Any,
    segments: Sequence[Segment],
    t_out_s: FloatArray,
    *,
    vessel_params: VesselParams = VesselParams(),
    rtol: float = 1e-6,
    h_max_s: float = 1800.0,
    record: Sequence[str] | None = None,
) -> Trajectory:
    """Integrate all reactors (columns of ``y0``, shape ``(n_states, n)``) through ``segments``.

    ``t_out_s`` (sorted, > 0, s) is where the state is recorded. An exponential-feed
    segment (``feed_growth_per_h`` != 0) grows from its ``feed_rate_l_per_h`` at the
    segment start. ``record`` names the states to keep (default all): 1000 reactors x
    2880 points x 17 states would be 0.4 GB.
    """
    y = np.array(y0, dtype=np.float64, copy=True)
    if y.ndim != 2 or y.shape[0] != len(model.states) or not np.all(np.isfinite(y)):
        raise ValueError(f"y0 must be finite with shape ({len(model.states)}, n), got {y.shape}")
    t_out = np.asarray(t_out_s, dtype=np.float64)
    if t_out.ndim != 1 or np.any(np.diff(t_out) < 0) or (t_out.size and t_out[0] <= 0):
        raise ValueError("t_out_s must be sorted and > 0")
    starts = [s.start_s for s in segments]
    if not starts or starts[0] != 0.0 or np.any(np.diff(starts) <= 0):
        raise ValueError("segments must start at 0 and be strictly increasing")
    t_end = float(t_out[-1])
    rows = tuple(range(len(model.states))) if record is None else tuple(model.states.index(r) for r in record)
    # Reactor-major storage: a step of one reactor covers consecutive grid points, so its
    # records land in one contiguous block; integrate() writes through a (time, reactor,
    # state) view.
    store = np.empty((y.shape[1], t_out.size, len(rows)))
    # Touching the pages once, in order, is cheaper than faulting them in from the scattered
    # writes, and leaves any grid point the integrator missed visible as NaN.
    store.fill(np.nan)
    out = store.transpose(1, 0, 2)
    h = np.full(y.shape[1], 10.0 / 3600.0)
    steps = 0
    feed_total_row = model.vessel_row + 5
    # Dropping finished reactors from the working set needs every per-reactor input and
    # kinetic parameter to be one value per reactor (or shared).
    n_reactors = y.shape[1]
    per_reactor = hasattr(kinetics, "take") and all(
        np.ndim(v) == 0 or np.shape(v) == (n_reactors,)
        for v in [*vars(kinetics).values(), *(w for seg in segments for w in vars(seg.inputs).values())]
    )
    for i, seg in enumerate(segments):
        a = seg.start_s
        b = min(segments[i + 1].start_s if i + 1 < len(segments) else t_end, t_end)
        if b <= a:
            continue
        # Inputs jump here: restart small so the fast DO transient is resolved and the
        # dense output inside the first steps is accurate.
        h = np.minimum(h, 10.0 / 3600.0)
        u = seg.inputs
        if np.any(np.asarray(u.feed_growth_per_h) != 0.0):
            u = replace(u, feed_total_at_start_l=y[feed_total_row].copy())
        sel = (t_out > a) & (t_out <= b)
        lo = int(np.argmax(sel)) if sel.any() else 0
        n_sel = int(sel.sum())

        def restrict(lanes: npt.NDArray[np.intp], u: Inputs = u) -> Any:
            u_sub, k_sub = take(u, lanes), kinetics.take(lanes)
            return lambda yy, jac: model.rhs(yy, u_sub, k_sub, vessel_params, jac)

        y, h, n = integrate(
            lambda yy, jac, u=u: model.rhs(yy, u, kinetics, vessel_params, jac),
            y,
            (b - a) / 3600.0,
            h,
            rtol=rtol,
            atol=model.atol,
            h_max=h_max_s / 3600.0,
            t_out=(t_out[sel] - a) / 3600.0 if n_sel else None,
            out=out[lo : lo + n_sel] if n_sel else None,  # a view: written in place
            record_rows=np.asarray(rows, dtype=np.intp),
            restrict=restrict if per_reactor else None,
        )
        steps += n
    return Trajectory(t_out, store.transpose(1, 2, 0), rows, steps, y)
