"""Feed-strategy runtime: every feed of every reactor in one vectorized step.

A :class:`FeedBank` is built once from :class:`FeedInstance` specs (one feed strategy on one
reactor, plain scalars) and compiled into *rows*: one row per (feed, reactor) pair, with the
parameters of each feed law and start trigger held as arrays over its rows. :meth:`FeedBank.step`
then runs once per control period: triggers, feed laws, limits and the totaliser are NumPy
operations over rows; Python loops run only over feed *kinds*, input signals and the (rare)
events.

Behaviour, as a fed-batch operator expects it:

* Before its start trigger fires a feed demands 0 L/h (not NaN). A trigger that fires latches:
  a DO dip after the spike does not stop the feed. Bad (``ok=False``) or non-finite inputs never
  fire a trigger.
* The exponential feed latches ``t0``, ``V0`` and ``X0`` when it starts. A bad volume or biomass
  reading at the trigger falls back to the last good one; with none yet, the feed waits (one
  ``feed_waiting`` event) and retries every step.
* Limits: the pump rate is clipped to ``max_rate_l_per_h``; ``max_total_l`` is enforced by
  :class:`controllers.feed.FeedTotaliser`, which never lets one interval deliver more than the
  room left, however long ``dt`` is; reaching ``max_total_l`` or ``max_volume_l`` ends the feed
  (latched: the bottle is empty or the vessel full, a restart is an operator decision).
* A bad ``volume_l`` reading holds a *max-volume-limited* feed at 0 until the reading is good
  again (``feed_held`` / ``feed_resumed`` events): overfilling blind risks a foam-out through the
  exhaust filter, whereas a carbon-limited culture tolerates a short feed pause. Feeds without
  a volume limit ignore the volume reading (except an exponential feed latching ``V0``).

A bank's state survives a service restart through :meth:`FeedBank.snapshot` (plain JSON data)
and :meth:`FeedBank.restore`: a feed started by a one-off event (an OUR drop) resumes with its
``t0``, ``X0``, ``V0`` and totaliser instead of waiting for an event that will not come again.

No I/O, clock or logging: ``t_s``/``dt_s`` and arrays come in, arrays and events come out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from controllers.feed import FeedTotaliser, exponential_feed_l_per_h, linear_feed_l_per_h

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]

#: Buckets per DO-spike window: the rise is measured against the minimum over the last
#: ``window_s`` resolved to ``window_s / _DO_BUCKETS`` (memory bounded whatever ``dt`` is).
_DO_BUCKETS = 16


# ---------------------------------------------------------------------------------------------
# specs: one feed on one reactor, plain scalars (what a config maps to)


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def _positive(name: str, x: float) -> None:
    _check(math.isfinite(x) and x > 0, f"{name} must be finite and > 0, got {x!r}")


def _non_negative(name: str, x: float) -> None:
    _check(math.isfinite(x) and x >= 0, f"{name} must be finite and >= 0, got {x!r}")


@dataclass(frozen=True)
class StartImmediately:
    """Start at the first step."""


@dataclass(frozen=True)
class StartAtTime:
    """Start when the process time reaches ``at_s`` (s since inoculation)."""

    at_s: float

    def __post_init__(self) -> None:
        _non_negative("at_s", self.at_s)


@dataclass(frozen=True)
class StartOnDoSpike:
    """Start at the DO spike that marks substrate depletion at the end of the batch phase.

    Fires when DO (% saturation) rose by ``rise_pct`` points above its minimum over the last
    ``window_s`` and is above ``threshold_pct``, not before ``not_before_s``: a slow drift is
    not a spike, and early-batch DO swings (the fall from 100 %) are not depletion.
    """

    rise_pct: float = 15.0
    window_s: float = 300.0
    threshold_pct: float = 40.0
    not_before_s: float = 0.0

    def __post_init__(self) -> None:
        _positive("rise_pct", self.rise_pct)
        _positive("window_s", self.window_s)
        _non_negative("threshold_pct", self.threshold_pct)
        _non_negative("not_before_s", self.not_before_s)


@dataclass(frozen=True)
class StartOnGlucoseBelow:
    """Start when the at-line glucose (g/L, good reading) is below ``glucose_g_per_l``."""

    glucose_g_per_l: float
    not_before_s: float = 0.0

    def __post_init__(self) -> None:
        _positive("glucose_g_per_l", self.glucose_g_per_l)
        _non_negative("not_before_s", self.not_before_s)


@dataclass(frozen=True)
class StartOnOurDrop:
    """Start when the oxygen uptake rate collapses at batch-phase substrate depletion.

    Under tight DO control the DO spike at depletion is absorbed by the DO loop (the
    stirrer slows instead), but OUR shows the event directly: fires when OUR (good
    reading) falls below ``drop_fraction`` of its highest value since ``not_before_s``,
    once that maximum has exceeded ``min_our_mmol_per_l_h`` (a culture that never took off
    does not trigger).
    """

    drop_fraction: float = 0.6
    min_our_mmol_per_l_h: float = 10.0
    not_before_s: float = 0.0
    hold_s: float = 0.0
    """OUR must stay below the threshold this long (a noisy reading is not depletion)."""

    def __post_init__(self) -> None:
        _check(0.0 < self.drop_fraction < 1.0, f"drop_fraction must be in (0, 1), got {self.drop_fraction!r}")
        _non_negative("hold_s", self.hold_s)
        _non_negative("min_our_mmol_per_l_h", self.min_our_mmol_per_l_h)
        _non_negative("not_before_s", self.not_before_s)


Start = StartImmediately | StartAtTime | StartOnDoSpike | StartOnGlucoseBelow | StartOnOurDrop


@dataclass(frozen=True)
class ExponentialLaw:
    """``F(t) = (mu_set/Y_xs + m_s) * X0 * V0 * exp(mu_set * (t - t0)) / S_f`` in L/h.

    ``x0_g_per_l`` unset: ``biomass_signal`` x ``biomass_g_per_l_per_unit`` at the start;
    ``v0_l`` unset: the ``volume_l`` reading at the start.
    """

    mu_set_per_h: float
    y_xs_g_per_g: float
    s_f_g_per_l: float
    m_s_g_per_g_h: float = 0.0
    x0_g_per_l: float | None = None
    biomass_signal: str = "od600"
    biomass_g_per_l_per_unit: float = 0.4
    v0_l: float | None = None

    def __post_init__(self) -> None:
        _positive("mu_set_per_h", self.mu_set_per_h)
        _positive("y_xs_g_per_g", self.y_xs_g_per_g)
        _positive("s_f_g_per_l", self.s_f_g_per_l)
        _non_negative("m_s_g_per_g_h", self.m_s_g_per_g_h)
        _positive("biomass_g_per_l_per_unit", self.biomass_g_per_l_per_unit)
        if self.x0_g_per_l is not None:
            _positive("x0_g_per_l", self.x0_g_per_l)
        if self.v0_l is not None:
            _positive("v0_l", self.v0_l)


@dataclass(frozen=True)
class LinearLaw:
    """``F = rate0 + slope * (t - t0)`` (hours), never negative, for ``duration_s`` if set."""

    rate0_l_per_h: float
    slope_l_per_h2: float = 0.0
    duration_s: float | None = None

    def __post_init__(self) -> None:
        _non_negative("rate0_l_per_h", self.rate0_l_per_h)
        _check(math.isfinite(self.slope_l_per_h2), "slope_l_per_h2 must be finite")
        if self.duration_s is not None:
            _positive("duration_s", self.duration_s)


@dataclass(frozen=True)
class PiecewiseLaw:
    """A rate profile over seconds since the start; the first rate holds before ``times_s[0]``
    and the last one after the end. ``step`` holds each rate until the next point."""

    times_s: tuple[float, ...]
    rates_l_per_h: tuple[float, ...]
    interpolation: Literal["linear", "step"] = "linear"

    def __post_init__(self) -> None:
        t, r = tuple(map(float, self.times_s)), tuple(map(float, self.rates_l_per_h))
        object.__setattr__(self, "times_s", t)
        object.__setattr__(self, "rates_l_per_h", r)
        _check(len(t) >= 1 and len(t) == len(r), "times_s and rates_l_per_h need the same, non-zero length")
        _check(all(math.isfinite(x) for x in t) and all(b > a for a, b in zip(t, t[1:])),
               "times_s must be finite and strictly increasing")
        _check(all(math.isfinite(x) and x >= 0 for x in r), "rates_l_per_h must be finite and >= 0")
        _check(self.interpolation in ("linear", "step"), "interpolation: 'linear' or 'step'")


@dataclass(frozen=True)
class DoStatLaw:
    """DO-stat: a pulse of ``pulse_rate_l_per_h`` for ``pulse_s`` when DO rises above ``do_high_pct``.

    ``hold_off_s`` runs from the end of one pulse to the earliest next one: the DO needs time
    to fall after a pulse, and the same spike must not fire a second pulse.
    """

    do_high_pct: float
    pulse_rate_l_per_h: float
    pulse_s: float
    hold_off_s: float = 0.0

    def __post_init__(self) -> None:
        _positive("do_high_pct", self.do_high_pct)
        _positive("pulse_rate_l_per_h", self.pulse_rate_l_per_h)
        _positive("pulse_s", self.pulse_s)
        _non_negative("hold_off_s", self.hold_off_s)


@dataclass(frozen=True)
class PhStatLaw:
    """pH-stat: a pulse when pH rises above ``ph_high`` (substrate ran out); as :class:`DoStatLaw`."""

    ph_high: float
    pulse_rate_l_per_h: float
    pulse_s: float
    hold_off_s: float = 0.0

    def __post_init__(self) -> None:
        _positive("ph_high", self.ph_high)
        _positive("pulse_rate_l_per_h", self.pulse_rate_l_per_h)
        _positive("pulse_s", self.pulse_s)
        _non_negative("hold_off_s", self.hold_off_s)


Law = ExponentialLaw | LinearLaw | PiecewiseLaw | DoStatLaw | PhStatLaw

_LAW_LABEL = {ExponentialLaw: "exponential", LinearLaw: "linear", PiecewiseLaw: "piecewise",
              DoStatLaw: "DO-stat", PhStatLaw: "pH-stat"}


@dataclass(frozen=True)
class FeedInstance:
    """One feed strategy on one reactor.

    Parameters
    ----------
    name : str
        Feed name (shared by the instances of one configured feed on several reactors).
    reactor : int
        Reactor index, ``0 <= reactor < n_reactors``.
    law : Law
        How the rate is computed once started.
    start : Start
        When it starts.
    mv : str
        Actuator signal the rate goes to, L/h. One feed per (reactor, mv).
    max_rate_l_per_h : float
        Pump limit, L/h (inf: none).
    max_volume_l : float
        Broth volume at which feeding ends, L (inf: none).
    max_total_l : float
        Feed volume after which feeding ends (the feed bottle), L (inf: none).
    """

    name: str
    reactor: int
    law: Law
    start: Start = StartImmediately()
    mv: str = "feed_rate_l_per_h"
    max_rate_l_per_h: float = math.inf
    max_volume_l: float = math.inf
    max_total_l: float = math.inf

    def __post_init__(self) -> None:
        _check(isinstance(self.law, tuple(_LAW_LABEL)), f"unknown feed law {self.law!r}")
        for key in ("max_rate_l_per_h", "max_volume_l", "max_total_l"):
            value = getattr(self, key)
            _check(not math.isnan(value) and value > 0, f"{key} must be > 0 (inf: no limit), got {value!r}")


# ---------------------------------------------------------------------------------------------
# compiled parameters: arrays over rows


@dataclass(frozen=True)
class TriggerParams:
    """Start triggers of all rows, shape (n_rows,) each; fields of other kinds are NaN."""

    kind: npt.NDArray[np.int8]
    """0 immediately, 1 time, 2 DO spike, 3 glucose below, 4 OUR drop."""
    at_s: FloatArray
    rise_pct: FloatArray
    window_s: FloatArray
    threshold_pct: FloatArray
    not_before_s: FloatArray
    glucose_g_per_l: FloatArray
    drop_fraction: FloatArray
    min_our_mmol_per_l_h: FloatArray
    hold_s: FloatArray


@dataclass(frozen=True)
class ExponentialParams:
    """Exponential rows: ``rows`` (k,) indexes the bank's rows; every other array is (k,)."""

    rows: IntArray
    mu_set_per_h: FloatArray
    y_xs_g_per_g: FloatArray
    m_s_g_per_g_h: FloatArray
    s_f_g_per_l: FloatArray
    x0_g_per_l: FloatArray
    """NaN: from the biomass signal at the start."""
    biomass_g_per_l_per_unit: FloatArray
    v0_l: FloatArray
    """NaN: from ``volume_l`` at the start."""
    biomass_signal: tuple[str, ...]


@dataclass(frozen=True)
class LinearParams:
    """Linear rows (k,): rate at the start (L/h), slope (L/h per h), duration (s, inf: none)."""

    rows: IntArray
    rate0_l_per_h: FloatArray
    slope_l_per_h2: FloatArray
    duration_s: FloatArray


@dataclass(frozen=True)
class PiecewiseParams:
    """Piecewise rows: profiles padded to a common length ``m``.

    ``times_s`` (k, m + 1) is padded with +inf and ``rates_l_per_h`` (k, m + 1) with the last
    rate, so that the segment after a profile's end holds its last rate without a branch.
    """

    rows: IntArray
    times_s: FloatArray
    rates_l_per_h: FloatArray
    step: BoolArray


@dataclass(frozen=True)
class PulseParams:
    """DO-stat and pH-stat rows (k,): ``signal`` per row, threshold in its unit."""

    rows: IntArray
    signal: tuple[str, ...]
    high: FloatArray
    pulse_rate_l_per_h: FloatArray
    pulse_s: FloatArray
    hold_off_s: FloatArray


class FeedEvent(NamedTuple):
    """A change of a feed's state on one reactor, for the operator's event log."""

    reactor: int
    feed: str
    kind: str
    """``feed_started``, ``feed_waiting``, ``feed_stopped``, ``feed_held``, ``feed_resumed``,
    ``feed_restored`` (by :meth:`FeedBank.restore`)."""
    message: str


@dataclass(frozen=True)
class FeedStepResult:
    """What one :meth:`FeedBank.step` decided; every array has shape (n_reactors,).

    Attributes
    ----------
    rate_l_per_h : dict mv -> ndarray
        Pump demand, L/h, after every limit; 0 before the start and after a stop; NaN where
        the reactor has no feed on that actuator (do not write it).
    demand_l_per_h : dict feed -> ndarray
        The feed law's rate before limits, L/h (NaN where the reactor lacks the feed).
    started : dict feed -> bool ndarray
    t0_s : dict feed -> ndarray
        Feed start, s of process time; NaN before the start.
    total_l : dict feed -> ndarray
        Feed volume delivered (counted for the interval just commanded), L.
    limited : dict feed -> bool ndarray
        A pump, volume or total limit is cutting the demand, or a bad volume holds the feed.
    events : list of FeedEvent
    """

    rate_l_per_h: dict[str, FloatArray]
    demand_l_per_h: dict[str, FloatArray]
    started: dict[str, BoolArray]
    t0_s: dict[str, FloatArray]
    total_l: dict[str, FloatArray]
    limited: dict[str, BoolArray]
    events: list[FeedEvent]


_IMMEDIATE, _TIME, _DO_SPIKE, _GLUCOSE, _OUR_DROP = 0, 1, 2, 3, 4
_TRIGGER_LABEL = {_IMMEDIATE: "immediately", _TIME: "time", _DO_SPIKE: "DO spike", _GLUCOSE: "glucose",
                  _OUR_DROP: "OUR drop"}
_RUNNING, _STOP_VOLUME, _STOP_TOTAL, _STOP_DURATION = 0, 1, 2, 3

#: Bumped when :meth:`FeedBank.snapshot`'s layout changes; :meth:`FeedBank.restore` refuses others.
_SNAPSHOT_VERSION = 1
#: Per-row float fields of :class:`FeedState` that a snapshot carries (besides the totaliser's).
_FLOAT_STATE = ("t0_s", "x0_g_per_l", "v0_l", "last_good_volume_l", "last_good_biomass", "pulse_end_s",
                "next_pulse_s")


def _enc(x: float) -> float | str:
    """A float for JSON: non-finite values as ``"nan"``, ``"inf"``, ``"-inf"``."""
    x = float(x)
    return x if math.isfinite(x) else str(x)


def _dec(x: object) -> float:
    return float(x)  # type: ignore[arg-type]  # float("nan"/"inf"/"-inf") parses _enc's strings


@dataclass
class FeedState:
    """Mutable per-row state of a bank, shape (n_rows,) unless noted; exposed for recording."""

    triggered: BoolArray
    started: BoolArray
    t0_s: FloatArray
    x0_g_per_l: FloatArray
    v0_l: FloatArray
    last_good_volume_l: FloatArray
    last_good_biomass: FloatArray
    """Last good reading of the row's biomass signal, in the signal's unit (exponential rows)."""
    waiting: BoolArray
    held: BoolArray
    stop: npt.NDArray[np.int8]
    pulse_end_s: FloatArray
    next_pulse_s: FloatArray
    do_bucket_min_pct: FloatArray
    """(n_do_spike_rows, _DO_BUCKETS): minimum DO per time bucket."""
    do_bucket_id: npt.NDArray[np.int64]
    totaliser: FeedTotaliser
    last: FeedStepResult | None = field(default=None)


# ---------------------------------------------------------------------------------------------
# the bank


class _Gather:
    """Reads, for each of ``rows``, signal ``signals[j]`` of the row's reactor (precomputed once)."""

    def __init__(self, signals: Sequence[str], rows: IntArray, reactor_of_row: IntArray) -> None:
        self.rows = rows
        names = np.asarray(signals, dtype=object)
        self.parts = [(sig, np.flatnonzero(names == sig), reactor_of_row[rows[names == sig]])
                      for sig in dict.fromkeys(signals)]

    def __call__(self, v: Mapping[str, FloatArray], good: Mapping[str, BoolArray]) -> tuple[FloatArray, BoolArray]:
        """Values (k,) in each signal's unit, and their quality (k,)."""
        out = np.full(self.rows.size, np.nan)
        out_ok = np.zeros(self.rows.size, bool)
        for sig, pos, reactors in self.parts:
            out[pos] = v[sig][reactors]
            out_ok[pos] = good[sig][reactors]
        return out, out_ok


def _f(xs: Sequence[float]) -> FloatArray:
    return np.array(xs, dtype=np.float64)


def _i(xs: Sequence[int]) -> IntArray:
    return np.array(xs, dtype=np.intp)


class FeedBank:
    """Every feed strategy of every reactor, stepped together.

    Parameters
    ----------
    n_reactors : int
        Reactors; every input and output array has shape (n_reactors,).
    instances : sequence of FeedInstance
        One per (feed, reactor). A reactor may run several feeds on different actuators.
    """

    def __init__(self, n_reactors: int, instances: Sequence[FeedInstance]) -> None:
        _check(n_reactors >= 1, "n_reactors must be >= 1")
        self.n_reactors = int(n_reactors)
        self.instances = tuple(instances)
        seen: set[tuple[int, str]] = set()
        for inst in self.instances:
            _check(0 <= inst.reactor < n_reactors, f"feed {inst.name!r}: reactor {inst.reactor} out of range")
            _check((inst.reactor, inst.mv) not in seen,
                   f"reactor {inst.reactor}: two feeds drive {inst.mv!r}")
            seen.add((inst.reactor, inst.mv))
        rows = self.instances
        n = len(rows)
        self._reactor = _i([r.reactor for r in rows])
        self._name = tuple(r.name for r in rows)
        self._label = tuple(_LAW_LABEL[type(r.law)] for r in rows)
        self.feeds: tuple[str, ...] = tuple(dict.fromkeys(self._name))
        self._feed_rows = {f: _i([i for i, r in enumerate(rows) if r.name == f]) for f in self.feeds}
        self.outputs: tuple[tuple[str, str], ...] = tuple(dict.fromkeys((r.name, r.mv) for r in rows))
        self._mv_rows = {mv: _i([i for i, r in enumerate(rows) if r.mv == mv])
                         for mv in dict.fromkeys(r.mv for r in rows)}
        self.max_rate_l_per_h = _f([r.max_rate_l_per_h for r in rows])
        self.max_volume_l = _f([r.max_volume_l for r in rows])
        self.max_total_l = _f([r.max_total_l for r in rows])

        self.trigger = self._compile_triggers(rows)
        self.exponential = self._compile_exponential(rows)
        self.linear = self._compile_linear(rows)
        self.piecewise = self._compile_piecewise(rows)
        self.pulse = self._compile_pulse(rows)
        self._do_spike_rows = np.flatnonzero(self.trigger.kind == _DO_SPIKE)
        self._glucose_rows = np.flatnonzero(self.trigger.kind == _GLUCOSE)
        self._our_rows = np.flatnonzero(self.trigger.kind == _OUR_DROP)
        self._volume_limited = np.isfinite(self.max_volume_l)
        ex = self.exponential
        exp_v0_from_tag = ex.rows[np.isnan(ex.v0_l)]
        self._volume_rows = np.union1d(np.flatnonzero(self._volume_limited), exp_v0_from_tag).astype(np.intp)
        x0_from_tag = np.isnan(ex.x0_g_per_l)
        gather = lambda signals, rows: _Gather(signals, rows, self._reactor)  # noqa: E731
        self._read_volume = gather(["volume_l"] * self._volume_rows.size, self._volume_rows)
        self._read_biomass = gather([s for s, f in zip(ex.biomass_signal, x0_from_tag) if f], ex.rows[x0_from_tag])
        self._read_do = gather(["do_pct"] * self._do_spike_rows.size, self._do_spike_rows)
        self._read_glucose = gather(["glucose_g_per_l"] * self._glucose_rows.size, self._glucose_rows)
        self._read_our = gather(["our_mmol_per_l_h"] * self._our_rows.size, self._our_rows)
        self._our_max = np.zeros(self._our_rows.size)
        self._our_low_since = np.full(self._our_rows.size, np.nan)
        self._read_pulse_pv = gather(self.pulse.signal, self.pulse.rows)

        needs: list[str] = []
        if self._do_spike_rows.size:
            needs.append("do_pct")
        if self._glucose_rows.size:
            needs.append("glucose_g_per_l")
        if self._our_rows.size:
            needs.append("our_mmol_per_l_h")
        needs.extend(self.pulse.signal)
        if self._volume_rows.size:
            needs.append("volume_l")
        needs.extend(s for s, x0 in zip(self.exponential.biomass_signal, self.exponential.x0_g_per_l)
                     if np.isnan(x0))
        self.inputs: tuple[str, ...] = tuple(dict.fromkeys(needs))
        self.state = self._initial_state(n)

    # -- compile -----------------------------------------------------------------------------

    @staticmethod
    def _compile_triggers(rows: Sequence[FeedInstance]) -> TriggerParams:
        nan = math.nan
        kind, at, rise, window, thr, nb, glc, drop, our_min, hold = [], [], [], [], [], [], [], [], [], []
        for r in rows:
            s = r.start
            k = {StartImmediately: _IMMEDIATE, StartAtTime: _TIME, StartOnDoSpike: _DO_SPIKE,
                 StartOnGlucoseBelow: _GLUCOSE, StartOnOurDrop: _OUR_DROP}.get(type(s))
            _check(k is not None, f"feed {r.name!r}: unknown start trigger {s!r}")
            kind.append(k)
            at.append(s.at_s if isinstance(s, StartAtTime) else nan)
            rise.append(s.rise_pct if isinstance(s, StartOnDoSpike) else nan)
            window.append(s.window_s if isinstance(s, StartOnDoSpike) else nan)
            thr.append(s.threshold_pct if isinstance(s, StartOnDoSpike) else nan)
            nb.append(s.not_before_s if isinstance(s, (StartOnDoSpike, StartOnGlucoseBelow, StartOnOurDrop)) else 0.0)
            glc.append(s.glucose_g_per_l if isinstance(s, StartOnGlucoseBelow) else nan)
            drop.append(s.drop_fraction if isinstance(s, StartOnOurDrop) else nan)
            our_min.append(s.min_our_mmol_per_l_h if isinstance(s, StartOnOurDrop) else nan)
            hold.append(s.hold_s if isinstance(s, StartOnOurDrop) else nan)
        return TriggerParams(np.array(kind, np.int8), _f(at), _f(rise), _f(window), _f(thr), _f(nb), _f(glc),
                             _f(drop), _f(our_min), _f(hold))

    @staticmethod
    def _compile_exponential(rows: Sequence[FeedInstance]) -> ExponentialParams:
        idx = [i for i, r in enumerate(rows) if isinstance(r.law, ExponentialLaw)]
        laws: list[ExponentialLaw] = [rows[i].law for i in idx]  # type: ignore[misc]
        opt = lambda x: math.nan if x is None else x  # noqa: E731
        return ExponentialParams(
            _i(idx), _f([w.mu_set_per_h for w in laws]), _f([w.y_xs_g_per_g for w in laws]),
            _f([w.m_s_g_per_g_h for w in laws]), _f([w.s_f_g_per_l for w in laws]),
            _f([opt(w.x0_g_per_l) for w in laws]), _f([w.biomass_g_per_l_per_unit for w in laws]),
            _f([opt(w.v0_l) for w in laws]), tuple(w.biomass_signal for w in laws))

    @staticmethod
    def _compile_linear(rows: Sequence[FeedInstance]) -> LinearParams:
        idx = [i for i, r in enumerate(rows) if isinstance(r.law, LinearLaw)]
        laws: list[LinearLaw] = [rows[i].law for i in idx]  # type: ignore[misc]
        return LinearParams(_i(idx), _f([w.rate0_l_per_h for w in laws]), _f([w.slope_l_per_h2 for w in laws]),
                            _f([math.inf if w.duration_s is None else w.duration_s for w in laws]))

    @staticmethod
    def _compile_piecewise(rows: Sequence[FeedInstance]) -> PiecewiseParams:
        idx = [i for i, r in enumerate(rows) if isinstance(r.law, PiecewiseLaw)]
        laws: list[PiecewiseLaw] = [rows[i].law for i in idx]  # type: ignore[misc]
        m = max((len(w.times_s) for w in laws), default=0) + 1
        times = np.full((len(laws), m), np.inf)
        rates = np.zeros((len(laws), m))
        for j, w in enumerate(laws):
            times[j, :len(w.times_s)] = w.times_s
            rates[j, :] = w.rates_l_per_h[-1]
            rates[j, :len(w.rates_l_per_h)] = w.rates_l_per_h
        return PiecewiseParams(_i(idx), times, rates, np.array([w.interpolation == "step" for w in laws], bool))

    @staticmethod
    def _compile_pulse(rows: Sequence[FeedInstance]) -> PulseParams:
        idx = [i for i, r in enumerate(rows) if isinstance(r.law, (DoStatLaw, PhStatLaw))]
        laws: list[DoStatLaw | PhStatLaw] = [rows[i].law for i in idx]  # type: ignore[misc]
        return PulseParams(
            _i(idx), tuple("do_pct" if isinstance(w, DoStatLaw) else "ph" for w in laws),
            _f([w.do_high_pct if isinstance(w, DoStatLaw) else w.ph_high for w in laws]),
            _f([w.pulse_rate_l_per_h for w in laws]), _f([w.pulse_s for w in laws]),
            _f([w.hold_off_s for w in laws]))

    def _initial_state(self, n: int) -> FeedState:
        nan = lambda: np.full(n, np.nan)  # noqa: E731
        k = self._do_spike_rows.size
        totaliser = FeedTotaliser.create(n, self.max_rate_l_per_h, self.max_total_l, self.max_volume_l)
        return FeedState(
            triggered=np.zeros(n, bool), started=np.zeros(n, bool), t0_s=nan(), x0_g_per_l=nan(), v0_l=nan(),
            last_good_volume_l=nan(), last_good_biomass=nan(), waiting=np.zeros(n, bool),
            held=np.zeros(n, bool), stop=np.zeros(n, np.int8), pulse_end_s=nan(), next_pulse_s=np.full(n, -np.inf),
            do_bucket_min_pct=np.full((k, _DO_BUCKETS), np.inf),
            do_bucket_id=np.full((k, _DO_BUCKETS), np.iinfo(np.int64).min, np.int64), totaliser=totaliser)

    # -- persistence ---------------------------------------------------------------------------

    def reset_reactor(self, reactor: int) -> None:
        """Start every feed of ``reactor`` afresh: a new batch began in that vessel.

        Triggers re-arm, the totaliser restarts at 0 and the feed demand is 0 until the new
        batch's trigger fires; other reactors are untouched.
        """
        _check(0 <= reactor < self.n_reactors, f"reactor {reactor} out of range")
        rows = self._reactor == reactor
        fresh = self._initial_state(len(self.instances))
        st = self.state
        for name in ("triggered", "started", "t0_s", "x0_g_per_l", "v0_l", "last_good_volume_l",
                     "last_good_biomass", "waiting", "held", "stop", "pulse_end_s", "next_pulse_s"):
            getattr(st, name)[rows] = getattr(fresh, name)[rows]
        do_rows = rows[self._do_spike_rows]
        st.do_bucket_min_pct[do_rows] = fresh.do_bucket_min_pct[do_rows]
        st.do_bucket_id[do_rows] = fresh.do_bucket_id[do_rows]
        st.totaliser.total_l[rows] = fresh.totaliser.total_l[rows]
        st.totaliser.rate_l_per_h[rows] = fresh.totaliser.rate_l_per_h[rows]
        our_rows = rows[self._our_rows]
        self._our_max[our_rows] = 0.0
        self._our_low_since[our_rows] = np.nan

    def snapshot(self) -> dict[str, object]:
        """Everything :meth:`step` needs to continue each row exactly, as plain JSON data.

        Returns
        -------
        dict
            ``{"version": 1, "rows": [...]}``, one row per (feed, reactor) with ``feed``,
            ``reactor`` (index), ``law`` (label) and the row's state. Non-finite floats are
            written as the strings ``"nan"``, ``"inf"``, ``"-inf"`` (JSON has no NaN), so
            ``json.dumps(..., allow_nan=False)`` accepts the result. The last step's result
            (:attr:`FeedState.last`, only used when ``dt_s`` is invalid) is not included.
        """
        st = self.state
        do_pos = {int(i): k for k, i in enumerate(self._do_spike_rows)}
        our_pos = {int(i): k for k, i in enumerate(self._our_rows)}
        rows: list[dict[str, object]] = []
        for i, inst in enumerate(self.instances):
            row: dict[str, object] = {"feed": inst.name, "reactor": inst.reactor, "law": self._label[i],
                                      "triggered": bool(st.triggered[i]), "started": bool(st.started[i]),
                                      "waiting": bool(st.waiting[i]), "held": bool(st.held[i]),
                                      "stop": int(st.stop[i]),
                                      "total_l": _enc(st.totaliser.total_l[i]),
                                      "pump_rate_l_per_h": _enc(st.totaliser.rate_l_per_h[i])}
            row.update({name: _enc(getattr(st, name)[i]) for name in _FLOAT_STATE})
            if i in do_pos:
                k = do_pos[i]
                row["do_bucket_min_pct"] = [_enc(x) for x in st.do_bucket_min_pct[k]]
                row["do_bucket_id"] = [int(x) for x in st.do_bucket_id[k]]
            if i in our_pos:
                row["our_max_mmol_per_l_h"] = _enc(self._our_max[our_pos[i]])
                row["our_low_since_s"] = _enc(self._our_low_since[our_pos[i]])
            rows.append(row)
        return {"version": _SNAPSHOT_VERSION, "rows": rows}

    def restore(self, snapshot: Mapping[str, object], *,
                rows_ok: Callable[[str, int], bool] | npt.ArrayLike | None = None,
                t_s: float | None = None, counted_until_s: float | None = None) -> list[FeedEvent]:
        """Continue from a :meth:`snapshot`: copy the state of matching rows into this bank.

        A saved row is restored into the bank row with the same feed name, reactor index and
        feed law (a feed whose law changed starts afresh: an exponential feed given a linear
        feed's state would run without V0/X0). Bank rows without a saved row, or refused by
        ``rows_ok``, keep their state. Call it before the first :meth:`step` of a restarted
        service; trigger parameters and limits are the bank's own (the config may have changed).

        Parameters
        ----------
        snapshot : mapping
            What :meth:`snapshot` returned (possibly of another bank, through JSON).
        rows_ok : callable ``(feed, reactor) -> bool`` or bool array (n_rows,), optional
            Which bank rows may be restored (default all); the caller decides, e.g. only
            reactors still running the batch the snapshot was taken in.
        t_s : float, optional
            Process time now, s; for the messages ("started 5.2 h ago") and, with
            ``counted_until_s``, the time the pumps ran unattended.
        counted_until_s : float, optional
            Process time up to which the snapshot's totaliser had counted (its last step's
            time plus that step's interval: a step counts the interval it sets the rate for).
            Nothing changed a pump's setpoint since (the PLC holds the last value written), so
            each restored feed is credited ``pump rate x (t_s - counted_until_s)`` on its
            totaliser, capped by ``max_total_l``: the bottle limit and the feed's volume
            accounting stay true after an outage.

        Returns
        -------
        list of FeedEvent
            One ``feed_restored`` event per restored row, saying what continues.

        Raises
        ------
        ValueError
            An unknown snapshot version or a malformed row.
        """
        _check(snapshot.get("version") == _SNAPSHOT_VERSION,
               f"feed snapshot version {snapshot.get('version')!r}, expected {_SNAPSHOT_VERSION}")
        n = len(self.instances)
        if rows_ok is None:
            allowed = np.ones(n, bool)
        elif callable(rows_ok):
            allowed = np.array([bool(rows_ok(inst.name, inst.reactor)) for inst in self.instances], bool)
        else:
            allowed = np.asarray(rows_ok, bool)
            _check(allowed.shape == (n,), f"rows_ok: shape {allowed.shape}, expected ({n},)")
        index = {(inst.name, inst.reactor, self._label[i]): i for i, inst in enumerate(self.instances)}
        do_pos = {int(i): k for k, i in enumerate(self._do_spike_rows)}
        our_pos = {int(i): k for k, i in enumerate(self._our_rows)}
        st = self.state
        events: list[FeedEvent] = []
        for row in snapshot.get("rows", []):  # type: ignore[attr-defined]
            i = index.get((row["feed"], row["reactor"], row["law"]))
            if i is None or not allowed[i]:
                continue
            try:  # parse the whole row before writing any of it
                flags = {name: bool(row[name]) for name in ("triggered", "started", "waiting", "held")}
                floats = {name: _dec(row[name]) for name in _FLOAT_STATE}
                stop, total, pump = int(row["stop"]), _dec(row["total_l"]), _dec(row["pump_rate_l_per_h"])
                do = ((np.array([_dec(x) for x in row["do_bucket_min_pct"]]),
                       np.array([int(x) for x in row["do_bucket_id"]], np.int64))
                      if i in do_pos and "do_bucket_id" in row else None)
                _check(do is None or do[0].shape == do[1].shape == (_DO_BUCKETS,), "DO window has the wrong size")
                our = ((_dec(row["our_max_mmol_per_l_h"]), _dec(row["our_low_since_s"]))
                       if i in our_pos and "our_max_mmol_per_l_h" in row else None)
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"feed snapshot row {row.get('feed')!r}/{row.get('reactor')!r}: {exc!r}") from exc
            for name, flag in flags.items():
                getattr(st, name)[i] = flag
            for name, x in floats.items():
                getattr(st, name)[i] = x
            st.stop[i] = stop
            unattended_l = 0.0
            if t_s is not None and counted_until_s is not None and t_s > counted_until_s and pump > 0:
                unattended_l = min(pump * (t_s - counted_until_s) / 3600.0, max(float(self.max_total_l[i]) - total, 0.0))
            st.totaliser.total_l[i], st.totaliser.rate_l_per_h[i] = total + unattended_l, pump
            if do is not None:
                st.do_bucket_min_pct[do_pos[i]], st.do_bucket_id[do_pos[i]] = do
            if our is not None:
                self._our_max[our_pos[i]], self._our_low_since[our_pos[i]] = our
            text = self._restored_text(i, t_s)
            if unattended_l > 0:
                text += (f" (incl. {unattended_l:.3g} L pumped at {pump:.3g} L/h during the "
                         f"{(t_s - counted_until_s) / 60.0:.1f} min without the service)")  # type: ignore[operator]
            events.append(FeedEvent(int(self._reactor[i]), self._name[i], "feed_restored", text))
        st.last = None
        return events

    def _restored_text(self, i: int, t_s: float | None) -> str:
        st = self.state
        fed = f"{st.totaliser.total_l[i]:.3g} L fed"
        if not st.started[i]:
            what = "waiting for V0/X0" if st.waiting[i] else "not started yet, trigger watch"
            return f"{self._label[i]} feed state restored: {what}, {fed}"
        since = "" if t_s is None else f" {(t_s - st.t0_s[i]) / 3600.0:.1f} h ago"
        verb = "resumed" if st.stop[i] == _RUNNING else "restored (stopped)"
        return f"{self._label[i]} feed {verb}: started{since}, {fed}"

    # -- step --------------------------------------------------------------------------------

    def step(self, t_s: float, dt_s: float, values: Mapping[str, npt.ArrayLike],
             ok: Mapping[str, npt.ArrayLike] | None = None, *,
             batch_start_s: npt.ArrayLike | None = None) -> FeedStepResult:
        """Decide every feed rate for the next control interval.

        Parameters
        ----------
        t_s : float
            Process time now, s (finite).
        dt_s : float
            Interval the returned rates will be applied for, s. ``dt_s <= 0`` or non-finite:
            nothing advances and the previous rates are returned (no time has passed that
            could be accounted for).
        values : mapping signal -> array (n_reactors,)
            Readings of at least :attr:`inputs`, in each signal's unit.
        ok : mapping signal -> bool array (n_reactors,), optional
            Quality; a missing entry means good. Non-finite values count as bad anyway.
        batch_start_s : array (n_reactors,), optional
            Process time of each reactor's inoculation, s (default 0). Start triggers in
            hours (``at_h``, ``not_before_h``) count from it, as an operator's recipe does;
            ``t_s`` itself may then be a wall-clock-like process time (POSIX seconds).

        Returns
        -------
        FeedStepResult
        """
        t = float(t_s)
        _check(math.isfinite(t), f"t_s must be finite, got {t_s!r}")
        start = np.zeros(self.n_reactors) if batch_start_s is None else np.asarray(batch_start_s, dtype=np.float64)
        _check(start.shape == (self.n_reactors,), f"batch_start_s must have shape ({self.n_reactors},)")
        # Unknown inoculation time: count from now, so hour-based triggers wait their full time.
        self._elapsed_s = t - np.where(np.isfinite(start), start, t)[self._reactor]
        ok = ok or {}
        v: dict[str, FloatArray] = {}
        good: dict[str, BoolArray] = {}
        for sig in self.inputs:
            if sig not in values:
                raise KeyError(f"feed bank input {sig!r} missing from values (needs {self.inputs})")
            a = np.asarray(values[sig], np.float64)
            _check(a.shape == (self.n_reactors,), f"{sig}: shape {a.shape}, expected ({self.n_reactors},)")
            g = np.asarray(ok[sig], bool) if sig in ok else np.ones(self.n_reactors, bool)
            _check(g.shape == (self.n_reactors,), f"ok[{sig!r}]: shape {g.shape}, expected ({self.n_reactors},)")
            v[sig] = a
            good[sig] = g & np.isfinite(a)
        dt = float(dt_s)
        if not (math.isfinite(dt) and dt / 3600.0 > 0):  # also a dt so small that dt in hours underflows
            return self._held_result()
        return self._step_impl(t, dt, v, good)

    def _held_result(self) -> FeedStepResult:
        if self.state.last is None:
            zeros = np.zeros(len(self.instances))
            return self._result(zeros, zeros, np.zeros(len(self.instances), bool), [])
        last = self.state.last
        return FeedStepResult({k: a.copy() for k, a in last.rate_l_per_h.items()},
                              {k: a.copy() for k, a in last.demand_l_per_h.items()},
                              {k: a.copy() for k, a in last.started.items()},
                              {k: a.copy() for k, a in last.t0_s.items()},
                              {k: a.copy() for k, a in last.total_l.items()},
                              {k: a.copy() for k, a in last.limited.items()}, [])

    def _step_impl(self, t: float, dt: float, v: dict[str, FloatArray],
                   good: dict[str, BoolArray]) -> FeedStepResult:
        st = self.state
        n = len(self.instances)
        events: list[FeedEvent] = []

        # Observed volume (rows that need it) and last good values for the exponential's V0/X0.
        volume = np.full(n, np.nan)
        volume_ok = np.zeros(n, bool)
        if self._volume_rows.size:
            volume[self._volume_rows], volume_ok[self._volume_rows] = self._read_volume(v, good)
            usable = volume_ok & (volume > 0)
            st.last_good_volume_l[usable] = volume[usable]
        if self._read_biomass.rows.size:
            bio, bio_ok = self._read_biomass(v, good)
            usable = bio_ok & (bio > 0)
            st.last_good_biomass[self._read_biomass.rows[usable]] = bio[usable]

        fire, why = self._fire(t, v, good)
        st.triggered |= fire
        self._start(t, why, events)
        running = st.started & (st.stop == _RUNNING)

        demand = np.zeros(n)
        with np.errstate(over="ignore", invalid="ignore"):
            self._exponential_demand(t, demand)
            self._linear_demand(t, dt, demand, events)
            self._piecewise_demand(t, demand)
            self._pulse_demand(t, dt, v, good, demand)
        law_rate = np.where(running & (demand > 0), demand, 0.0)  # NaN -> 0; +inf kept for the clip
        # A runaway law (exp overflow) runs at the pump limit; with no limit it is refused (0).
        demand = np.minimum(law_rate, self.max_rate_l_per_h)
        demand = np.where(np.isfinite(demand), demand, 0.0)

        # Limits. A full vessel ends the feed; a bad volume holds a volume-limited one.
        full = running & self._volume_limited & volume_ok & (volume >= self.max_volume_l)
        self._stop(full, _STOP_VOLUME, events)
        running &= ~full
        held = running & self._volume_limited & ~volume_ok
        self._change(held & ~st.held, "feed_held",
                     lambda i: "volume_l reading bad: feed held at 0 L/h (max volume "
                               f"{self.max_volume_l[i]:g} L cannot be checked)", events)
        self._change(~held & st.held & running, "feed_resumed", lambda i: "volume_l reading good again: feed resumed",
                     events)
        st.held = held
        demand = np.where(running, demand, 0.0)
        # The totaliser treats NaN volume as full; rows without a volume limit pass 0, because
        # its room (inf - NaN volume) would otherwise be NaN.
        vol_for_limit = np.where(self._volume_limited, np.where(volume_ok & ~held, volume, np.nan), 0.0)
        with np.errstate(over="ignore", divide="ignore"):  # room / tiny dt -> inf: no limit then
            rate = st.totaliser.step(demand, vol_for_limit, dt)
        bottle_empty = running & (st.totaliser.total_l >= self.max_total_l * (1.0 - 1e-12))
        self._stop(bottle_empty, _STOP_TOTAL, events)
        # A feed ended by its volume or total limit stays flagged: the limit is what keeps it at 0.
        ended = (st.stop == _STOP_VOLUME) | (st.stop == _STOP_TOTAL)
        limited = held | ended | (law_rate > self.max_rate_l_per_h) | (rate < demand * (1.0 - 1e-9))
        return self._result(rate, np.where(np.isfinite(law_rate), law_rate, np.nan), limited, events)

    def _fire(self, t: float, v: dict[str, FloatArray], good: dict[str, BoolArray]) -> tuple[BoolArray, list[str]]:
        """Rows whose trigger fires now (not yet triggered), and a reason text per row."""
        st, tr = self.state, self.trigger
        n = len(self.instances)
        elapsed = self._elapsed_s
        fire = (tr.kind == _IMMEDIATE) | ((tr.kind == _TIME) & (elapsed >= tr.at_s))
        why = [""] * n
        armed = elapsed >= tr.not_before_s
        rows = self._do_spike_rows
        if rows.size:
            do, do_ok = self._read_do(v, good)
            window_min = self._do_window_min(t, rows, do, do_ok)
            rise = np.where(do_ok, do, 0.0) - window_min  # -inf while the window has no good sample
            spike = do_ok & armed[rows] & (rise >= tr.rise_pct[rows]) & (do > tr.threshold_pct[rows])
            fire[rows] = spike
            for j in np.flatnonzero(spike & ~st.triggered[rows]):
                why[rows[j]] = f"DO spike: +{rise[j]:.1f} % to {do[j]:.1f} %"
        rows = self._glucose_rows
        if rows.size:
            glc, glc_ok = self._read_glucose(v, good)
            low = glc_ok & armed[rows] & (glc < tr.glucose_g_per_l[rows])
            fire[rows] = low
            for j in np.flatnonzero(low & ~st.triggered[rows]):
                why[rows[j]] = f"glucose {glc[j]:g} g/L below {tr.glucose_g_per_l[rows[j]]:g} g/L"
        rows = self._our_rows
        if rows.size:
            our, our_ok = self._read_our(v, good)
            watch = our_ok & armed[rows]
            np.maximum(self._our_max, np.where(watch, our, 0.0), out=self._our_max)
            peak = self._our_max
            low = watch & (peak >= tr.min_our_mmol_per_l_h[rows]) & (our < tr.drop_fraction[rows] * peak)
            # Debounce: the drop must persist for hold_s; a good reading above it resets the watch.
            self._our_low_since = np.where(low, np.where(np.isnan(self._our_low_since), t, self._our_low_since),
                                           np.where(our_ok, np.nan, self._our_low_since))
            drop = low & (t - self._our_low_since >= tr.hold_s[rows])
            fire[rows] = drop
            for j in np.flatnonzero(drop & ~st.triggered[rows]):
                why[rows[j]] = f"OUR fell to {our[j]:.1f} from its peak {peak[j]:.1f} mmol/(L h)"
        fire &= ~st.triggered
        for i in np.flatnonzero(fire):
            if not why[i]:
                why[i] = _TRIGGER_LABEL[int(tr.kind[i])]
        return fire, why

    def _do_window_min(self, t: float, rows: IntArray, do: FloatArray, do_ok: BoolArray) -> FloatArray:
        """Minimum good DO over the last ``window_s`` per DO-spike row, including now."""
        st = self.state
        width = self.trigger.window_s[rows] / _DO_BUCKETS
        bucket = np.floor(t / width).astype(np.int64)
        slot = bucket % _DO_BUCKETS
        k = np.arange(rows.size)
        stale = st.do_bucket_id[k, slot] != bucket
        st.do_bucket_min_pct[k[stale], slot[stale]] = np.inf
        st.do_bucket_id[k, slot] = bucket
        st.do_bucket_min_pct[k, slot] = np.minimum(st.do_bucket_min_pct[k, slot], np.where(do_ok, do, np.inf))
        recent = st.do_bucket_id > (bucket - _DO_BUCKETS)[:, None]
        return np.where(recent, st.do_bucket_min_pct, np.inf).min(axis=1)

    def _start(self, t: float, why: list[str], events: list[FeedEvent]) -> None:
        """Start triggered rows; the exponential ones only once V0 and X0 are known."""
        st = self.state
        new = st.triggered & ~st.started
        ready = new.copy()
        ex = self.exponential
        if ex.rows.size:
            rows = ex.rows
            v0 = np.where(np.isnan(ex.v0_l), st.last_good_volume_l[rows], ex.v0_l)
            x0 = np.where(np.isnan(ex.x0_g_per_l), st.last_good_biomass[rows] * ex.biomass_g_per_l_per_unit,
                          ex.x0_g_per_l)
            known = np.isfinite(v0) & np.isfinite(x0)
            go = new[rows] & known
            st.v0_l[rows[go]] = v0[go]
            st.x0_g_per_l[rows[go]] = x0[go]
            ready[rows] = go
            wait = new[rows] & ~known & ~st.waiting[rows]
            for j in np.flatnonzero(wait):
                missing = [name for name, bad in (("volume_l (for V0)", np.isnan(v0[j])),
                                                  (f"{ex.biomass_signal[j]} (for X0)", np.isnan(x0[j]))) if bad]
                events.append(FeedEvent(int(self._reactor[rows[j]]), self._name[rows[j]], "feed_waiting",
                                        f"start trigger fired at {self._elapsed_s[rows[j]] / 3600:.1f} h but no good "
                                        f"{' or '.join(missing)} reading yet: waiting"))
            st.waiting[rows] = new[rows] & ~known
        for i in np.flatnonzero(ready):
            st.t0_s[i] = t
            reason = why[i] or "after waiting for V0/X0"
            events.append(FeedEvent(int(self._reactor[i]), self._name[i], "feed_started",
                                    f"{self._label[i]} feed started at {self._elapsed_s[i] / 3600:.1f} h ({reason})"))
        st.started |= ready

    def _exponential_demand(self, t: float, demand: FloatArray) -> None:
        ex, st = self.exponential, self.state
        if not ex.rows.size:
            return
        rows = ex.rows
        on = st.started[rows]
        demand[rows] = exponential_feed_l_per_h(
            t, np.where(on, st.t0_s[rows], np.nan), ex.mu_set_per_h, ex.y_xs_g_per_g, ex.m_s_g_per_g_h,
            np.where(on, st.x0_g_per_l[rows], 0.0), np.where(on, st.v0_l[rows], 0.0), ex.s_f_g_per_l)

    def _linear_demand(self, t: float, dt: float, demand: FloatArray, events: list[FeedEvent]) -> None:
        lp, st = self.linear, self.state
        if not lp.rows.size:
            return
        rows = lp.rows
        on = st.started[rows] & (st.stop[rows] == _RUNNING)
        t0 = np.where(on, st.t0_s[rows], np.nan)
        end_s = t0 + lp.duration_s
        done = on & (t >= end_s)
        self._stop_rows(rows[done], _STOP_DURATION, events)
        # Deliver exactly rate x duration: the last interval runs only for its remaining part.
        fraction = np.where(on, np.clip((end_s - t) / dt, 0.0, 1.0), 0.0)
        demand[rows] = np.where(on & ~done, linear_feed_l_per_h(t, t0, lp.rate0_l_per_h, lp.slope_l_per_h2)
                                * fraction, 0.0)

    def _piecewise_demand(self, t: float, demand: FloatArray) -> None:
        pp, st = self.piecewise, self.state
        if not pp.rows.size:
            return
        rows = pp.rows
        on = st.started[rows]
        elapsed = np.where(on, t - st.t0_s[rows], 0.0)
        # Segment index: the last profile point at or before `elapsed` (0 before the first).
        seg = np.maximum((pp.times_s <= elapsed[:, None]).sum(axis=1) - 1, 0)
        k = np.arange(rows.size)
        t_lo, t_hi = pp.times_s[k, seg], pp.times_s[k, seg + 1]
        r_lo, r_hi = pp.rates_l_per_h[k, seg], pp.rates_l_per_h[k, seg + 1]
        frac = np.clip((elapsed - t_lo) / (t_hi - t_lo), 0.0, 1.0)  # t_hi = inf past the end -> 0
        rate = np.where(pp.step, r_lo, r_lo + frac * (r_hi - r_lo))
        demand[rows] = np.where(on, rate, 0.0)

    def _pulse_demand(self, t: float, dt: float, v: dict[str, FloatArray], good: dict[str, BoolArray],
                      demand: FloatArray) -> None:
        pp, st = self.pulse, self.state
        if not pp.rows.size:
            return
        rows = pp.rows
        pv, pv_ok = self._read_pulse_pv(v, good)
        on = st.started[rows] & (st.stop[rows] == _RUNNING)
        idle = ~(st.pulse_end_s[rows] > t)  # NaN (never pulsed) counts as idle
        go = on & idle & pv_ok & (pv > pp.high) & (t >= st.next_pulse_s[rows])
        st.pulse_end_s[rows[go]] = t + pp.pulse_s[go]
        st.next_pulse_s[rows[go]] = t + pp.pulse_s[go] + pp.hold_off_s[go]
        # The interval that ends the pulse delivers only its remaining part: pulse volume is exact.
        fraction = np.clip((st.pulse_end_s[rows] - t) / dt, 0.0, 1.0)
        demand[rows] = np.where(on & (st.pulse_end_s[rows] > t), pp.pulse_rate_l_per_h * fraction, 0.0)

    # -- bookkeeping ---------------------------------------------------------------------------

    def _change(self, mask: BoolArray, kind: str, message: object, events: list[FeedEvent]) -> None:
        for i in np.flatnonzero(mask):
            events.append(FeedEvent(int(self._reactor[i]), self._name[i], kind, message(i)))  # type: ignore[operator]

    def _stop(self, mask: BoolArray, reason: int, events: list[FeedEvent]) -> None:
        self._stop_rows(np.flatnonzero(mask & (self.state.stop == _RUNNING)), reason, events)

    def _stop_rows(self, rows: IntArray, reason: int, events: list[FeedEvent]) -> None:
        st = self.state
        for i in rows:
            st.stop[i] = reason
            if reason == _STOP_VOLUME:
                msg = f"max volume {self.max_volume_l[i]:g} L reached"
            elif reason == _STOP_TOTAL:
                msg = f"max total {self.max_total_l[i]:g} L of feed delivered"
            else:
                duration_h = self.linear.duration_s[self.linear.rows == i][0] / 3600.0
                msg = f"{self._label[i]} feed finished after {duration_h:g} h"
            events.append(FeedEvent(int(self._reactor[i]), self._name[i], "feed_stopped", msg))

    def _result(self, rate: FloatArray, demand: FloatArray, limited: BoolArray,
                events: list[FeedEvent]) -> FeedStepResult:
        st = self.state
        n = self.n_reactors

        def by_feed(x: npt.NDArray[np.generic], fill: object) -> dict[str, npt.NDArray[np.generic]]:
            out = {}
            for f, rows in self._feed_rows.items():
                a = np.full(n, fill, dtype=x.dtype)
                a[self._reactor[rows]] = x[rows]
                out[f] = a
            return out

        rates = {}
        for mv, rows in self._mv_rows.items():
            a = np.full(n, np.nan)
            a[self._reactor[rows]] = rate[rows]
            rates[mv] = a
        res = FeedStepResult(rates, by_feed(demand, np.nan), by_feed(st.started, False),  # type: ignore[arg-type]
                             by_feed(st.t0_s, np.nan), by_feed(st.totaliser.total_l, np.nan),  # type: ignore[arg-type]
                             by_feed(limited, False), events)  # type: ignore[arg-type]
        st.last = res
        return res
