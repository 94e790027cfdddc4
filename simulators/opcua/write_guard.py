"""Validating client writes: a refused write returns a Bad status and changes nothing.

asyncua's value setters cannot return a status code per node (their return value is
ignored, and raising fails the whole Write request), so the server's AttributeService
is wrapped: each WriteValue that targets a plant signal is checked here, applied to the
plant, and only then stored; every other WriteValue passes through untouched. A batch
write with one bad value therefore gets one Bad result and N-1 Good ones, as OPC UA
Part 4 5.10.4 intends.

Two entries lead to the same checks, in the same order, with the same results:
:meth:`GuardedAttributeService.write` takes asyncua's decoded ``ua.WriteParameters``, and
:meth:`GuardedAttributeService.write_scalars` takes the scalar writes that
:mod:`simulators.opcua.fastpath` decodes straight from the wire (a control scan's batch of
1000 outputs), skipping the per-value objects asyncua would build and applying the plant
writes of one signal to all reactors in one vectorized call.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
from asyncua import ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.address_space import AttributeService, AttributeValue, NodeData
from asyncua.ua.ua_binary import nodeid_to_binary

from simulators.opcua.address_space import TagBinding, store_value
from simulators.plant import OutOfRange, Plant, UnknownSignal

_log = logging.getLogger(__name__)

_NUMERIC_VARIANTS = frozenset({
    ua.VariantType.Double, ua.VariantType.Float,
    ua.VariantType.SByte, ua.VariantType.Byte, ua.VariantType.Int16, ua.VariantType.UInt16,
    ua.VariantType.Int32, ua.VariantType.UInt32, ua.VariantType.Int64, ua.VariantType.UInt64,
})
_VALUE = ua.AttributeIds.Value
_CURRENT_WRITE = ua.AccessLevel.CurrentWrite.mask
_ACCESS_LEVEL, _USER_ACCESS_LEVEL = ua.AttributeIds.AccessLevel, ua.AttributeIds.UserAccessLevel
_NOT_GOOD = 0xC0000000  # StatusCode severity bits: not StatusCode.is_good()
_DOUBLE = ua.VariantType.Double
_GOOD = ua.StatusCode(ua.StatusCodes.Good)  # shared by stored values: asyncua never mutates a StatusCode
_DOUBLE_VALUE = ua.DataValue(ua.Variant(0.0, ua.VariantType.Double))  # what a type check needs of a stored value


def _stored(value: float, server_time: datetime | None) -> ua.DataValue:
    """The DataValue a signal node stores for an accepted write (as Double, whatever came in)."""
    return ua.DataValue(ua.Variant(value, _DOUBLE), StatusCode=_GOOD, ServerTimestamp=server_time)


def _attribute(node: NodeData, attr: ua.AttributeIds) -> ua.DataValue:
    """``AddressSpace.read_attribute_value`` of a node already looked up."""
    attval = node.attributes.get(attr)
    if attval is None:
        return ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadAttributeIdInvalid))
    if attval.value_callback:
        return attval.value_callback(node.nodeid, attr)
    if attval.value is None:
        return ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadAttributeIdInvalid))
    return attval.value


def _write_denied(node: NodeData | None) -> bool:
    """asyncua's refusal of a non-admin's Value write (``AttributeService.write``): the node's
    AccessLevel and UserAccessLevel must be readable and both grant CurrentWrite."""
    if node is None:  # read_attribute_value answers BadNodeIdUnknown
        return True
    attrs = node.attributes
    a, u = attrs.get(_ACCESS_LEVEL), attrs.get(_USER_ACCESS_LEVEL)
    if a is None or u is None or a.value_callback or u.value_callback or a.value is None or u.value is None:
        al, ual = _attribute(node, _ACCESS_LEVEL), _attribute(node, _USER_ACCESS_LEVEL)  # as asyncua reads them
    else:  # the stored values, read as read_attribute_value would return them, without two calls
        al, ual = a.value, u.value
    status = al.StatusCode
    return (
        status is None or al.Value is None or ual.Value is None or bool(status.value & _NOT_GOOD)
        or not al.Value.Value & _CURRENT_WRITE or not ual.Value.Value & _CURRENT_WRITE
    )


def check_value(binding: TagBinding, status: int | None, vtype: ua.VariantType, is_array: bool,
                value: object) -> float | ua.StatusCode:
    """The float to apply, or the Bad status that refuses the write.

    ``status`` is the written DataValue's StatusCode (None when absent), ``vtype``,
    ``is_array`` and ``value`` its Variant's. Any scalar numeric variant is accepted
    (clients often send Float or Int32 for a Double); strings, booleans, arrays,
    non-finite values and values outside ``[lo, hi]`` are refused. Writing a
    Bad/Uncertain StatusCode is not supported; client timestamps are ignored (the plant
    stamps its own values).
    """
    refused = refusal_before_value(binding, status, vtype, is_array)
    if refused:
        return ua.StatusCode(refused)
    f = float(value)  # type: ignore[arg-type]
    if not math.isfinite(f) or not binding.signal.lo <= f <= binding.signal.hi:
        return ua.StatusCode(ua.StatusCodes.BadOutOfRange)
    return f


def refusal_before_value(binding: TagBinding, status: int | None, vtype: ua.VariantType, is_array: bool) -> int:
    """The Bad status code :func:`check_value` gives whatever the value, else 0 (Good)."""
    if not binding.writable:
        return ua.StatusCodes.BadNotWritable
    if status is not None and status & _NOT_GOOD:
        return ua.StatusCodes.BadWriteNotSupported
    if vtype not in _NUMERIC_VARIANTS or is_array:
        return ua.StatusCodes.BadTypeMismatch
    return 0


def check_write(binding: TagBinding, data: ua.DataValue) -> float | ua.StatusCode:
    """:func:`check_value` of a decoded DataValue."""
    variant = data.Value
    status = None if data.StatusCode is None else data.StatusCode.value
    if variant is None:
        return check_value(binding, status, ua.VariantType.Null, False, None)
    return check_value(binding, status, variant.VariantType, bool(variant.is_array), variant.Value)


@dataclass(slots=True)
class ScalarWrite:
    """One decoded write of a scalar to the Value of a signal node (see :mod:`fastpath`)."""

    binding: TagBinding
    status: int | None  # the DataValue's StatusCode, None when absent
    vtype: ua.VariantType
    value: float | int


class WritePlan:
    """What a batch of scalar writes to distinct signal nodes keeps from one control scan to the
    next: the nodes, their variant types and written statuses, everything but the values.

    Built once per request layout (see :mod:`fastpath`, which caches them), it holds what
    :meth:`GuardedAttributeService.write_plan` would otherwise work out per write: the
    refusals that do not depend on the value, each node's range, address-space node and Value
    attribute, and the plant writes grouped by signal. The address-space nodes of signals live
    as long as the server, so holding them is safe.
    """

    __slots__ = ("bindings", "static_code", "lo", "hi", "nodes", "attvals", "groups")

    def __init__(self, service: GuardedAttributeService, writes: Sequence[ScalarWrite]) -> None:
        self.bindings = [w.binding for w in writes]
        self.static_code = np.array([refusal_before_value(w.binding, w.status, w.vtype, False) for w in writes],
                                    dtype=np.uint32)
        self.lo = np.array([b.signal.lo for b in self.bindings], dtype=np.float64)
        self.hi = np.array([b.signal.hi for b in self.bindings], dtype=np.float64)
        nodes = service._aspace._nodes
        self.nodes: list[NodeData | None] = [nodes.get(b.nodeid) for b in self.bindings]
        self.attvals: list[AttributeValue | None] = [
            None if node is None else node.attributes.get(_VALUE) for node in self.nodes]
        by_signal: dict[tuple[int, str], list[int]] = {}
        for k, b in enumerate(self.bindings):
            by_signal.setdefault((id(b.reactor.plant), b.signal.name), []).append(k)
        #: per signal: (plant, name, positions in the batch, reactor rows, covers every reactor once)
        self.groups: list[tuple[Plant, str, np.ndarray, np.ndarray, bool]] = []
        for (_, name), positions in by_signal.items():
            plant = self.bindings[positions[0]].reactor.plant
            rows = [self.bindings[k].reactor.index for k in positions]
            full = len(positions) == plant.n_reactors and len(set(rows)) == len(rows)
            self.groups.append((plant, name, np.array(positions, dtype=np.intp), np.array(rows, dtype=np.intp), full))

    def __len__(self) -> int:
        return len(self.bindings)


class GuardedAttributeService(AttributeService):
    """asyncua AttributeService whose writes to plant signals go through the plant.

    Parameters
    ----------
    inner : AttributeService
        The server's own service (its address space is used).
    bindings : mapping of NodeId to TagBinding
        The signal nodes.
    on_applied : callable, optional
        Called with each binding and value the plant accepted, before the node is stored.
    """

    def __init__(self, inner: AttributeService, bindings: Mapping[ua.NodeId, TagBinding],
                 on_applied: Callable[[TagBinding, float], None] | None = None) -> None:
        super().__init__(inner._aspace)
        self._bindings = bindings
        self._on_applied = on_applied
        #: the fast path's request layouts by body length (``fastpath.WriteLayout``)
        self.write_layouts: dict[int, Any] = {}
        #: signal nodes by their binary NodeId encoding: the fast path looks nodes up without decoding them
        self.binding_of_wire: dict[bytes, TagBinding] = {nodeid_to_binary(nid): b for nid, b in bindings.items()}

    def _access_denied(self, nodeid: ua.NodeId, user: User) -> bool:
        """asyncua's access check of a Value write (AttributeService.write), made before the plant
        is touched: a write the server would refuse must not change the process either."""
        return user.role != UserRole.Admin and _write_denied(self._aspace._nodes.get(nodeid))

    def _apply(self, binding: TagBinding, value: float) -> ua.StatusCode | None:
        """Write one value to the plant; the Bad status of a refusal, else None."""
        ref = binding.reactor
        try:
            ref.plant.write(binding.signal.name, value, reactor=ref.index)
        except OutOfRange:
            return ua.StatusCode(ua.StatusCodes.BadOutOfRange)
        except UnknownSignal:
            return ua.StatusCode(ua.StatusCodes.BadNotWritable)
        return None

    async def write(self, params: ua.WriteParameters, user: User = User(role=UserRole.Admin)) -> list[ua.StatusCode]:
        results: list[ua.StatusCode | None] = [None] * len(params.NodesToWrite)
        passthrough: list[int] = []
        for i, wv in enumerate(params.NodesToWrite):
            binding = self._bindings.get(wv.NodeId)
            if binding is None or wv.AttributeId != _VALUE:
                passthrough.append(i)
                continue
            checked = check_write(binding, wv.Value)
            if isinstance(checked, ua.StatusCode):
                results[i] = checked
                continue
            if self._access_denied(wv.NodeId, user):
                results[i] = ua.StatusCode(ua.StatusCodes.BadUserAccessDenied)
                continue
            refused = self._apply(binding, checked)
            if refused is not None:
                results[i] = refused
                continue
            if self._on_applied is not None:
                self._on_applied(binding, checked)
            # store as Double whatever numeric type came in, so the node's type never changes
            wv = ua.WriteValue(NodeId=wv.NodeId, AttributeId=wv.AttributeId,
                               Value=ua.DataValue(ua.Variant(checked, _DOUBLE)))
            params.NodesToWrite[i] = wv
            passthrough.append(i)
        if passthrough:
            sub = ua.WriteParameters(NodesToWrite=[params.NodesToWrite[i] for i in passthrough])
            for i, status in zip(passthrough, await super().write(sub, user=user), strict=True):
                results[i] = status
        return [r if r is not None else ua.StatusCode(ua.StatusCodes.BadInternalError) for r in results]

    async def write_scalars(self, writes: Sequence[ScalarWrite], user: User,
                            answer: Callable[[list[int]], None] | None = None) -> list[int]:
        """Apply decoded scalar writes to distinct signal nodes; one status code per write.

        :meth:`write_plan` of a plan made for these writes (the fast path keeps its plans).
        """
        values = np.array([float(w.value) for w in writes], dtype=np.float64)
        return await self.write_plan(WritePlan(self, writes), values, user, answer)

    async def write_plan(self, plan: WritePlan, values: np.ndarray, user: User,
                         answer: Callable[[list[int]], None] | None = None) -> list[int]:
        """Write ``values[k]`` as planned by ``plan``; one status code per write.

        The checks, results, stored values and data-change notifications of :meth:`write`
        followed by asyncua's ``AttributeService.write``, in request order, without their
        per-value objects: range checks are vectorized, only the access check and the node
        type check look at each node, the plant writes of one signal that cover every reactor
        of its plant go in one vectorized call, and the stored DataValues share one server
        timestamp and Good status.

        ``answer`` is called with the status codes as soon as they are final: once the plant
        has taken the values and every node is known to store its value plainly (no value
        setter, the node's type), which is before the ~1000 stores and data-change
        notifications of a control scan's batch. The caller answers the client from it, so a
        controller's Write returns when the plant has its outputs. Nothing in between can
        observe the old node values: the stores run on without yielding to the event loop, and
        the client's next request on this connection is served after this call returns.
        Otherwise (an unusual node) it is called after the stores, with the same codes this
        call returns.
        """
        aspace = self._aspace
        codes = plan.static_code.copy()
        in_range = np.isfinite(values) & (plan.lo <= values) & (values <= plan.hi)
        codes[(codes == 0) & ~in_range] = ua.StatusCodes.BadOutOfRange
        candidates: list[int] = np.flatnonzero(codes == 0).tolist()
        nodes, attvals = plan.nodes, plan.attvals
        if user.role != UserRole.Admin:
            accepted = []
            for k in candidates:
                if _write_denied(nodes[k]):
                    codes[k] = ua.StatusCodes.BadUserAccessDenied
                else:
                    accepted.append(k)
        else:
            accepted = candidates
        refusals = self._apply_plan(plan, accepted, values)
        for k, refused in refusals:
            codes[k] = refused
        if refusals:  # rare: one set, not a NumPy element read per write
            refused_at = {k for k, _ in refusals}
            applied = [k for k in accepted if k not in refused_at]
        else:
            applied = accepted
        now = datetime.now(timezone.utc) if aspace.force_server_timestamp else None
        stores: list[tuple[int, AttributeValue | None]] = []
        for k in applied:
            # AddressSpace.write_attribute_value, minus the lookup of the node; the nodes are
            # distinct, so each type check sees the value the node has before this request
            node, attval = nodes[k], attvals[k]
            if node is None or attval is None or attval.value_setter is not None:
                stores.append((k, None))  # asyncua's own write decides its status
                continue
            stored = attval.value
            if stored is not None and stored.Value is not None and stored.Value.VariantType is _DOUBLE:
                stores.append((k, attval))  # a Double over a Double: what the check below would say, quicker
            elif (not aspace._is_expected_variant_type(_DOUBLE_VALUE, attval, node)
                  and not aspace._is_expected_variant_type(_stored(float(values[k]), now), attval, node)):
                codes[k] = ua.StatusCodes.BadTypeMismatch  # (the second call logs the refusal)
            else:
                stores.append((k, attval))
        result: list[int] = codes.tolist()
        if answer is not None and all(attval is not None for _, attval in stores):
            answer(result)
            answer = None
        bindings = plan.bindings
        floats: list[float] = values.tolist()
        if self._on_applied is not None:
            for k in applied:
                self._on_applied(bindings[k], floats[k])
        for k, attval in stores:
            if attval is None:
                result[k] = (await aspace.write_attribute_value(bindings[k].nodeid, _VALUE, _stored(floats[k], now))).value
            else:
                await store_value(attval, _stored(floats[k], now))
        if answer is not None:
            answer(result)
        return result

    def _apply_plan(self, plan: WritePlan, accepted: list[int], values: np.ndarray) -> list[tuple[int, int]]:
        """Write the accepted values to the plants; (position, Bad status) of each refusal.

        A signal written for every reactor of its plant is one ``plant.write(name, array)``
        instead of one call per reactor (~15 us each); a refusal of that call changes nothing,
        and the values are then written one by one to find which.
        """
        mask = np.zeros(len(plan), dtype=bool)
        mask[accepted] = True
        refused: list[tuple[int, int]] = []
        for plant, name, positions, rows, full in plan.groups:
            take = mask[positions]
            if full and take.all():
                by_row = np.empty(plant.n_reactors)
                by_row[rows] = values[positions]
                try:
                    plant.write(name, by_row)
                    continue
                except (OutOfRange, UnknownSignal):
                    _log.debug("batched write of %s refused; writing one by one", name)
            for k in positions[take].tolist():
                status = self._apply(plan.bindings[k], float(values[k]))
                if status is not None:
                    refused.append((k, status.value))
        return refused
