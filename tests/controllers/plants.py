"""Analytic test plants (exact discretisations), vectorized across rows."""

from __future__ import annotations

import numpy as np


class FirstOrderPlant:
    """``tau dy/dt = K u - y`` (+ disturbance), integrated exactly for piecewise-constant u."""

    def __init__(self, k: np.ndarray | float, tau_s: np.ndarray | float, y0: np.ndarray) -> None:
        self.k = np.asarray(k, float)
        self.tau_s = np.asarray(tau_s, float)
        self.y = np.array(y0, dtype=float)

    def advance(self, u: np.ndarray, dt_s: float, disturbance: float | np.ndarray = 0.0) -> np.ndarray:
        a = np.exp(-dt_s / self.tau_s)
        self.y = a * self.y + (1 - a) * (self.k * u + disturbance)
        return self.y
