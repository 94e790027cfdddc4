"""CHO fed-batch (recombinant antibody), vectorized over reactors, same interface as E. coli.

Unstructured Monod-type kinetics in the style of Xing, Kenty, Li & Lee (2009), "Scale-up
analysis for a CHO cell culture process in large-scale bioreactors", Biotechnol. Bioeng.
103:733-746: growth limited by glucose and glutamine and inhibited by ammonia and lactate;
death rising with ammonia and with starvation; glucose and glutamine uptake from yields
plus maintenance; lactate made from glucose while glucose is plentiful and consumed when
it runs low (the "lactate shift"); ammonia from glutamine; a non-growth-associated titre
that rises after a temperature down-shift. Values are typical magnitudes (doubling time
~17 h, ~20 pg/cell/day), not a fit.

Cells are counted in 1e9 cells, so ``cells / volume_l`` is directly VCD in 1e6 cells/mL.
CHO media carry carbon as amino acids this model does not track, so CO2 comes from O2
uptake at a fixed respiratory quotient rather than from a carbon balance.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import numpy.typing as npt

from simulators.plant import Signal
from simulators.process import vessel
from simulators.process.inputs import Inputs

FloatArray = npt.NDArray[np.float64]

STATES = (
    "viable_cells_e9",
    "dead_cells_e9",
    "glucose_g",
    "glutamine_mmol",
    "do_mmol_per_l",
    "lactate_g",
    "ammonia_mmol",
    "product_g",
    *vessel.VESSEL_STATES,
)
IXV, IXD, IG, IQ, IC, IL, IN, IP = range(8)
IV = 8
ATOL = np.array([1e-7, 1e-7, 1e-6, 1e-6, 1e-7, 1e-6, 1e-6, 1e-7, *vessel.VESSEL_ATOL])[:, None]
LACTATE_MMOL_PER_G = 1000.0 / 90.08
C_GLUCOSE = 1000.0 / 30.0
C_LACTATE = 1000.0 / 30.0
C_CELL_MMOL_PER_E9 = 9.4  # ~250 pg dry weight per cell, 45 % carbon
C_PRODUCT = 1000.0 / 22.5
C_GLUTAMINE_PER_MMOL = 5.0
_LN10 = float(np.log(10.0))


@dataclass(frozen=True)
class Kinetics:
    """CHO kinetic parameters; floats or ``(n_reactors,)`` arrays. Rates per 1e9 cells per hour."""

    mu_max: FloatArray | float = 0.045  # 1/h
    k_glc: FloatArray | float = 0.1  # g/L
    k_gln: FloatArray | float = 0.3  # mM
    ki_amm: FloatArray | float = 10.0  # mM
    ki_lac: FloatArray | float = 5.0  # g/L
    kd0: FloatArray | float = 0.001  # 1/h
    kd_amm: FloatArray | float = 0.0005  # 1/(h mM)
    kd_starve: FloatArray | float = 0.02  # 1/h at zero glucose
    k_starve: FloatArray | float = 0.05  # g/L
    y_x_glc: FloatArray | float = 2.0  # 1e9 cells / g
    m_glc: FloatArray | float = 0.003  # g/(1e9 cells h)
    y_x_gln: FloatArray | float = 2.5  # 1e9 cells / mmol
    m_gln: FloatArray | float = 0.0005  # mmol/(1e9 cells h)
    y_lac_glc: FloatArray | float = 0.6  # g/g
    q_lac_max: FloatArray | float = 0.004  # g/(1e9 cells h), consumption after the shift
    k_lac_shift: FloatArray | float = 1.0  # g/L glucose below which lactate is consumed
    k_lac: FloatArray | float = 0.2  # g/L
    y_amm_gln: FloatArray | float = 0.8  # mmol/mmol
    qp: FloatArray | float = 8.3e-4  # g/(1e9 cells h), 20 pg/cell/day at 36.5 C
    qp_per_c_below: FloatArray | float = 0.08  # fractional qp gain per degC below 36.5
    qo: FloatArray | float = 0.4  # mmol O2/(1e9 cells h)
    ko: FloatArray | float = 0.001  # mmol/L
    rq: FloatArray | float = 0.95
    t_opt_c: FloatArray | float = 37.0
    t_width_c: FloatArray | float = 5.0
    ph_opt: FloatArray | float = 7.0
    ph_width: FloatArray | float = 1.0
    glucose_feed_g_per_l: FloatArray | float = 100.0
    glutamine_feed_mm: FloatArray | float = 50.0

    def take(self, columns: np.ndarray) -> "Kinetics":
        return replace(self, **{f.name: (np.asarray(getattr(self, f.name))[columns] if np.ndim(getattr(self, f.name)) else getattr(self, f.name)) for f in fields(self)})


INITIAL = {
    "volume_l": 6.0,
    "vcd_e6_cells_per_ml": 0.5,
    "viability_pct": 97.0,
    "glucose_g_per_l": 6.0,
    "glutamine_mmol_per_l": 4.0,
    "temperature_c": 36.5,
    "ph": 7.0,
}
ACTUATOR_DEFAULTS = {
    "feed_rate_l_per_h": 0.0,
    "base_rate_l_per_h": 0.0,
    "acid_rate_l_per_h": 0.0,
    "antifoam_rate_l_per_h": 0.0,
    "agitation_rpm": 200.0,
    "air_flow_slpm": 0.5,
    "o2_flow_slpm": 0.0,
    "jacket_temp_c": 36.5,
    "induction": 0.0,
}
SETPOINT_DEFAULTS = {"do_sp_pct": 40.0, "ph_sp": 7.0, "temperature_sp_c": 36.5}
VESSEL = vessel.VesselParams(
    buffer_mm=(36.0, 25.0, 1.0),  # bicarbonate, HEPES, phosphate
    buffer_pka=(6.35, 7.5, 7.2),
    base_conc_mmol_per_l=1000.0,  # 1 M sodium carbonate/bicarbonate
    acid_conc_mmol_per_l=1000.0,
)

ATLINE_SIGNALS = (
    Signal("glucose_g_per_l", "measurement", "g/L", 0.0, 50.0, "Glucose, at-line analyser (sampled, delayed)"),
    Signal("titer_g_per_l", "measurement", "g/L", 0.0, 20.0, "Antibody titre, at-line (sampled, delayed)"),
    Signal("vcd_e6_cells_per_ml", "measurement", "1e6 cells/mL", 0.0, 100.0, "Viable cell density, cell counter"),
    Signal("viability_pct", "measurement", "%", 0.0, 100.0, "Viability, cell counter"),
    Signal("lactate_g_per_l", "measurement", "g/L", 0.0, 20.0, "Lactate, at-line analyser"),
    Signal("glutamine_mmol_per_l", "measurement", "mmol/L", 0.0, 20.0, "Glutamine, at-line analyser"),
    Signal("ammonia_mmol_per_l", "measurement", "mmol/L", 0.0, 30.0, "Ammonia, at-line analyser"),
)


@dataclass(frozen=True)
class Fluxes:
    """Specific rates per 1e9 viable cells per hour, each ``(n,)``."""

    mu: FloatArray
    kd: FloatArray
    q_glc: FloatArray  # g
    q_gln: FloatArray  # mmol
    q_lac: FloatArray  # g, net production
    q_amm: FloatArray  # mmol
    qp: FloatArray  # g
    qo: FloatArray  # mmol O2
    qco2: FloatArray  # mmol CO2


def fluxes(y: FloatArray, u: Inputs, k: Kinetics, b: vessel.Broth, jac: bool = True) -> tuple[Fluxes, dict[str, FloatArray]]:
    """Specific rates and the partial derivatives the W-matrix needs."""
    del u
    v = b.volume_l
    g = np.maximum(y[IG], 0.0) / v
    q = np.maximum(y[IQ], 0.0) / v
    lac = np.maximum(y[IL], 0.0) / v
    amm = np.maximum(y[IN], 0.0) / v
    c = np.maximum(y[IC], 0.0)
    dt = (b.temperature_c - k.t_opt_c) / k.t_width_c
    dph = (b.ph - k.ph_opt) / k.ph_width
    f_env = np.exp(-(dt * dt + dph * dph))
    ox = c / (k.ko + c)
    mu_cap = k.mu_max * f_env * q / (k.k_gln + q) * k.ki_amm / (k.ki_amm + amm) * k.ki_lac / (k.ki_lac + lac) * ox
    mu = mu_cap * g / (k.k_glc + g)
    kd = k.kd0 + k.kd_amm * amm + k.kd_starve * k.k_starve / (k.k_starve + g)
    g_cap = 1.0 / k.y_x_glc
    q_glc = mu * g_cap + k.m_glc * g / (k.k_glc + g)
    dqglc_dg = (mu_cap * g_cap + k.m_glc) * k.k_glc / ((k.k_glc + g) * (k.k_glc + g))
    q_gln = mu / k.y_x_gln + k.m_gln * q / (k.k_gln + q)
    shift = k.k_lac_shift / (k.k_lac_shift + g)
    q_lac = k.y_lac_glc * q_glc * (1.0 - shift) - k.q_lac_max * lac / (k.k_lac + lac) * shift
    q_amm = k.y_amm_gln * q_gln
    qp = k.qp * (1.0 + k.qp_per_c_below * np.maximum(36.5 - b.temperature_c, 0.0)) * ox
    qo_cap = k.qo * ox
    qco2 = k.rq * qo_cap
    if not jac:
        return Fluxes(mu, kd, q_glc, q_gln, q_lac, q_amm, qp, qo_cap, qco2), {}
    partials = {
        "dqglc_dg": dqglc_dg,
        "dqo_dc": k.qo * k.ko / ((k.ko + c) * (k.ko + c)),
        "dqlac_dg": k.y_lac_glc * dqglc_dg * (1.0 - shift),
        "dqlac_dl": k.q_lac_max * k.k_lac / ((k.k_lac + lac) * (k.k_lac + lac)) * shift,
    }
    return Fluxes(mu, kd, q_glc, q_gln, q_lac, q_amm, qp, qo_cap, qco2), partials


def rhs(
    y: FloatArray, u: Inputs, k: Kinetics, vp: vessel.VesselParams, jac: bool = True
) -> tuple[FloatArray, FloatArray | None, tuple[tuple[int, int, FloatArray], ...]]:
    """Derivatives per hour of ``y`` ``(len(STATES), n)``, Jacobian diagonal, stiff couplings."""
    b = vessel.broth(y[IV:], u, vp)
    fl, d = fluxes(y, u, k, b, jac)
    xv = np.maximum(y[IXV], 0.0)
    v = b.volume_l
    cells = xv / v
    feed = u.feed_l_per_h(y[IV + 5])
    f = np.empty_like(y)
    f[IXV] = (fl.mu - fl.kd) * xv
    f[IXD] = fl.kd * xv
    f[IG] = feed * k.glucose_feed_g_per_l - fl.q_glc * xv
    f[IQ] = feed * k.glutamine_feed_mm - fl.q_gln * xv
    f[IC] = b.kla_per_h * (b.c_star_mmol_per_l - y[IC]) - fl.qo * cells
    f[IL] = fl.q_lac * xv
    f[IN] = fl.q_amm * xv
    f[IP] = fl.qp * xv
    # Lactic acid (pKa 3.9) releases H+; ammonia takes one up.
    acid = xv * (LACTATE_MMOL_PER_G * fl.q_lac - fl.q_amm)
    jd = np.zeros_like(y) if jac else None
    vessel.vessel_rates(y[IV:], b, u, vp, fl.qo * xv, fl.qco2 * xv, acid, f[IV:], None if jd is None else jd[IV:])
    if jd is None:
        return f, None, ()
    jd[IG] = -cells * d["dqglc_dg"]
    jd[IC] = -b.kla_per_h - cells * d["dqo_dc"]
    jd[IL] = -cells * d["dqlac_dl"]
    couplings = (
        (IC, IXV, -fl.qo / v),
        (IL, IG, cells * d["dqlac_dg"]),
    )
    return f, jd, couplings


def initial_state(n: int, vp: vessel.VesselParams, rng: np.random.Generator | None, **overrides: float) -> FloatArray:
    """Initial state ``(len(STATES), n)``; ``rng`` spreads the inoculum by +-10 % (None: none)."""
    unknown = set(overrides) - set(INITIAL)
    if unknown:
        raise TypeError(f"unknown initial conditions {sorted(unknown)}; allowed: {sorted(INITIAL)}")
    init = {**INITIAL, **overrides}
    v0 = np.full(n, init["volume_l"])
    spread = np.ones(n) if rng is None else np.exp(rng.normal(0.0, 0.1, n))
    y = np.zeros((len(STATES), n))
    y[IXV] = init["vcd_e6_cells_per_ml"] * spread * v0
    y[IXD] = y[IXV] * (100.0 / init["viability_pct"] - 1.0)
    y[IG] = init["glucose_g_per_l"] * v0
    y[IQ] = init["glutamine_mmol_per_l"] * v0
    vessel.fill_initial_vessel_states(y, IV, IC, v0, init["temperature_c"], init["ph"],
                                      ACTUATOR_DEFAULTS["air_flow_slpm"], vp)
    return y


def random_kinetics(n: int, rng: np.random.Generator | None) -> Kinetics:
    """Default kinetics with a +-3 % clone-to-clone spread of growth and productivity (None: none)."""
    if rng is None:
        return Kinetics()
    base = Kinetics()
    return replace(
        base,
        mu_max=base.mu_max * np.exp(rng.normal(0.0, 0.03, n)),  # type: ignore[operator]
        qp=base.qp * np.exp(rng.normal(0.0, 0.03, n)),  # type: ignore[operator]
    )


def true_concentrations(y: FloatArray) -> dict[str, FloatArray]:
    """At-line analytes' true values by signal name."""
    v = y[IV]
    xv = np.maximum(y[IXV], 0.0)
    total = xv + np.maximum(y[IXD], 0.0)
    return {
        "glucose_g_per_l": np.maximum(y[IG], 0.0) / v,
        "titer_g_per_l": y[IP] / v,
        "vcd_e6_cells_per_ml": xv / v,
        "viability_pct": 100.0 * xv / np.maximum(total, 1e-12),
        "lactate_g_per_l": np.maximum(y[IL], 0.0) / v,
        "glutamine_mmol_per_l": np.maximum(y[IQ], 0.0) / v,
        "ammonia_mmol_per_l": np.maximum(y[IN], 0.0) / v,
        "biomass_g_per_l": 0.25 * xv / v,  # 250 pg dry weight per cell
    }


def carbon_mmol(y: FloatArray) -> FloatArray:
    """Carbon in the tracked species, C-mmol (amino-acid carbon is not tracked)."""
    return (
        C_CELL_MMOL_PER_E9 * (y[IXV] + y[IXD])
        + C_GLUCOSE * y[IG]
        + C_GLUTAMINE_PER_MMOL * y[IQ]
        + C_LACTATE * y[IL]
        + C_PRODUCT * y[IP]
    )


def _model() -> "ProcessModel":  # noqa: F821
    from simulators.process.model import ProcessModel

    return ProcessModel(
        organism="cho",
        states=STATES,
        atol=ATOL,
        rhs=rhs,
        fluxes=fluxes,
        initial_state=initial_state,
        random_kinetics=random_kinetics,
        true_concentrations=true_concentrations,
        carbon_mmol=carbon_mmol,
        atline_signals=ATLINE_SIGNALS,
        actuator_defaults=ACTUATOR_DEFAULTS,
        setpoint_defaults=SETPOINT_DEFAULTS,
        biomass_row=IXV,
        vessel_row=IV,
        induces=False,
        default_vessel=VESSEL,
        sample_interval_s=12 * 3600.0,
    )


MODEL = _model()
