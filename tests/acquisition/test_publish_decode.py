"""The fast PublishResponse decoder gives what asyncua's generic decoder (plus decode_datavalue) gives.

On responses of the real simulator, captured on the wire, and on synthetic responses encoded
with asyncua's own encoder: every variant type, statuses, missing and odd timestamps,
several notifications per response, notifications the fast path leaves to asyncua.
"""

from __future__ import annotations

import asyncio
import math
import struct
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from asyncua import Client, ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulators.opcua import ManualClock, SimulatorServer
from simulators.process.faults import Fault
from telemetry.acquisition import EndpointSpec, EndpointSupervisor, SampleBuffer, TagSpec
from telemetry.acquisition.publish_decode import (
    DataChangeColumns,
    FastDecodeError,
    columns_from_notification,
    decode_publish_response,
    install_fast_publish,
)
from telemetry.tags import STATUS_BAD_TYPE_MISMATCH, TagTable

from .conftest import SPEED, WAIT_S, endpoint, make_plant, tag_names

UTC = timezone.utc
T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def columns_wanted(subscription_id: int) -> bool:
    return True


def assert_same_columns(got: DataChangeColumns, want: DataChangeColumns) -> None:
    for name, a, b in zip(DataChangeColumns._fields, got, want):
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)  # NaN equals NaN here


def assert_same_response(fast: ua.PublishResponse, generic: ua.PublishResponse) -> int:
    """Fast equals generic, DataChangeNotifications compared as columns; returns the values compared."""
    assert fast.TypeId == generic.TypeId
    assert fast.ResponseHeader == generic.ResponseHeader
    f, g = fast.Parameters, generic.Parameters
    for name in ("SubscriptionId", "AvailableSequenceNumbers", "MoreNotifications", "Results", "DiagnosticInfos"):
        assert getattr(f, name) == getattr(g, name), name
    assert f.NotificationMessage.SequenceNumber == g.NotificationMessage.SequenceNumber
    assert f.NotificationMessage.PublishTime == g.NotificationMessage.PublishTime
    assert len(f.NotificationMessage.NotificationData) == len(g.NotificationMessage.NotificationData)
    values = 0
    for a, b in zip(f.NotificationMessage.NotificationData, g.NotificationMessage.NotificationData):
        if isinstance(b, ua.DataChangeNotification):
            assert isinstance(a, DataChangeColumns)
            assert_same_columns(a, columns_from_notification(b))
            values += len(a.handle)
        else:
            assert a == b
    return values


def both(data: bytes) -> tuple[ua.PublishResponse, ua.PublishResponse]:
    buf = Buffer(data)
    fast = decode_publish_response(buf, columns_wanted)
    return fast, struct_from_binary(ua.PublishResponse, buf)  # the fast decoder left buf unread


def publish_response(*notifications: Any, subscription_id: int = 7) -> bytes:
    return struct_to_binary(ua.PublishResponse(Parameters=ua.PublishResult(
        SubscriptionId=subscription_id, AvailableSequenceNumbers=[3, 4], MoreNotifications=False,
        NotificationMessage=ua.NotificationMessage(SequenceNumber=4, PublishTime=T0, NotificationData=list(notifications)),
        Results=[ua.StatusCode(0)],
    )))


def data_change(*values: ua.DataValue, first_handle: int = 0) -> ua.DataChangeNotification:
    return ua.DataChangeNotification(MonitoredItems=[
        ua.MonitoredItemNotification(ClientHandle=first_handle + i, Value=dv) for i, dv in enumerate(values)])


def response_with_data_change_body(body: bytes, length: int | None = None) -> bytes:
    """A PublishResponse with one DataChangeNotification of hand-made ``body`` bytes."""
    placeholder = data_change(ua.DataValue(ua.Variant(0.0, ua.VariantType.Double)))
    old = struct_to_binary(placeholder)
    data = bytearray(publish_response(placeholder))
    at = data.index(old)
    data[at - 4: at + len(old)] = struct.pack("<i", len(body) if length is None else length) + body
    return bytes(data)


def one_item_body(handle: int, datavalue: bytes) -> bytes:
    return struct.pack("<iI", 1, handle) + datavalue + struct.pack("<i", -1)  # -1: no DiagnosticInfos


# ---- responses of the real simulator ------------------------------------------------------------
class PublishCapture:
    """Keeps a copy of every PublishResponse body a real client receives (wraps its transport call)."""

    def __init__(self, client: Client) -> None:
        self.bodies: list[Buffer] = []
        self.session = session = client.uaclient.session
        inner = session._send_request

        async def send_request(request: Any, timeout: float | None = None,
                               message_type: ua.MessageType = ua.MessageType.SecureMessage) -> Buffer:
            data = await inner(request, timeout, message_type)
            if isinstance(request, ua.PublishRequest):
                self.bodies.append(data.copy())
            return data

        session._send_request = send_request  # type: ignore[method-assign]


async def test_real_responses_decode_as_asyncua_decodes_them_and_arrive_whole(clock: ManualClock) -> None:
    """Doubles of three reactors, a failed probe (Bad, no value), strings (batch id, phase)."""
    plant = make_plant(faults=[Fault("do_probe_failure", at_s=30.0, reactor=2)])
    names = tag_names(plant) + [f"R{k}.{s}" for k in (1, 2, 3) for s in ("batch_id", "phase", "process_time_s")]
    table = TagTable(names)
    samples = SampleBuffer()
    captures: list[PublishCapture] = []

    def client_factory(spec: EndpointSpec) -> Client:
        client = Client(spec.url, timeout=spec.request_timeout_s)
        captures.append(PublishCapture(client))
        return client

    async with SimulatorServer(plant, port=0, clock=clock, speed=SPEED) as srv:
        tags = tuple(TagSpec(table.index[n], node_id=f"ns=2;s={n}") for n in names)
        async with EndpointSupervisor(endpoint(srv.endpoints[0], tags), table, samples, client_factory=client_factory) as sup:
            await sup.wait_connected(WAIT_S)
            await asyncio.wait_for(samples.wait_total(len(names)), WAIT_S)
            for _ in range(3):  # past the fault at 30 s of process time
                n = samples.total
                await clock.advance(0.5)
                await asyncio.wait_for(samples.wait_total(n + 1), WAIT_S)
            stats = sup.stats
        got = samples.drain_columns()
    [capture] = captures
    assert "publish" in vars(capture.session)  # the session decodes with ours...
    assert stats.decode_fallbacks == 0  # ...which refused nothing
    want: list[DataChangeColumns] = []
    for body in capture.bodies:
        fast, generic = both(body.copy().read(len(body)))
        assert_same_response(fast, generic)
        for notification in generic.Parameters.NotificationMessage.NotificationData:
            if isinstance(notification, ua.DataChangeNotification):
                want.append(columns_from_notification(notification))
    # every value of every captured response is in the sample buffer, in order
    handles = np.concatenate([c.handle for c in want]).astype(np.intp)
    assert len(handles) == samples.total == stats.notifications
    np.testing.assert_array_equal(got.tag, handles)
    np.testing.assert_array_equal(got.value, np.concatenate([c.value for c in want]))
    np.testing.assert_array_equal(got.status, np.concatenate([c.status for c in want]).astype(np.int64))
    np.testing.assert_array_equal(got.source_time_s, np.concatenate([c.source_time_s for c in want]))
    # the response shapes this test is about did occur
    bad_no_value = (got.status == ua.StatusCodes.BadSensorFailure) & np.isnan(got.value)
    strings = np.isin(got.tag, [table.index[f"R{k}.batch_id"] for k in (1, 2, 3)])
    assert bad_no_value.any() and strings.any()
    assert (got.status[strings] == STATUS_BAD_TYPE_MISMATCH).all()
    assert np.isfinite(got.value[got.status == 0]).all()


async def test_a_refusing_decoder_leaves_the_response_to_asyncua(server: SimulatorServer) -> None:
    """The fall-back path, with asyncua's own (handler-style) subscription on top of it."""
    refusals: list[Exception] = []
    received: asyncio.Queue[float] = asyncio.Queue()

    def refuse(subscription_id: int) -> bool:
        raise FastDecodeError("not this one")

    class Handler:
        def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
            received.put_nowait(val)

    async with Client(server.endpoints[0], timeout=5) as client:
        install_fast_publish(client.uaclient.session, refuse, refusals.append)
        subscription = await client.create_subscription(50, Handler())
        await subscription.subscribe_data_change(client.get_node("ns=2;s=R1.do_sp_pct"))
        value = await asyncio.wait_for(received.get(), WAIT_S)
    assert math.isfinite(value)
    assert refusals and all(isinstance(e, FastDecodeError) for e in refusals)


async def test_responses_of_a_subscription_not_ours_stay_asyncua_objects(server: SimulatorServer) -> None:
    received: asyncio.Queue[float] = asyncio.Queue()
    fallbacks: list[Exception] = []

    class Handler:
        def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
            received.put_nowait(val)

    async with Client(server.endpoints[0], timeout=5) as client:
        install_fast_publish(client.uaclient.session, lambda subscription_id: False, fallbacks.append)
        subscription = await client.create_subscription(50, Handler())
        await subscription.subscribe_data_change(client.get_node("ns=2;s=R1.do_sp_pct"))
        value = await asyncio.wait_for(received.get(), WAIT_S)
    assert math.isfinite(value) and not fallbacks


# ---- synthetic responses, encoded by asyncua --------------------------------------------------
VARIANTS: dict[ua.VariantType, st.SearchStrategy[Any]] = {
    ua.VariantType.Double: st.floats(),
    ua.VariantType.Float: st.floats(width=32),
    ua.VariantType.Boolean: st.booleans(),
    ua.VariantType.SByte: st.integers(-(2**7), 2**7 - 1),
    ua.VariantType.Byte: st.integers(0, 2**8 - 1),
    ua.VariantType.Int16: st.integers(-(2**15), 2**15 - 1),
    ua.VariantType.UInt16: st.integers(0, 2**16 - 1),
    ua.VariantType.Int32: st.integers(-(2**31), 2**31 - 1),
    ua.VariantType.UInt32: st.integers(0, 2**32 - 1),
    ua.VariantType.Int64: st.integers(-(2**63), 2**63 - 1),
    ua.VariantType.UInt64: st.integers(0, 2**64 - 1),
    ua.VariantType.String: st.text(max_size=8) | st.none(),
    ua.VariantType.DateTime: st.datetimes(timezones=st.just(UTC)),
    ua.VariantType.ByteString: st.binary(max_size=8),
    ua.VariantType.Null: st.none(),
}
STATUSES = [None, 0, ua.StatusCodes.BadSensorFailure, ua.StatusCodes.UncertainLastUsableValue,
            ua.StatusCodes.BadNoCommunication, 0x480, 0x00A0_0480, 0x8000_0480, 0x4000_0400]
# around the edges: the FILETIME epoch, "no time" before 1900, the 9999 clamp, after 2^53 us
TIMES = st.one_of(
    st.none(),
    st.sampled_from([datetime(1601, 1, 1, tzinfo=UTC), datetime(1899, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                     datetime(1900, 1, 1, tzinfo=UTC), datetime(2300, 1, 1, tzinfo=UTC),
                     datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)]),
    st.datetimes(min_value=datetime(1601, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)),
    st.integers(-(10**7), 10**7).map(lambda us: T0 + timedelta(microseconds=us)),
)


@st.composite
def shapes(draw: st.DrawFn) -> dict[str, Any]:
    """What one kind of DataValue carries; items of one shape make runs of one layout."""
    server_time = draw(st.booleans())
    return dict(
        variant=draw(st.sampled_from(list(VARIANTS)) | st.just("array") | st.just("no value")),
        status=draw(st.booleans()), source_time=draw(st.booleans()), server_time=server_time,
        # asyncua writes SourcePicoseconds after the ServerTimestamp, the specification before
        # it (test_picoseconds_are_read_in_the_order_of_the_specification): only where the two agree
        source_ps=not server_time and draw(st.booleans()), server_ps=draw(st.booleans()),
    )


@st.composite
def datavalues(draw: st.DrawFn, shape: dict[str, Any]) -> ua.DataValue:
    variant = shape["variant"]
    if variant == "array":
        value = ua.Variant(draw(st.lists(st.floats(), max_size=3)), ua.VariantType.Double)
    elif variant == "no value":
        value = None
    else:
        value = ua.Variant(draw(VARIANTS[variant]), variant)
    dv = ua.DataValue(
        value,
        ua.StatusCode(draw(st.sampled_from(STATUSES[1:]))) if shape["status"] else None,
        SourceTimestamp=draw(TIMES) if shape["source_time"] else None,
        ServerTimestamp=draw(TIMES) if shape["server_time"] else None,
        SourcePicoseconds=draw(st.integers(0, 9999)) if shape["source_ps"] else None,
        ServerPicoseconds=draw(st.integers(0, 9999)) if shape["server_ps"] else None,
    )
    if value is None:
        dv.Value = None  # DataValue() makes a Null Variant of None; this leaves the value out
    return dv


@st.composite
def data_changes(draw: st.DrawFn) -> ua.DataChangeNotification:
    kinds = draw(st.lists(shapes(), min_size=1, max_size=3))
    picks = draw(st.lists(st.integers(0, len(kinds) - 1), max_size=60))
    items = [ua.MonitoredItemNotification(ClientHandle=draw(st.integers(0, 2**32 - 1)), Value=draw(datavalues(kinds[k])))
             for k in picks]
    diagnostics = draw(st.sampled_from([[], [ua.DiagnosticInfo(SymbolicId=3, AdditionalInfo="x")]]))
    return ua.DataChangeNotification(MonitoredItems=items, DiagnosticInfos=diagnostics)


OTHER_NOTIFICATIONS = st.one_of(
    st.sampled_from([0, ua.StatusCodes.BadTimeout, ua.StatusCodes.BadShutdown]).map(
        lambda code: ua.StatusChangeNotification(Status=ua.StatusCode(code))),
    st.lists(st.floats(allow_nan=False) | st.text(max_size=4), max_size=3).map(lambda fields: ua.EventNotificationList(
        Events=[ua.EventFieldList(ClientHandle=5, EventFields=[ua.Variant(f) for f in fields])])),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(notifications=st.lists(data_changes() | OTHER_NOTIFICATIONS, max_size=4), subscription_id=st.integers(1, 2**32 - 1),
       available=st.lists(st.integers(0, 2**32 - 1), max_size=3) | st.none(), more=st.booleans())
def test_synthetic_responses_decode_as_asyncua_decodes_them(
    notifications: list[Any], subscription_id: int, available: list[int] | None, more: bool
) -> None:
    data = struct_to_binary(ua.PublishResponse(Parameters=ua.PublishResult(
        SubscriptionId=subscription_id, AvailableSequenceNumbers=available, MoreNotifications=more,  # type: ignore[arg-type]
        NotificationMessage=ua.NotificationMessage(SequenceNumber=subscription_id // 3, PublishTime=T0, NotificationData=notifications),
        Results=[ua.StatusCode(ua.StatusCodes.BadSequenceNumberUnknown)] if more else [],
    )))
    assert_same_response(*both(data))


def test_long_runs_and_short_runs_of_layouts_mixed() -> None:
    """Runs from 1 to 700 items of three layouts: both ways of decoding and their hand-overs."""
    rng = np.random.default_rng(5)
    makers = [
        lambda k: ua.DataValue(ua.Variant(k * 0.25, ua.VariantType.Double), ua.StatusCode(0), SourceTimestamp=T0 + timedelta(seconds=k), ServerTimestamp=T0),
        lambda k: ua.DataValue(ua.Variant(None), ua.StatusCode(ua.StatusCodes.BadSensorFailure), SourceTimestamp=T0, ServerTimestamp=T0),
        lambda k: ua.DataValue(ua.Variant(k, ua.VariantType.Int32), SourceTimestamp=T0),
        lambda k: ua.DataValue(ua.Variant(f"s{k}", ua.VariantType.String), ServerTimestamp=T0),
    ]
    values = []
    for length in [700, 3, 1, 1, 20, 15, 16, 17, 1, 2, 200, 64, 65, 1, 129, *rng.integers(1, 40, 60)]:
        maker = makers[int(rng.integers(len(makers)))]
        values += [maker(len(values) + k) for k in range(length)]
    fast, generic = both(publish_response(data_change(*values)))
    assert assert_same_response(fast, generic) == len(values)


def test_values_and_times_as_decode_datavalue_gives_them() -> None:
    values = [
        ua.DataValue(ua.Variant(1.5, ua.VariantType.Double), SourceTimestamp=T0, ServerTimestamp=T0 + timedelta(seconds=1)),
        ua.DataValue(ua.Variant(True, ua.VariantType.Boolean), ServerTimestamp=T0),  # no source time: server's
        ua.DataValue(ua.Variant(-7, ua.VariantType.Int16), SourceTimestamp=datetime(1601, 1, 1, tzinfo=UTC)),  # none usable
        ua.DataValue(ua.Variant(math.inf, ua.VariantType.Double), SourceTimestamp=T0),
        ua.DataValue(ua.Variant("on", ua.VariantType.String), SourceTimestamp=T0),
        ua.DataValue(ua.Variant(None), ua.StatusCode(ua.StatusCodes.BadSensorFailure), SourceTimestamp=T0),
        ua.DataValue(ua.Variant(2.0, ua.VariantType.Float), ua.StatusCode(0x480), SourceTimestamp=T0),  # overflow
    ]
    fast, _ = both(publish_response(data_change(*values, first_handle=10)))
    [columns] = fast.Parameters.NotificationMessage.NotificationData
    np.testing.assert_array_equal(columns.handle, np.arange(10, 17))
    np.testing.assert_array_equal(columns.value, [1.5, 1.0, -7.0, np.nan, np.nan, np.nan, 2.0])
    bad_type, bad_sensor = STATUS_BAD_TYPE_MISMATCH, ua.StatusCodes.BadSensorFailure
    np.testing.assert_array_equal(columns.status, [0, 0, 0, bad_type, bad_type, bad_sensor, 0x480])
    t0 = T0.timestamp()
    np.testing.assert_array_equal(columns.source_time_s, [t0, t0, np.nan, t0, t0, t0, t0])
    np.testing.assert_array_equal(columns.overflow, [False] * 6 + [True])


def test_picoseconds_are_read_in_the_order_of_the_specification() -> None:
    """Part 6: SourceTimestamp, SourcePicoseconds, ServerTimestamp, ServerPicoseconds.

    asyncua 2.1 reads both picoseconds after both timestamps, so for this DataValue its
    generic decoder takes the ServerTimestamp from the wrong bytes.
    """
    server_time = datetime(2024, 5, 6, 7, 8, 9, 101112, tzinfo=UTC)
    ticks = (server_time - datetime(1601, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 10
    no_time = 0  # 1601: counts as none, so the ServerTimestamp is the time
    datavalue = struct.pack("<BBdqHqH", 0x3D, ua.VariantType.Double.value, 2.5, no_time, 1234, ticks, 5678)
    fast, generic = both(response_with_data_change_body(one_item_body(42, datavalue)))
    [columns] = fast.Parameters.NotificationMessage.NotificationData
    assert columns.handle.tolist() == [42] and columns.value.tolist() == [2.5]
    assert columns.source_time_s.tolist() == [server_time.timestamp()]
    [asyncua_item] = generic.Parameters.NotificationMessage.NotificationData[0].MonitoredItems
    assert asyncua_item.Value.ServerTimestamp != server_time


def test_a_boolean_is_true_for_any_non_zero_byte() -> None:
    boolean = ua.VariantType.Boolean.value
    runs = b"".join(struct.pack("<IBBB", k, 0x01, boolean, 2 * k) for k in range(40))  # 40 in a row: one NumPy run
    singles = struct.pack("<IBBB", 40, 0x01, boolean, 7) + struct.pack("<IBBd", 41, 0x01, 11, 0.5)
    body = struct.pack("<i", 42) + runs + singles + struct.pack("<i", -1)
    fast, generic = both(response_with_data_change_body(body))
    assert_same_response(fast, generic)
    assert fast.Parameters.NotificationMessage.NotificationData[0].value.tolist() == [0.0] + [1.0] * 40 + [0.5]


def test_a_data_change_of_inconsistent_length_is_refused() -> None:
    """One stray byte inside a DataChangeNotification's body: asyncua ignores it, we refuse."""
    body = one_item_body(3, struct.pack("<BBd", 0x01, ua.VariantType.Double.value, 1.0))
    data = response_with_data_change_body(body + b"\0")
    with pytest.raises(FastDecodeError):
        decode_publish_response(Buffer(data), columns_wanted)
    generic = struct_from_binary(ua.PublishResponse, Buffer(data))
    assert generic.Parameters.NotificationMessage.NotificationData[0].MonitoredItems[0].Value.Value.Value == 1.0
    # a count of items that cannot fit is refused before anything is allocated for it
    with pytest.raises(FastDecodeError):
        decode_publish_response(Buffer(response_with_data_change_body(struct.pack("<i", 10**9) + body[4:])), columns_wanted)


def test_keep_alive_and_not_our_subscription() -> None:
    fast, generic = both(publish_response())
    assert assert_same_response(fast, generic) == 0 and not fast.Parameters.NotificationMessage.NotificationData
    data = publish_response(data_change(ua.DataValue(ua.Variant(1.0, ua.VariantType.Double))))
    mine = decode_publish_response(Buffer(data), lambda subscription_id: subscription_id != 7)
    assert mine == struct_from_binary(ua.PublishResponse, Buffer(data))
