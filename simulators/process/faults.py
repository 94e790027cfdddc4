"""Fault schedules: what goes wrong, when, in which reactor; loaded from TOML ``[[fault]]`` tables."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

FaultKind = Literal[
    "sensor_drift",
    "stuck_sensor",
    "do_probe_failure",
    "feed_pump_blockage",
    "air_supply_loss",
    "cooling_failure",
    "foaming",
    "opcua_restart",
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
SENSOR_FAULTS = ("sensor_drift", "stuck_sensor")
DEFAULT_MAGNITUDE = {
    "sensor_drift": 1.0,  # signal units per hour
    "feed_pump_blockage": 1.0,  # fraction of the flow lost
    "air_supply_loss": 1.0,  # fraction of the air flow lost
    "foaming": 4.0,  # foam rise rate, 1/h
}


class FaultError(ValueError):
    """A fault definition is invalid; the message names the field and what is allowed."""


@dataclass(frozen=True)
class Fault:
    """One fault: ``kind`` starting at process time ``at_s`` for ``duration_s`` (None: for ever).

    ``reactor`` None hits every reactor. ``signal`` names the sensor for
    ``sensor_drift``/``stuck_sensor``. ``magnitude`` (None: the kind's default) is the
    drift rate in signal units per hour, the lost fraction of a pump or air flow, or the
    foam rise rate in 1/h.
    """

    kind: FaultKind
    at_s: float
    duration_s: float | None = None
    reactor: int | None = None
    signal: str | None = None
    magnitude: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise FaultError(f"fault kind {self.kind!r} unknown; allowed: {', '.join(FAULT_KINDS)}")
        if not math.isfinite(self.at_s) or self.at_s < 0:
            raise FaultError(f"fault at_s must be finite and >= 0, got {self.at_s}")
        if self.duration_s is not None and not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise FaultError(f"fault duration_s must be > 0 or None, got {self.duration_s}")
        if self.kind in SENSOR_FAULTS and self.signal is None:
            raise FaultError(f"fault kind {self.kind!r} needs a signal")

    @property
    def end_s(self) -> float:
        return math.inf if self.duration_s is None else self.at_s + self.duration_s

    @property
    def effective_magnitude(self) -> float:
        return DEFAULT_MAGNITUDE.get(self.kind, 1.0) if self.magnitude is None else self.magnitude

    def active(self, time_s: float) -> bool:
        """True on ``[at_s, at_s + duration_s)``."""
        return self.at_s <= time_s < self.end_s


_TOML_FIELDS = {"kind", "at_h", "duration_h", "reactor", "signal", "magnitude"}


def load_faults(path: str | Path) -> list[Fault]:
    """Read ``[[fault]]`` tables (``kind``, ``at_h``, ``duration_h``, ``reactor``, ``signal``, ``magnitude``).

    Raises :class:`FaultError` naming the file, the table index and the field.
    """
    path = Path(path)
    with path.open("rb") as fh:
        doc = tomllib.load(fh)
    out: list[Fault] = []
    for i, table in enumerate(doc.get("fault", [])):
        where = f"{path}: fault[{i}]"
        extra = set(table) - _TOML_FIELDS
        if extra:
            raise FaultError(f"{where}: unknown field(s) {sorted(extra)}; allowed: {sorted(_TOML_FIELDS)}")
        if "kind" not in table or "at_h" not in table:
            raise FaultError(f"{where}: 'kind' and 'at_h' are required")
        try:
            out.append(
                Fault(
                    kind=table["kind"],
                    at_s=float(table["at_h"]) * 3600.0,
                    duration_s=None if table.get("duration_h") is None else float(table["duration_h"]) * 3600.0,
                    reactor=table.get("reactor"),
                    signal=table.get("signal"),
                    magnitude=table.get("magnitude"),
                )
            )
        except FaultError as exc:
            raise FaultError(f"{where}: {exc}") from None
    return out
