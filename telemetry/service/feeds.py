"""From the ``[[feeds]]`` configuration to the vectorized feed runtime.

The service's control scan builds one :class:`controllers.feeding.FeedBank` for all reactors
at start-up and steps it once per control period::

    bank = build_feed_bank(cfg, ["R1", "R2", "R3"])
    res = bank.step(t_s, dt_s, values, ok)   # values/ok: signal -> (n_reactors,) arrays

Config units (hours) become the runtime's seconds here, and a feed without ``max_rate_l_per_h``
gets its actuator tag's ``hi`` as the pump limit, so the totaliser counts what the pump can
actually deliver (the actuation clips writes to ``hi`` anyway).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from controllers.feeding import (DoStatLaw, ExponentialLaw, FeedBank, FeedInstance, Law, LinearLaw, PhStatLaw,
                                 PiecewiseLaw, Start, StartAtTime, StartImmediately, StartOnDoSpike,
                                 StartOnGlucoseBelow, StartOnOurDrop)
from telemetry.config import (DoSpikeStart, DoStatFeed, ExponentialFeed, Feed, GlucoseBelowStart, ImmediateStart,
                              LinearFeed, PhStatFeed, PiecewiseFeed, ServiceConfig, TimeStart)
from telemetry.config.models import OurDropStart

_S_PER_H = 3600.0

__all__ = ["build_feed_bank", "feed_instance"]


def build_feed_bank(cfg: ServiceConfig, reactors: Sequence[str]) -> FeedBank:
    """One bank with every configured feed of ``reactors`` (row order of all arrays).

    Parameters
    ----------
    cfg : ServiceConfig
        A validated configuration; its per-reactor overrides are already applied.
    reactors : sequence of str
        Reactor names in the order of the service's arrays (index = row in every (n,) array).

    Raises
    ------
    ValueError
        A reactor name the configuration does not define.
    """
    unknown = [r for r in reactors if r not in cfg.reactors]
    if unknown:
        raise ValueError(f"reactors not in {cfg.source}: {unknown}; defined: {sorted(cfg.reactors)}")
    instances = []
    for index, reactor in enumerate(reactors):
        tags = cfg.resolved_reactors[reactor].tags
        for feed in cfg.feeds_for(reactor):
            tag = tags.get(feed.mv)
            pump_hi = tag.hi if tag is not None and tag.hi is not None else None
            instances.append(feed_instance(feed, index, pump_hi_l_per_h=pump_hi))
    return FeedBank(len(reactors), instances)


def feed_instance(feed: Feed, reactor: int, *, pump_hi_l_per_h: float | None = None) -> FeedInstance:
    """The runtime spec of one configured feed (overrides applied) on reactor index ``reactor``."""
    max_rate = feed.max_rate_l_per_h if feed.max_rate_l_per_h is not None else pump_hi_l_per_h
    return FeedInstance(
        name=feed.name, reactor=reactor, law=_law(feed), start=_start(feed.start), mv=feed.mv,
        max_rate_l_per_h=math.inf if max_rate is None or max_rate <= 0 else max_rate,
        max_volume_l=math.inf if feed.max_volume_l is None else feed.max_volume_l,
        max_total_l=math.inf if feed.max_total_l is None else feed.max_total_l)


def _start(start: ImmediateStart | TimeStart | DoSpikeStart | GlucoseBelowStart | OurDropStart) -> Start:
    if isinstance(start, TimeStart):
        return StartAtTime(at_s=start.at_h * _S_PER_H)
    if isinstance(start, DoSpikeStart):
        return StartOnDoSpike(rise_pct=start.rise_pct, window_s=start.window_s, threshold_pct=start.threshold_pct,
                              not_before_s=start.not_before_h * _S_PER_H)
    if isinstance(start, GlucoseBelowStart):
        return StartOnGlucoseBelow(glucose_g_per_l=start.glucose_g_per_l,
                                   not_before_s=start.not_before_h * _S_PER_H)
    if isinstance(start, OurDropStart):
        return StartOnOurDrop(drop_fraction=start.drop_fraction, min_our_mmol_per_l_h=start.min_our_mmol_per_l_h,
                              hold_s=start.hold_s, not_before_s=start.not_before_h * _S_PER_H)
    return StartImmediately()


def _law(feed: Feed) -> Law:
    if isinstance(feed, ExponentialFeed):
        return ExponentialLaw(mu_set_per_h=feed.mu_set_per_h, y_xs_g_per_g=feed.y_xs_g_per_g,
                              s_f_g_per_l=feed.s_f_g_per_l, m_s_g_per_g_h=feed.m_s_g_per_g_h,
                              x0_g_per_l=feed.x0_g_per_l, biomass_signal=feed.biomass_tag,
                              biomass_g_per_l_per_unit=feed.biomass_g_per_l_per_unit, v0_l=feed.v0_l)
    if isinstance(feed, LinearFeed):
        return LinearLaw(rate0_l_per_h=feed.rate0_l_per_h, slope_l_per_h2=feed.slope_l_per_h2,
                         duration_s=None if feed.duration_h is None else feed.duration_h * _S_PER_H)
    if isinstance(feed, PiecewiseFeed):
        return PiecewiseLaw(times_s=tuple(h * _S_PER_H for h in feed.times_h),
                            rates_l_per_h=tuple(feed.rates_l_per_h), interpolation=feed.interpolation)
    if isinstance(feed, DoStatFeed):
        return DoStatLaw(do_high_pct=feed.do_high_pct, pulse_rate_l_per_h=feed.pulse_rate_l_per_h,
                         pulse_s=feed.pulse_s, hold_off_s=feed.hold_off_s)
    if isinstance(feed, PhStatFeed):
        return PhStatLaw(ph_high=feed.ph_high, pulse_rate_l_per_h=feed.pulse_rate_l_per_h, pulse_s=feed.pulse_s,
                         hold_off_s=feed.hold_off_s)
    raise TypeError(f"unknown feed kind: {type(feed).__name__}")
