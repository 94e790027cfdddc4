"""Validating client writes: a refused write returns a Bad status and changes nothing.

asyncua's value setters cannot return a status code per node (their return value is
ignored, and raising fails the whole Write request), so the server's AttributeService
is wrapped: each WriteValue that targets a plant signal is checked here, applied to the
plant, and only then stored; every other WriteValue passes through untouched. A batch
write with one bad value therefore gets one Bad result and N-1 Good ones, as OPC UA
Part 4 5.10.4 intends.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from asyncua import ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.address_space import AttributeService

from simulators.opcua.address_space import TagBinding
from simulators.plant import OutOfRange, UnknownSignal

_NUMERIC_VARIANTS = frozenset({
    ua.VariantType.Double, ua.VariantType.Float,
    ua.VariantType.SByte, ua.VariantType.Byte, ua.VariantType.Int16, ua.VariantType.UInt16,
    ua.VariantType.Int32, ua.VariantType.UInt32, ua.VariantType.Int64, ua.VariantType.UInt64,
})


def check_write(binding: TagBinding, data: ua.DataValue) -> float | ua.StatusCode:
    """The float to apply, or the Bad status that refuses the write.

    Any scalar numeric variant is accepted (clients often send Float or Int32 for a
    Double); strings, booleans, arrays, non-finite values and values outside
    ``[lo, hi]`` are refused. Writing a Bad/Uncertain StatusCode is not supported;
    client timestamps are ignored (the plant stamps its own values).
    """
    if not binding.writable:
        return ua.StatusCode(ua.StatusCodes.BadNotWritable)
    if data.StatusCode is not None and not data.StatusCode.is_good():
        return ua.StatusCode(ua.StatusCodes.BadWriteNotSupported)
    variant = data.Value
    if variant is None or variant.VariantType not in _NUMERIC_VARIANTS or variant.is_array:
        return ua.StatusCode(ua.StatusCodes.BadTypeMismatch)
    value = float(variant.Value)
    if not math.isfinite(value) or not binding.signal.lo <= value <= binding.signal.hi:
        return ua.StatusCode(ua.StatusCodes.BadOutOfRange)
    return value


class GuardedAttributeService(AttributeService):
    """asyncua AttributeService whose writes to plant signals go through the plant."""

    def __init__(self, inner: AttributeService, bindings: Mapping[ua.NodeId, TagBinding],
                 on_applied: Callable[[TagBinding, float], None] | None = None) -> None:
        super().__init__(inner._aspace)
        self._bindings = bindings
        self._on_applied = on_applied

    async def write(self, params: ua.WriteParameters, user: User = User(role=UserRole.Admin)) -> list[ua.StatusCode]:
        results: list[ua.StatusCode | None] = [None] * len(params.NodesToWrite)
        passthrough: list[int] = []
        for i, wv in enumerate(params.NodesToWrite):
            binding = self._bindings.get(wv.NodeId)
            if binding is None or wv.AttributeId != ua.AttributeIds.Value:
                passthrough.append(i)
                continue
            checked = check_write(binding, wv.Value)
            if isinstance(checked, ua.StatusCode):
                results[i] = checked
                continue
            ref = binding.reactor
            try:
                ref.plant.write(binding.signal.name, checked, reactor=ref.index)
            except OutOfRange:
                results[i] = ua.StatusCode(ua.StatusCodes.BadOutOfRange)
                continue
            except UnknownSignal:
                results[i] = ua.StatusCode(ua.StatusCodes.BadNotWritable)
                continue
            if self._on_applied is not None:
                self._on_applied(binding, checked)
            # store as Double whatever numeric type came in, so the node's type never changes
            wv = ua.WriteValue(NodeId=wv.NodeId, AttributeId=wv.AttributeId,
                               Value=ua.DataValue(ua.Variant(checked, ua.VariantType.Double)))
            params.NodesToWrite[i] = wv
            passthrough.append(i)
        if passthrough:
            sub = ua.WriteParameters(NodesToWrite=[params.NodesToWrite[i] for i in passthrough])
            for i, status in zip(passthrough, await super().write(sub, user=user), strict=True):
                results[i] = status
        return [r if r is not None else ua.StatusCode(ua.StatusCodes.BadInternalError) for r in results]
