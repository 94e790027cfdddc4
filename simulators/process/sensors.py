"""What the instruments show: first-order lag, slow drift and white noise on on-line
sensors; sampled, assayed and delayed at-line analytes.

Noise is drawn when the process advances (not when it is read), so reading is pure and
a run is reproducible for a seed whatever the number of reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SensorSpec:
    """Noise standard deviation and lag time constant (s) in the signal's unit;
    ``drift_sd_per_day`` spreads a constant per-reactor drift rate (probe ageing)."""

    noise_sd: float = 0.0
    lag_s: float = 0.0
    drift_sd_per_day: float = 0.0
    relative: bool = False  # noise_sd is a fraction of the value


DEFAULT_SPECS = {
    "do_pct": SensorSpec(0.3, 30.0, 1.0),  # polarographic probe, t90 ~ 60 s
    "ph": SensorSpec(0.005, 10.0, 0.02),
    "temperature_c": SensorSpec(0.03, 20.0),
    "pressure_bar": SensorSpec(0.002, 2.0),
    "volume_l": SensorSpec(0.003, 5.0),
    "offgas_o2_pct": SensorSpec(0.01, 60.0),
    "offgas_co2_pct": SensorSpec(0.01, 60.0),
    "our_mmol_per_l_h": SensorSpec(0.02, 60.0, relative=True),
    "cer_mmol_per_l_h": SensorSpec(0.02, 60.0, relative=True),
}


class OnlineSensors:
    """Lagged, drifting, noisy view of on-line true values, each ``(n_reactors,)``."""

    def __init__(self, true_values: dict[str, FloatArray], rng: np.random.Generator, specs: dict[str, SensorSpec], enabled: bool) -> None:
        self._rng = rng
        self._specs = specs if enabled else {}
        n = next(iter(true_values.values())).shape[0]
        self._lagged = {k: np.array(v, dtype=np.float64) for k, v in true_values.items()}
        self._drift = {k: np.zeros(n) for k in self._specs}
        self._drift_rate_per_s = {
            k: rng.normal(0.0, s.drift_sd_per_day, n) / 86400.0 for k, s in self._specs.items() if s.drift_sd_per_day > 0
        }
        self._noise = {k: np.zeros(n) for k in self._specs}

    def update(self, true_values: dict[str, FloatArray], dt_s: float) -> None:
        """Move the sensors ``dt_s`` seconds towards ``true_values`` (taken as constant over dt).

        Noise is not drawn here but once per process step (:meth:`draw_noise`), so splitting a
        step at a fault edge does not shift the random stream of the other reactors."""
        for name, true in true_values.items():
            spec = self._specs.get(name)
            if spec is None or spec.lag_s <= 0:
                self._lagged[name] = np.array(true, dtype=np.float64)
            else:
                # Exact for a constant input, so any dt is stable; NaN (no gas flow) resets the lag.
                lagged = self._lagged[name]
                w = -np.expm1(-dt_s / spec.lag_s)
                self._lagged[name] = np.where(np.isfinite(lagged), lagged + (true - lagged) * w, true)
        for name, rate in self._drift_rate_per_s.items():
            self._drift[name] = self._drift[name] + rate * dt_s

    def draw_noise(self) -> None:
        """New white-noise samples for every noisy sensor."""
        for name, spec in self._specs.items():
            if spec.noise_sd > 0:
                sd = spec.noise_sd * np.abs(self._lagged[name]) if spec.relative else spec.noise_sd
                self._noise[name] = self._rng.normal(0.0, 1.0, self._lagged[name].shape) * sd

    def __contains__(self, name: str) -> bool:
        return name in self._lagged

    def value(self, name: str) -> FloatArray:
        v = self._lagged[name]
        if name in self._specs:
            v = v + self._drift[name] + self._noise[name]
        return v


class AtLineAnalyser:
    """Samples drawn at fixed process times, results released ``delay_s`` later with a
    relative assay error; before the first result a signal is NaN and not good."""

    def __init__(self, names: tuple[str, ...], n: int, delay_s: float, cv: float, rng: np.random.Generator) -> None:
        self._names = names
        self._delay_s = delay_s
        self._cv = cv
        self._rng = rng
        self._pending: list[tuple[float, float, dict[str, FloatArray]]] = []
        self.values = {k: np.full(n, np.nan) for k in names}
        self.sample_time_s = {k: np.full(n, np.nan) for k in names}

    def take_sample(self, time_s: float, true_values: dict[str, FloatArray]) -> None:
        assayed = {
            k: np.maximum(true_values[k] * (1.0 + self._cv * self._rng.normal(0.0, 1.0, true_values[k].shape)), 0.0)
            for k in self._names
        }
        self._pending.append((time_s + self._delay_s, time_s, assayed))

    def release_until(self, time_s: float) -> None:
        while self._pending and self._pending[0][0] <= time_s:
            _, sampled_at, vals = self._pending.pop(0)
            for k in self._names:
                self.values[k] = vals[k]
                self.sample_time_s[k] = np.full_like(vals[k], sampled_at)

    def next_release_s(self) -> float:
        return self._pending[0][0] if self._pending else np.inf
