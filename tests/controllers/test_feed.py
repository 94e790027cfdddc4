"""Feed strategies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controllers.feed import (DoSpikeTrigger, FeedTotaliser, OurDropTrigger, biomass_feed_l_per_h,
                              exponential_feed_l_per_h,
                              linear_feed_l_per_h, piecewise_feed_l_per_h)


def test_exponential_feed_equals_formula_per_reactor() -> None:
    t0 = np.array([3600.0, 7200.0, np.nan])
    mu = np.array([0.15, 0.2, 0.2])
    y, ms, x0, v0, sf = 0.5, 0.03, np.array([10.0, 12.0, 12.0]), np.array([1.0, 1.2, 1.2]), 500.0
    t = 5.0 * 3600
    f = exponential_feed_l_per_h(t, t0, mu, y, ms, x0, v0, sf)
    expected0 = (0.15 / 0.5 + 0.03) * 10.0 * 1.0 * math.exp(0.15 * 4.0) / 500.0
    expected1 = (0.2 / 0.5 + 0.03) * 12.0 * 1.2 * math.exp(0.2 * 3.0) / 500.0
    np.testing.assert_allclose(f, [expected0, expected1, 0.0], rtol=1e-12)


def test_exponential_feed_zero_before_start_and_grows_at_mu() -> None:
    t = np.array([0.0, 3600.0, 7200.0])
    f = exponential_feed_l_per_h(t, 3600.0, 0.1, 0.5, 0.0, 5.0, 1.0, 400.0)
    assert f[0] == 0.0
    assert f[2] / f[1] == pytest.approx(math.exp(0.1))


def test_biomass_feed_matches_exponential_when_biomass_follows_mu() -> None:
    t = 3 * 3600.0
    x = 10.0 * math.exp(0.2 * 3)  # X V grows at mu with V constant here
    f_est = biomass_feed_l_per_h(x, 1.0, 0.2, 0.5, 0.02, 500.0)
    f_exp = exponential_feed_l_per_h(t, 0.0, 0.2, 0.5, 0.02, 10.0, 1.0, 500.0)
    assert f_est == pytest.approx(f_exp)


def test_linear_and_piecewise_profiles() -> None:
    t = np.array([0.0, 3600.0, 3 * 3600.0, 10 * 3600.0])
    np.testing.assert_allclose(linear_feed_l_per_h(t, 3600.0, 0.1, 0.05), [0, 0.1, 0.2, 0.55])
    np.testing.assert_allclose(piecewise_feed_l_per_h(t, 0.0, [0, 2, 4], [0.0, 0.2, 0.1]),
                               [0.0, 0.1, 0.15, 0.1])
    with pytest.raises(ValueError):
        piecewise_feed_l_per_h(t, 0.0, [0, 0], [1, 2])


def test_do_spike_trigger_latches_per_reactor() -> None:
    trig = DoSpikeTrigger(3, rise_pct=15.0, arm_after_s=100.0)
    # Reactor 0 spikes at t=300, reactor 1 at t=400, reactor 2 never (sensor bad at its spike).
    series = {0: [90, 40], 100: [40, 40, 40], 200: [30, 30, 30], 300: [50, 32, 30],
              400: [35, 50, 30], 500: [30, 30, 80]}
    for t, do in series.items():
        do = np.resize(np.array(do, float), 3)
        ok = np.array([True, True, t != 500])
        trig.update(float(t), do, ok)
    np.testing.assert_array_equal(trig.t_start_s[:2], [300.0, 400.0])
    assert not trig.triggered[2]


def test_totaliser_respects_pump_ramp_total_and_vessel() -> None:
    tot = FeedTotaliser.create(3, pump_max_l_per_h=1.0, total_max_l=[10.0, 0.1, 10.0],
                               volume_max_l=[100.0, 100.0, 5.0], pump_rate_l_per_h_per_s=0.01)
    vol = np.array([1.0, 1.0, 4.99])
    rates = []
    for _ in range(200):
        r = tot.step(np.array([5.0, 5.0, 5.0]), vol, 10.0)
        vol = vol + r * 10 / 3600
        rates.append(r.copy())
    rates = np.array(rates)
    assert rates.max() <= 1.0 + 1e-12
    assert np.abs(np.diff(rates[:, 0])).max() <= 0.1 + 1e-12
    assert tot.total_l[1] <= 0.1 + 1e-12 and tot.total_l[1] == pytest.approx(0.1)
    assert vol[2] <= 5.0 + 1e-12
    assert rates[-1, 0] == 1.0


def test_our_drop_trigger_fires_on_collapse_not_on_noise() -> None:
    trig = OurDropTrigger(2, drop_fraction=0.6, arm_after_s=0.0)
    ours = [[20, 20], [50, 50], [80, 80], [75, 82], [30, 70], [25, 60]]  # reactor 0 collapses
    for k, our in enumerate(ours):
        trig.update(k * 60.0, np.array(our, float))
    assert trig.t_start_s[0] == 240.0
    assert not trig.triggered[1]
