"""FOPDT identification and tuning rules."""

from __future__ import annotations

import numpy as np
import pytest

from controllers.tuning import Fopdt, fit_fopdt, fopdt_step_response, imc_pid, simc_pi


@pytest.mark.parametrize("k,tau,theta", [(2.0, 50.0, 10.0), (-0.5, 200.0, 30.0), (1.2, 20.0, 0.0)])
def test_fit_recovers_known_model_from_noisy_step(k: float, tau: float, theta: float) -> None:
    rng = np.random.default_rng(42)
    t = np.arange(0.0, 8 * tau + theta + 100, 1.0)
    y = fopdt_step_response(Fopdt(k, tau, theta), t, t_step_s=50.0, du=5.0, y0=3.0)
    y = y + rng.normal(0, 0.01 * abs(k) * 5, t.size)
    m = fit_fopdt(t, y, t_step_s=50.0, du=5.0)
    assert m.k == pytest.approx(k, rel=0.02)
    assert m.tau_s == pytest.approx(tau, rel=0.05)
    assert m.theta_s == pytest.approx(theta, abs=max(1.5, 0.05 * tau))


def test_simc_and_imc_formulas() -> None:
    m = Fopdt(k=2.0, tau_s=100.0, theta_s=10.0)
    pi = simc_pi(m)
    assert pi.kp == pytest.approx(100.0 / (2.0 * 20.0))
    assert pi.ti_s == pytest.approx(min(100.0, 80.0))
    pid = imc_pid(m, tau_c_s=20.0)
    assert pid.kp == pytest.approx(210.0 / (2.0 * 50.0))
    assert pid.ti_s == pytest.approx(105.0)
    assert pid.td_s == pytest.approx(1000.0 / 210.0)


def test_fit_rejects_record_without_baseline() -> None:
    with pytest.raises(ValueError, match="before and after"):
        fit_fopdt(np.arange(10.0), np.arange(10.0), t_step_s=-1.0, du=1.0)
