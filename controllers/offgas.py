"""OUR, CER and RQ from off-gas analysis and gas flows (inert-gas balance).

The outlet flow is not measured: nitrogen (and argon) pass through the culture unchanged,
so ``F_out = F_in * (1 - yO2_in - yCO2_in) / (1 - yO2_out - yCO2_out)``. Without this
correction a respiring culture's OUR is biased by the CO2 it adds to the outlet stream.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

AIR_O2_FRACTION = 0.2095
AIR_CO2_FRACTION = 0.0004
#: Molar volume at the "standard" of the mass-flow controllers (0 degC, 1 atm), L/mol.
MOLAR_VOLUME_L_PER_MOL = 22.414


def inlet_composition(air_flow_slpm: npt.ArrayLike, o2_flow_slpm: npt.ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Total inlet flow (slpm) and O2/CO2 mole fractions of air enriched with pure O2.

    Shapes (n,). Returns ``(flow_slpm, y_o2_in, y_co2_in)``; fractions are NaN with no flow.
    """
    air = np.asarray(air_flow_slpm, np.float64)
    o2 = np.asarray(o2_flow_slpm, np.float64)
    total = air + o2
    with np.errstate(invalid="ignore", divide="ignore"):
        y_o2 = (AIR_O2_FRACTION * air + o2) / total
        y_co2 = AIR_CO2_FRACTION * air / total
    return total, y_o2, y_co2


def gas_rates(flow_in_slpm: npt.ArrayLike, y_o2_in: npt.ArrayLike, y_co2_in: npt.ArrayLike,
              y_o2_out: npt.ArrayLike, y_co2_out: npt.ArrayLike, volume_l: npt.ArrayLike,
              molar_volume_l_per_mol: float = MOLAR_VOLUME_L_PER_MOL) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Oxygen uptake, CO2 evolution and respiratory quotient per reactor.

    Parameters
    ----------
    flow_in_slpm : ndarray (n,)
        Total inlet gas flow, standard L/min.
    y_o2_in, y_co2_in, y_o2_out, y_co2_out : ndarray (n,)
        Mole fractions (0..1, not %) at inlet and in the dried off-gas.
    volume_l : ndarray (n,)
        Broth volume, L.

    Returns
    -------
    our, cer : ndarray (n,)
        mmol/(L h). NaN where inputs are not finite or there is no flow/volume.
    rq : ndarray (n,)
        CER/OUR, dimensionless; NaN where OUR is not positive.
    """
    f_in = np.asarray(flow_in_slpm, np.float64)
    yo_i, yc_i = np.asarray(y_o2_in, np.float64), np.asarray(y_co2_in, np.float64)
    yo_o, yc_o = np.asarray(y_o2_out, np.float64), np.asarray(y_co2_out, np.float64)
    v = np.asarray(volume_l, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        f_out = f_in * (1.0 - yo_i - yc_i) / (1.0 - yo_o - yc_o)
        to_mmol_per_l_h = 1000.0 * 60.0 / (molar_volume_l_per_mol * v)
        our = (f_in * yo_i - f_out * yo_o) * to_mmol_per_l_h
        cer = (f_out * yc_o - f_in * yc_i) * to_mmol_per_l_h
        bad = ~(np.isfinite(our) & np.isfinite(cer)) | ~(f_in > 0) | ~(v > 0)
        our = np.where(bad, np.nan, our)
        cer = np.where(bad, np.nan, cer)
        rq = np.where(our > 0, cer / our, np.nan)
    return our, cer, rq
