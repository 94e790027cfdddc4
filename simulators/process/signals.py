"""The catalogue of signals every simulated fermenter carries (names fixed by the plant contract)."""

from __future__ import annotations

from simulators.plant import Signal

ONLINE_MEASUREMENTS = (
    Signal("do_pct", "measurement", "%", 0.0, 500.0, "Dissolved oxygen, % of air saturation at process T and pressure"),
    Signal("ph", "measurement", "pH", 2.0, 12.0, "Broth pH"),
    Signal("temperature_c", "measurement", "degC", 0.0, 80.0, "Broth temperature"),
    Signal("pressure_bar", "measurement", "bar", 0.8, 3.0, "Head-space pressure, absolute"),
    Signal("volume_l", "measurement", "L", 0.0, 12.0, "Broth volume (load cell)"),
    Signal("offgas_o2_pct", "measurement", "%", 0.0, 100.0, "Exhaust O2, dry, mol-%"),
    Signal("offgas_co2_pct", "measurement", "%", 0.0, 100.0, "Exhaust CO2, dry, mol-%"),
    Signal("our_mmol_per_l_h", "measurement", "mmol/(L h)", 0.0, 1000.0, "O2 uptake rate from the gas balance"),
    Signal("cer_mmol_per_l_h", "measurement", "mmol/(L h)", 0.0, 1000.0, "CO2 evolution rate from the gas balance"),
    Signal("rq", "measurement", "1", 0.0, 5.0, "Respiratory quotient CER/OUR"),
    Signal("feed_total_l", "measurement", "L", 0.0, 100.0, "Feed pump totaliser"),
    Signal("base_total_l", "measurement", "L", 0.0, 100.0, "Base pump totaliser"),
    Signal("acid_total_l", "measurement", "L", 0.0, 100.0, "Acid pump totaliser"),
    Signal("foam", "measurement", "1", 0.0, 1.0, "Foam probe (1 = foam touches the probe)"),
)

ACTUATORS = (
    Signal("feed_rate_l_per_h", "actuator", "L/h", 0.0, 1.0, "Feed pump rate demand"),
    Signal("base_rate_l_per_h", "actuator", "L/h", 0.0, 0.5, "Base pump rate demand"),
    Signal("acid_rate_l_per_h", "actuator", "L/h", 0.0, 0.5, "Acid pump rate demand"),
    Signal("antifoam_rate_l_per_h", "actuator", "L/h", 0.0, 0.05, "Antifoam pump rate demand"),
    Signal("agitation_rpm", "actuator", "rpm", 0.0, 1500.0, "Stirrer speed demand"),
    Signal("air_flow_slpm", "actuator", "slpm", 0.0, 20.0, "Air mass-flow controller demand"),
    Signal("o2_flow_slpm", "actuator", "slpm", 0.0, 10.0, "Pure O2 mass-flow controller demand"),
    Signal("jacket_temp_c", "actuator", "degC", 4.0, 80.0, "Jacket temperature-control-unit setpoint"),
    Signal("induction", "actuator", "1", 0.0, 1.0, "Inducer added (0 or 1)"),
)


def setpoints(temperature_default_c: float) -> tuple[Signal, ...]:
    """Operator/recipe setpoints; the ranges are the same for every organism."""
    del temperature_default_c
    return (
        Signal("do_sp_pct", "setpoint", "%", 0.0, 100.0, "Dissolved-oxygen setpoint"),
        Signal("ph_sp", "setpoint", "pH", 4.0, 9.0, "pH setpoint"),
        Signal("temperature_sp_c", "setpoint", "degC", 20.0, 45.0, "Broth temperature setpoint"),
    )
