"""The simulator's fast paths (``simulators.opcua.fastpath``) are invisible on the wire.

Codec tests compare our decoder and encoders with asyncua's own on generated messages; loopback
tests send the same requests to a server with the fast paths and one without (``fast_paths=False``,
asyncua's generic codec and write path) and compare everything a client or the process can see:
status codes, plant state, node values and the data-change notifications of a subscriber.
"""

from __future__ import annotations

import asyncio
import gc
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest
import pytest_asyncio
from asyncua import Client, ua
from asyncua.crypto.permission_rules import User
from asyncua.ua.ua_binary import nodeid_to_binary, struct_to_binary
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.opcua import ManualClock, SimulatorServer, fastpath
from simulators.opcua.address_space import ReactorRef, TagBinding, signal_nodeid
from simulators.opcua.write_guard import GuardedAttributeService, ScalarWrite
from tests.simulators.conftest import SPEED, make_ecoli

WAIT_S = 10.0  # bound on every awaited event; tests finish far sooner

# ------------------------------------------------------------------------------- write decoding
_PLANT = make_ecoli(2)
_BINDINGS = [TagBinding(signal_nodeid(f"R{r + 1}", s.name), ReactorRef(f"R{r + 1}", _PLANT, r), s)
             for r in range(2) for s in _PLANT.signals]
_WIRE = {nodeid_to_binary(b.nodeid): b for b in _BINDINGS}
_NUMBERS = {  # variant type -> values it can carry
    ua.VariantType.Double: st.floats(), ua.VariantType.Float: st.floats(width=32),
    ua.VariantType.SByte: st.integers(-128, 127), ua.VariantType.Byte: st.integers(0, 255),
    ua.VariantType.Int16: st.integers(-(2**15), 2**15 - 1), ua.VariantType.UInt16: st.integers(0, 2**16 - 1),
    ua.VariantType.Int32: st.integers(-(2**31), 2**31 - 1), ua.VariantType.UInt32: st.integers(0, 2**32 - 1),
    ua.VariantType.Int64: st.integers(-(2**63), 2**63 - 1), ua.VariantType.UInt64: st.integers(0, 2**64 - 1),
}
_times = st.none() | st.datetimes(min_value=datetime(1601, 1, 2), max_value=datetime(9999, 1, 1),
                                  timezones=st.just(timezone.utc))
_picos = st.none() | st.integers(0, 9999)
_status = st.none() | st.sampled_from([0, ua.StatusCodes.GoodClamped, ua.StatusCodes.UncertainInitialValue,
                                       ua.StatusCodes.BadSensorFailure])


@st.composite
def scalar_writes(draw: st.DrawFn) -> tuple[ua.WriteValue, ScalarWrite]:
    """A WriteValue of the shape the fast path takes, and what it must decode to."""
    binding = draw(st.sampled_from(_BINDINGS))
    vtype = draw(st.sampled_from(sorted(_NUMBERS, key=lambda v: v.value)))
    value = draw(_NUMBERS[vtype])
    status = draw(_status)
    dv = ua.DataValue(ua.Variant(value, vtype), StatusCode=None if status is None else ua.StatusCode(status),
                      SourceTimestamp=draw(_times), ServerTimestamp=draw(_times),
                      SourcePicoseconds=draw(_picos), ServerPicoseconds=draw(_picos))
    wv = ua.WriteValue(NodeId=binding.nodeid, AttributeId=ua.AttributeIds.Value, Value=dv,
                       IndexRange=draw(st.sampled_from([None, ""])))
    return wv, ScalarWrite(binding, status, vtype, value)


def _decode(params: ua.WriteParameters) -> list[ScalarWrite] | None:
    return fastpath.decode_scalar_writes(struct_to_binary(params), 0, _WIRE)


def _same(a: ScalarWrite, b: ScalarWrite) -> bool:
    nan = isinstance(a.value, float) and math.isnan(a.value)
    return (a.binding is b.binding and a.status == b.status and a.vtype == b.vtype
            and (nan and math.isnan(b.value) or a.value == b.value))


@settings(max_examples=300, deadline=None)
@given(st.lists(scalar_writes(), min_size=1, max_size=20))
def test_scalar_writes_decode_to_what_asyncua_decodes(writes: list[tuple[ua.WriteValue, ScalarWrite]]) -> None:
    params = ua.WriteParameters(NodesToWrite=[wv for wv, _ in writes])
    decoded = _decode(params)
    if len({id(w.binding) for _, w in writes}) < len(writes):
        assert decoded is None  # a node written twice: asyncua's path keeps the order semantics
    else:
        assert decoded is not None and all(_same(a, b) for a, (_, b) in zip(decoded, writes, strict=True))


def _write_value(**overrides: Any) -> ua.WriteValue:
    fields: dict[str, Any] = dict(NodeId=signal_nodeid("R1", "feed_rate_l_per_h"), AttributeId=ua.AttributeIds.Value,
                                  Value=ua.DataValue(ua.Variant(0.5, ua.VariantType.Double)))
    fields.update(overrides)
    return ua.WriteValue(**fields)


@pytest.mark.parametrize("odd", [
    _write_value(NodeId=ua.NodeId("Simulation.speed", 2)),  # not a signal
    _write_value(NodeId=ua.NodeId(2253, 0)),  # numeric NodeId
    _write_value(AttributeId=ua.AttributeIds.DisplayName),
    _write_value(IndexRange="0:1"),
    _write_value(Value=ua.DataValue(ua.Variant(True, ua.VariantType.Boolean))),
    _write_value(Value=ua.DataValue(ua.Variant("0.5", ua.VariantType.String))),
    _write_value(Value=ua.DataValue(ua.Variant([0.5, 0.6], ua.VariantType.Double))),
    _write_value(Value=ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadSensorFailure))),  # no value
], ids=["not-a-signal", "numeric-nodeid", "attribute", "index-range", "boolean", "string", "array", "no-value"])
def test_other_shapes_are_left_to_asyncua(odd: ua.WriteValue) -> None:
    assert _decode(ua.WriteParameters(NodesToWrite=[_write_value(NodeId=signal_nodeid("R2", "ph_sp")), odd])) is None


def test_malformed_bodies_are_left_to_asyncua() -> None:
    body = struct_to_binary(ua.WriteParameters(NodesToWrite=[_write_value()]))
    assert fastpath.decode_scalar_writes(body, 0, _WIRE) is not None
    for broken in (body[:-3], body + b"\x00", body[:4], b"\x00\x00\x00\x00", b"\xff\xff\xff\xff"):
        assert fastpath.decode_scalar_writes(broken, 0, _WIRE) is None


# ------------------------------------------------------------------------------ response encoding
@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([0, ua.StatusCodes.BadOutOfRange, ua.StatusCodes.BadTypeMismatch,
                                 ua.StatusCodes.BadUserAccessDenied]), max_size=50))
def test_write_response_bytes_are_asyncuas(codes: list[int]) -> None:
    response = ua.WriteResponse(Results=[ua.StatusCode(c) for c in codes])
    response.ResponseHeader.RequestHandle = 7
    assert fastpath.encode_write_response(response) == struct_to_binary(response)
    bare = ua.WriteResponse()  # what the fast path answers with: the codes passed as ints
    bare.ResponseHeader = response.ResponseHeader
    assert fastpath.encode_write_response(bare, codes) == struct_to_binary(response)


_variants = st.one_of(
    st.floats().map(lambda v: ua.Variant(v, ua.VariantType.Double)),
    st.integers(-(2**31), 2**31 - 1).map(lambda v: ua.Variant(v, ua.VariantType.Double)),  # an int as Double
    st.text(max_size=20).map(lambda v: ua.Variant(v, ua.VariantType.String)),  # surrogates too
    st.none().map(lambda _: ua.Variant(None, ua.VariantType.Null)),
    st.integers(-(2**31), 2**31 - 1).map(lambda v: ua.Variant(v, ua.VariantType.Int32)),
    st.booleans().map(lambda v: ua.Variant(v, ua.VariantType.Boolean)),
    st.lists(st.floats(), max_size=3).map(lambda v: ua.Variant(v, ua.VariantType.Double)),
)
_all_times = st.none() | st.datetimes(timezones=st.none() | st.just(timezone.utc))


@st.composite
def data_values(draw: st.DrawFn) -> ua.DataValue:
    status = draw(st.none() | st.sampled_from([0, ua.StatusCodes.BadSensorFailure, ua.StatusCodes.BadWaitingForInitialData]))
    dv = ua.DataValue(draw(_variants), StatusCode=None if status is None else ua.StatusCode(status),
                      SourceTimestamp=draw(_all_times), ServerTimestamp=draw(_all_times),
                      SourcePicoseconds=draw(_picos), ServerPicoseconds=draw(_picos))
    if draw(st.booleans()):
        dv.Value = None  # a DataValue without a value
    return dv


_notifications = st.one_of(
    st.builds(lambda items: ua.DataChangeNotification(MonitoredItems=items),
              st.lists(st.builds(ua.MonitoredItemNotification, ClientHandle=st.integers(0, 2**32 - 1),
                                 Value=data_values()), max_size=15)),
    st.just(ua.DataChangeNotification(MonitoredItems=[], DiagnosticInfos=None)),
    st.just(ua.StatusChangeNotification(Status=ua.StatusCode(ua.StatusCodes.BadTimeout))),
    st.just(ua.EventNotificationList(Events=[ua.EventFieldList(ClientHandle=3, EventFields=[ua.Variant(1.5)])])),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_notifications, max_size=3), st.lists(st.integers(0, 2**32 - 1), max_size=4), st.booleans(),
       _all_times.filter(lambda t: t is not None))
def test_publish_response_bytes_are_asyncuas(notifications: list[object], available: list[int], more: bool,
                                             publish_time: datetime) -> None:
    response = ua.PublishResponse()
    response.ResponseHeader.RequestHandle = 99
    result = response.Parameters
    result.SubscriptionId, result.AvailableSequenceNumbers, result.MoreNotifications = 5, available, more
    result.NotificationMessage.SequenceNumber = 11
    result.NotificationMessage.PublishTime = publish_time
    result.NotificationMessage.NotificationData = notifications
    result.Results = [ua.StatusCode(0)]
    assert fastpath.encode_publish_response(response) == struct_to_binary(response)


# ---------------------------------------------------------------------------- loopback equivalence
@dataclass
class Side:
    """One server and what a client sees of it."""

    server: SimulatorServer
    client: Client
    service: GuardedAttributeService
    notifications: dict[str, list[tuple[Any, int]]] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    generic_writes: int = 0  # WriteParameters that reached the guard through asyncua's path

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        dv = data.monitored_item.Value
        self.notifications.setdefault(node.nodeid.Identifier, []).append((val, dv.StatusCode.value))
        self.arrived.set()

    async def wait_for(self, key: str, value: float) -> None:
        async def seen() -> None:
            while (value, 0) not in self.notifications.get(key, []):
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(seen(), WAIT_S)


# every writable signal of both reactors, one measurement, and two nodes that are not signals
_KEYS = [f"R{r}.{s.name}" for r in (1, 2) for s in _PLANT.signals if s.kind != "measurement"] + ["R1.do_pct"]
_MARKER = "R2.temperature_sp_c"  # written last with a fresh value: its notification closes a round


@pytest_asyncio.fixture
async def sides() -> AsyncIterator[tuple[Side, Side]]:
    made: list[Side] = []
    try:
        for fast in (True, False):
            server = SimulatorServer(make_ecoli(2), port=0, clock=ManualClock(), speed=SPEED, fast_paths=fast)
            await server.start()
            client = Client(server.endpoints[0], timeout=5)
            await client.connect()
            service = server._endpoints[0].server.iserver.attribute_service  # type: ignore[union-attr]
            side = Side(server, client, service)
            made.append(side)
            inner = service.write

            async def counting(params: ua.WriteParameters, user: Any = None, _side: Side = side, _inner: Any = inner) -> Any:
                _side.generic_writes += 1
                return await _inner(params, user=user)

            service.write = counting  # type: ignore[method-assign]
            sub = await client.create_subscription(10, side)
            await sub.subscribe_data_change([client.get_node(f"ns=2;s={k}") for k in _KEYS], sampling_interval=0.0)
            await asyncio.wait_for(_initial_values(side), WAIT_S)
        yield made[0], made[1]
    finally:
        for side in made:
            await side.client.disconnect()
            await side.server.stop()


async def _initial_values(side: Side) -> None:
    while len(side.notifications) < len(_KEYS):
        side.arrived.clear()
        await side.arrived.wait()


def _double(v: float) -> ua.DataValue:
    return ua.DataValue(ua.Variant(v, ua.VariantType.Double))


async def _round(fast: Side, generic: Side, writes: list[tuple[str, ua.DataValue]], marker: float) -> list[int]:
    """Send the same WriteRequest to both, then a marker write; compare what each client sees."""
    for side in (fast, generic):
        side.notifications.clear()
    results = []
    for side in (fast, generic):
        params = ua.WriteParameters(NodesToWrite=[
            ua.WriteValue(NodeId=ua.NodeId(key, 2), AttributeId=ua.AttributeIds.Value, Value=dv) for key, dv in writes])
        results.append([r.value for r in await side.client.uaclient.write(params)])
        await side.client.write_values([side.client.get_node(f"ns=2;s={_MARKER}")], [_double(marker)])
        await side.wait_for(_MARKER, marker)
    assert results[0] == results[1]
    assert fast.notifications == generic.notifications
    plant_fast, plant_generic = fast.server.plants[0].read().values, generic.server.plants[0].read().values
    for name in {k.split(".")[1] for k in _KEYS}:
        assert plant_fast[name].tolist() == plant_generic[name].tolist(), name
    nodes = [ua.NodeId(k, 2) for k in _KEYS]
    read = [await side.client.uaclient.read_attributes(nodes, ua.AttributeIds.Value) for side in (fast, generic)]
    for a, b in zip(*read, strict=True):
        # source timestamps of published values count from each server's own start; a write stores none
        assert (a.Value, a.StatusCode, a.SourceTimestamp is None) == (b.Value, b.StatusCode, b.SourceTimestamp is None)
    return results[0]


def _batch(scale: float) -> list[tuple[str, ua.DataValue]]:
    """Every writable signal at ``scale`` of its range."""
    return [(k, _double(s.lo + scale * (s.hi - s.lo))) for k in _KEYS for s in _PLANT.signals
            if k.endswith("." + s.name) and s.kind != "measurement"]


async def test_full_batches_take_the_fast_path_with_asyncuas_results(sides: tuple[Side, Side]) -> None:
    fast, generic = sides
    for i, scale in enumerate((0.25, 0.5, 0.5, 0.75)):  # the repeat writes unchanged values: no notifications
        codes = await _round(fast, generic, _batch(scale), marker=30.0 + i)
        assert set(codes) == {ua.StatusCodes.Good}
    assert fast.generic_writes == 0  # every request (the markers too) took the fast path
    assert generic.generic_writes == 8


async def test_refusals_and_conversions_match_asyncuas(sides: tuple[Side, Side]) -> None:
    fast, generic = sides
    stamp = datetime(2025, 1, 1, tzinfo=timezone.utc)
    writes = [
        ("R1.agitation_rpm", _double(1e6)),  # above EURange
        ("R2.agitation_rpm", _double(-1.0)),
        ("R1.feed_rate_l_per_h", _double(math.nan)),
        ("R2.feed_rate_l_per_h", _double(math.inf)),
        ("R1.do_pct", _double(42.0)),  # a measurement
        ("R1.ph_sp", ua.DataValue(ua.Variant(7.25, ua.VariantType.Float))),
        ("R2.ph_sp", ua.DataValue(ua.Variant(7, ua.VariantType.Int32))),
        ("R1.jacket_temp_c", ua.DataValue(ua.Variant(30, ua.VariantType.UInt16), StatusCode=ua.StatusCode(
            ua.StatusCodes.UncertainInitialValue))),  # writing a status is not supported
        ("R2.jacket_temp_c", ua.DataValue(ua.Variant(31.5, ua.VariantType.Double), SourceTimestamp=stamp,
                                          ServerTimestamp=stamp, SourcePicoseconds=5)),  # client stamps ignored
        ("R1.do_sp_pct", ua.DataValue(ua.Variant(40.0, ua.VariantType.Double), StatusCode=ua.StatusCode(
            ua.StatusCodes.GoodClamped))),
    ]
    codes = await _round(fast, generic, writes, marker=25.0)
    assert codes == [ua.StatusCodes.BadOutOfRange] * 4 + [ua.StatusCodes.BadNotWritable, 0, 0,
                                                          ua.StatusCodes.BadWriteNotSupported, 0, 0]
    assert fast.generic_writes == 0


async def test_requests_the_fast_path_declines_still_match(sides: tuple[Side, Side]) -> None:
    fast, generic = sides
    duplicate = [("R1.do_sp_pct", _double(20.0)), ("R1.do_sp_pct", _double(21.0))]
    not_a_signal = [("R1.do_sp_pct", _double(22.0)), ("Simulation.speed", _double(3.0))]
    boolean = [("R1.do_sp_pct", ua.DataValue(ua.Variant(True, ua.VariantType.Boolean)))]
    for i, writes in enumerate((duplicate, not_a_signal, boolean)):
        await _round(fast, generic, writes, marker=26.0 + i)
    assert fast.generic_writes == 3  # each declined request, not the markers


async def test_a_node_without_write_access_refuses_and_the_plant_keeps_its_value(sides: tuple[Side, Side]) -> None:
    fast, generic = sides
    node = ua.NodeId("R1.agitation_rpm", 2)
    for side in (fast, generic):
        server = side.server._endpoints[0].server
        assert server is not None
        for attr in (ua.AttributeIds.AccessLevel, ua.AttributeIds.UserAccessLevel):
            await server.write_attribute_value(
                node, ua.DataValue(ua.Variant(ua.AccessLevel.CurrentRead.mask, ua.VariantType.Byte)), attr)
    before = fast.server.plants[0].read().values["agitation_rpm"][0]
    codes = await _round(fast, generic, [("R1.agitation_rpm", _double(before + 10.0)), ("R2.agitation_rpm", _double(800.0))],
                         marker=29.0)
    assert codes == [ua.StatusCodes.BadUserAccessDenied, 0]
    assert fast.server.plants[0].read().values["agitation_rpm"][0] == before


async def test_the_heap_is_frozen_while_serving() -> None:
    server = SimulatorServer(make_ecoli(1), port=0, clock=ManualClock())
    await server.start()
    try:
        assert gc.get_freeze_count() > 0
    finally:
        await server.stop()
    assert gc.get_freeze_count() == 0



async def test_a_batch_is_answered_once_the_plant_has_it_before_the_nodes_notify() -> None:
    server = SimulatorServer(make_ecoli(2), port=0, clock=ManualClock())
    await server.start()
    try:
        service = server._endpoints[0].server.iserver.attribute_service  # type: ignore[union-attr]
        assert isinstance(service, GuardedAttributeService)
        targets = {"R1.agitation_rpm": 900.0, "R2.agitation_rpm": 950.0, "R1.feed_rate_l_per_h": 1e9}  # last: out of range
        bindings = {str(b.nodeid.Identifier): b for b in service.binding_of_wire.values()}
        writes = [ScalarWrite(bindings[k], None, ua.VariantType.Double, v) for k, v in targets.items()]
        nodes = [ua.NodeId(k, 2) for k in targets]
        seen: list[tuple[list[int], list[float], list[object]]] = []

        def answer(codes: list[int]) -> None:
            plant = server.plants[0].read().values
            stored = [service._aspace.read_attribute_value(n, ua.AttributeIds.Value).Value.Value for n in nodes]
            seen.append((list(codes), [float(plant["agitation_rpm"][0]), float(plant["agitation_rpm"][1])], stored))

        codes = await service.write_scalars(writes, User(), answer)
        assert len(seen) == 1  # answered exactly once
        answered_codes, plant_then, stored_then = seen[0]
        assert answered_codes == codes == [0, 0, ua.StatusCodes.BadOutOfRange]
        assert plant_then == [900.0, 950.0]  # the plant had the values when the client was answered
        assert stored_then[:2] != [900.0, 950.0]  # the nodes stored them (and notified) afterwards
        stored_now = [service._aspace.read_attribute_value(n, ua.AttributeIds.Value).Value.Value for n in nodes]
        assert stored_now[:2] == [900.0, 950.0]
    finally:
        await server.stop()


def test_a_layout_matches_only_the_same_writes_with_other_values() -> None:
    keys = [b for b in _BINDINGS if b.writable][:3]

    def body(values: list[float], status: ua.StatusCode | None = None) -> bytes:
        return struct_to_binary(ua.WriteParameters(NodesToWrite=[
            ua.WriteValue(NodeId=b.nodeid, AttributeId=ua.AttributeIds.Value,
                          Value=ua.DataValue(ua.Variant(v, ua.VariantType.Double), StatusCode=status))
            for b, v in zip(keys, values)]))

    first = body([1.0, 2.0, 3.0])
    offsets: list[int] = []
    writes = fastpath.decode_scalar_writes(first, 0, _WIRE, offsets)
    assert writes is not None and len(offsets) == 3
    layout = fastpath.WriteLayout(None, first, offsets)  # type: ignore[arg-type]  # the plan is not used here
    assert layout.values(first).tolist() == [1.0, 2.0, 3.0]
    again = layout.values(body([4.5, math.nan, -1e300]))
    assert again is not None and again[0] == 4.5 and math.isnan(again[1]) and again[2] == -1e300
    assert layout.values(body([1.0, 2.0, 3.0], ua.StatusCode(ua.StatusCodes.UncertainInitialValue))) is None
    assert layout.values(body([1.0, 2.0])) is None
    other = [b for b in _BINDINGS if b.writable][3:6]
    swapped = struct_to_binary(ua.WriteParameters(NodesToWrite=[
        ua.WriteValue(NodeId=b.nodeid, AttributeId=ua.AttributeIds.Value, Value=_double(1.0)) for b in other]))
    assert len(swapped) != len(first) or layout.values(swapped) is None


async def test_a_repeated_batch_with_bad_values_matches_asyncua(sides: tuple[Side, Side]) -> None:
    fast, generic = sides
    batch = _batch(0.5)
    await _round(fast, generic, batch, marker=31.0)  # the fast side learns the layout
    spoiled = list(batch)
    spoiled[0] = (spoiled[0][0], _double(math.nan))
    spoiled[1] = (spoiled[1][0], _double(1e12))
    spoiled[2] = (spoiled[2][0], _double(-1e12))
    codes = await _round(fast, generic, spoiled, marker=32.0)  # same layout, other values
    assert codes[:3] == [ua.StatusCodes.BadOutOfRange] * 3 and set(codes[3:]) == {0}
    assert fast.generic_writes == 0
    service = fast.service
    assert len(service.write_layouts) >= 1


# ------------------------------------------------------------ publish: values and notify decisions

@given(st.floats(allow_nan=True, allow_infinity=True))
def test_a_fast_double_variant_is_asyncuas(value: float) -> None:
    from asyncua.ua.ua_binary import variant_to_binary

    from simulators.opcua.address_space import _double

    ours, theirs = _double(value), ua.Variant(value, ua.VariantType.Double)
    assert variant_to_binary(ours) == variant_to_binary(theirs)
    assert (ours.Value, ours.VariantType, ours.Dimensions, ours.is_array) == (
        theirs.Value, theirs.VariantType, theirs.Dimensions, theirs.is_array)


_data_values = st.one_of(
    st.none(),
    st.builds(lambda v, code: ua.DataValue(ua.Variant(v, ua.VariantType.Double), StatusCode=ua.StatusCode(code)),
              st.sampled_from([1.0, 2.0, math.nan, -0.0, 0.0]), st.sampled_from([0, 0x808B0000, 0x80320000])),
    st.builds(lambda code: ua.DataValue(ua.Variant(None, ua.VariantType.Null), StatusCode=ua.StatusCode(code)),
              st.sampled_from([0, 0x808B0000])),
    st.builds(lambda v: ua.DataValue(ua.Variant(v, ua.VariantType.String)), st.sampled_from(["a", "b"])),
)


@given(_data_values, _data_values.filter(lambda dv: dv is not None))
def test_the_inline_change_test_decides_as_asyncua(old: ua.DataValue | None, new: ua.DataValue) -> None:
    from asyncua.server.monitored_item_service import MonitoredItemService, MonitoredItemValues

    from simulators.opcua.address_space import _status_value_changed

    values = MonitoredItemValues()
    values.old_dvalue, values.current_dvalue = old, new
    assert _status_value_changed(old, new) == MonitoredItemService._is_data_changed(
        values, ua.DataChangeTrigger.StatusValue)
