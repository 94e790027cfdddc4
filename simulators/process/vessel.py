"""Reactor physics shared by every organism: gas-liquid O2 transfer, off-gas, heat,
pH buffering, evaporation, head pressure and foam.

Pure functions of NumPy arrays shaped ``(n_reactors,)`` (or broadcastable); rates are per
hour because kinetic parameters in the literature are.

Sources
-------
- kLa: van't Riet (1979), Ind. Eng. Chem. Process Des. Dev. 18:357-364, non-coalescing
  (salt-containing) media: ``kLa = 0.002 (P/V)^0.7 v_s^0.2`` (SI units, 1/s).
- Ungassed power ``P0 = Np rho N^3 D^5`` per Rushton turbine (Np ~ 5), gassed power ~0.6 P0.
- O2 solubility in water at 1 atm air: APHA/Benson-Krause polynomial fit, 0-40 C.
- Water vapour pressure: Antoine equation (NIST coefficients for 0-100 C).
- Metabolic heat: Cooney et al. (1969), ~460 kJ per mol O2 consumed.
- Buffer capacity: Van Slyke, ``beta = ln(10) sum C_i f_i (1 - f_i)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

AIR_O2_FRACTION = 0.2095
MOLAR_VOLUME_L_PER_MOL = 22.414  # standard litre (0 C, 1 atm): "slpm" is defined on it
ATM_BAR = 1.01325
HEAT_PER_O2_KJ_PER_MMOL = 0.46
WATER_HEAT_CAPACITY_KJ_PER_L_K = 4.18


@dataclass(frozen=True)
class VesselParams:
    """Geometry and medium of one bench-top stirred tank (defaults: 10 L total volume).

    ``buffer_mm`` / ``buffer_pka`` describe the medium's buffers (mmol/L, pKa); the
    default is a phosphate/MOPS-buffered defined medium plus carbonate/ammonium, which sets how
    far metabolic acid moves the pH when no base is dosed.
    """

    tank_diameter_m: float = 0.20
    impeller_diameter_m: float = 0.07
    n_impellers: int = 2
    power_number: float = 5.0
    gassed_power_ratio: float = 0.6
    kla_surface_per_h: float = 1.0  # headspace aeration through the liquid surface, no sparging
    back_pressure_bar: float = 0.2  # exhaust valve overpressure
    filter_resistance_bar_per_slpm: float = 0.004
    foam_pressure_bar: float = 0.1  # wet exhaust filter when foam reaches it
    ua_w_per_k_at_6l: float = 25.0  # jacket heat-transfer coefficient x area at 6 L
    ua_ambient_w_per_k: float = 1.0
    ambient_c: float = 22.0
    jacket_time_constant_h: float = 0.05  # temperature-control unit (TCU) response, 3 min
    condenser_return_fraction: float = 0.8  # exhaust condenser returns most water vapour
    buffer_mm: tuple[float, ...] = (200.0, 20.0, 5.0)
    buffer_pka: tuple[float, ...] = (7.2, 9.25, 4.76)
    buffer_floor_mm_per_ph: float = 2.0
    base_conc_mmol_per_l: float = 7000.0  # ~12 % ammonia
    acid_conc_mmol_per_l: float = 2000.0  # 1 M sulfuric acid, as H+ equivalents
    foam_decay_per_h: float = 0.5
    antifoam_break_l_per_l: float = 2.0e4  # 1/h of foam decay per (L/h antifoam per L broth)
    antifoam_kla_half_ml_per_l: float = 0.5  # antifoam concentration that halves kLa


def o2_saturation_air_mmol_per_l(temperature_c: FloatArray) -> FloatArray:
    """Dissolved O2 in equilibrium with air at 1 atm, mmol/L (6.5 mg/L at 37 C)."""
    t = temperature_c
    mg_per_l = 14.652 - 0.41022 * t + 0.007991 * t * t - 0.000077774 * t * t * t
    return mg_per_l / 32.0


_LN10 = float(np.log(10.0))


def fill_initial_vessel_states(y: FloatArray, iv: int, i_do: int, v0: FloatArray, temperature_c: float,
                               ph: float, air_flow_slpm: float, vp: VesselParams) -> None:
    """Set the vessel rows of an initial state ``y`` (n_states, n) in place.

    Rows ``iv..iv+3`` are volume (L), broth and jacket temperature (degC) and pH; ``i_do`` is
    dissolved O2 (mmol/L), which starts at air saturation under the head pressure of the
    initial air flow, as after a calibrated probe's 100 % point.
    """
    n = y.shape[1]
    y[iv + 0] = v0
    y[iv + 1] = temperature_c
    y[iv + 2] = temperature_c
    y[iv + 3] = ph
    pressure = head_pressure_bar(np.full(n, air_flow_slpm), np.zeros(n), vp)
    y[i_do] = o2_saturation_air_mmol_per_l(y[iv + 1]) * pressure / ATM_BAR


def water_vapour_bar(temperature_c: FloatArray) -> FloatArray:
    """Saturated water vapour pressure, bar (0.063 bar at 37 C)."""
    return np.exp(_LN10 * (5.40221 - 1838.675 / (temperature_c + 241.413)))


def gas_flow_mmol_per_h(flow_slpm: FloatArray) -> FloatArray:
    """Standard litres per minute to mmol/h."""
    return flow_slpm * (60.0 * 1000.0 / MOLAR_VOLUME_L_PER_MOL)


def inlet_o2_fraction(air_slpm: FloatArray, o2_slpm: FloatArray) -> FloatArray:
    """O2 mole fraction of the sparged gas; air when nothing flows (headspace)."""
    total = air_slpm + o2_slpm
    return np.where(total > 0.0, (AIR_O2_FRACTION * air_slpm + o2_slpm) / np.maximum(total, 1e-300), AIR_O2_FRACTION)


def gassed_power_w(agitation_rpm: FloatArray, vp: VesselParams) -> FloatArray:
    """Shaft power into the broth, W."""
    n_rps = agitation_rpm / 60.0
    p0 = vp.n_impellers * vp.power_number * 1000.0 * n_rps**3 * vp.impeller_diameter_m**5
    return vp.gassed_power_ratio * p0


def kla_per_h(
    agitation_rpm: FloatArray,
    gas_slpm: FloatArray,
    volume_l: FloatArray,
    antifoam_ml_per_l: FloatArray,
    vp: VesselParams,
) -> FloatArray:
    """Volumetric O2 transfer coefficient kLa, 1/h.

    van't Riet's non-coalescing correlation on gassed power per volume and superficial
    gas velocity; antifoam lowers kLa (surface-active agents slow film renewal), modelled
    as a hyperbolic loss in the antifoam concentration.
    """
    return kla_from_prefactor(kla_prefactor(agitation_rpm, gas_slpm, vp), volume_l, antifoam_ml_per_l, vp)


def kla_prefactor(agitation_rpm: FloatArray, gas_slpm: FloatArray, vp: VesselParams) -> FloatArray:
    """The volume-independent part of :func:`kla_per_h`: ``0.002 P^0.7 v_s^0.2`` in 1/h * L^0.7."""
    area_m2 = np.pi * vp.tank_diameter_m**2 / 4.0
    vs_m_per_s = gas_slpm * (1e-3 / 60.0) / area_m2
    return 3600.0 * 0.002 * (gassed_power_w(agitation_rpm, vp) * 1e3) ** 0.7 * vs_m_per_s**0.2


def kla_from_prefactor(prefactor: FloatArray, volume_l: FloatArray, antifoam_ml_per_l: FloatArray, vp: VesselParams) -> FloatArray:
    return (prefactor * volume_l**-0.7 + vp.kla_surface_per_h) / (1.0 + antifoam_ml_per_l / vp.antifoam_kla_half_ml_per_l)


def head_pressure_bar(gas_slpm: FloatArray, foam: FloatArray, vp: VesselParams) -> FloatArray:
    """Absolute head-space pressure, bar: atmosphere + back-pressure + exhaust-filter drop."""
    return ATM_BAR + vp.back_pressure_bar + vp.filter_resistance_bar_per_slpm * gas_slpm + vp.foam_pressure_bar * foam


def buffer_capacity_mm_per_ph(
    ph: FloatArray, vp: VesselParams, extra: tuple[tuple[FloatArray, float], ...] = ()
) -> FloatArray:
    """Van Slyke buffer capacity of the medium plus ``extra`` (mmol/L, pKa) weak acids
    made by the cells (acetate, lactate), mmol/L per pH unit."""
    # Water itself (H+ and OH-) keeps pH finite whatever is dosed.
    beta = vp.buffer_floor_mm_per_ph + (_LN10 * 1000.0) * (np.exp(-_LN10 * ph) + np.exp(_LN10 * (ph - 14.0)))
    # All medium buffers in one (n_buffers, n) operation: per-call overhead dominates at n ~ 1000.
    pka = np.asarray(vp.buffer_pka)[:, None]
    r = np.exp(_LN10 * (ph - pka))
    beta = beta + (_LN10 * np.asarray(vp.buffer_mm)[:, None] * r / ((1.0 + r) * (1.0 + r))).sum(axis=0)
    for conc, pka_x in extra:
        rx = np.exp(_LN10 * (ph - pka_x))
        beta = beta + (_LN10 * conc) * rx / ((1.0 + rx) * (1.0 + rx))
    return beta


def evaporation_l_per_h(temperature_c: FloatArray, gas_slpm: FloatArray, pressure_bar: FloatArray, vp: VesselParams) -> FloatArray:
    """Water lost with the exhaust gas (saturated at broth temperature, after the condenser), L/h."""
    y_w = np.minimum(water_vapour_bar(temperature_c) / pressure_bar, 0.5)
    water_mmol_per_h = gas_flow_mmol_per_h(gas_slpm) * y_w / (1.0 - y_w)
    return (1.0 - vp.condenser_return_fraction) * water_mmol_per_h * 18.015e-6


def offgas_pct(
    our_total_mmol_per_h: FloatArray,
    cer_total_mmol_per_h: FloatArray,
    air_slpm: FloatArray,
    o2_slpm: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Dry exhaust O2 and CO2, mol-%, from a quasi-steady gas-phase balance (inert gas conserved).

    Returns NaN where no gas flows (the analyser then samples stagnant head space).
    """
    n_air = gas_flow_mmol_per_h(air_slpm)
    o2_in = AIR_O2_FRACTION * n_air + gas_flow_mmol_per_h(o2_slpm)
    inert = (1.0 - AIR_O2_FRACTION) * n_air
    o2_out = np.maximum(o2_in - our_total_mmol_per_h, 0.0)
    co2_out = np.maximum(cer_total_mmol_per_h, 0.0)
    total = inert + o2_out + co2_out
    flowing = (air_slpm + o2_slpm) > 1e-6
    safe = np.where(flowing, total, 1.0)
    return (
        np.where(flowing, 100.0 * o2_out / safe, np.nan),
        np.where(flowing, 100.0 * co2_out / safe, np.nan),
    )


VESSEL_STATES = (
    "volume_l",
    "temperature_c",
    "jacket_c",
    "ph",
    "foam",
    "feed_total_l",
    "base_total_l",
    "acid_total_l",
    "antifoam_total_l",
    "evaporated_l",
    "co2_total_mmol",
    "o2_total_mmol",
)
"""State rows every organism model carries after its own, in this order."""

VESSEL_ATOL = (1e-6, 1e-4, 1e-4, 1e-5, 1e-6, 1e-6, 1e-6, 1e-6, 1e-6, 1e-6, 1e-3, 1e-3)


@dataclass(frozen=True)
class Broth:
    """Vessel quantities the kinetics need, derived from the state, each ``(n,)``."""

    volume_l: FloatArray
    temperature_c: FloatArray
    ph: FloatArray
    foam: FloatArray
    pressure_bar: FloatArray
    c_air_mmol_per_l: FloatArray  # O2 in equilibrium with air at broth T and head pressure
    c_star_mmol_per_l: FloatArray  # ... with the sparged gas
    kla_per_h: FloatArray


def broth(vessel_rows: FloatArray, u: "Inputs", vp: VesselParams) -> Broth:  # noqa: F821
    """Derive :class:`Broth` from the vessel rows ``(len(VESSEL_STATES), n)``."""
    volume_l, temperature_c, _, ph, foam = vessel_rows[0], vessel_rows[1], vessel_rows[2], vessel_rows[3], vessel_rows[4]
    antifoam_total_l = vessel_rows[8]
    seg = segment_terms(u, vp)
    pressure = seg.pressure_no_foam_bar + vp.foam_pressure_bar * foam
    c_air = o2_saturation_air_mmol_per_l(temperature_c) * (pressure / ATM_BAR)
    kla = kla_from_prefactor(seg.kla_prefactor, volume_l, 1000.0 * antifoam_total_l / volume_l, vp)
    return Broth(volume_l, temperature_c, ph, foam, pressure, c_air, c_air * seg.enrichment, kla)


@dataclass(frozen=True)
class SegmentTerms:
    """Input-only quantities of one segment (the inputs are constant over it)."""

    kla_prefactor: FloatArray
    enrichment: FloatArray  # inlet O2 fraction / air's
    pressure_no_foam_bar: FloatArray
    gas_mmol_per_h: FloatArray
    agitation_heat_kj_per_h: FloatArray
    dosing_base_mmol_per_h: FloatArray


def segment_terms(u: "Inputs", vp: VesselParams) -> SegmentTerms:  # noqa: F821
    """Cached per (inputs, vessel) pair: the RHS is evaluated many times per segment."""
    cache = u.__dict__.get("_segment_terms")
    if cache is not None and cache[0] is vp:
        return cache[1]
    terms = SegmentTerms(
        kla_prefactor=kla_prefactor(u.agitation_rpm, u.gas_slpm, vp),
        enrichment=inlet_o2_fraction(u.air_flow_slpm, u.o2_flow_slpm) / AIR_O2_FRACTION,
        pressure_no_foam_bar=head_pressure_bar(u.gas_slpm, np.zeros_like(u.gas_slpm), vp),
        gas_mmol_per_h=gas_flow_mmol_per_h(u.gas_slpm),
        agitation_heat_kj_per_h=3.6 * gassed_power_w(u.agitation_rpm, vp),
        dosing_base_mmol_per_h=u.base_rate_l_per_h * vp.base_conc_mmol_per_l - u.acid_rate_l_per_h * vp.acid_conc_mmol_per_l,
    )
    u.__dict__["_segment_terms"] = (vp, terms)
    return terms


def vessel_rates(
    vessel_rows: FloatArray,
    b: Broth,
    u: "Inputs",  # noqa: F821
    vp: VesselParams,
    our_total_mmol_per_h: FloatArray,
    cer_total_mmol_per_h: FloatArray,
    acid_production_mmol_per_h: FloatArray,
    out: FloatArray,
    jdiag: FloatArray | None,
    extra_buffers: tuple[tuple[FloatArray, float], ...] = (),
) -> None:
    """Fill the vessel rows of ``out`` (d/dt per hour) and, unless None, ``jdiag`` (zeroed by
    the caller), shape ``(12, n)``.

    ``acid_production_mmol_per_h`` is the metabolism's net H+ release (organic acids
    secreted, NH4+ assimilated); base and acid dosing counter it through the buffer.
    """
    volume_l, temperature_c, jacket_c, ph, foam = b.volume_l, b.temperature_c, vessel_rows[2], b.ph, b.foam
    seg = segment_terms(u, vp)
    y_w = np.minimum(water_vapour_bar(temperature_c) / b.pressure_bar, 0.5)
    evap = ((1.0 - vp.condenser_return_fraction) * 18.015e-6) * seg.gas_mmol_per_h * y_w / (1.0 - y_w)
    feed = u.feed_l_per_h(vessel_rows[5])
    ratio_base = u.base_per_feed_l_per_l * feed
    out[0] = feed * (1.0 + u.base_per_feed_l_per_l) + u.dosing_l_per_h - evap
    ua = vp.ua_w_per_k_at_6l * 3.6 * (volume_l / 6.0) ** (2.0 / 3.0)  # kJ/h/K
    ua_amb = vp.ua_ambient_w_per_k * 3.6
    heat_capacity = WATER_HEAT_CAPACITY_KJ_PER_L_K * volume_l
    q_kj_per_h = (
        HEAT_PER_O2_KJ_PER_MMOL * our_total_mmol_per_h
        + seg.agitation_heat_kj_per_h
        + ua * (jacket_c - temperature_c)
        + ua_amb * (vp.ambient_c - temperature_c)
    )
    out[1] = q_kj_per_h / heat_capacity
    # Without cooling the TCU can only heat: its effective setpoint never goes below the broth.
    jacket_sp = np.where(u.cooling_failed > 0.0, np.maximum(u.jacket_temp_c, temperature_c), u.jacket_temp_c)
    out[2] = (jacket_sp - jacket_c) / vp.jacket_time_constant_h
    net_base_mmol_per_h = seg.dosing_base_mmol_per_h + ratio_base * vp.base_conc_mmol_per_l - acid_production_mmol_per_h
    out[3] = net_base_mmol_per_h / (volume_l * buffer_capacity_mm_per_ph(ph, vp, extra_buffers))
    breaking = vp.foam_decay_per_h + vp.antifoam_break_l_per_l * u.antifoam_rate_l_per_h / volume_l
    out[4] = u.foaming_per_h * (1.0 - foam) - breaking * foam
    out[5] = feed
    out[6] = u.base_rate_l_per_h + ratio_base
    out[7] = u.acid_rate_l_per_h
    out[8] = u.antifoam_rate_l_per_h
    out[9] = evap
    out[10] = cer_total_mmol_per_h
    out[11] = our_total_mmol_per_h
    if jdiag is not None:
        jdiag[1] = -(ua + ua_amb) / heat_capacity
        jdiag[2] = -1.0 / vp.jacket_time_constant_h
        jdiag[4] = -(u.foaming_per_h + breaking)
