"""The contract between a simulated process model and whatever drives it.

Two callers drive a :class:`Plant`: the OPC UA server (``simulators.opcua``), which
advances it on a process clock and publishes :meth:`Plant.read` as OPC UA variables,
and in-process lock-step tests/scenarios that call the controllers directly.

All arrays are float64 with shape ``(n_reactors,)``. Process time is in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

SignalKind = Literal["measurement", "actuator", "setpoint"]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Signal:
    """One named signal that every reactor of a plant carries.

    ``kind`` says who owns the value: the process (``measurement``), the controller
    writing actuator demands (``actuator``), or the operator/recipe (``setpoint``).
    ``lo``/``hi`` is the engineering range (OPC UA EURange); a write outside it is refused.
    """

    name: str
    kind: SignalKind
    unit: str
    lo: float
    hi: float
    description: str


@dataclass(frozen=True)
class Readings:
    """A snapshot of every signal of every reactor at ``time_s``.

    ``values[name]`` has shape ``(n_reactors,)``; ``good[name]`` is False where the
    sensor reports a failure (OPC UA Bad quality) or has no value yet (an at-line
    analyte before its first sample); such values may be NaN.
    ``sample_time_s[name]`` is the process time the value was taken (at-line analytes
    arrive late, so it lags ``time_s``); equal to ``time_s`` for on-line signals.
    """

    time_s: float
    values: dict[str, FloatArray]
    good: dict[str, BoolArray]
    sample_time_s: dict[str, FloatArray] = field(default_factory=dict)


class OutOfRange(ValueError):
    """A write named a value outside the signal's engineering range (or not finite)."""


class UnknownSignal(KeyError):
    """A write named a signal this plant does not have, or one that is not writable."""


@runtime_checkable
class Plant(Protocol):
    """N reactors of one organism advanced together by one vectorized step."""

    organism: str
    n_reactors: int
    signals: tuple[Signal, ...]

    @property
    def time_s(self) -> float:
        """Process time since inoculation, seconds."""

    @property
    def batch_ids(self) -> list[str]:
        """Batch id per reactor (stable for a run)."""

    @property
    def phases(self) -> list[str]:
        """Current phase per reactor, e.g. ``batch``, ``fed-batch``, ``induced``."""

    def advance(self, dt_s: float) -> None:
        """Advance every reactor by ``dt_s`` seconds of process time (any size > 0)."""

    def read(self) -> Readings:
        """What the sensors (with noise, lag, drift, faults) show now."""

    def write(self, name: str, value: float | FloatArray, reactor: int | None = None) -> None:
        """Set an actuator demand or setpoint, for one reactor or (``None``) all.

        Raises :class:`UnknownSignal` for a measurement or unknown name and
        :class:`OutOfRange` for a value outside ``[lo, hi]`` or not finite; nothing is
        changed then (the OPC UA server maps these to Bad status codes).
        """
