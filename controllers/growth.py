"""Online estimate of biomass and specific growth rate from OUR (extended Kalman filter).

State per reactor: ``x = [X (g/L), mu (1/h)]`` with ``dX/dt = (mu - D) X`` (D = F/V, the
dilution by feed) and mu a random walk. Measurement: ``OUR = X (mu / Y_xo + m_o)``
(mmol/(L h)), Pirt's law for oxygen. The 2x2 covariances of all reactors are updated with
closed-form element-wise algebra, so n reactors cost the same number of NumPy calls as one.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class GrowthEstimator:
    """EKF for biomass and specific growth rate of n reactors.

    Parameters
    ----------
    x0_g_per_l, mu0_per_h : ndarray (n,) or float
        Initial estimates.
    y_xo_g_per_mmol : float or ndarray (n,)
        Biomass yield on oxygen, g X / mmol O2.
    m_o_mmol_per_g_h : float or ndarray (n,)
        Oxygen maintenance, mmol O2 / (g X h).
    our_sd_mmol_per_l_h : float
        Measurement noise standard deviation of OUR.
    mu_walk_per_h_sqrt_h : float
        Random-walk intensity of mu, 1/h per sqrt(h): how fast mu may drift.
    x_rel_sd0, mu_sd0_per_h : float
        Initial uncertainty (relative for X).
    """

    def __init__(self, x0_g_per_l: npt.ArrayLike, mu0_per_h: npt.ArrayLike,
                 y_xo_g_per_mmol: npt.ArrayLike, m_o_mmol_per_g_h: npt.ArrayLike = 0.0, *,
                 our_sd_mmol_per_l_h: float = 2.0, mu_walk_per_h_sqrt_h: float = 0.02,
                 x_walk_rel_per_sqrt_h: float = 0.02, x_rel_sd0: float = 0.3,
                 mu_sd0_per_h: float = 0.2) -> None:
        self.x = np.array(x0_g_per_l, dtype=np.float64, ndmin=1)
        n = self.x.shape[0]
        self.mu = np.broadcast_to(np.asarray(mu0_per_h, np.float64), (n,)).copy()
        self.y_xo = np.broadcast_to(np.asarray(y_xo_g_per_mmol, np.float64), (n,)).copy()
        self.m_o = np.broadcast_to(np.asarray(m_o_mmol_per_g_h, np.float64), (n,)).copy()
        if np.any(self.y_xo <= 0) or np.any(self.x <= 0):
            raise ValueError("y_xo and x0 must be > 0")
        self.r = our_sd_mmol_per_l_h ** 2
        self.q_mu = mu_walk_per_h_sqrt_h ** 2
        self.q_x_rel = x_walk_rel_per_sqrt_h ** 2
        # Covariance entries P = [[pxx, pxm], [pxm, pmm]], each (n,).
        self.pxx = (x_rel_sd0 * self.x) ** 2
        self.pxm = np.zeros(n)
        self.pmm = np.full(n, mu_sd0_per_h ** 2)

    def step(self, dt_s: float, our_mmol_per_l_h: FloatArray, our_ok: BoolArray | None = None,
             dilution_per_h: FloatArray | None = None) -> tuple[FloatArray, FloatArray]:
        """Predict over ``dt_s`` and correct with one OUR sample per reactor.

        Parameters
        ----------
        dt_s : float
            Time since the previous call, s (<= 0 or non-finite: no change).
        our_mmol_per_l_h : ndarray (n,)
            Measured OUR; NaN or ``our_ok`` False skips the correction for that reactor.
        dilution_per_h : ndarray (n,) or None
            F/V, 1/h.

        Returns
        -------
        x_g_per_l, mu_per_h : ndarray (n,)
            Current estimates (views of the state).
        """
        dt = float(dt_s)
        if not (dt > 0 and np.isfinite(dt)):
            return self.x, self.mu
        our = np.asarray(our_mmol_per_l_h, np.float64)
        ok = np.isfinite(our) if our_ok is None else np.asarray(our_ok, bool) & np.isfinite(our)
        d = 0.0 if dilution_per_h is None else np.nan_to_num(np.asarray(dilution_per_h, np.float64))
        self._step_impl(dt / 3600.0, our, ok, d)
        return self.x, self.mu

    def _step_impl(self, dt_h: float, our: FloatArray, ok: BoolArray, d: FloatArray | float) -> None:
        x, mu = self.x, self.mu
        # Predict: exact growth over dt for the state, linearised Jacobian for P.
        g = np.exp((mu - d) * dt_h)
        f11, f12 = g, x * g * dt_h
        x_new = x * g
        pxx = f11 * f11 * self.pxx + 2 * f11 * f12 * self.pxm + f12 * f12 * self.pmm \
            + self.q_x_rel * x_new ** 2 * dt_h
        pxm = f11 * self.pxm + f12 * self.pmm
        pmm = self.pmm + self.q_mu * dt_h
        # Correct with OUR = X (mu/Y + m): H = [mu/Y + m, X/Y].
        h1 = mu / self.y_xo + self.m_o
        h2 = x_new / self.y_xo
        innov = np.where(ok, our - x_new * h1, 0.0)
        s = h1 * h1 * pxx + 2 * h1 * h2 * pxm + h2 * h2 * pmm + self.r
        k1 = (pxx * h1 + pxm * h2) / s
        k2 = (pxm * h1 + pmm * h2) / s
        k1 = np.where(ok, k1, 0.0)
        k2 = np.where(ok, k2, 0.0)
        # Joseph-free form is fine for 2x2 with these magnitudes; keep P symmetric by construction.
        a1 = pxx * h1 + pxm * h2
        a2 = pxm * h1 + pmm * h2
        self.pxx = pxx - k1 * a1
        self.pxm = pxm - k1 * a2
        self.pmm = pmm - k2 * a2
        self.x = np.maximum(x_new + k1 * innov, 1e-6)  # biomass cannot go negative
        self.mu = mu + k2 * innov

    @property
    def sd(self) -> tuple[FloatArray, FloatArray]:
        """Standard deviations of the X (g/L) and mu (1/h) estimates, shape (n,) each."""
        return np.sqrt(np.maximum(self.pxx, 0)), np.sqrt(np.maximum(self.pmm, 0))
