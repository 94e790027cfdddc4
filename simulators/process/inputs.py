"""Effective inputs of one integration segment (actuators after faults), constant over it."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Inputs:
    """Actuator values the broth actually sees, each ``(n_reactors,)``.

    Built by the fermenter from the written demands and the active faults (a blocked
    feed pump delivers 0 L/h whatever was demanded). Rates in L/h, gas in slpm.
    """

    feed_rate_l_per_h: FloatArray
    base_rate_l_per_h: FloatArray
    acid_rate_l_per_h: FloatArray
    antifoam_rate_l_per_h: FloatArray
    agitation_rpm: FloatArray
    air_flow_slpm: FloatArray
    o2_flow_slpm: FloatArray
    jacket_temp_c: FloatArray
    induction: FloatArray
    foaming_per_h: FloatArray
    """Foam rise rate from a ``foaming`` fault, 1/h (0 without one)."""
    cooling_failed: FloatArray
    """1 where the jacket can no longer cool (``cooling_failure``), else 0."""
    feed_growth_per_h: FloatArray | float = 0.0
    """Exponential feed: the feed rate grows as ``exp(r t)`` over the segment (recipe
    feeds); ``feed_rate_l_per_h`` is then its value at the segment start."""
    feed_total_at_start_l: FloatArray | float = field(default=0.0)
    base_per_feed_l_per_l: FloatArray | float = 0.0
    """Ratio dosing: base added per litre of feed on top of ``base_rate_l_per_h`` (open-loop
    recipes dose ammonia with the carbon source to cover N uptake)."""

    # Input-only terms, computed once per segment rather than in every RHS evaluation.
    @cached_property
    def gas_slpm(self) -> FloatArray:
        return self.air_flow_slpm + self.o2_flow_slpm

    @cached_property
    def dosing_l_per_h(self) -> FloatArray:
        return self.base_rate_l_per_h + self.acid_rate_l_per_h + self.antifoam_rate_l_per_h

    def feed_l_per_h(self, feed_total_l: FloatArray) -> FloatArray:
        """Feed rate now; for an exponential feed ``F = F0 + r (FT - FT0)`` (since dFT/dt = F),
        which keeps the right-hand side autonomous and exact."""
        if np.ndim(self.feed_growth_per_h) == 0 and self.feed_growth_per_h == 0.0:
            return self.feed_rate_l_per_h
        return self.feed_rate_l_per_h + self.feed_growth_per_h * (feed_total_l - self.feed_total_at_start_l)


_FIELDS = (
    "feed_rate_l_per_h", "base_rate_l_per_h", "acid_rate_l_per_h", "antifoam_rate_l_per_h", "agitation_rpm",
    "air_flow_slpm", "o2_flow_slpm", "jacket_temp_c", "induction", "foaming_per_h", "cooling_failed",
    "feed_growth_per_h", "feed_total_at_start_l", "base_per_feed_l_per_l",
)


def take(inputs: Inputs, columns: np.ndarray | slice) -> Inputs:
    """The inputs of a subset of reactors (for one-reactor reference solutions)."""
    return Inputs(**{k: (np.asarray(getattr(inputs, k))[columns] if np.ndim(getattr(inputs, k)) else getattr(inputs, k)) for k in _FIELDS})
