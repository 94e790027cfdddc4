"""The feed-strategy runtime (FeedBank) and its mapping from the service configuration."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers.feeding import (DoStatLaw, ExponentialLaw, FeedBank, FeedInstance, FeedStepResult, LinearLaw,
                                 PhStatLaw, PiecewiseLaw, StartAtTime, StartImmediately, StartOnDoSpike,
                                 StartOnGlucoseBelow, StartOnOurDrop)
from telemetry.config import load_config
from telemetry.service.feeds import build_feed_bank

DEMO = Path(__file__).resolve().parents[2] / "config" / "demo.toml"
H = 3600.0
DT = 5.0
MV = "feed_rate_l_per_h"


def exp_law(**kw: float) -> ExponentialLaw:
    args = dict(mu_set_per_h=0.25, y_xs_g_per_g=0.5, s_f_g_per_l=500.0, m_s_g_per_g_h=0.04)
    args.update(kw)
    return ExponentialLaw(**args)  # type: ignore[arg-type]


def formula(t: float, t0: float, mu: float, x0: float, v0: float, y: float = 0.5, ms: float = 0.04,
            sf: float = 500.0) -> float:
    return (mu / y + ms) * x0 * v0 * math.exp(mu * (t - t0) / H) / sf


def readings(n: int, **signals: float | list[float]) -> dict[str, np.ndarray]:
    base: dict[str, float | list[float]] = {"do_pct": 30.0, "volume_l": 5.0, "od600": 20.0,
                                            "glucose_g_per_l": 10.0, "ph": 7.0}
    base.update(signals)
    return {k: np.broadcast_to(np.asarray(v, float), (n,)).copy() for k, v in base.items()}


def run(bank: FeedBank, t_end_s: float, signals_at: Callable[[float], tuple[dict, dict | None]],
        dt: float = DT, t_start_s: float = 0.0) -> list[tuple[float, FeedStepResult]]:
    """Step the bank on a fixed grid; ``signals_at(t)`` gives (values, ok). Returns all results."""
    out = []
    for t in np.arange(t_start_s, t_end_s, dt):
        values, ok = signals_at(float(t))
        out.append((float(t), bank.step(float(t), dt, values, ok)))
    return out


def first_start_s(results, feed: str = "f", reactor: int = 0) -> float:  # type: ignore[no-untyped-def]
    for t, res in results:
        if res.started[feed][reactor]:
            return t
    return math.nan


# -- triggers -------------------------------------------------------------------------------------


def _do_spike_trace(t: float) -> dict[str, np.ndarray]:
    # DO falls from 100 % in the first hour, a lag-phase bump at 1 h (before not_before),
    # a slow drift upward from 5 h (no spike: too slow for the window), the depletion spike at 8 h,
    # then a dip (the feed kicks respiration back on) that must not undo the start.
    if t < H:
        do = 100.0 - 70.0 * t / H
    elif t < 1.2 * H:
        do = 60.0
    elif t < 5 * H:
        do = 30.0
    elif t < 8 * H:
        do = 30.0 + 8.0 * (t - 5 * H) / (3 * H)
    elif t < 8.5 * H:
        do = 65.0
    else:
        do = 25.0
    return readings(1, do_pct=do)


@pytest.mark.parametrize(("start", "trace", "expected_s"), [
    (StartImmediately(), lambda t: readings(1), 0.0),
    (StartAtTime(at_s=2.5 * H), lambda t: readings(1), 2.5 * H),
    (StartOnDoSpike(rise_pct=15, window_s=300, threshold_pct=40, not_before_s=4 * H), _do_spike_trace, 8 * H),
    (StartOnGlucoseBelow(glucose_g_per_l=1.0, not_before_s=H),
     # 0.5 g/L during the first hour is too early; the real depletion comes at 6 h; it rises again at 7 h
     lambda t: readings(1, glucose_g_per_l=0.5 if t < H else (5.0 if t < 6 * H else (0.8 if t < 7 * H else 4.0))),
     6 * H),
], ids=["immediately", "time", "do_spike", "glucose_below"])
def test_trigger_fires_at_the_right_time_and_latches(start, trace, expected_s) -> None:  # type: ignore[no-untyped-def]
    bank = FeedBank(1, [FeedInstance("f", 0, LinearLaw(0.1), start)])
    results = run(bank, 10 * H, lambda t: (trace(t), None), dt=30.0)
    assert first_start_s(results) == pytest.approx(expected_s)
    assert all(res.started["f"][0] for t, res in results if t >= expected_s)  # latched
    assert all(res.rate_l_per_h[MV][0] == 0.0 for t, res in results if t < expected_s)  # 0, not NaN
    assert results[-1][1].t0_s["f"][0] == pytest.approx(expected_s)
    started = [e for _, res in results for e in res.events if e.kind == "feed_started"]
    assert len(started) == 1 and "linear feed started" in started[0].message


@pytest.mark.parametrize(("start", "signal", "value"), [
    (StartOnDoSpike(rise_pct=15, window_s=300, threshold_pct=40), "do_pct", 80.0),
    (StartOnGlucoseBelow(glucose_g_per_l=1.0), "glucose_g_per_l", 0.2),
])
@pytest.mark.parametrize("bad", ["ok_false", "nan"])
def test_triggers_ignore_bad_inputs(start, signal, value, bad) -> None:  # type: ignore[no-untyped-def]
    bank = FeedBank(2, [FeedInstance("f", r, LinearLaw(0.1), start) for r in range(2)])

    def trace(t: float):  # type: ignore[no-untyped-def]
        values = readings(2, do_pct=30.0)
        ok = {signal: np.array([True, True])}
        if t >= H:  # the event happens on both reactors, but reactor 1's reading is bad
            values[signal][:] = value
            if bad == "nan":
                values[signal][1] = np.nan
            else:
                ok[signal][1] = False
        return values, ok

    res = run(bank, 2 * H, trace, dt=30.0)[-1][1]
    np.testing.assert_array_equal(res.started["f"], [True, False])


def test_do_spike_needs_the_rise_within_the_window() -> None:
    """A rise spread over much longer than window_s is a drift, not depletion."""
    start = StartOnDoSpike(rise_pct=15, window_s=300, threshold_pct=40)
    bank = FeedBank(2, [FeedInstance("f", r, LinearLaw(0.1), start) for r in range(2)])
    slow = lambda t: 30.0 + 30.0 * min(t, 3 * H) / (3 * H)  # noqa: E731  +30 % over 3 h
    fast = lambda t: 30.0 if t < H else 50.0  # noqa: E731
    results = run(bank, 4 * H, lambda t: (readings(2, do_pct=[slow(t), fast(t)]), None), dt=10.0)
    assert first_start_s(results, reactor=1) == pytest.approx(H)
    assert not results[-1][1].started["f"][0]


# -- exponential ----------------------------------------------------------------------------------


def test_exponential_equals_formula_with_latched_x0_v0_and_per_reactor_mu() -> None:
    mus = [0.25, 0.25, 0.18]
    bank = FeedBank(3, [FeedInstance("f", r, exp_law(mu_set_per_h=mus[r]), StartAtTime(at_s=2 * H))
                        for r in range(3)])

    def trace(t: float):  # type: ignore[no-untyped-def]
        # X and V keep changing after the start: the law must use the values latched at t0.
        return readings(3, od600=[20.0 + t / 600, 10.0 + t / 600, 15.0 + t / 600],
                        volume_l=[5.0 + t / H, 4.0 + t / H, 6.0 + t / H]), None

    results = run(bank, 6 * H, trace, dt=60.0)
    t0 = 2 * H
    x0 = np.array([20.0, 10.0, 15.0]) + t0 / 600
    v0 = np.array([5.0, 4.0, 6.0]) + t0 / H
    for t, res in results[::37]:
        expected = [formula(t, t0, mus[r], 0.4 * x0[r], v0[r]) if t >= t0 else 0.0 for r in range(3)]
        np.testing.assert_allclose(res.rate_l_per_h[MV], expected, rtol=1e-12)


def test_exponential_uses_given_x0_v0_over_tags() -> None:
    bank = FeedBank(1, [FeedInstance("f", 0, exp_law(x0_g_per_l=6.0, v0_l=3.0))])
    assert bank.inputs == ()
    res = bank.step(H, DT, {})
    assert res.rate_l_per_h[MV][0] == pytest.approx(formula(H, H, 0.25, 6.0, 3.0))


def test_exponential_falls_back_to_last_good_reading_at_the_trigger() -> None:
    bank = FeedBank(1, [FeedInstance("f", 0, exp_law(), StartAtTime(at_s=H))])
    bank.step(0.0, DT, readings(1, od600=25.0, volume_l=4.0))
    bad = {"od600": np.array([False]), "volume_l": np.array([False])}
    res = bank.step(H, DT, readings(1, od600=99.0, volume_l=99.0), bad)
    assert res.started["f"][0]
    assert res.rate_l_per_h[MV][0] == pytest.approx(formula(H, H, 0.25, 0.4 * 25.0, 4.0))


def test_exponential_waits_without_any_good_x0_then_starts() -> None:
    bank = FeedBank(1, [FeedInstance("f", 0, exp_law(), StartImmediately())])
    no_od = {"od600": np.array([False])}
    events = []
    for t in (0.0, DT, 2 * DT):
        res = bank.step(t, DT, readings(1, od600=np.nan), no_od)
        events += res.events
        assert not res.started["f"][0] and res.rate_l_per_h[MV][0] == 0.0
    assert [e.kind for e in events] == ["feed_waiting"]  # once, not every retry
    assert "od600 (for X0)" in events[0].message and "volume_l" not in events[0].message
    res = bank.step(3 * DT, DT, readings(1, od600=10.0))
    assert res.started["f"][0] and res.t0_s["f"][0] == 3 * DT
    assert [e.kind for e in res.events] == ["feed_started"]
    assert res.rate_l_per_h[MV][0] == pytest.approx(formula(0, 0, 0.25, 4.0, 5.0))


# -- limits ---------------------------------------------------------------------------------------


def test_pump_limit_clips_and_flags() -> None:
    bank = FeedBank(2, [FeedInstance("f", r, LinearLaw(rate, 0.0), max_rate_l_per_h=0.5)
                        for r, rate in enumerate([0.2, 3.0])])
    res = bank.step(0.0, DT, {})
    np.testing.assert_allclose(res.rate_l_per_h[MV], [0.2, 0.5])
    np.testing.assert_array_equal(res.limited["f"], [False, True])
    np.testing.assert_allclose(res.demand_l_per_h["f"], [0.2, 3.0])


@pytest.mark.parametrize("dt", [5.0, 7.3, 600.0])
def test_totaliser_stops_exactly_at_max_total(dt: float) -> None:
    bank = FeedBank(1, [FeedInstance("f", 0, LinearLaw(0.5, 0.2), max_total_l=1.3)])
    results = run(bank, 6 * H, lambda t: ({}, None), dt=dt)
    totals = np.array([res.total_l["f"][0] for _, res in results])
    assert totals.max() <= 1.3 * (1 + 1e-12)
    assert totals[-1] == pytest.approx(1.3, rel=1e-9)
    delivered = sum(res.rate_l_per_h[MV][0] * dt / H for _, res in results)
    assert delivered == pytest.approx(1.3, rel=1e-9)  # the commanded rates add up to the total
    stops = [(t, e) for t, res in results for e in res.events if e.kind == "feed_stopped"]
    assert len(stops) == 1 and "max total 1.3 L" in stops[0][1].message
    assert all(res.rate_l_per_h[MV][0] == 0.0 for t, res in results if t > stops[0][0])


def test_max_volume_stops_the_feed_and_never_overfills() -> None:
    bank = FeedBank(1, [FeedInstance("f", 0, exp_law(x0_g_per_l=10.0, mu_set_per_h=0.4), max_rate_l_per_h=2.0,
                                     max_volume_l=8.0)])
    volume = 5.0
    events, volumes = [], []
    for t in np.arange(0.0, 24 * H, 60.0):
        res = bank.step(float(t), 60.0, readings(1, volume_l=volume))
        volume += res.rate_l_per_h[MV][0] * 60.0 / H  # the vessel fills with what was commanded
        volumes.append(volume)
        events += res.events
    assert max(volumes) <= 8.0 + 1e-9
    assert volumes[-1] == pytest.approx(8.0, abs=1e-6)
    assert [e.kind for e in events] == ["feed_started", "feed_stopped"]
    assert "max volume 8 L reached" in events[-1].message
    assert res.rate_l_per_h[MV][0] == 0.0 and res.limited["f"][0]


def test_bad_volume_holds_only_volume_limited_feeds() -> None:
    bank = FeedBank(2, [FeedInstance("f", 0, LinearLaw(0.3), max_volume_l=10.0),
                        FeedInstance("f", 1, LinearLaw(0.3))])
    assert bank.step(0.0, DT, readings(2)).rate_l_per_h[MV].tolist() == [0.3, 0.3]
    bad = {"volume_l": np.array([False, False])}
    res = bank.step(DT, DT, readings(2), bad)
    assert res.rate_l_per_h[MV].tolist() == [0.0, 0.3]
    assert res.limited["f"].tolist() == [True, False]
    assert [(e.reactor, e.kind) for e in res.events] == [(0, "feed_held")]
    assert bank.step(2 * DT, DT, readings(2), bad).events == []  # one event per change
    res = bank.step(3 * DT, DT, readings(2))
    assert res.rate_l_per_h[MV].tolist() == [0.3, 0.3]
    assert [(e.reactor, e.kind) for e in res.events] == [(0, "feed_resumed")]


@pytest.mark.parametrize("dt", [0.0, -5.0, 5e-324, math.inf, math.nan])
def test_non_positive_or_non_finite_dt_changes_nothing(dt: float) -> None:
    bank = FeedBank(1, [FeedInstance("f", 0, LinearLaw(0.5), max_total_l=1.0)])
    before = bank.step(0.0, DT, {})
    after = bank.step(10.0, dt, {})
    assert after.rate_l_per_h[MV][0] == before.rate_l_per_h[MV][0]
    assert after.total_l["f"][0] == before.total_l["f"][0]


def test_huge_dt_does_not_jump_past_the_total() -> None:
    bank = FeedBank(1, [FeedInstance("f", 0, LinearLaw(1.0), max_total_l=0.7, max_rate_l_per_h=1.0)])
    res = bank.step(0.0, 1e9, {})
    assert res.total_l["f"][0] == pytest.approx(0.7)
    assert 0.0 <= res.rate_l_per_h[MV][0] * 1e9 / H <= 0.7 * (1 + 1e-12)


_reading = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64), st.floats(-10, 200))
_dt = st.one_of(st.floats(-10, 1e7), st.sampled_from([math.nan, math.inf]))


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.floats(-100, 1e6), _dt, _reading, _reading, _reading, _reading, st.booleans()),
                      min_size=1, max_size=25))
def test_arbitrary_inputs_never_give_nan_negative_or_over_limit(steps) -> None:  # type: ignore[no-untyped-def]
    bank = FeedBank(5, [
        FeedInstance("exp", 0, exp_law(mu_set_per_h=2.0), StartOnDoSpike(window_s=60), max_rate_l_per_h=1.0,
                     max_volume_l=10.0, max_total_l=2.0),
        FeedInstance("exp", 1, exp_law(), StartOnGlucoseBelow(1.0), max_total_l=2.0),
        FeedInstance("lin", 2, LinearLaw(0.5, -0.3), max_rate_l_per_h=0.4, max_total_l=2.0),
        FeedInstance("pw", 3, PiecewiseLaw((0.0, 100.0), (0.1, 0.9), "step"), max_volume_l=10.0,
                     max_total_l=2.0),
        FeedInstance("do", 4, DoStatLaw(50.0, 0.6, 30.0, 10.0), max_total_l=2.0),
    ])
    t = 0.0
    for advance, dt, do, vol, od, glc, good in steps:
        t += advance
        values = readings(5, do_pct=do, volume_l=vol, od600=od, glucose_g_per_l=glc)
        ok = {k: np.full(5, good) for k in values}
        res = bank.step(t, dt, values, ok)
        rate = res.rate_l_per_h[MV]  # every reactor has exactly one feed on it
        assert np.isfinite(rate).all() and (rate >= 0).all()
        assert rate[0] <= 1.0 and rate[2] <= 0.4
        for total in res.total_l.values():
            present = total[~np.isnan(total)]
            assert np.isfinite(present).all() and (present <= 2.0 * (1 + 1e-12)).all()


# -- other laws -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("law", "signal", "high"), [
    (DoStatLaw(do_high_pct=50.0, pulse_rate_l_per_h=0.6, pulse_s=42.0, hold_off_s=100.0), "do_pct", 50.0),
    (PhStatLaw(ph_high=7.1, pulse_rate_l_per_h=0.6, pulse_s=42.0, hold_off_s=100.0), "ph", 7.1),
])
def test_stat_feed_pulses_with_exact_volume_and_hold_off(law, signal, high) -> None:  # type: ignore[no-untyped-def]
    bank = FeedBank(1, [FeedInstance("f", 0, law, mv="feed_rate_l_per_h")])
    above = high + 1.0
    results = run(bank, 1000.0, lambda t: (readings(1, **{signal: above if t >= 100.0 else high - 1.0}), None))
    rates = np.array([res.rate_l_per_h[MV][0] for _, res in results])
    times = np.array([t for t, _ in results])
    # The signal stays high from 100 s: a pulse starts at 100 s, lasts 42 s, then waits 100 s.
    pulse_starts = times[1:][(rates[1:] > 0) & (rates[:-1] == 0)]
    np.testing.assert_allclose(pulse_starts, [100.0, 245.0, 390.0, 535.0, 680.0, 825.0, 970.0])
    first = (times >= 100.0) & (times < 145.0)
    assert rates[first] @ np.full(first.sum(), DT) / H == pytest.approx(0.6 * 42.0 / H)  # exact pulse volume
    assert rates.max() == pytest.approx(0.6)
    assert (rates[times < 100.0] == 0.0).all()


def test_linear_feed_ramps_and_finishes_after_its_duration() -> None:
    bank = FeedBank(1, [FeedInstance("f", 0, LinearLaw(0.1, 0.06, duration_s=2 * H), StartAtTime(H))])
    results = run(bank, 4 * H, lambda t: ({}, None), dt=60.0)
    rate = {t: res.rate_l_per_h[MV][0] for t, res in results}
    assert rate[H - 60] == 0.0
    assert rate[H] == pytest.approx(0.1)
    assert rate[2.5 * H] == pytest.approx(0.1 + 0.06 * 1.5)
    assert rate[3 * H] == 0.0 and rate[3.9 * H] == 0.0
    stops = [e for _, res in results for e in res.events if e.kind == "feed_stopped"]
    assert len(stops) == 1 and "finished after 2 h" in stops[0].message
    # The rate at the start of each interval holds for it: the ramp's integral minus slope*T*dt/2.
    assert results[-1][1].total_l["f"][0] == pytest.approx(0.1 * 2 + 0.06 * 2 * 2 / 2 - 0.06 * 2 * (60 / H) / 2)


@pytest.mark.parametrize(("interpolation", "expected"), [
    ("linear", [0.05, 0.05, 0.1, 0.3, 0.5, 0.4, 0.3, 0.3]),
    ("step", [0.05, 0.05, 0.1, 0.1, 0.5, 0.5, 0.3, 0.3]),
])
def test_piecewise_profile_per_reactor(interpolation: str, expected: list[float]) -> None:
    # Two reactors with different profiles (lengths differ): reactor 1's is constant.
    bank = FeedBank(2, [
        FeedInstance("f", 0, PiecewiseLaw((1 * H, 2 * H, 4 * H, 6 * H), (0.05, 0.1, 0.5, 0.3), interpolation),
                     StartAtTime(H)),
        FeedInstance("f", 1, PiecewiseLaw((0.0,), (0.2,), interpolation), StartAtTime(H)),
    ])
    hours_after_start = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 9.0]
    got = [bank.step(H + h * H, DT, {}).rate_l_per_h[MV] for h in hours_after_start]
    np.testing.assert_allclose([g[0] for g in got], expected)
    np.testing.assert_allclose([g[1] for g in got], 0.2)


def test_reactors_without_a_feed_get_nan_and_feeds_keep_their_actuators() -> None:
    bank = FeedBank(3, [FeedInstance("glucose", 0, LinearLaw(0.2)),
                        FeedInstance("glucose", 2, LinearLaw(0.3)),
                        FeedInstance("glutamine", 2, LinearLaw(0.05), mv="base_rate_l_per_h")])
    assert bank.outputs == (("glucose", MV), ("glutamine", "base_rate_l_per_h"))
    res = bank.step(0.0, DT, {})
    np.testing.assert_array_equal(res.rate_l_per_h[MV], [0.2, np.nan, 0.3])
    np.testing.assert_array_equal(res.rate_l_per_h["base_rate_l_per_h"], [np.nan, np.nan, 0.05])
    np.testing.assert_array_equal(res.started["glutamine"], [False, False, True])
    with pytest.raises(ValueError, match="two feeds drive"):
        FeedBank(1, [FeedInstance("a", 0, LinearLaw(0.1)), FeedInstance("b", 0, LinearLaw(0.1))])


@pytest.mark.parametrize(("values", "match"), [
    ({"do_pct": np.ones(3)}, "shape"),
    ({}, "do_pct"),
])
def test_step_checks_its_inputs(values, match) -> None:  # type: ignore[no-untyped-def]
    bank = FeedBank(2, [FeedInstance("f", r, LinearLaw(0.1), StartOnDoSpike()) for r in range(2)])
    with pytest.raises((ValueError, KeyError), match=match):
        bank.step(0.0, DT, values)


# -- from the configuration -----------------------------------------------------------------------


def test_build_feed_bank_from_demo_config_applies_the_r3_override() -> None:
    cfg = load_config(DEMO)
    bank = build_feed_bank(cfg, ["R1", "R2", "R3"])
    assert bank.n_reactors == 3
    assert bank.outputs == (("glucose", MV),)
    assert set(bank.inputs) == {"our_mmol_per_l_h", "volume_l", "od600"}
    np.testing.assert_allclose(bank.exponential.mu_set_per_h, [0.25, 0.25, 0.18])
    np.testing.assert_allclose(bank.max_rate_l_per_h, 1.0)
    np.testing.assert_allclose(bank.max_volume_l, 10.5)
    np.testing.assert_allclose(bank.trigger.not_before_s, 1 * H)
    with pytest.raises(ValueError, match="R9"):
        build_feed_bank(cfg, ["R1", "R9"])


def test_demo_feed_starts_at_the_our_drop_in_a_synthetic_batch() -> None:
    """Drive the demo's bank with an OUR trace that collapses at 8 h on R1 and R3, 9 h on R2."""
    bank = build_feed_bank(load_config(DEMO), ["R1", "R2", "R3"])
    spike_h = np.array([8.0, 9.0, 8.0])

    def plant(t: float):  # type: ignore[no-untyped-def]
        h = t / H
        our = 2.0 * np.exp(0.45 * np.minimum(h, spike_h))  # grows with the biomass
        our = np.where((h >= 0.3) & (h < 0.5), 0.5, our)  # a start-up dip before not_before_h
        our = np.where(h >= spike_h, 0.3 * our, our)  # glucose gone: uptake collapses
        od = 2.0 * np.exp(0.5 * np.minimum(h, spike_h))
        return readings(3, our_mmol_per_l_h=our, od600=od, volume_l=5.0), None

    results = run(bank, 12 * H, plant, dt=5.0)
    starts = [first_start_s(results, "glucose", r) for r in range(3)]
    hold_s = load_config(DEMO).feeds_for("R1")[0].start.hold_s  # the drop must persist this long
    assert hold_s > 0
    np.testing.assert_allclose(starts, spike_h * H + hold_s)
    last_t, last = results[-1]
    x0 = 0.4 * 2.0 * np.exp(0.5 * spike_h)  # OD is flat after the spike, so the hold does not change X0
    expected = [min(1.0, formula(last_t, spike_h[r] * H + hold_s, mu, x0[r], 5.0, y=0.51, ms=0.04))
                for r, mu in enumerate([0.25, 0.25, 0.18])]
    np.testing.assert_allclose(last.rate_l_per_h[MV], expected, rtol=1e-9)
    assert last.rate_l_per_h[MV][2] < last.rate_l_per_h[MV][0]  # the slower clone feeds less
    messages = [e.message for _, res in results for e in res.events]
    assert len(messages) == 3 and all("(OUR fell" in m for m in messages)


def _our_bank(**start: float) -> FeedBank:
    return FeedBank(1, [FeedInstance("f", 0, exp_law(), start=StartOnOurDrop(**start))])


def test_our_drop_needs_the_drop_to_persist() -> None:
    """A single low OUR reading is noise; a drop held for hold_s is depletion."""
    bank = _our_bank(drop_fraction=0.8, min_our_mmol_per_l_h=10.0, hold_s=120.0)

    def plant(t: float):  # type: ignore[no-untyped-def]
        our = 40.0
        if 1000.0 <= t < 1010.0:
            our = 20.0  # one noisy reading
        elif t >= 2000.0:
            our = 25.0  # glucose gone
        return readings(1, our_mmol_per_l_h=our), None

    results = run(bank, 3000.0, plant, dt=10.0)
    assert first_start_s(results) == 2120.0


def test_our_drop_waits_for_a_culture_that_took_off() -> None:
    bank = _our_bank(drop_fraction=0.5, min_our_mmol_per_l_h=10.0)
    results = run(bank, 1000.0, lambda t: (readings(1, our_mmol_per_l_h=8.0 if t < 500 else 2.0), None), dt=10.0)
    assert math.isnan(first_start_s(results))


def test_hour_triggers_count_from_each_reactors_inoculation() -> None:
    """With POSIX-like process time, at_h counts from batch_start_s of each reactor."""
    t0 = 1.8e9
    bank = FeedBank(2, [FeedInstance("f", r, exp_law(), start=StartAtTime(at_s=3600.0)) for r in range(2)])
    start = np.array([t0, t0 - 1800.0])  # R2 was inoculated half an hour earlier
    started_at = [math.nan, math.nan]
    for t in np.arange(t0, t0 + 7200.0, 60.0):
        res = bank.step(float(t), 60.0, readings(2), None, batch_start_s=start)
        for r in range(2):
            if res.started["f"][r] and math.isnan(started_at[r]):
                started_at[r] = float(t) - t0
    assert started_at == [3600.0, 1800.0]


# -- snapshot and restore (service restart) ---------------------------------------------------------


def _restart_bank() -> FeedBank:
    return FeedBank(2, [
        FeedInstance("glc", 0, exp_law(), start=StartOnOurDrop(drop_fraction=0.6, min_our_mmol_per_l_h=10.0,
                                                               hold_s=30.0), max_total_l=0.5),
        FeedInstance("base", 0, PhStatLaw(ph_high=7.1, pulse_rate_l_per_h=0.2, pulse_s=60.0, hold_off_s=120.0),
                     mv="base_rate_l_per_h"),
        FeedInstance("glc", 1, LinearLaw(rate0_l_per_h=0.1, slope_l_per_h2=0.05, duration_s=H),
                     start=StartOnDoSpike(rise_pct=15.0, window_s=300.0, threshold_pct=40.0), max_total_l=0.2,
                     max_volume_l=6.0),
        FeedInstance("pw", 1, PiecewiseLaw(times_s=(0.0, 600.0), rates_l_per_h=(0.05, 0.15)),
                     start=StartAtTime(at_s=1000.0), mv="pw_rate_l_per_h"),
    ])


def _restart_plant(t: float) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    our = 40.0 if t < 2000.0 else 20.0  # depletion at 2000 s: the OUR-drop feed starts once, after 30 s
    do = [30.0, 30.0 if t < 2800.0 else 70.0]  # R2's DO spike at 2800 s
    ph = 7.0 + 0.15 * (int(t // 200.0) % 2)  # pH-stat pulses every other 200 s
    values = readings(2, our_mmol_per_l_h=our, do_pct=do, ph=ph, volume_l=[5.0, 5.2 + t / 1e5])
    ok = {"volume_l": np.array([True, not 2600.0 <= t < 2700.0])}  # a bad volume spell holds R2's feed
    return values, ok


def test_restored_bank_continues_exactly_like_the_uninterrupted_one() -> None:
    import json

    whole, first = _restart_bank(), _restart_bank()
    run(whole, 2750.0, _restart_plant)
    run(first, 2750.0, _restart_plant)  # OUR feed running, DO-spike window half full, a pulse timer armed
    text = json.dumps(first.snapshot(), allow_nan=False)  # NaN/inf encoded, not JSON's invalid NaN
    resumed = _restart_bank()
    events = resumed.restore(json.loads(text), t_s=2750.0)
    assert [(e.reactor, e.feed, e.kind) for e in events] == [(0, "glc", "feed_restored"), (0, "base", "feed_restored"),
                                                             (1, "glc", "feed_restored"), (1, "pw", "feed_restored")]
    assert "exponential feed resumed: started 0.2 h ago" in events[0].message
    expected, got = run(whole, 8000.0, _restart_plant, t_start_s=2750.0), run(resumed, 8000.0, _restart_plant,
                                                                              t_start_s=2750.0)
    for (t, a), (_, b) in zip(expected, got):
        for name in ("rate_l_per_h", "demand_l_per_h", "started", "t0_s", "total_l", "limited"):
            for key in getattr(a, name):
                np.testing.assert_array_equal(getattr(b, name)[key], getattr(a, name)[key], err_msg=f"{name} {t}")
        assert [e[:3] for e in b.events] == [e[:3] for e in a.events]
    last = expected[-1][1]
    assert last.total_l["glc"][0] > first.state.totaliser.total_l[0] > 0  # the totaliser went on from its count
    assert last.started["glc"][1] and last.t0_s["glc"][1] == 2800.0  # the spike fired after the restore


def test_restore_takes_only_allowed_rows_of_the_same_feed_law() -> None:
    old = _restart_bank()
    run(old, 2500.0, _restart_plant)
    snap = old.snapshot()
    fresh = _restart_bank()
    events = fresh.restore(snap, rows_ok=lambda feed, reactor: reactor == 1)
    assert {(e.reactor, e.feed) for e in events} == {(1, "glc"), (1, "pw")}
    assert not fresh.state.started[0] and fresh.state.started[3] and fresh.state.t0_s[3] == 1000.0
    mask = np.array([True, False, False, False])
    changed = FeedBank(2, [FeedInstance("glc", 0, LinearLaw(rate0_l_per_h=0.1))])  # same name, another law
    assert changed.restore(snap) == [] and not changed.state.started[0]
    assert [e.feed for e in _restart_bank().restore(snap, rows_ok=mask)] == ["glc"]
    with pytest.raises(ValueError, match="version"):
        fresh.restore({"version": 99, "rows": []})


def test_reset_reactor_restarts_only_that_reactors_feeds() -> None:
    bank = FeedBank(2, [FeedInstance("f", r, exp_law(), start=StartAtTime(at_s=100.0)) for r in range(2)])
    for t in np.arange(0.0, 500.0, 10.0):
        bank.step(float(t), 10.0, readings(2))
    assert bank.state.started.all()
    total = bank.state.totaliser.total_l.copy()
    bank.reset_reactor(0)
    assert not bank.state.started[0] and bank.state.totaliser.total_l[0] == 0.0
    assert bank.state.started[1] and bank.state.totaliser.total_l[1] == total[1]
    start = np.array([500.0, 0.0])  # reactor 0: new batch inoculated at t = 500 s
    started_at = math.nan
    for t in np.arange(500.0, 700.0, 10.0):
        res = bank.step(float(t), 10.0, readings(2), batch_start_s=start)
        if res.started["f"][0] and math.isnan(started_at):
            started_at = float(t)
        assert res.started["f"][1]  # the other vessel feeds on
    assert started_at == 600.0


def test_restore_credits_what_the_pumps_fed_while_the_service_was_away() -> None:
    old = _restart_bank()
    run(old, 2750.0, _restart_plant)  # R1's OUR-drop feed is pumping (bottle 0.5 L), R2's pw feed too
    snap = old.snapshot()
    total, pump = old.state.totaliser.total_l.copy(), old.state.totaliser.rate_l_per_h.copy()
    assert pump[0] > 0 and pump[3] > 0 and pump[1] == 0.0
    fresh = _restart_bank()
    events = fresh.restore(snap, t_s=2750.0 + 1800.0, counted_until_s=2750.0)  # 30 min uncounted
    got = fresh.state.totaliser.total_l
    np.testing.assert_allclose(got[3], total[3] + pump[3] * 0.5)  # no bottle limit: rate x 0.5 h
    assert got[0] == pytest.approx(min(total[0] + pump[0] * 0.5, 0.5))  # never beyond the bottle
    assert got[1] == total[1]  # a pump at 0 fed nothing
    messages = {e.feed + str(e.reactor): e.message for e in events}
    assert "pumped at" in messages["pw1"] and "30.0 min without the service" in messages["pw1"]
    assert "pumped" not in messages["base0"]
    same = _restart_bank()
    same.restore(snap, t_s=2750.0)  # no save time known: nothing is credited
    np.testing.assert_array_equal(same.state.totaliser.total_l, total)
