"""Vectorized mechanistic fermentation models behind the :class:`simulators.plant.Plant` contract.

``make_plant("ecoli", 1000)`` gives 1000 E. coli fed-batch reactors advanced by one
vectorized stiff integration; ``make_plant("cho", n)`` the CHO fed-batch equivalent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simulators.process.faults import FAULT_KINDS, Fault, FaultError, load_faults
from simulators.process.fermenter import Fermenter
from simulators.process.vessel import VesselParams

ORGANISMS = ("ecoli", "cho")

__all__ = ["FAULT_KINDS", "ORGANISMS", "Fault", "FaultError", "Fermenter", "VesselParams", "load_faults", "make_plant"]


def make_plant(organism: str, n_reactors: int, *, seed: int = 0, faults: Sequence[Fault] = (), **overrides: Any) -> Fermenter:
    """``n_reactors`` simulated fermenters of ``organism`` (``"ecoli"`` or ``"cho"``).

    ``overrides`` go to :class:`Fermenter` (``rtol``, ``sample_interval_s``,
    ``sensor_noise``, ``spread``, ``vessel_params``...) or set initial conditions
    (``volume_l``, ``glucose_g_per_l``, ...).
    """
    if organism == "ecoli":
        from simulators.process.ecoli import MODEL
    elif organism == "cho":
        from simulators.process.cho import MODEL
    else:
        raise ValueError(f"organism {organism!r} unknown; allowed: {', '.join(ORGANISMS)}")
    return Fermenter(MODEL, n_reactors, seed=seed, faults=faults, **overrides)
