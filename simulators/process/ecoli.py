"""E. coli high-cell-density fed-batch with overflow metabolism, vectorized over reactors.

Structure after Xu, Jahic & Enfors (1999), "Modeling of overflow metabolism in batch and
fed-batch cultures of Escherichia coli", Biotechnol. Prog. 15:81-90:

- glucose uptake ``qs = qs_max S/(Ks+S) / (1 + A/Ki_s)`` (Monod, acetate-inhibited);
- the oxidative part is capped by the respiratory capacity ``qo_max`` (a smooth minimum,
  see :func:`_smooth_min`); the rest
  overflows to acetate (``qa_p = Y_as qs_of``); acetate is re-consumed with the spare
  respiratory capacity (``qa_c <= qa_max A/(Ka+A)``);
- ``mu = Y_xs (qs_ox - qm) + Y_xs_of qs_of + Y_xa qa_c``;
- O2 uptake of the oxidative fluxes from a degree-of-reduction balance (glucose and
  acetate 4, biomass CH1.8O0.5N0.2 4.2 per C-mol), overflow taken as O2-independent as in
  Xu et al.; CO2 closes the carbon balance, so CER and RQ follow.

Parameter values are the magnitudes of this model family (Xu et al. 1999; Anane et al.
2017, Biochem. Eng. J. 125:23-30), rounded: a plausible strain, not a fit to data.
Temperature and pH modulate rates by Gaussian factors (not in Xu et al.). After induction
a metabolic burden lowers the biomass yield and a recombinant protein is made in
proportion to growth.

States are *masses* (g) rather than concentrations, so feeding and sampling change
concentrations only through the volume and carbon is an exact linear invariant.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import numpy.typing as npt

from simulators.plant import Signal
from simulators.process import vessel
from simulators.process.inputs import Inputs

FloatArray = npt.NDArray[np.float64]

# --- Process constants a controller needs (exponential feed, mu_set) --------------------
Y_XS_G_PER_G = 0.51
"""Biomass yield on oxidatively used glucose, g/g (Xu et al. 1999)."""
M_S_G_PER_G_H = 0.04
"""Maintenance glucose uptake, g/(g h)."""
S_F_G_PER_L = 500.0
"""Glucose concentration of the default feed solution, g/L."""

C_GLUCOSE = 1000.0 / 30.0  # C-mmol per g
C_ACETATE = 1000.0 / 30.0
C_BIOMASS = 1000.0 / 24.6  # CH1.8O0.5N0.2
C_PRODUCT = 1000.0 / 22.5  # protein
GAMMA_BIOMASS_PER_4 = 4.2 / 4.0  # degree of reduction per C, over O2's 4
N_PER_BIOMASS_MMOL_PER_G = 0.2 * C_BIOMASS  # NH4+ assimilated: one H+ released each
ACETATE_MMOL_PER_G = 1000.0 / 60.05
ACETATE_PKA = 4.76
_LN10 = float(np.log(10.0))

STATES = (
    "biomass_g",
    "glucose_g",
    "do_mmol_per_l",
    "acetate_g",
    "product_g",
    *vessel.VESSEL_STATES,
)
IX, IS, IC, IA, IP = range(5)
IV = 5  # first vessel row
ATOL = np.array([1e-6, 1e-6, 1e-7, 1e-6, 1e-6, *vessel.VESSEL_ATOL])[:, None]


@dataclass(frozen=True)
class Kinetics:
    """Kinetic parameters; each field is a float or a ``(n_reactors,)`` array."""

    qs_max: FloatArray | float = 1.25  # g/(g h), Xu et al. 1999
    ks: FloatArray | float = 0.05  # g/L
    ki_s: FloatArray | float = 5.0  # g/L acetate halving glucose uptake
    qo_max: FloatArray | float = 11.0  # mmol O2/(g h)
    ko: FloatArray | float = 0.003  # mmol/L O2 (about 1.5 % of air saturation)
    ki_o: FloatArray | float = 5.0  # g/L acetate halving respiration
    y_xs: FloatArray | float = Y_XS_G_PER_G
    y_xs_of: FloatArray | float = 0.15  # g/g biomass yield of the overflow route
    y_as: FloatArray | float = 0.667  # g acetate per g overflow glucose
    y_xa: FloatArray | float = 0.4  # g/g biomass yield on acetate
    qm: FloatArray | float = M_S_G_PER_G_H
    qa_max: FloatArray | float = 0.2  # g/(g h) acetate uptake
    ka: FloatArray | float = 0.05  # g/L
    t_opt_c: FloatArray | float = 37.0
    t_width_c: FloatArray | float = 10.0
    ph_opt: FloatArray | float = 7.0
    ph_width: FloatArray | float = 2.0
    burden: FloatArray | float = 0.2  # fractional loss of biomass yield after induction
    y_px: FloatArray | float = 0.15  # g product per g biomass grown while induced
    glucose_feed_g_per_l: FloatArray | float = S_F_G_PER_L

    def take(self, columns: np.ndarray) -> "Kinetics":
        return replace(self, **{f.name: _take(getattr(self, f.name), columns) for f in fields(self)})


def _take(v: FloatArray | float, columns: np.ndarray) -> FloatArray | float:
    return np.asarray(v)[columns] if np.ndim(v) else v


def critical_growth_rate(k: Kinetics = Kinetics()) -> float:
    """Growth rate above which acetate overflow starts (full DO, 37 C, pH 7, no acetate), 1/h."""
    a, b = _o2_per_glucose(float(np.mean(k.y_xs)), float(np.mean(k.qm)))
    qs_ox_max = (float(np.mean(k.qo_max)) - b) / a
    return float(np.mean(k.y_xs)) * (qs_ox_max - float(np.mean(k.qm)))


def _o2_per_glucose(y_x: FloatArray | float, qm: FloatArray | float) -> tuple[FloatArray | float, FloatArray | float]:
    """O2 of the oxidative glucose route: ``qo = a qs_ox + b``; mmol/g and mmol/(g h)."""
    frac = GAMMA_BIOMASS_PER_4 * C_BIOMASS * y_x
    return C_GLUCOSE - frac, frac * qm


MU_CRIT_PER_H = critical_growth_rate()
"""Default strain's critical growth rate (onset of acetate overflow), 1/h (~0.43)."""

INITIAL = {
    "volume_l": 5.5,
    "biomass_g_per_l": 0.1,
    "glucose_g_per_l": 15.0,
    "acetate_g_per_l": 0.0,
    "temperature_c": 37.0,
    "ph": 7.0,
}
ACTUATOR_DEFAULTS = {
    "feed_rate_l_per_h": 0.0,
    "base_rate_l_per_h": 0.0,
    "acid_rate_l_per_h": 0.0,
    "antifoam_rate_l_per_h": 0.0,
    "agitation_rpm": 600.0,
    "air_flow_slpm": 5.0,
    "o2_flow_slpm": 0.0,
    "jacket_temp_c": 37.0,
    "induction": 0.0,
}
SETPOINT_DEFAULTS = {"do_sp_pct": 30.0, "ph_sp": 7.0, "temperature_sp_c": 37.0}

ATLINE_SIGNALS = (
    Signal("glucose_g_per_l", "measurement", "g/L", 0.0, 100.0, "Glucose, at-line analyser (sampled, delayed)"),
    Signal("titer_g_per_l", "measurement", "g/L", 0.0, 50.0, "Recombinant product titre, at-line (sampled, delayed)"),
    Signal("od600", "measurement", "AU", 0.0, 400.0, "Optical density at 600 nm, at-line (sampled, delayed)"),
    Signal("acetate_g_per_l", "measurement", "g/L", 0.0, 30.0, "Acetate, at-line HPLC (sampled, delayed)"),
)
OD_PER_G_PER_L = 2.5  # OD600 units per g/L dry biomass (typical for E. coli)


@dataclass(frozen=True)
class Fluxes:
    """Specific rates of one RHS evaluation, each ``(n,)``, per gram biomass per hour."""

    mu: FloatArray
    qs: FloatArray
    qa_p: FloatArray
    qa_c: FloatArray
    qp: FloatArray
    qo: FloatArray  # mmol O2
    qco2: FloatArray  # mmol CO2


SMOOTHING = 0.02
"""Relative width of the smooth minimum at the overflow and acetate-uptake switches."""


def _smooth_min(a: FloatArray, b: FloatArray) -> FloatArray:
    """min(a, b) rounded over a width of ``SMOOTHING * (a + b)``.

    Biology switches smoothly; a hard ``min`` lets the culture slide along the kink
    (uptake pinned at the respiratory cap, acetate neither made nor used), where no
    integrator converges faster than first order. Away from the switch the bias is
    ~``SMOOTHING^2/4`` relative.
    """
    d = a - b
    s = a + b
    return 0.5 * (s - np.sqrt(d * d + (SMOOTHING * s) ** 2))


def fluxes(y: FloatArray, u: Inputs, k: Kinetics, b: vessel.Broth, jac: bool = True) -> tuple[Fluxes, dict[str, FloatArray]]:
    """Specific rates and the partial derivatives the integrator's W-matrix needs."""
    v = b.volume_l
    s = np.maximum(y[IS], 0.0) / v  # negative excursions (bounded by atol) never feed back
    a = np.maximum(y[IA], 0.0) / v
    c = np.maximum(y[IC], 0.0)
    dt = (b.temperature_c - k.t_opt_c) / k.t_width_c
    dph = (b.ph - k.ph_opt) / k.ph_width
    f_env = np.exp(-(dt * dt + dph * dph))
    qs_cap = k.qs_max * f_env / (1.0 + a / k.ki_s)
    qs = qs_cap * s / (k.ks + s)
    dqs_ds = qs_cap * k.ks / ((k.ks + s) * (k.ks + s))
    ox = c / (k.ko + c)
    qo_full = k.qo_max * f_env / (1.0 + a / k.ki_o)
    qo_cap = qo_full * ox
    dqocap_dc = qo_full * k.ko / ((k.ko + c) * (k.ko + c))
    induced = u.induction
    y_x = k.y_xs * (1.0 - k.burden * induced)
    a_glc, b_m = _o2_per_glucose(y_x, k.qm)
    qm_eff = k.qm * ox  # maintenance respiration needs O2 too, so it fades under anoxia
    b_m = b_m * ox
    qs_ox_o2 = np.maximum((qo_cap - b_m) / a_glc, 0.0)
    o2_limited = qs_ox_o2 < qs
    qs_ox = _smooth_min(qs, qs_ox_o2)
    qs_of = qs - qs_ox
    qa_p = k.y_as * qs_of
    a_ac = C_ACETATE - GAMMA_BIOMASS_PER_4 * C_BIOMASS * k.y_xa
    qo_spare = np.maximum(qo_cap - a_glc * qs_ox - b_m, 0.0)
    qa_kin_cap = k.qa_max * f_env
    qa_kin = qa_kin_cap * a / (k.ka + a)
    qa_o2 = qo_spare / a_ac
    acetate_o2_limited = qa_o2 < qa_kin
    qa_c = _smooth_min(qa_kin, qa_o2)
    mu = y_x * (qs_ox - qm_eff) + k.y_xs_of * qs_of + k.y_xa * qa_c
    qp = induced * k.y_px * np.maximum(mu, 0.0)
    qo = a_glc * qs_ox + b_m + a_ac * qa_c
    qco2 = C_GLUCOSE * qs + C_ACETATE * (qa_c - qa_p) - C_BIOMASS * mu - C_PRODUCT * qp
    if not jac:
        return Fluxes(mu, qs, qa_p, qa_c, qp, qo, qco2), {}
    partials = {
        "dqs_ds": dqs_ds,
        "dqa_da": np.where(acetate_o2_limited, 0.0, qa_kin_cap * k.ka / ((k.ka + a) * (k.ka + a))),
        "dqo_dc": np.where(o2_limited | acetate_o2_limited, dqocap_dc, 0.0),
        "dqo_ds": np.where(o2_limited, 0.0, a_glc * dqs_ds),
        "dqap_ds": np.where(o2_limited, k.y_as * dqs_ds, 0.0),
        "dqacet_dc": -np.where(o2_limited, k.y_as * dqocap_dc / a_glc, 0.0) - np.where(acetate_o2_limited, dqocap_dc / a_ac, 0.0),
    }
    return Fluxes(mu, qs, qa_p, qa_c, qp, qo, qco2), partials


def rhs(
    y: FloatArray, u: Inputs, k: Kinetics, vp: vessel.VesselParams, jac: bool = True
) -> tuple[FloatArray, FloatArray | None, tuple[tuple[int, int, FloatArray], ...]]:
    """Time derivatives per hour of ``y`` ``(len(STATES), n)``, the Jacobian diagonal and
    the stiff couplings biomass/glucose -> DO, glucose -> acetate, DO -> acetate."""
    b = vessel.broth(y[IV:], u, vp)
    fl, d = fluxes(y, u, k, b, jac)
    mx = np.maximum(y[IX], 0.0)
    v = b.volume_l
    x = mx / v
    f = np.empty_like(y)
    f[IX] = fl.mu * mx
    f[IS] = u.feed_l_per_h(y[IV + 5]) * k.glucose_feed_g_per_l - fl.qs * mx
    f[IC] = b.kla_per_h * (b.c_star_mmol_per_l - y[IC]) - fl.qo * x
    f[IA] = (fl.qa_p - fl.qa_c) * mx
    f[IP] = fl.qp * mx
    # Acetic acid releases H+ only as far as it dissociates; the acetate pool also buffers.
    dissociated = 1.0 / (1.0 + np.exp(_LN10 * (ACETATE_PKA - b.ph)))
    acid = mx * (N_PER_BIOMASS_MMOL_PER_G * np.maximum(fl.mu, 0.0) + ACETATE_MMOL_PER_G * dissociated * (fl.qa_p - fl.qa_c))
    acetate_mm = ACETATE_MMOL_PER_G * np.maximum(y[IA], 0.0) / v
    jd = np.zeros_like(y) if jac else None
    vessel.vessel_rates(y[IV:], b, u, vp, fl.qo * mx, fl.qco2 * mx, acid, f[IV:], None if jd is None else jd[IV:], ((acetate_mm, ACETATE_PKA),))
    if jd is None:
        return f, None, ()
    jd[IS] = -x * d["dqs_ds"]
    jd[IC] = -b.kla_per_h - x * d["dqo_dc"]
    jd[IA] = -x * d["dqa_da"]
    couplings = (
        (IC, IX, -fl.qo / v),
        (IC, IS, -(x / v) * d["dqo_ds"]),
        (IA, IS, x * d["dqap_ds"]),
        (IA, IC, mx * d["dqacet_dc"]),
    )
    return f, jd, couplings


def initial_state(n: int, vp: vessel.VesselParams, rng: np.random.Generator | None, **overrides: float) -> FloatArray:
    """Initial state ``(len(STATES), n)``; ``rng`` spreads the inoculum by +-10 % (None: none)."""
    init = {**INITIAL, **overrides}
    unknown = set(overrides) - set(INITIAL)
    if unknown:
        raise TypeError(f"unknown initial conditions {sorted(unknown)}; allowed: {sorted(INITIAL)}")
    v0 = np.full(n, init["volume_l"])
    spread = np.ones(n) if rng is None else np.exp(rng.normal(0.0, 0.1, n))
    y = np.zeros((len(STATES), n))
    y[IX] = init["biomass_g_per_l"] * spread * v0
    y[IS] = init["glucose_g_per_l"] * v0
    y[IA] = init["acetate_g_per_l"] * v0
    vessel.fill_initial_vessel_states(y, IV, IC, v0, init["temperature_c"], init["ph"],
                                      ACTUATOR_DEFAULTS["air_flow_slpm"], vp)
    return y


def random_kinetics(n: int, rng: np.random.Generator | None) -> Kinetics:
    """Default kinetics with a +-3 % strain-to-strain spread of the capacities (None: none)."""
    if rng is None:
        return Kinetics()
    base = Kinetics()
    return replace(
        base,
        qs_max=base.qs_max * np.exp(rng.normal(0.0, 0.03, n)),  # type: ignore[operator]
        qo_max=base.qo_max * np.exp(rng.normal(0.0, 0.03, n)),  # type: ignore[operator]
        y_xs=base.y_xs * np.exp(rng.normal(0.0, 0.02, n)),  # type: ignore[operator]
    )


def true_concentrations(y: FloatArray) -> dict[str, FloatArray]:
    """Organism-specific true values by signal name (at-line analytes, before sampling)."""
    v = y[IV]
    x = y[IX] / v
    return {
        "glucose_g_per_l": np.maximum(y[IS], 0.0) / v,
        "titer_g_per_l": y[IP] / v,
        "od600": OD_PER_G_PER_L * x,
        "acetate_g_per_l": np.maximum(y[IA], 0.0) / v,
        "biomass_g_per_l": x,
    }


def carbon_mmol(y: FloatArray) -> FloatArray:
    """Carbon held in the broth, C-mmol per reactor ``(n,)``."""
    return C_BIOMASS * y[IX] + C_GLUCOSE * y[IS] + C_ACETATE * y[IA] + C_PRODUCT * y[IP]


def _model() -> "ProcessModel":
    from simulators.process.model import ProcessModel

    return ProcessModel(
        organism="ecoli",
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
        biomass_row=IX,
        vessel_row=IV,
        induces=True,
        default_vessel=vessel.VesselParams(),
        sample_interval_s=1.5 * 3600.0,
    )


MODEL = _model()
