"""The Rosenbrock-W integrator against analytic solutions."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.process.integrate import integrate, rosw_step

K_STIFF = 1.0e4


def _linear_rhs(k: float, coupled: bool):  # noqa: ANN202
    """b' = -b ; a' = -k (a - b): a is stiff and slaved to b. Exact: b = e^-t,
    a = e^-t k/(k-1) + (a0 - k/(k-1)) e^-kt."""

    def rhs(y: np.ndarray, jac: bool = True):  # noqa: ANN202
        f = np.empty_like(y)
        f[0] = -y[0]
        f[1] = -k * (y[1] - y[0])
        jd = np.empty_like(y)
        jd[0] = -1.0
        jd[1] = -k
        return f, jd, (((1, 0, np.full(y.shape[1], k)),) if coupled else ())

    return rhs


def _exact(t: float, k: float) -> np.ndarray:
    c = k / (k - 1.0)
    return np.array([np.exp(-t), c * np.exp(-t) + (1.0 - c) * np.exp(-k * t)])


@pytest.mark.parametrize(("k", "expected_order"), [(2.0, 2.8), (K_STIFF, 2.7)])
def test_fixed_step_convergence_order(k: float, expected_order: float) -> None:
    rhs = _linear_rhs(k, coupled=True)
    errors = []
    for n in (20, 40, 80):
        y = np.ones((2, 1))
        h = np.array([1.0 / n])
        for _ in range(n):
            y = rosw_step(rhs, y, h)[0]
        errors.append(np.max(np.abs(y[:, 0] - _exact(1.0, k))))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(orders > expected_order), orders


@pytest.mark.parametrize("rtol", [1e-4, 1e-7])
def test_adaptive_error_is_within_scaled_tolerance(rtol: float) -> None:
    y, _, steps = integrate(
        _linear_rhs(K_STIFF, coupled=True), np.ones((2, 3)), 2.0, np.full(3, 1e-3), rtol=rtol, atol=np.full((2, 1), rtol * 1e-3), h_max=1.0
    )
    err = np.max(np.abs(y - _exact(2.0, K_STIFF)[:, None]) / np.abs(_exact(2.0, K_STIFF))[:, None])
    assert err < 20 * rtol
    assert steps < 400  # stiff, yet steps follow the slow mode


def test_dense_output_matches_analytic_solution() -> None:
    t_out = np.linspace(0.05, 2.0, 40)
    out = np.empty((t_out.size, 2, 2))  # (time, lane, state)
    integrate(_linear_rhs(K_STIFF, True), np.ones((2, 2)), 2.0, np.full(2, 1e-3), rtol=1e-7, atol=np.full((2, 1), 1e-10), h_max=0.5, t_out=t_out, out=out)
    exact = np.stack([_exact(t, K_STIFF) for t in t_out])
    np.testing.assert_allclose(out[:, 0, :], exact, rtol=1e-5)
    np.testing.assert_array_equal(out[:, 0, :], out[:, 1, :])


def test_columns_advance_independently_of_their_neighbours() -> None:
    """A stiff column must not change the result of a gentle one (per-column step control)."""
    rhs_k = np.array([2.0, K_STIFF])

    def rhs(y: np.ndarray, jac: bool = True):  # noqa: ANN202
        f = np.stack([-y[0], -rhs_k * (y[1] - y[0])])
        return f, np.stack([-np.ones(2), -rhs_k]), ((1, 0, rhs_k),)

    kw = {"rtol": 1e-6, "atol": np.full((2, 1), 1e-9), "h_max": 1.0}
    both, _, _ = integrate(rhs, np.ones((2, 2)), 1.0, np.full(2, 1e-3), **kw)
    alone, _, _ = integrate(lambda y, jac=True: (np.stack([-y[0], -2.0 * (y[1] - y[0])]), np.stack([-np.ones(1), -2.0 * np.ones(1)]), ((1, 0, np.full(1, 2.0)),)), np.ones((2, 1)), 1.0, np.full(1, 1e-3), **kw)
    np.testing.assert_array_equal(both[:, 0], alone[:, 0])
