"""N simulated fermenters of one organism behind the :class:`~simulators.plant.Plant` contract."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from simulators.plant import OutOfRange, Readings, Signal, UnknownSignal
from simulators.process import vessel
from simulators.process.faults import Fault
from simulators.process.inputs import Inputs
from simulators.process.integrate import integrate
from simulators.process.model import ProcessModel
from simulators.process.sensors import DEFAULT_SPECS, AtLineAnalyser, OnlineSensors
from simulators.process.signals import ACTUATORS, ONLINE_MEASUREMENTS, setpoints

FloatArray = npt.NDArray[np.float64]
PHASES = ("batch", "fed-batch", "induced")
_GAS_SIGNALS = ("offgas_o2_pct", "offgas_co2_pct", "our_mmol_per_l_h", "cer_mmol_per_l_h", "rq")


class Fermenter:
    """``n_reactors`` fermenters of one organism advanced by one vectorized integration.

    Parameters
    ----------
    model : ProcessModel
        The organism (``simulators.process.ecoli.MODEL`` or ``cho.MODEL``).
    n_reactors : int
    seed : int
        Seeds the strain-to-strain spread, inoculum spread, sensor noise and assay error.
    faults : sequence of Fault
    vessel_params : VesselParams, optional
        Defaults to the organism's (medium buffer, base strength).
    rtol : float
        Relative local-error tolerance of the integrator; ``advance`` gives the same
        trajectory (within this tolerance) for any ``dt_s``.
    h_max_s : float
        Largest internal step, s.
    sample_interval_s, sample_volume_l, assay_delay_s, assay_cv :
        At-line sampling: every ``sample_interval_s`` (default: the organism's) a sample of ``sample_volume_l``
        leaves every reactor; its assay arrives ``assay_delay_s`` later with relative
        error ``assay_cv``.
    sensor_noise : bool
        False gives noise-, lag- and drift-free sensors (faults still act).
    spread : bool
        False makes all reactors identical (no strain or inoculum spread).
    **initial : float
        Initial conditions by name (e.g. ``volume_l``, ``glucose_g_per_l``).
    """

    def __init__(
        self,
        model: ProcessModel,
        n_reactors: int,
        *,
        seed: int = 0,
        faults: Sequence[Fault] = (),
        vessel_params: vessel.VesselParams | None = None,
        kinetics: object | None = None,
        rtol: float = 1e-6,
        h_max_s: float = 900.0,
        sample_interval_s: float | None = None,
        sample_volume_l: float = 0.01,
        assay_delay_s: float = 1200.0,
        assay_cv: float = 0.03,
        sensor_noise: bool = True,
        spread: bool = True,
        **initial: float,
    ) -> None:
        if n_reactors < 1:
            raise ValueError(f"n_reactors must be >= 1, got {n_reactors}")
        self.model = model
        self.organism = model.organism
        self.n_reactors = n = int(n_reactors)
        self.vessel_params = vp = vessel_params or model.default_vessel or vessel.VesselParams()
        self.faults = tuple(faults)
        for f in self.faults:
            if f.reactor is not None and not 0 <= f.reactor < n:
                raise ValueError(f"fault {f.kind} names reactor {f.reactor}; plant has 0..{n - 1}")
        kin_ss, init_ss, sensor_ss, assay_ss = np.random.SeedSequence(seed).spawn(4)
        self.kinetics = kinetics if kinetics is not None else model.random_kinetics(n, np.random.default_rng(kin_ss) if spread else None)
        self._y = model.initial_state(n, vp, np.random.default_rng(init_ss) if spread else None, **initial)
        self._y0 = self._y.copy()
        self._rtol = rtol
        self._h_max_h = h_max_s / 3600.0
        self._h_h = np.full(n, 10.0 / 3600.0)
        self._t = 0.0
        self._seed = seed
        self.signals: tuple[Signal, ...] = (
            *ONLINE_MEASUREMENTS,
            *model.atline_signals,
            *ACTUATORS,
            *setpoints(model.setpoint_defaults["temperature_sp_c"]),
        )
        self._by_name = {s.name: s for s in self.signals}
        self._demand = {k: np.full(n, float(v)) for k, v in {**model.actuator_defaults, **model.setpoint_defaults}.items()}
        self._phase = np.zeros(n, dtype=np.int8)
        self.sampled_total_l = np.zeros(n)
        self.sampled_carbon_mmol = np.zeros(n)
        self._sample_interval_s = sample_interval_s = sample_interval_s or model.sample_interval_s
        self._sample_volume_l = sample_volume_l
        self._next_sample_s = sample_interval_s
        self._stuck: dict[int, FloatArray] = {}
        self.integration_steps = 0
        u = self._inputs(0.0)
        self._sensors = OnlineSensors(self._true_online(u), np.random.default_rng(sensor_ss), DEFAULT_SPECS, sensor_noise)
        atline_names = tuple(s.name for s in model.atline_signals)
        self._atline = AtLineAnalyser(atline_names, n, assay_delay_s, assay_cv if sensor_noise else 0.0, np.random.default_rng(assay_ss))
        self._snapshot_stuck()

    # --- Plant contract ----------------------------------------------------------------
    @property
    def time_s(self) -> float:
        return self._t

    @property
    def batch_ids(self) -> list[str]:
        return [f"{self.organism}-s{self._seed}-r{i:04d}" for i in range(self.n_reactors)]

    @property
    def phases(self) -> list[str]:
        return [PHASES[p] for p in self._phase]

    def advance(self, dt_s: float) -> None:
        """Advance all reactors by ``dt_s`` s; splits internally at samples and fault edges."""
        dt_s = float(dt_s)
        if not (math.isfinite(dt_s) and dt_s > 0):
            raise ValueError(f"dt_s must be finite and > 0, got {dt_s}")
        t_end = self._t + dt_s
        while self._t < t_end:
            t_next = min(t_end, self._next_sample_s, self._next_fault_edge(self._t))
            if t_end - t_next < 1e-9 * max(dt_s, 1.0):
                t_next = t_end  # do not leave a sliver of float round-off for another segment
            seg_s = t_next - self._t
            u = self._inputs(self._t)
            self._update_phases()
            if seg_s > 0:
                k, vp = self.kinetics, self.vessel_params
                self._y, self._h_h, steps = integrate(
                    lambda y, jac: self.model.rhs(y, u, k, vp, jac),
                    self._y,
                    seg_s / 3600.0,
                    self._h_h,
                    rtol=self._rtol,
                    atol=self.model.atol,
                    h_max=self._h_max_h,
                )
                self.integration_steps += steps
                self._sensors.update(self._true_online(u), seg_s)
            self._t = t_next
            if self._t >= self._next_sample_s:
                self._take_sample()
                self._next_sample_s += self._sample_interval_s
            self._snapshot_stuck()
            self._atline.release_until(self._t)
        self._sensors.draw_noise()

    def read(self) -> Readings:
        """Sensor view at :attr:`time_s` (noise, lag, drift, faults, at-line delay)."""
        n, t = self.n_reactors, self._t
        values: dict[str, FloatArray] = {}
        good: dict[str, npt.NDArray[np.bool_]] = {}
        stamp: dict[str, FloatArray] = {}
        v = self._y[self.model.vessel_row :]
        for name in ("do_pct", "ph", "temperature_c", "pressure_bar", "volume_l", "offgas_o2_pct", "offgas_co2_pct"):
            values[name] = self._sensors.value(name)
        values["our_mmol_per_l_h"] = np.maximum(self._sensors.value("our_mmol_per_l_h"), 0.0)
        values["cer_mmol_per_l_h"] = np.maximum(self._sensors.value("cer_mmol_per_l_h"), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            values["rq"] = np.where(values["our_mmol_per_l_h"] > 1e-3, values["cer_mmol_per_l_h"] / values["our_mmol_per_l_h"], np.nan)
        values["feed_total_l"] = v[5].copy()
        values["base_total_l"] = v[6].copy()
        values["acid_total_l"] = v[7].copy()
        values["foam"] = (v[4] > 0.5).astype(np.float64)
        for name in values:
            good[name] = np.isfinite(values[name])
            stamp[name] = np.full(n, t)
        self._apply_sensor_faults(values, good)
        for s in self.model.atline_signals:
            values[s.name] = self._atline.values[s.name].copy()
            good[s.name] = np.isfinite(values[s.name])
            stamp[s.name] = self._atline.sample_time_s[s.name].copy()
        for name, arr in self._demand.items():
            values[name] = arr.copy()
            good[name] = np.ones(n, dtype=bool)
            stamp[name] = np.full(n, t)
        return Readings(time_s=t, values=values, good=good, sample_time_s=stamp)

    def write(self, name: str, value: float | FloatArray, reactor: int | None = None) -> None:
        """Set an actuator demand or setpoint; see :meth:`simulators.plant.Plant.write`."""
        sig = self._by_name.get(name)
        if sig is None or sig.kind == "measurement":
            raise UnknownSignal(f"{name!r} is not a writable signal of this {self.organism} plant")
        arr = np.asarray(value, dtype=np.float64)
        if reactor is not None:
            if not (isinstance(reactor, (int, np.integer)) and 0 <= reactor < self.n_reactors):
                raise OutOfRange(f"reactor {reactor!r} not in 0..{self.n_reactors - 1}")
            if arr.ndim != 0:
                raise OutOfRange(f"a write to one reactor takes a scalar, got shape {arr.shape}")
        elif arr.ndim not in (0, 1) or (arr.ndim == 1 and arr.shape[0] != self.n_reactors):
            raise OutOfRange(f"{name}: value must be a scalar or shape ({self.n_reactors},), got {arr.shape}")
        if not np.all(np.isfinite(arr)) or np.any(arr < sig.lo) or np.any(arr > sig.hi):
            raise OutOfRange(f"{name}={value!r} outside [{sig.lo}, {sig.hi}] {sig.unit}")
        if reactor is None:
            self._demand[name] = np.broadcast_to(arr, (self.n_reactors,)).astype(np.float64, copy=True)
        else:
            self._demand[name][reactor] = float(arr)

    # --- truth for tests and benchmarks -----------------------------------------------
    @property
    def state(self) -> dict[str, FloatArray]:
        """True model state by row name (masses in g, DO in mmol/L, ...), copies ``(n,)``."""
        return {name: self._y[i].copy() for i, name in enumerate(self.model.states)}

    @property
    def state_array(self) -> FloatArray:
        """The raw state ``(n_states, n)`` (a copy)."""
        return self._y.copy()

    @property
    def initial_state_array(self) -> FloatArray:
        return self._y0.copy()

    def inputs(self) -> Inputs:
        """Effective actuator inputs now (after faults)."""
        return self._inputs(self._t)

    def true_values(self) -> dict[str, FloatArray]:
        """Noise-free values of every measurement signal plus model internals
        (``biomass_g_per_l``, ``kla_per_h``, ``mu_per_h``, ``c_star_mmol_per_l``...)."""
        u = self._inputs(self._t)
        out = self._true_online(u)
        out.update(self.model.true_concentrations(self._y))
        b = vessel.broth(self._y[self.model.vessel_row :], u, self.vessel_params)
        fl, _ = self.model.fluxes(self._y, u, self.kinetics, b)
        out["kla_per_h"] = b.kla_per_h
        out["c_star_mmol_per_l"] = b.c_star_mmol_per_l
        out["do_mmol_per_l"] = self._y[self.model.states.index("do_mmol_per_l")].copy()
        out["mu_per_h"] = fl.mu
        out["foam"] = self._y[self.model.vessel_row + 4].copy()
        return out

    # --- internals ---------------------------------------------------------------------
    def _inputs(self, t: float) -> Inputs:
        d = self._demand
        n = self.n_reactors
        feed = d["feed_rate_l_per_h"].copy()
        air = d["air_flow_slpm"].copy()
        foaming = np.zeros(n)
        cooling_failed = np.zeros(n)
        for f in self.faults:
            if not f.active(t):
                continue
            sel = slice(None) if f.reactor is None else f.reactor
            m = f.effective_magnitude
            if f.kind == "feed_pump_blockage":
                feed[sel] *= 1.0 - m
            elif f.kind == "air_supply_loss":
                air[sel] *= 1.0 - m
            elif f.kind == "foaming":
                foaming[sel] = m
            elif f.kind == "cooling_failure":
                cooling_failed[sel] = 1.0
        return Inputs(
            feed_rate_l_per_h=feed,
            base_rate_l_per_h=d["base_rate_l_per_h"],
            acid_rate_l_per_h=d["acid_rate_l_per_h"],
            antifoam_rate_l_per_h=d["antifoam_rate_l_per_h"],
            agitation_rpm=d["agitation_rpm"],
            air_flow_slpm=air,
            o2_flow_slpm=d["o2_flow_slpm"],
            jacket_temp_c=d["jacket_temp_c"],
            induction=(d["induction"] >= 0.5).astype(np.float64) if self.model.induces else np.zeros(n),
            foaming_per_h=foaming,
            cooling_failed=cooling_failed,
        )

    def _update_phases(self) -> None:
        d = self._demand
        self._phase = np.maximum(self._phase, np.where(d["feed_rate_l_per_h"] > 0, 1, 0).astype(np.int8))
        if self.model.induces:
            self._phase = np.maximum(self._phase, np.where(d["induction"] >= 0.5, 2, 0).astype(np.int8))

    def _next_fault_edge(self, t: float) -> float:
        # opcua_restart is the OPC UA server's business; splitting at it would only perturb.
        edges = [e for f in self.faults if f.kind != "opcua_restart" for e in (f.at_s, f.end_s) if e > t]
        return min(edges, default=math.inf)

    def _true_online(self, u: Inputs) -> dict[str, FloatArray]:
        y = self._y
        vr = self.model.vessel_row
        b = vessel.broth(y[vr:], u, self.vessel_params)
        fl, _ = self.model.fluxes(y, u, self.kinetics, b)
        biomass = np.maximum(y[self.model.biomass_row], 0.0)
        our = fl.qo * biomass / b.volume_l
        cer = fl.qco2 * biomass / b.volume_l
        o2_pct, co2_pct = vessel.offgas_pct(our * b.volume_l, cer * b.volume_l, u.air_flow_slpm, u.o2_flow_slpm)
        flowing = u.gas_slpm > 1e-6
        do_row = self.model.states.index("do_mmol_per_l")
        return {
            "do_pct": 100.0 * y[do_row] / b.c_air_mmol_per_l,
            "ph": b.ph.copy(),
            "temperature_c": b.temperature_c.copy(),
            "pressure_bar": b.pressure_bar,
            "volume_l": b.volume_l.copy(),
            "offgas_o2_pct": o2_pct,
            "offgas_co2_pct": co2_pct,
            # The gas balance needs gas flow: without it OUR/CER are not measurable.
            "our_mmol_per_l_h": np.where(flowing, our, np.nan),
            "cer_mmol_per_l_h": np.where(flowing, cer, np.nan),
        }

    def _take_sample(self) -> None:
        y = self._y
        vr = self.model.vessel_row
        self._atline.take_sample(self._t, self.model.true_concentrations(y))
        vol = y[vr]
        can = vol > 4.0 * self._sample_volume_l
        frac = np.where(can, self._sample_volume_l / vol, 0.0)
        self.sampled_carbon_mmol += self.model.carbon_mmol(y) * frac
        self.sampled_total_l += np.where(can, self._sample_volume_l, 0.0)
        # A sample takes broth, so every extensive organism quantity leaves in proportion.
        y[:vr] = np.where(np.arange(vr)[:, None] == self.model.states.index("do_mmol_per_l"), y[:vr], y[:vr] * (1.0 - frac))
        y[vr] = vol - np.where(can, self._sample_volume_l, 0.0)

    def _snapshot_stuck(self) -> None:
        for i, f in enumerate(self.faults):
            if f.kind == "stuck_sensor" and f.active(self._t) and i not in self._stuck and f.signal is not None:
                self._stuck[i] = self._raw_value(f.signal)

    def _raw_value(self, name: str) -> FloatArray:
        if name in self._sensors:
            return self._sensors.value(name).copy()
        if name in self._atline.values:
            return self._atline.values[name].copy()
        raise ValueError(f"fault names signal {name!r} that is not a sensor of this plant")

    def _apply_sensor_faults(self, values: dict[str, FloatArray], good: dict[str, npt.NDArray[np.bool_]]) -> None:
        t = self._t
        for i, f in enumerate(self.faults):
            if not f.active(t):
                continue
            sel = slice(None) if f.reactor is None else f.reactor
            if f.kind == "do_probe_failure":
                values["do_pct"][sel] = np.nan
                good["do_pct"][sel] = False
            elif f.kind == "sensor_drift" and f.signal in values:
                values[f.signal][sel] += f.effective_magnitude * (t - f.at_s) / 3600.0
            elif f.kind == "stuck_sensor" and f.signal in values and i in self._stuck:
                values[f.signal][sel] = self._stuck[i][sel]
