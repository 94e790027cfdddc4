"""Field types shared by the configuration sections: durations, names, OPC UA addresses.

Durations are plain TOML numbers in the unit the field name ends with (``control_period_s``,
``sampling_interval_ms``, ``at_h``): one convention, no unit parser, and the unit is visible
where the value is used. A string such as ``"5s"`` is refused with the number to write instead.
"""

from __future__ import annotations

import os
import re
import string
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo
from pydantic_core import PydanticCustomError

_UNIT_TO_S = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}
_DURATION_TEXT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]+)\s*$")


def _duration_in(unit: str):  # noqa: ANN202 - returns a validator
    """A before-validator that turns ``"5s"`` into a precise error naming the number to write."""

    def check(value: object) -> object:
        if isinstance(value, str):
            m = _DURATION_TEXT.match(value.lower())
            if m and m.group(2) in _UNIT_TO_S:
                number = float(m.group(1)) * _UNIT_TO_S[m.group(2)] / _UNIT_TO_S[unit]
                raise PydanticCustomError(
                    "duration_text",
                    "durations are plain numbers in the unit of the field name ({unit}): write {number}",
                    {"unit": unit, "number": float(f"{number:.6g}")},
                )
            raise PydanticCustomError("duration_type", "expected a number of {unit}", {"unit": unit})
        return value

    return check


#: A strictly positive duration in seconds, milliseconds or hours.
PositiveSeconds = Annotated[float, BeforeValidator(_duration_in("s")), Field(gt=0)]
NonNegativeSeconds = Annotated[float, BeforeValidator(_duration_in("s")), Field(ge=0)]
NonNegativeMillis = Annotated[float, BeforeValidator(_duration_in("ms")), Field(ge=0)]
PositiveMillis = Annotated[float, BeforeValidator(_duration_in("ms")), Field(gt=0)]
NonNegativeHours = Annotated[float, BeforeValidator(_duration_in("h")), Field(ge=0)]

#: Names of reactors, endpoints, loops and feeds: they appear in field paths, tags and series keys.
Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")]
#: A signal (tag) name as in the plant contract: lower-case, units in the name.
SignalName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
#: The name of an environment variable (the secret itself never appears in the file).
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]

_NODE_ID = re.compile(r"^(?:(?:ns=\d+|nsu=[^;]+);)?(?:i=\d+|s=.+|g=[0-9a-fA-F-]{36}|b=.+)$")
_BROWSE_ELEMENT = re.compile(r"^(?:\d+:)?[^/:]+$")


def _check_node_id(value: str) -> str:
    if not _NODE_ID.match(value):
        raise PydanticCustomError(
            "node_id",
            "not an OPC UA NodeId; allowed: 'ns=<index>;s=<name>', 'nsu=<namespace uri>;s=<name>', "
            "'i=<number>', 'g=<guid>', 'b=<base64>'",
        )
    return value


def _check_browse_path(value: str) -> str:
    parts = value.strip("/").split("/")
    if not value.strip("/") or not all(_BROWSE_ELEMENT.match(p) for p in parts):
        raise PydanticCustomError(
            "browse_path",
            "not a browse path; allowed: elements '<ns index>:<BrowseName>' joined by '/', "
            "e.g. 'Objects/2:R1/2:Sensors/2:do_pct'",
        )
    return value


def template_fields(template: str) -> set[str]:
    """Placeholder names used in a ``str.format`` template (raises ValueError on bad braces)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _check_template(value: str) -> str:
    try:
        names = template_fields(value)
    except ValueError as exc:
        raise PydanticCustomError("template", "not a valid template: {reason}", {"reason": str(exc)}) from None
    if "signal" not in names:
        # Without {signal} every tag of the reactor would map to the same node.
        raise PydanticCustomError("template", "a tag template must contain '{signal}'")
    if "" in names or any(not n.isidentifier() for n in names):
        raise PydanticCustomError("template", "placeholders must be names like '{reactor}' or '{signal}'")
    return value


def _resolve_path(value: str, info: ValidationInfo) -> str:
    # Relative paths are relative to the configuration file, not the working directory,
    # so a config behaves the same whoever starts the service from wherever.
    base = (info.context or {}).get("base_dir")
    if base is None or os.path.isabs(value):
        return value
    return os.path.normpath(os.path.join(base, value))


NodeId = Annotated[str, AfterValidator(_check_node_id)]
#: A file system path; relative paths are taken relative to the configuration file.
ConfigPath = Annotated[str, Field(min_length=1), AfterValidator(_resolve_path)]
BrowsePath = Annotated[str, AfterValidator(_check_browse_path)]
TagTemplate = Annotated[str, AfterValidator(_check_template)]
