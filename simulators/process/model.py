"""What an organism model provides to the fermenter: one frozen record per organism."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from simulators.plant import Signal

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ProcessModel:
    """An organism's kinetics and bookkeeping, all vectorized over reactors (columns).

    ``rhs(y, inputs, kinetics, vessel_params) -> (dy_dt per hour, jac_diag, couplings)``
    with ``y`` of shape ``(len(states), n)``; see :mod:`simulators.process.integrate`.
    ``fluxes(y, inputs, kinetics, broth)`` returns an object with per-gram (or per-cell)
    ``qo`` and ``qco2`` and the partials; ``biomass_row`` scales them to volumetric rates.
    """

    organism: str
    states: tuple[str, ...]
    atol: FloatArray  # (n_states, 1)
    rhs: Callable[..., Any]
    fluxes: Callable[..., Any]
    initial_state: Callable[..., FloatArray]
    random_kinetics: Callable[[int, np.random.Generator | None], Any]
    true_concentrations: Callable[[FloatArray], dict[str, FloatArray]]
    carbon_mmol: Callable[[FloatArray], FloatArray]
    atline_signals: tuple[Signal, ...]
    actuator_defaults: Mapping[str, float]
    setpoint_defaults: Mapping[str, float]
    biomass_row: int
    vessel_row: int
    induces: bool
    default_vessel: Any = None
    """:class:`~simulators.process.vessel.VesselParams` for this organism's medium and scale."""
    sample_interval_s: float = 5400.0
    """Default at-line sampling interval (microbial runs every 1-2 h, cell culture daily-ish)."""
