"""The simulator's fast paths through asyncua's server: batched Value writes and publish responses.

asyncua's server decodes and encodes messages with a generic, reflective codec that builds and
walks an object per field. Two messages dominate the simulator's CPU, and get their own code
here, in the simulator only:

Write requests
    A control scan writes 1000 outputs in one WriteRequest; asyncua spends ~10 ms decoding it
    into NodeId, WriteValue, DataValue and Variant objects before our write guard sees it. A
    WriteRequest whose every WriteValue is a scalar number written to the Value of a distinct
    signal node (the shape ``telemetry.acquisition.actuation`` sends) is decoded here straight
    from the bytes into :class:`~simulators.opcua.write_guard.ScalarWrite` records (1-2 ms) and
    applied by :meth:`GuardedAttributeService.write_scalars` with the checks, status codes,
    stored values and data-change notifications of the generic path; the WriteResponse is
    encoded directly and sent as soon as the plant has the values, before the nodes store
    them and notify their subscribers (half of a 1000-output write's time on the server). A
    batch seen before (the same nodes, types and flags: a control scan's next write) is
    recognised from its bytes (:class:`WriteLayout`) and reuses its :class:`WritePlan`: its
    values are gathered in one NumPy call and range-checked vectorised, ~1.5 ms to the answer
    instead of ~7. Anything else (another shape, a duplicate node, a node that is not a
    signal, a request the session may not make, PreWrite/PostWrite callbacks) goes through
    asyncua's ``UaProcessor.process_message`` untouched, so the fast path only takes requests
    whose outcome it reproduces.

Publish responses
    A subscriber to every signal receives ~25k data changes/s (``fermentry simulate --tick-ms
    50``, 100 reactors); asyncua encodes each MonitoredItemNotification through ~20 nested
    serializer calls. :func:`encode_publish_response` writes the DataChangeNotifications'
    DataValues directly (scalars, status codes, timestamps, each distinct timestamp converted
    once) and leaves every other part to asyncua's encoder, byte for byte the same output.

Both are patches of ``UaProcessor`` methods, process-wide but inert in every server not passed
to :func:`enable` (the simulator's are, unless ``SimulatorServer(fast_paths=False)``); asyncua's
clients are not touched. Like :mod:`simulators.opcua.deadband` they follow asyncua 2.x internals
(``UaProcessor._connection``/``_transport``, ``CallbackService._listeners``,
``typeid_by_extension_objects``); the tests run both paths against the installed asyncua and
compare bytes, results, plant state, node values and notifications.
"""

from __future__ import annotations

import logging
import struct
import time
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TypeVar

import numpy as np
from asyncua import ua
from asyncua.common.callback import CallbackType
from asyncua.common.utils import Buffer
from asyncua.crypto.permission_rules import User
from asyncua.server.internal_server import InternalServer
from asyncua.server.uaprocessor import PublishRequestData, UaProcessor
from asyncua.ua.ua_binary import (
    extensionobject_to_binary, get_string_encoding, list_to_binary, nodeid_to_binary, struct_from_binary,
    struct_to_binary, variant_to_binary,
)

from simulators.opcua.address_space import TagBinding
from simulators.opcua.write_guard import GuardedAttributeService, ScalarWrite, WritePlan

_log = logging.getLogger(__name__)
_R = TypeVar("_R", ua.WriteResponse, ua.PublishResponse)

_ENABLED: weakref.WeakSet[InternalServer] = weakref.WeakSet()


def enable(iserver: InternalServer) -> None:
    """Serve this server's writes and publish responses through the fast paths."""
    _ENABLED.add(iserver)


# ------------------------------------------------------------------------------------- write
_WRITE_REQUEST = ua.NodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary)
#: the binary TypeId that opens every WriteRequest body
WRITE_REQUEST_TYPEID = nodeid_to_binary(ua.FourByteNodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary))

_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_ATTR_INDEX_MASK = struct.Struct("<IiB")  # AttributeId, IndexRange length, DataValue encoding mask
_VALUE = ua.AttributeIds.Value
_STRING_NODEID = 0x03  # NodeId encoding byte of a string NodeId (no namespace URI / server index flags)
#: Variant encoding byte of a scalar number -> how to read its value (array and dimension flags unset)
_SCALARS: dict[int, tuple[struct.Struct, ua.VariantType]] = {
    vt.value: (struct.Struct(fmt), vt) for vt, fmt in (
        (ua.VariantType.Double, "<d"), (ua.VariantType.Float, "<f"),
        (ua.VariantType.SByte, "<b"), (ua.VariantType.Byte, "<B"),
        (ua.VariantType.Int16, "<h"), (ua.VariantType.UInt16, "<H"),
        (ua.VariantType.Int32, "<i"), (ua.VariantType.UInt32, "<I"),
        (ua.VariantType.Int64, "<q"), (ua.VariantType.UInt64, "<Q"),
    )
}
# DataValue mask bits: 0x01 Value, 0x02 StatusCode, then source/server timestamps (8 bytes each)
# and picoseconds (2 bytes each), which the guard ignores: only their total length matters here
_TIMESTAMP_BYTES = [(8 if m & 0x04 else 0) + (8 if m & 0x08 else 0) + (2 if m & 0x10 else 0) + (2 if m & 0x20 else 0)
                    for m in range(64)]


def decode_scalar_writes(data: bytes, pos: int, binding_of_wire: Mapping[bytes, TagBinding],
                         offsets: list[int] | None = None) -> list[ScalarWrite] | None:
    """Decode the WriteParameters at ``data[pos:]`` (to its end) if the fast path can take them.

    Returns None unless every WriteValue writes a scalar number (with or without a StatusCode
    and timestamps, no IndexRange) to the Value attribute of a distinct node of
    ``binding_of_wire`` (signal nodes by their binary NodeId) and the parameters end the body.
    ``offsets``, when given, receives where each value's bytes start in ``data``.
    """
    try:
        (count,) = _I32.unpack_from(data, pos)
        pos += 4
        if count <= 0:
            return None
        writes: list[ScalarWrite] = []
        seen: set[int] = set()
        for _ in range(count):
            if data[pos] != _STRING_NODEID:
                return None
            end = pos + 7 + _I32.unpack_from(data, pos + 3)[0]
            binding = binding_of_wire.get(data[pos:end])
            if binding is None or id(binding) in seen:
                return None
            seen.add(id(binding))
            attribute, index_range, mask = _ATTR_INDEX_MASK.unpack_from(data, end)
            # IndexRange: null (-1) or empty (0) only; mask: a Value, no unknown bits
            if attribute != _VALUE or index_range not in (-1, 0) or mask & 0xC0 or not mask & 0x01:
                return None
            scalar = _SCALARS.get(data[end + 9])
            if scalar is None:
                return None
            reader, vtype = scalar
            pos = end + 10
            if offsets is not None:
                offsets.append(pos)
            (value,) = reader.unpack_from(data, pos)
            pos += reader.size
            status = None
            if mask & 0x02:
                (status,) = _U32.unpack_from(data, pos)
                pos += 4
            pos += _TIMESTAMP_BYTES[mask]
            writes.append(ScalarWrite(binding, status, vtype, value))
    except (struct.error, IndexError):
        return None  # truncated: asyncua's decoder reports it
    return writes if pos == len(data) else None


def encode_write_response(response: ua.WriteResponse, codes: list[int] | None = None) -> bytes:
    """``struct_to_binary(response)`` for a WriteResponse without diagnostics.

    ``codes``, when given, are the Results' status codes as ints (the fast path has them as
    such): the response's own Results are then not read.
    """
    if response.DiagnosticInfos or (codes is None and response.Results is None):
        return struct_to_binary(response)
    if codes is None:
        codes = [s.value for s in response.Results]
    return b"".join((
        nodeid_to_binary(response.TypeId), struct_to_binary(response.ResponseHeader),
        _I32.pack(len(codes)), struct.pack(f"<{len(codes)}I", *codes),
        b"\xff\xff\xff\xff" if response.DiagnosticInfos is None else b"\x00\x00\x00\x00",
    ))


_original_process_message = UaProcessor.process_message
_WRITE_CALLBACKS = (CallbackType.PreWrite, CallbackType.PostWrite)


async def _process_message(self: UaProcessor, seqhdr: ua.SequenceHeader, body: Buffer) -> bool:
    """asyncua's ``UaProcessor.process_message``, with the fast path for scalar WriteRequests."""
    if (self.iserver in _ENABLED and self.session is not None
            and type(self.iserver.attribute_service) is GuardedAttributeService
            and len(body) >= 4 and body.copy(4).read(4) == WRITE_REQUEST_TYPEID):
        if await _fast_write(self, self.iserver.attribute_service, seqhdr, body):
            return True
    return await _original_process_message(self, seqhdr, body)


async def _fast_write(self: UaProcessor, service: GuardedAttributeService, seqhdr: ua.SequenceHeader,
                      body: Buffer) -> bool:
    """Serve a WriteRequest as asyncua's Write branch would; False (nothing done) to leave it to asyncua."""
    session = self.session
    assert session is not None
    buf = body.copy()  # the original stays unread for asyncua if we decline
    buf.skip(len(WRITE_REQUEST_TYPEID))
    requesthdr = struct_from_binary(ua.RequestHeader, buf)
    permissions = self._connection.security_policy.permissions
    try:
        allowed = permissions is None or permissions.check_validity(session.user, _WRITE_REQUEST, buf) is not False
    except Exception:  # asyncua's path raises it again and answers with the fault
        allowed = False
    listeners = self.iserver.callback_service._listeners
    if not allowed or any(cb in listeners for cb in _WRITE_CALLBACKS):
        return False
    found = _plan(service, bytes(buf))
    if found is None:
        return False
    plan, values = found
    # from here on: UaProcessor._process_message's bookkeeping and its Write branch
    self.session_last_activity = time.monotonic()
    session.touch()
    answered = False

    def answer(codes: list[int]) -> None:
        nonlocal answered
        answered = True
        _send(self, requesthdr.RequestHandle, seqhdr, ua.WriteResponse(),
              lambda response: encode_write_response(response, codes))

    try:
        await service.write_plan(plan, values, session.user if session.user is not None else User(), answer)
    except Exception:
        _log.exception("Error while processing message")
        if not answered:  # after the answer, a failing store is only logged (as asyncua logs a callback's)
            fault = ua.ServiceFault()
            fault.ResponseHeader.ServiceResult = ua.StatusCode(ua.StatusCodes.BadInternalError)
            self.send_response(requesthdr.RequestHandle, seqhdr, fault)
    return True


class WriteLayout:
    """The bytes of a WriteParameters the fast path took, its values blanked out.

    A control scan writes the same nodes with the same types and flags every period; only the
    values change. A request whose bytes match a layout everywhere outside its values is the
    same batch of writes: its values are read with one vectorized gather and it reuses the
    layout's :class:`WritePlan`, with no per-write decoding. Layouts are made for batches of
    Double values (what the service's Actuator sends for Double nodes).
    """

    __slots__ = ("plan", "_template", "_fixed", "_value_bytes")

    def __init__(self, plan: WritePlan, data: bytes, offsets: list[int]) -> None:
        self.plan = plan
        self._template = np.frombuffer(data, dtype=np.uint8).copy()
        self._value_bytes = np.asarray(offsets, dtype=np.intp)[:, None] + np.arange(8)  # (writes, 8)
        self._fixed = np.ones(len(self._template), dtype=bool)
        self._fixed[self._value_bytes.ravel()] = False

    def values(self, data: bytes) -> np.ndarray | None:
        """The Double values of ``data`` if it matches this layout outside them, else None."""
        raw = np.frombuffer(data, dtype=np.uint8)
        if len(raw) != len(self._template) or ((raw != self._template) & self._fixed).any():
            return None
        return raw[self._value_bytes].view("<f8").ravel()


_MAX_LAYOUTS = 16  # per server: a few controllers, each writing its own batch


def _plan(service: GuardedAttributeService, params: bytes) -> tuple[WritePlan, np.ndarray] | None:
    """The plan and values of the WriteParameters ``params``, or None to leave them to asyncua."""
    layouts = service.write_layouts
    layout = layouts.get(len(params))
    if layout is not None:
        values = layout.values(params)
        if values is not None:
            return layout.plan, values
    offsets: list[int] = []
    writes = decode_scalar_writes(params, 0, service.binding_of_wire, offsets)
    if writes is None:
        return None
    plan = WritePlan(service, writes)
    if all(w.vtype is _DOUBLE for w in writes):
        if len(layouts) >= _MAX_LAYOUTS:
            layouts.clear()
        layouts[len(params)] = WriteLayout(plan, params, offsets)
    return plan, np.array([float(w.value) for w in writes], dtype=np.float64)


def _send(self: UaProcessor, requesthandle: int, seqhdr: ua.SequenceHeader, response: _R,
          encode: Callable[[_R], bytes]) -> None:
    """``UaProcessor.send_response`` with our encoder instead of ``struct_to_binary``."""
    response.ResponseHeader.RequestHandle = requesthandle
    data = self._connection.message_to_binary(
        encode(response), message_type=ua.MessageType.SecureMessage, request_id=seqhdr.RequestId)
    self._transport.write(data)


# ----------------------------------------------------------------------------------- publish
_DATA_VALUE = ua.DataValue
_DATA_CHANGE = ua.DataChangeNotification
_DATA_CHANGE_TYPEID = nodeid_to_binary(ua.typeid_by_extension_objects[ua.DataChangeNotification]) + b"\x01"
_DOUBLE = ua.VariantType.Double
_STRING = ua.VariantType.String
_NULL_VARIANT = b"\x00"
_DOUBLE_BYTE = bytes((ua.VariantType.Double.value,))
_STRING_BYTE = bytes((ua.VariantType.String.value,))
_F64 = struct.Struct("<d")
_I64 = struct.Struct("<q")
_U32_PAIR = struct.Struct("<II")


class _Times:
    """Encoded DateTimes of one response: a tick's values share a few timestamps."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[datetime, bytes] = {}

    def __call__(self, dt: datetime) -> bytes:
        b = self._cache.get(dt)
        if b is None:
            b = self._cache[dt] = _I64.pack(ua.datetime_to_win_epoch(dt))
        return b


def _variant(v: ua.Variant) -> bytes:
    """``variant_to_binary``, directly for scalar Double, String and Null."""
    vtype = v.VariantType
    if not v.is_array and v.Dimensions is None:
        value = v.Value
        if vtype is _DOUBLE and type(value) is float:
            return _DOUBLE_BYTE + _F64.pack(value)
        if vtype is _STRING and type(value) is str:
            raw = value.encode(get_string_encoding(), errors="surrogateescape")
            return _STRING_BYTE + _I32.pack(len(raw)) + raw
        if vtype is ua.VariantType.Null and value is None:
            return _NULL_VARIANT
    return variant_to_binary(v)


def _data_value(dv: ua.DataValue, times: _Times) -> bytes:
    """``struct_to_binary(dv)`` of a DataValue; picoseconds and subclasses go to asyncua."""
    if dv.__class__ is not _DATA_VALUE or dv.SourcePicoseconds is not None or dv.ServerPicoseconds is not None:
        return struct_to_binary(dv)
    mask = 0
    parts = [b""]
    if dv.Value is not None:
        mask = 0x01
        parts.append(_variant(dv.Value))
    if dv.StatusCode is not None:
        mask |= 0x02
        parts.append(_U32.pack(dv.StatusCode.value))
    if dv.SourceTimestamp is not None:
        mask |= 0x04
        parts.append(times(dv.SourceTimestamp))
    if dv.ServerTimestamp is not None:
        mask |= 0x08
        parts.append(times(dv.ServerTimestamp))
    parts[0] = bytes((mask,))
    return b"".join(parts)


def _notification(obj: object, times: _Times) -> bytes:
    """One element of NotificationData (an ExtensionObject), DataChangeNotifications directly."""
    items = getattr(obj, "MonitoredItems", None)
    if obj.__class__ is not _DATA_CHANGE or items is None or obj.DiagnosticInfos:  # type: ignore[attr-defined]
        return extensionobject_to_binary(obj)
    parts = [b"", _I32.pack(len(items))]
    append = parts.append
    u32 = _U32.pack
    for item in items:
        append(u32(item.ClientHandle))
        append(_data_value(item.Value, times))
    append(b"\xff\xff\xff\xff" if obj.DiagnosticInfos is None else b"\x00\x00\x00\x00")  # type: ignore[attr-defined]
    body = b"".join(parts)
    return _DATA_CHANGE_TYPEID + _I32.pack(len(body)) + body


def encode_publish_response(response: ua.PublishResponse) -> bytes:
    """``struct_to_binary(response)`` of a PublishResponse, byte for byte, in a fraction of the time."""
    result = response.Parameters
    message = result.NotificationMessage
    times = _Times()
    data = message.NotificationData
    return b"".join((
        nodeid_to_binary(response.TypeId),
        struct_to_binary(response.ResponseHeader),
        _U32.pack(result.SubscriptionId),
        list_to_binary(ua.Counter, result.AvailableSequenceNumbers),
        b"\x01" if result.MoreNotifications else b"\x00",
        _U32.pack(message.SequenceNumber),
        _I64.pack(ua.datetime_to_win_epoch(message.PublishTime)),
        b"\xff\xff\xff\xff" if data is None else _I32.pack(len(data)),
        *(_notification(obj, times) for obj in data or ()),
        list_to_binary(ua.StatusCode, result.Results),
        list_to_binary(ua.DiagnosticInfo, result.DiagnosticInfos),
    ))


_original_forward_publish_response = UaProcessor.forward_publish_response


async def _forward_publish_response(self: UaProcessor, result: ua.PublishResult, requestdata: PublishRequestData) -> None:
    """asyncua's ``UaProcessor.forward_publish_response`` with :func:`encode_publish_response`."""
    if self.iserver not in _ENABLED:
        await _original_forward_publish_response(self, result, requestdata)
        return
    response = ua.PublishResponse()
    response.Parameters = result
    result.Results = requestdata.results
    _send(self, requestdata.requesthdr.RequestHandle, requestdata.seqhdr, response, encode_publish_response)


def install() -> None:
    """Idempotent: route the requests and publish responses of :func:`enable`d servers through here."""
    UaProcessor.process_message = _process_message  # type: ignore[method-assign]
    UaProcessor.forward_publish_response = _forward_publish_response  # type: ignore[method-assign]
