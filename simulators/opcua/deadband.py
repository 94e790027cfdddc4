"""A fix for asyncua's server-side absolute deadband (asyncua 2.x).

asyncua applies the deadband to every data change, so a change of *status* alone (a DO
probe failing while its last value stays within the deadband) is filtered out, and a
value of None (Bad, no value) raises inside the server's datachange callback. OPC UA
Part 4, 7.22.2 says the deadband applies to the value only; a status change is always
reported. Our simulator must behave like a real controller here, so the server installs
this check on asyncua's MonitoredItemService (server side only; clients are untouched).
"""

from __future__ import annotations

import math
from typing import Any

from asyncua import ua
from asyncua.server.monitored_item_service import MonitoredItemService

_original = MonitoredItemService._is_deadband_exceeded


def _is_deadband_exceeded(self: MonitoredItemService, values: Any, flt: ua.DataChangeFilter) -> bool:
    cur, old = values.get_current_datavalue(), values.get_old_datavalue()
    if old is None or cur is None:
        return True
    if cur.StatusCode != old.StatusCode:
        return True
    a = None if cur.Value is None else cur.Value.Value
    b = None if old.Value is None else old.Value.Value
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or isinstance(a, bool):
        return a != b
    if math.isnan(a) or math.isnan(b):
        return not (math.isnan(a) and math.isnan(b))
    return bool(_original(self, values, flt))


def install() -> None:
    """Idempotent: replace the deadband check of asyncua's server monitored items."""
    MonitoredItemService._is_deadband_exceeded = _is_deadband_exceeded  # type: ignore[method-assign]
