"""The canonical signal names of the plant contract, with their kind and unit.

A tag named after a canonical signal gets its ``kind`` and ``unit`` from here, so a
configuration lists names only. Any other name is a plant-specific signal and must state
its ``kind`` (the checker suggests the closest canonical name, which catches typos).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

SignalKind = Literal["measurement", "actuator", "setpoint"]


class CanonicalSignal(NamedTuple):
    kind: SignalKind
    unit: str


def _m(unit: str) -> CanonicalSignal:
    return CanonicalSignal("measurement", unit)


CANONICAL_SIGNALS: dict[str, CanonicalSignal] = {
    # on-line measurements
    "do_pct": _m("%"),
    "ph": _m("pH"),
    "temperature_c": _m("degC"),
    "pressure_bar": _m("bar"),
    "volume_l": _m("L"),
    "offgas_o2_pct": _m("%"),
    "offgas_co2_pct": _m("%"),
    "our_mmol_per_l_h": _m("mmol/(L h)"),
    "cer_mmol_per_l_h": _m("mmol/(L h)"),
    "rq": _m("1"),
    "feed_total_l": _m("L"),
    "base_total_l": _m("L"),
    "acid_total_l": _m("L"),
    "foam": _m("1"),
    "process_time_s": _m("s"),  # time since inoculation, as the plant's batch manager counts it
    # at-line analytes (sampled, delayed)
    "glucose_g_per_l": _m("g/L"),
    "titer_g_per_l": _m("g/L"),
    "od600": _m("1"),
    "acetate_g_per_l": _m("g/L"),
    "vcd_e6_cells_per_ml": _m("1e6 cells/mL"),
    "viability_pct": _m("%"),
    "lactate_g_per_l": _m("g/L"),
    "glutamine_mmol_per_l": _m("mmol/L"),
    "ammonia_mmol_per_l": _m("mmol/L"),
    # actuator demands
    "feed_rate_l_per_h": CanonicalSignal("actuator", "L/h"),
    "base_rate_l_per_h": CanonicalSignal("actuator", "L/h"),
    "acid_rate_l_per_h": CanonicalSignal("actuator", "L/h"),
    "antifoam_rate_l_per_h": CanonicalSignal("actuator", "L/h"),
    "agitation_rpm": CanonicalSignal("actuator", "rpm"),
    "air_flow_slpm": CanonicalSignal("actuator", "slpm"),
    "o2_flow_slpm": CanonicalSignal("actuator", "slpm"),
    "jacket_temp_c": CanonicalSignal("actuator", "degC"),
    "induction": CanonicalSignal("actuator", "1"),
    # operator / recipe setpoints
    "do_sp_pct": CanonicalSignal("setpoint", "%"),
    "ph_sp": CanonicalSignal("setpoint", "pH"),
    "temperature_sp_c": CanonicalSignal("setpoint", "degC"),
}
