"""Tuning aid: fit a first-order-plus-dead-time model to a step test, propose PI/PID tunings.

FOPDT: ``y(t) = y0 + K du (1 - exp(-(t - t_step - theta)/tau))`` for ``t > t_step + theta``.
SIMC (Skogestad 2003) gives robust PI settings from it with one knob, the closed-loop time
constant ``tau_c`` (default ``theta``: a fast but robust choice); IMC (Rivera et al. 1986)
gives a PID.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Fopdt:
    """First-order plus dead time model: gain (pv units per output unit), tau and theta in s."""

    k: float
    tau_s: float
    theta_s: float


@dataclass(frozen=True)
class Tuning:
    """ISA standard-form settings: Kp (output units per pv unit), Ti and Td in s."""

    kp: float
    ti_s: float
    td_s: float = 0.0


def fopdt_step_response(model: Fopdt, t_s: FloatArray, t_step_s: float, du: float,
                        y0: float = 0.0) -> FloatArray:
    """Response of ``model`` to a step of ``du`` at ``t_step_s``; ``t_s`` shape (m,)."""
    t = np.asarray(t_s, np.float64) - t_step_s - model.theta_s
    return y0 + model.k * du * np.where(t > 0, -np.expm1(-np.maximum(t, 0) / model.tau_s), 0.0)


def fit_fopdt(t_s: npt.ArrayLike, y: npt.ArrayLike, t_step_s: float, du: float) -> Fopdt:
    """Identify K, tau, theta from a step test.

    Parameters
    ----------
    t_s : ndarray (m,)
        Sample times, s (increasing), with samples before the step to fix the baseline.
    y : ndarray (m,)
        Measured pv, pv units; NaN samples are ignored.
    t_step_s : float
        Time of the output step, s.
    du : float
        Output step size, output units (non-zero).

    Returns
    -------
    Fopdt
    """
    t = np.asarray(t_s, np.float64)
    yv = np.asarray(y, np.float64)
    if t.ndim != 1 or t.shape != yv.shape or t.size < 5:
        raise ValueError("t_s and y must be 1-D, same length, >= 5 samples")
    if du == 0 or not math.isfinite(du):
        raise ValueError("du must be finite and non-zero")
    keep = np.isfinite(t) & np.isfinite(yv)
    t, yv = t[keep], yv[keep]
    before = t <= t_step_s
    if not before.any() or before.all():
        raise ValueError("the record must contain samples before and after the step")
    return _fit_fopdt_impl(t, yv, t_step_s, du)


def _fit_fopdt_impl(t: FloatArray, y: FloatArray, t_step: float, du: float) -> Fopdt:
    from scipy.optimize import least_squares  # heavy import, only needed here

    y0 = float(np.mean(y[t <= t_step]))
    span = float(t[-1] - t_step)
    # Initial guess from the 28 % / 63 % two-point method (Smith).
    dy_end = float(y[-1] - y0)
    k0 = dy_end / du if dy_end != 0 else 1.0
    frac = (y - y0) / dy_end if dy_end != 0 else np.zeros_like(y)
    after = t > t_step

    def crossing(level: float) -> float:
        idx = np.nonzero(after & (frac >= level))[0]
        return float(t[idx[0]] - t_step) if idx.size else span / 2

    t28, t63 = crossing(0.283), crossing(0.632)
    tau0 = max(1.5 * (t63 - t28), span / 1000)
    theta0 = max(t63 - tau0, 0.0)

    def resid(p: FloatArray) -> FloatArray:
        m = Fopdt(p[0], p[1], p[2])
        return fopdt_step_response(m, t, t_step, du, y0) - y

    res = least_squares(resid, x0=[k0, tau0, min(theta0, span * 0.9)],
                        bounds=([-np.inf, span / 1e4, 0.0], [np.inf, 10 * span, span]),
                        x_scale="jac")
    k, tau, theta = (float(v) for v in res.x)
    return Fopdt(k, tau, theta)


def simc_pi(model: Fopdt, tau_c_s: float | None = None) -> Tuning:
    """SIMC PI: ``Kp = tau / (K (tau_c + theta))``, ``Ti = min(tau, 4 (tau_c + theta))``.

    Kp is returned non-negative (choose the loop's ``action`` from the sign of K:
    K > 0 means reverse action).
    """
    tc = model.theta_s if tau_c_s is None else tau_c_s
    if tc <= 0 and model.theta_s <= 0:
        raise ValueError("tau_c_s must be > 0 when the model has no dead time")
    kp = model.tau_s / (abs(model.k) * (tc + model.theta_s))
    return Tuning(kp=kp, ti_s=min(model.tau_s, 4 * (tc + model.theta_s)))


def imc_pid(model: Fopdt, tau_c_s: float | None = None) -> Tuning:
    """IMC PID (Rivera): ``Kp = (2tau+theta)/(K(2tau_c+theta))``, ``Ti = tau+theta/2``, ``Td = tau theta/(2tau+theta)``.

    ``tau_c`` defaults to ``max(0.25 tau, 0.8 theta)``.
    """
    tau, th = model.tau_s, model.theta_s
    tc = max(0.25 * tau, 0.8 * th) if tau_c_s is None else tau_c_s
    kp = (2 * tau + th) / (abs(model.k) * (2 * tc + th))
    return Tuning(kp=kp, ti_s=tau + th / 2, td_s=tau * th / (2 * tau + th))
