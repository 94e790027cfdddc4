"""Feed strategies for fed-batch cultivation, vectorized across reactors.

Every function takes arrays of shape ``(n_reactors,)`` (or scalars that broadcast) and
returns feed rates in L/h. Time is process time in seconds; specific rates are per hour,
as bioprocess recipes state them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from controllers.pid import PidSpec

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
ArrayLike = npt.ArrayLike


def _finite(name: str, x: ArrayLike) -> FloatArray:
    a = np.asarray(x, dtype=np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite")
    return a


def exponential_feed_l_per_h(t_s: ArrayLike, t0_s: ArrayLike, mu_set_per_h: ArrayLike,
                             y_xs_g_per_g: ArrayLike, m_s_g_per_g_h: ArrayLike,
                             x0_g_per_l: ArrayLike, v0_l: ArrayLike,
                             s_f_g_per_l: ArrayLike) -> FloatArray:
    """Exponential feed for a constant specific growth rate.

    ``F(t) = (mu_set / Y_xs + m_s) * X0 * V0 * exp(mu_set * (t - t0)) / S_f`` for ``t >= t0``,
    0 before ``t0`` (or while ``t0`` is NaN: feed not started yet).

    Parameters
    ----------
    t_s : float or ndarray (n,)
        Process time, s.
    t0_s : ndarray (n,)
        Feed start per reactor, s; NaN = not started.
    mu_set_per_h : ndarray (n,)
        Target specific growth rate, 1/h (below mu_max so substrate stays limiting).
    y_xs_g_per_g : ndarray (n,)
        Biomass yield on substrate, g X / g S.
    m_s_g_per_g_h : ndarray (n,)
        Maintenance coefficient, g S / (g X h).
    x0_g_per_l, v0_l : ndarray (n,)
        Biomass concentration (g/L) and broth volume (L) at ``t0``.
    s_f_g_per_l : ndarray (n,)
        Substrate concentration in the feed, g/L.

    Returns
    -------
    ndarray (n,)
        Feed rate, L/h.
    """
    mu = _finite("mu_set_per_h", mu_set_per_h)
    y = _finite("y_xs_g_per_g", y_xs_g_per_g)
    if np.any(y <= 0):
        raise ValueError("y_xs_g_per_g must be > 0")
    sf = _finite("s_f_g_per_l", s_f_g_per_l)
    if np.any(sf <= 0):
        raise ValueError("s_f_g_per_l must be > 0")
    return _exponential_feed_impl(np.asarray(t_s, np.float64), np.asarray(t0_s, np.float64), mu,
                                  y, _finite("m_s", m_s_g_per_g_h), _finite("x0", x0_g_per_l),
                                  _finite("v0", v0_l), sf)


def _exponential_feed_impl(t: FloatArray, t0: FloatArray, mu: FloatArray, y: FloatArray,
                           ms: FloatArray, x0: FloatArray, v0: FloatArray, sf: FloatArray) -> FloatArray:
    elapsed_h = (t - t0) / 3600.0
    started = elapsed_h >= 0.0  # False for NaN t0
    rate = (mu / y + ms) * x0 * v0 * np.exp(mu * np.where(started, elapsed_h, 0.0)) / sf
    return np.where(started, rate, 0.0)


def biomass_feed_l_per_h(x_g_per_l: ArrayLike, v_l: ArrayLike, mu_set_per_h: ArrayLike,
                         y_xs_g_per_g: ArrayLike, m_s_g_per_g_h: ArrayLike,
                         s_f_g_per_l: ArrayLike) -> FloatArray:
    """Feed that sustains ``mu_set`` for the biomass actually present (estimator feedback).

    ``F = (mu_set / Y_xs + m_s) * X * V / S_f``: the exponential feed with the open-loop
    ``X0 V0 exp(mu_set (t - t0))`` replaced by an online biomass estimate ``X V``, so a
    wrong X0 or yield does not accumulate over hours of feeding. Shapes (n,), L/h.
    """
    y = _finite("y_xs_g_per_g", y_xs_g_per_g)
    sf = _finite("s_f_g_per_l", s_f_g_per_l)
    x = np.asarray(x_g_per_l, np.float64)
    rate = (_finite("mu_set_per_h", mu_set_per_h) / y + _finite("m_s", m_s_g_per_g_h)) * x \
        * _finite("v_l", v_l) / sf
    return np.where(np.isfinite(rate) & (rate > 0), rate, 0.0)


def linear_feed_l_per_h(t_s: ArrayLike, t0_s: ArrayLike, f0_l_per_h: ArrayLike,
                        slope_l_per_h2: ArrayLike) -> FloatArray:
    """``F = f0 + slope * (t - t0)`` (hours) after ``t0``, 0 before; never negative. Shapes (n,)."""
    elapsed_h = (np.asarray(t_s, np.float64) - np.asarray(t0_s, np.float64)) / 3600.0
    rate = np.asarray(f0_l_per_h, np.float64) + np.asarray(slope_l_per_h2, np.float64) * elapsed_h
    return np.where(elapsed_h >= 0.0, np.maximum(rate, 0.0), 0.0)


def piecewise_feed_l_per_h(t_s: ArrayLike, t0_s: ArrayLike, profile_t_h: ArrayLike,
                           profile_l_per_h: ArrayLike) -> FloatArray:
    """Piecewise-linear feed profile (hours after ``t0`` -> L/h), shared by all reactors.

    Holds the last value after the profile ends; 0 before ``t0``. Returns shape (n,).
    """
    th = np.asarray(profile_t_h, np.float64)
    fv = np.asarray(profile_l_per_h, np.float64)
    if th.ndim != 1 or th.shape != fv.shape or th.size == 0 or np.any(np.diff(th) <= 0):
        raise ValueError("profile_t_h must be strictly increasing and match profile_l_per_h")
    elapsed_h = (np.asarray(t_s, np.float64) - np.asarray(t0_s, np.float64)) / 3600.0
    rate = np.interp(np.where(elapsed_h >= 0, elapsed_h, 0.0), th, fv)
    return np.where(elapsed_h >= 0.0, rate, 0.0)


def do_stat_spec(do_sp_pct: float, feed_max_l_per_h: float, kp: float = 0.02,
                 ti_s: float = 600.0) -> PidSpec:
    """PID spec for DO-stat feeding: feed more when DO rises above ``do_sp_pct``.

    When the carbon source runs out, respiration drops and DO rises; feeding in proportion
    to that rise (direct action) keeps the culture at the edge of limitation.
    """
    return PidSpec(kp=kp, ti_s=ti_s, action="direct", out_lo=0.0, out_hi=feed_max_l_per_h,
                   sp=do_sp_pct, bad_pv="safe", safe_out=0.0)


def ph_stat_spec(ph_sp: float, feed_max_l_per_h: float, kp: float = 0.5,
                 ti_s: float = 600.0, deadband: float = 0.02) -> PidSpec:
    """PID spec for pH-stat feeding: feed when pH rises above ``ph_sp`` (substrate depleted).

    On depletion, cells stop producing acids and take up ammonium/acetate; pH rises. The
    deadband keeps the feed from chasing the pH controller's own noise.
    """
    return PidSpec(kp=kp, ti_s=ti_s, action="direct", out_lo=0.0, out_hi=feed_max_l_per_h,
                   sp=ph_sp, deadband=deadband, bad_pv="safe", safe_out=0.0)


class DoSpikeTrigger:
    """Latch the feed start on the DO spike that marks batch-phase substrate depletion.

    A reactor triggers when DO has risen ``rise_pct`` above the lowest value seen since
    ``arm_after_s`` (the minimum comes from the high-respiration end of the batch). The
    trigger time is latched per reactor.

    Parameters
    ----------
    n : int
        Reactors.
    rise_pct : float
        Rise above the running minimum, % saturation.
    arm_after_s : float
        Ignore the start of the batch (DO falls from 100 %), s.
    """

    def __init__(self, n: int, rise_pct: float = 15.0, arm_after_s: float = 3600.0) -> None:
        self.rise_pct = float(rise_pct)
        self.arm_after_s = float(arm_after_s)
        self.do_min_pct = np.full(n, np.inf)
        self.t_start_s = np.full(n, np.nan)

    @property
    def triggered(self) -> BoolArray:
        """Reactors whose feed has started, shape (n,)."""
        return ~np.isnan(self.t_start_s)

    def update(self, t_s: float, do_pct: FloatArray, do_ok: BoolArray | None = None) -> BoolArray:
        """Feed one DO sample per reactor (% saturation, shape (n,)); returns ``triggered``."""
        do = np.asarray(do_pct, np.float64)
        ok = np.isfinite(do) if do_ok is None else np.asarray(do_ok, bool) & np.isfinite(do)
        if t_s >= self.arm_after_s:
            np.minimum(self.do_min_pct, np.where(ok, do, np.inf), out=self.do_min_pct)
            fire = ok & np.isnan(self.t_start_s) & (do - self.do_min_pct >= self.rise_pct)
            self.t_start_s[fire] = t_s
        return self.triggered


class OurDropTrigger:
    """Latch the feed start when OUR collapses at batch-phase substrate depletion.

    With DO under tight control the DO spike at depletion is mostly absorbed by the DO
    loop (agitation drops instead); the oxygen uptake rate shows the event directly. A
    reactor triggers when OUR falls below ``drop_fraction`` of the highest OUR seen
    since ``arm_after_s``.

    Parameters
    ----------
    n : int
        Reactors.
    drop_fraction : float
        Fraction of the running maximum, 0..1.
    arm_after_s : float
        Start of the watch, s (skip the noisy start of the batch).
    min_our_mmol_per_l_h : float
        Ignore maxima below this (a culture that never took off).
    """

    def __init__(self, n: int, drop_fraction: float = 0.6, arm_after_s: float = 1800.0,
                 min_our_mmol_per_l_h: float = 10.0) -> None:
        if not 0.0 < drop_fraction < 1.0:
            raise ValueError("drop_fraction must be in (0, 1)")
        self.drop_fraction = float(drop_fraction)
        self.arm_after_s = float(arm_after_s)
        self.min_our = float(min_our_mmol_per_l_h)
        self.our_max = np.zeros(n)
        self.t_start_s = np.full(n, np.nan)

    @property
    def triggered(self) -> BoolArray:
        """Reactors whose feed has started, shape (n,)."""
        return ~np.isnan(self.t_start_s)

    def update(self, t_s: float, our_mmol_per_l_h: FloatArray, our_ok: BoolArray | None = None) -> BoolArray:
        """Feed one OUR sample per reactor (mmol/(L h), shape (n,)); returns ``triggered``."""
        our = np.asarray(our_mmol_per_l_h, np.float64)
        ok = np.isfinite(our) if our_ok is None else np.asarray(our_ok, bool) & np.isfinite(our)
        if t_s >= self.arm_after_s:
            np.maximum(self.our_max, np.where(ok, our, 0.0), out=self.our_max)
            fire = (ok & np.isnan(self.t_start_s) & (self.our_max >= self.min_our)
                    & (our < self.drop_fraction * self.our_max))
            self.t_start_s[fire] = t_s
        return self.triggered


@dataclass
class FeedTotaliser:
    """Pump and vessel limits on a feed demand, and the delivered total, per reactor.

    Parameters (arrays of shape (n,) or scalars)
    ----------
    pump_max_l_per_h : max pump rate, L/h
    pump_rate_l_per_h_per_s : max change of the pump rate, (L/h)/s (inf = none)
    total_max_l : max cumulative feed volume (the feed bottle), L
    volume_max_l : max broth volume (working volume of the vessel), L
    """

    pump_max_l_per_h: FloatArray
    pump_rate_l_per_h_per_s: FloatArray
    total_max_l: FloatArray
    volume_max_l: FloatArray
    total_l: FloatArray
    rate_l_per_h: FloatArray

    @classmethod
    def create(cls, n: int, pump_max_l_per_h: ArrayLike, total_max_l: ArrayLike,
               volume_max_l: ArrayLike, pump_rate_l_per_h_per_s: ArrayLike = np.inf) -> "FeedTotaliser":
        """Totaliser for ``n`` reactors, starting at zero delivered volume."""
        b = lambda x: np.broadcast_to(np.asarray(x, np.float64), (n,)).copy()  # noqa: E731
        return cls(b(pump_max_l_per_h), b(pump_rate_l_per_h_per_s), b(total_max_l),
                   b(volume_max_l), np.zeros(n), np.zeros(n))

    def step(self, demand_l_per_h: FloatArray, volume_l: FloatArray, dt_s: float) -> FloatArray:
        """Limit a feed demand for the next ``dt_s`` and count what it delivers.

        Parameters
        ----------
        demand_l_per_h : ndarray (n,)
            Requested rate, L/h (NaN -> 0).
        volume_l : ndarray (n,)
            Current broth volume, L (NaN -> treated as full: never overfill blind).
        dt_s : float
            Interval the rate will be applied for, s.

        Returns
        -------
        ndarray (n,)
            Pump rate, L/h: within ``[0, pump_max]``, within the rate limit, and small
            enough that neither the total nor the vessel limit is exceeded by this interval.
        """
        dt = float(dt_s)
        if not (dt > 0 and np.isfinite(dt)):
            return self.rate_l_per_h
        demand = np.nan_to_num(np.asarray(demand_l_per_h, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        vol = np.nan_to_num(np.asarray(volume_l, np.float64), nan=np.inf)
        dt_h = dt / 3600.0
        room_l = np.minimum(self.total_max_l - self.total_l, self.volume_max_l - vol)
        cap = np.clip(room_l / dt_h, 0.0, self.pump_max_l_per_h)
        rate = np.clip(demand, 0.0, cap)
        step = self.pump_rate_l_per_h_per_s * dt
        rate = np.clip(rate, self.rate_l_per_h - step, self.rate_l_per_h + step)
        rate = np.clip(rate, 0.0, cap)  # the vessel/total limit wins over the ramp
        self.rate_l_per_h = rate
        self.total_l = self.total_l + rate * dt_h
        return rate
