"""Fast decoding of OPC UA PublishResponses into columns, for the subscriptions of our client.

asyncua decodes a PublishResponse with its generic, reflective decoder: one dataclass per
MonitoredItemNotification, DataValue, Variant, StatusCode and datetime, 7-30 us per value
depending on the machine, so a response of ~1300 values blocks the event loop for 10-40 ms.
Here the bulk of a response, the MonitoredItems of its DataChangeNotifications, is read
straight from the bytes into NumPy columns (:class:`DataChangeColumns`): consecutive
items of the same layout (DataValue encoding mask and scalar Variant type, e.g. Double
with status and both timestamps) are one ``np.frombuffer`` of a structured dtype; where
layouts alternate, items are located one by one and gathered by layout
(``bench/acquisition_decode.py``: ~0.1 us a value, 0.5-0.7 us when mixed).
Everything else, the small parts around them and any Variant that is not a scalar
number, is decoded by asyncua's own decoders; anything unexpected raises, and the caller
then lets asyncua's generic decoder have the whole response (:func:`install_fast_publish`),
so behaviour is never worse than asyncua's.

DataValue field order: OPC UA Part 6 (5.2.2.17) encodes SourceTimestamp,
SourcePicoseconds, ServerTimestamp, ServerPicoseconds; asyncua 2.1 reads (and writes)
SourceTimestamp, ServerTimestamp, SourcePicoseconds, ServerPicoseconds. They differ only
when a DataValue carries both SourcePicoseconds and a ServerTimestamp; this module
follows the specification. Picoseconds are skipped: a POSIX float has no room for them.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from asyncua import ua
from asyncua.client.ua_session import UaSession
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import (
    Primitives,
    extensionobject_from_binary,
    from_binary,
    nodeid_from_binary,
    struct_from_binary,
    unpack_uatype_array,
    variant_from_binary,
)
from asyncua.ua.uaerrors import UaStructParsingError

from telemetry.acquisition.samples import decode_datavalue
from telemetry.tags import STATUS_BAD_TYPE_MISMATCH, as_finite_float

_DATA_CHANGE_ID = ua.ObjectIds.DataChangeNotification_Encoding_DefaultBinary  # 811
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")

# DataValue encoding mask bits (Part 6, 5.2.2.17)
_VALUE, _STATUS, _SOURCE_TIME, _SERVER_TIME, _SOURCE_PICO, _SERVER_PICO = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_BOOLEAN = 1
# StatusCode InfoType "DataValue" (bit 10) with the Overflow bit (bit 7), as in samples.py
_INFO_TYPE_DATAVALUE, _OVERFLOW = 0x400, 0x80

# OPC UA DateTime: 100 ns ticks since 1601-01-01 UTC. asyncua keeps whole microseconds and
# clamps to 9999-12-31 23:59:59; times before 1900 mean "no time" (samples.posix_seconds).
_TICKS_PER_US = 10
_EPOCH_US = 11_644_473_600_000_000  # 1601 -> 1970
_TICKS_1900 = 94_354_848_000_000_000
_MAX_TICKS = ua.uatypes.MAX_OPC_FILETIME
_EXACT_INT = 2**53  # below this, int64 -> float64 is exact, so x / 1e6 rounds once, like Python's int / int


class DataChangeColumns(NamedTuple):
    """The MonitoredItems of one DataChangeNotification, as columns in notification order.

    What :func:`~telemetry.acquisition.samples.decode_datavalue` and
    :meth:`TagTable.update <telemetry.tags.TagTable.update>` make of each item, in bulk:
    ``value`` is NaN, and ``status`` Bad (its own when already Bad, else BadTypeMismatch),
    wherever the value is not a finite real number (strings, arrays, no value, NaN, Inf);
    ``source_time_s`` is the SourceTimestamp, else the ServerTimestamp, in POSIX seconds,
    and NaN where neither was usable (the receiver fills in its receive time).
    """

    handle: npt.NDArray[np.uint32]  # the MonitoredItem's ClientHandle
    value: npt.NDArray[np.float64]
    status: npt.NDArray[np.uint32]
    source_time_s: npt.NDArray[np.float64]
    overflow: npt.NDArray[np.bool_]  # the server's queue for this item dropped values before this one


class FastDecodeError(ValueError):
    """The response has a shape the fast decoder does not take: asyncua's generic decoder decides."""


def decode_publish_response(data: Buffer, wants_columns: Callable[[int], bool]) -> ua.PublishResponse:
    """Decode a PublishResponse; DataChangeNotifications become :class:`DataChangeColumns`.

    Parameters
    ----------
    data : asyncua Buffer
        The response body as asyncua's transport hands it over (not consumed).
    wants_columns : callable
        Called with the SubscriptionId; False leaves the notifications asyncua objects
        (for a subscription that is not one of ours).

    Returns
    -------
    ua.PublishResponse
        Equal to asyncua's ``struct_from_binary(ua.PublishResponse, data)``, except that
        ``NotificationData`` holds a :class:`DataChangeColumns` in place of each
        DataChangeNotification.

    Raises
    ------
    Exception
        :class:`FastDecodeError`, or whatever a malformed response makes asyncua's
        decoders or ``struct`` raise.
    """
    raw = data.copy().read(len(data))
    buf = Buffer(raw)
    # the small parts are decoded by asyncua's decoders for the very types the generic
    # PublishResponse decoder uses, so they come out identical
    type_id = nodeid_from_binary(buf)
    header = struct_from_binary(ua.ResponseHeader, buf)
    subscription_id = Primitives.UInt32.unpack(buf)
    available = unpack_uatype_array(ua.VariantType.UInt32, buf)
    more = Primitives.Boolean.unpack(buf)
    sequence_number = Primitives.UInt32.unpack(buf)
    publish_time = Primitives.DateTime.unpack(buf)
    columns = wants_columns(subscription_id)
    notifications: list[Any] = []
    for _ in range(Primitives.Int32.unpack(buf)):
        body = _data_change_body(raw, buf.cur_pos) if columns else None
        if body is None:
            notifications.append(extensionobject_from_binary(buf))
        else:
            start, end = body
            notifications.append(_decode_data_change(raw, start, end))
            buf.skip(end - buf.cur_pos)
    message = ua.NotificationMessage(SequenceNumber=sequence_number, PublishTime=publish_time, NotificationData=notifications)
    result = ua.PublishResult(
        SubscriptionId=subscription_id,
        AvailableSequenceNumbers=available,  # type: ignore[arg-type]
        MoreNotifications=more,
        NotificationMessage=message,
        Results=from_binary(list[ua.StatusCode], buf),
        DiagnosticInfos=from_binary(list[ua.DiagnosticInfo], buf),
    )
    return ua.PublishResponse(TypeId=type_id, ResponseHeader=header, Parameters=result)  # type: ignore[arg-type]


def install_fast_publish(
    session: UaSession, wants_columns: Callable[[int], bool], on_fallback: Callable[[Exception], None]
) -> None:
    """Make ``session`` decode its PublishResponses with :func:`decode_publish_response`.

    An instance patch of ``UaSession.publish`` (this session only; asyncua's
    ``_publish_loop`` is unchanged and calls it). The request is built as asyncua builds
    it. A response the fast decoder refuses is reported to ``on_fallback`` and decoded by
    asyncua's generic decoder, whose failure is handled as asyncua handles it.
    """

    async def publish(acks: list[ua.SubscriptionAcknowledgement]) -> ua.PublishResponse:
        request = ua.PublishRequest()
        request.Parameters.SubscriptionAcknowledgements = acks if acks else []
        data = await session._send_request(request, timeout=0)
        try:
            return decode_publish_response(data, wants_columns)
        except Exception as exc:  # noqa: BLE001 - any refusal: the generic decoder has the last word
            on_fallback(exc)
        try:
            return struct_from_binary(ua.PublishResponse, data)
        except Exception as ex:  # as asyncua's UaSession.publish: its publish loop skips the response
            session.logger.exception("Error parsing notification from server")
            raise UaStructParsingError from ex

    session.publish = publish  # type: ignore[method-assign]


def columns_from_datavalues(handles: Sequence[int], datavalues: Sequence[ua.DataValue | None]) -> DataChangeColumns:
    """:class:`DataChangeColumns` of asyncua DataValues, one :func:`decode_datavalue` each.

    For what asyncua decoded itself (a fallback, a batched read); also the reference the
    fast decoder is tested against.
    """
    n = len(handles)
    value = np.empty(n)
    status = np.empty(n, dtype=np.uint32)
    source_time_s = np.empty(n)
    overflow = np.empty(n, dtype=bool)
    for i, dv in enumerate(datavalues):
        v, t, st, overflow[i] = decode_datavalue(dv, math.nan)
        f = as_finite_float(v)
        value[i] = math.nan if f is None else f
        status[i] = st if f is not None or st & 0x80000000 else STATUS_BAD_TYPE_MISMATCH
        source_time_s[i] = t
    return DataChangeColumns(np.array(handles, dtype=np.uint32), value, status, source_time_s, overflow)


def columns_from_notification(notification: ua.DataChangeNotification) -> DataChangeColumns:
    """:func:`columns_from_datavalues` of a DataChangeNotification asyncua decoded."""
    items = notification.MonitoredItems or []
    return columns_from_datavalues([item.ClientHandle for item in items], [item.Value for item in items])


def _data_change_body(raw: bytes, pos: int) -> tuple[int, int] | None:
    """(start, end) of the body of the ExtensionObject at ``pos`` if it is a binary
    DataChangeNotification, else None (asyncua then decodes that object)."""
    encoding = raw[pos]
    if encoding == 1:  # four-byte NodeId: namespace byte, UInt16 identifier
        namespace, identifier, pos = raw[pos + 1], _U16.unpack_from(raw, pos + 2)[0], pos + 4
    elif encoding == 2:  # numeric NodeId: UInt16 namespace, UInt32 identifier
        namespace, identifier, pos = _U16.unpack_from(raw, pos + 1)[0], _U32.unpack_from(raw, pos + 3)[0], pos + 7
    else:
        return None
    if namespace != 0 or identifier != _DATA_CHANGE_ID or raw[pos] != 1:  # 1: a binary body follows
        return None
    length = _I32.unpack_from(raw, pos + 1)[0]
    start = pos + 5
    if length < 4 or start + length > len(raw):  # asyncua's oddities (-1: "rest of message") stay its own
        return None
    return start, start + length


class _Layout(NamedTuple):
    """A fixed-size MonitoredItemNotification: one DataValue encoding mask, one scalar Variant type."""

    mask: int
    variant: int  # Variant encoding byte; -1: the DataValue has no value
    size: int
    dtype: np.dtype[Any]  # the item as a packed record


# NumPy type of a scalar Variant's body by its encoding byte ("": Null, no body)
_SCALAR_VARIANTS = {0: "", 1: "u1", 2: "i1", 3: "u1", 4: "<i2", 5: "<u2", 6: "<i4", 7: "<u4",
                    8: "<i8", 9: "<u8", 10: "<f4", 11: "<f8"}
# the optional DataValue fields after the Variant, in Part 6 order (bits 6 and 7 are
# reserved and ignored, as asyncua ignores them)
_DATAVALUE_TAIL = ((_STATUS, "status", "<u4"), (_SOURCE_TIME, "source", "<i8"), (_SOURCE_PICO, "source_ps", "<u2"),
                   (_SERVER_TIME, "server", "<i8"), (_SERVER_PICO, "server_ps", "<u2"))


@functools.cache
def _layout(mask: int, variant: int) -> _Layout | None:
    """The layout of items with this mask and Variant byte; None if their size varies."""
    fields = [("handle", "<u4"), ("mask", "u1")]
    if mask & _VALUE:
        code = _SCALAR_VARIANTS.get(variant)
        if code is None:  # strings, arrays, structures...: asyncua decodes that Variant
            return None
        fields.append(("variant", "u1"))
        if code:
            fields.append(("value", code))
    fields += [(name, code) for bit, name, code in _DATAVALUE_TAIL if mask & bit]
    dtype = np.dtype(fields)
    return _Layout(mask, variant, dtype.itemsize, dtype)


_LAYOUTS: dict[bytes, _Layout | None] = {}  # by an item's mask byte and the byte after it


def _layout_at(raw: bytes, pos: int) -> _Layout | None:
    """The layout of the item at ``pos`` (a dict lookup: this runs once per item)."""
    key = raw[pos + 4 : pos + 6]
    try:
        return _LAYOUTS[key]
    except KeyError:
        mask = key[0]
        layout = _LAYOUTS[key] = _layout(mask, key[1] if mask & _VALUE else -1)
        return layout


_SHORT_RUN = 16  # below this many items of one layout, a NumPy run costs more than item by item
_MIN_WINDOW = 64


class _Items:
    """Columns of the items of one DataChangeNotification, filled run by run or item by item."""

    def __init__(self, raw: bytes, n: int) -> None:
        self.raw = raw
        self.handle = np.empty(n, dtype=np.uint32)
        self.value = np.empty(n)
        self.status = np.zeros(n, dtype=np.uint32)  # an absent StatusCode is Good
        self.source = np.full(n, -1, dtype=np.int64)  # absent times: negative ticks, i.e. "no time"
        self.server = np.full(n, -1, dtype=np.int64)
        self.tail = {"status": self.status, "source": self.source, "server": self.server}  # the DataValue fields kept
        #: items found one by one, by layout: (their indices, their positions in raw)
        self.singles: dict[_Layout, tuple[list[int], list[int]]] = {}

    def store(self, layout: _Layout, items: npt.NDArray[Any], where: slice | npt.NDArray[np.intp]) -> None:
        """Store records of one layout at ``where`` in the columns."""
        names = layout.dtype.names or ()
        self.handle[where] = items["handle"]
        if "value" not in names:
            self.value[where] = np.nan
        elif layout.variant == _BOOLEAN:
            self.value[where] = items["value"] != 0  # any non-zero byte is True, as for asyncua
        else:
            self.value[where] = items["value"]
        for name, column in self.tail.items():
            if name in names:
                column[where] = items[name]

    def columns(self) -> DataChangeColumns:
        if self.singles:
            # gather the bytes of the items of each layout into records: one fancy index per layout
            octets = np.frombuffer(self.raw, dtype=np.uint8)
            for layout, (index, positions) in self.singles.items():
                rows = octets[np.array(positions, dtype=np.intp)[:, None] + np.arange(layout.size)]
                self.store(layout, rows.view(layout.dtype)[:, 0], np.array(index, dtype=np.intp))
        return _finish(self.handle, self.value, self.status, self.source, self.server)


def _decode_data_change(raw: bytes, pos: int, end: int) -> DataChangeColumns:
    """Decode the DataChangeNotification body ``raw[pos:end]``.

    Items come in runs of one layout (a server sends most values alike: Double, status,
    both timestamps); a run is one ``np.frombuffer``. Where runs are short (values of
    several types or statuses interleaved), items are located one by one, then gathered
    by layout.
    """
    n = max(_I32.unpack_from(raw, pos)[0], 0)  # -1: a null array
    pos += 4
    if n > (end - pos) // 5:  # an item is at least a handle and a mask: a corrupt count
        raise FastDecodeError(f"{n} monitored items cannot fit in {end - pos} bytes")
    out = _Items(raw, n)
    i = 0
    window = n  # how far a run is looked for: twice the last run, so short runs cost little
    by_runs = True
    while i < n:
        if not by_runs:
            i, pos = _locate_singles(raw, pos, end, i, n, out)
            by_runs = True
            continue
        layout = _layout_at(raw, pos)
        if layout is None:
            pos = _decode_item(raw, pos, end, i, out)
            i += 1
            continue
        count = min(n - i, window, (end - pos) // layout.size)
        if count < 1:
            raise FastDecodeError("monitored item runs past the end of its notification")
        items = np.frombuffer(raw, dtype=layout.dtype, count=count, offset=pos)
        same = items["mask"] == layout.mask
        if layout.variant >= 0:
            same &= items["variant"] == layout.variant
        # a run ends at the first item of another layout, which starts exactly there
        run = count if same.all() else int(same.argmin())
        out.store(layout, items[:run], slice(i, i + run))
        i += run
        pos += run * layout.size
        window = max(_MIN_WINDOW, 2 * run)
        by_runs = run >= _SHORT_RUN
    count = _I32.unpack_from(raw, pos)[0]  # DiagnosticInfos: not used, but must be skipped right
    pos += 4
    if count > 0:
        buf = Buffer(raw, pos, end - pos)
        for _ in range(count):
            struct_from_binary(ua.DiagnosticInfo, buf)
        pos = buf.cur_pos
    if pos != end:
        raise FastDecodeError(f"DataChangeNotification decoded to {pos - end:+d} bytes off its length")
    return out.columns()


def _locate_singles(raw: bytes, pos: int, end: int, i: int, n: int, out: _Items) -> tuple[int, int]:
    """Note items one by one until ``_SHORT_RUN`` in a row share a layout; return (i, pos) after."""
    singles, layout_at = out.singles, _layout_at
    previous, streak = None, 0
    while i < n and streak < _SHORT_RUN:
        layout = layout_at(raw, pos)
        if layout is None:
            pos = _decode_item(raw, pos, end, i, out)
            previous = None
        else:
            if layout is not previous:
                group = singles.setdefault(layout, ([], []))
                index_append, position_append = group[0].append, group[1].append
                previous, streak = layout, 0
            index_append(i)
            position_append(pos)
            pos += layout.size
            streak += 1
        i += 1
    if pos > end:
        raise FastDecodeError("monitored item runs past the end of its notification")
    return i, pos


def _decode_item(raw: bytes, pos: int, end: int, i: int, out: _Items) -> int:
    """Decode one item whose Variant asyncua decodes; return the position after it."""
    out.handle[i] = _U32.unpack_from(raw, pos)[0]
    mask = raw[pos + 4]
    pos += 5
    v = None
    if mask & _VALUE:
        buf = Buffer(raw, pos, end - pos)
        v = as_finite_float(variant_from_binary(buf).Value)
        pos = buf.cur_pos
    out.value[i] = math.nan if v is None else v
    for bit, name, code in _DATAVALUE_TAIL:
        if mask & bit:
            field = np.frombuffer(raw, dtype=code, count=1, offset=pos)[0]
            if name in out.tail:
                out.tail[name][i] = field
            pos += field.itemsize
    return pos


def _finish(handle: npt.NDArray[np.uint32], value: npt.NDArray[np.float64], status: npt.NDArray[np.uint32],
            source: npt.NDArray[np.int64], server: npt.NDArray[np.int64]) -> DataChangeColumns:
    overflow = ((status & _INFO_TYPE_DATAVALUE) != 0) & ((status & _OVERFLOW) != 0)
    not_finite = ~np.isfinite(value)
    if not_finite.any():
        value[not_finite] = np.nan
        status[not_finite & ((status & 0x80000000) == 0)] = STATUS_BAD_TYPE_MISMATCH
    source_time_s = _posix_seconds(source)
    missing = np.isnan(source_time_s)
    if missing.any():
        source_time_s[missing] = _posix_seconds(server[missing])
    return DataChangeColumns(handle, value, status, source_time_s, overflow)


def _posix_seconds(ticks: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """POSIX seconds of OPC UA DateTimes exactly as ``posix_seconds`` of asyncua's datetime; NaN for none."""
    out = np.full(len(ticks), np.nan)
    usable = ticks >= _TICKS_1900
    us = np.minimum(ticks[usable], _MAX_TICKS) // _TICKS_PER_US - _EPOCH_US
    seconds = us / 1e6
    inexact = us >= _EXACT_INT  # after the year 2255: Python's exact int / int instead
    if inexact.any():
        seconds[inexact] = [x / 1_000_000 for x in us[inexact].tolist()]
    out[usable] = seconds
    return out


__all__ = [
    "DataChangeColumns",
    "FastDecodeError",
    "columns_from_datavalues",
    "columns_from_notification",
    "decode_publish_response",
    "install_fast_publish",
]
