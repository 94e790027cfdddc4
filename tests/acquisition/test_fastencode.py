"""The Actuator's WriteRequest encoder sends exactly the bytes asyncua would, and servers accept them."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import pytest
import pytest_asyncio
from asyncua import Client, ua
from asyncua.client import ua_client
from asyncua.common.utils import Buffer
from asyncua.ua import ua_binary
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.opcua import SimulatorServer
from telemetry.acquisition import Actuator, FixedClient, OutputSpec
from telemetry.acquisition import fastencode
from telemetry.acquisition.fastencode import SCALAR_TYPES, EncodedWriteParameters, WriteEncoder

_INT_RANGES = {
    "SByte": (-(2**7), 2**7 - 1), "Byte": (0, 2**8 - 1), "Int16": (-(2**15), 2**15 - 1), "UInt16": (0, 2**16 - 1),
    "Int32": (-(2**31), 2**31 - 1), "UInt32": (0, 2**32 - 1), "Int64": (-(2**53), 2**53), "UInt64": (0, 2**53),
}

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_ns = st.integers(0, 65535)
node_ids = st.one_of(
    st.builds(ua.NodeId, _text, _ns),
    st.builds(ua.NodeId, st.integers(0, 2**32 - 1), _ns),  # two-byte, four-byte or numeric encoding by value
    st.builds(lambda b, ns: ua.NodeId(b, ns, ua.NodeIdType.ByteString), st.binary(max_size=20), _ns),
    st.builds(lambda u, ns: ua.NodeId(u, ns, ua.NodeIdType.Guid), st.uuids(), _ns),
)


@st.composite
def outputs(draw: st.DrawFn) -> tuple[ua.NodeId, str, float]:
    """A node, its variant type and an output value that type can hold."""
    vtype = draw(st.sampled_from(SCALAR_TYPES))
    if vtype == "Double":
        value = draw(st.floats())
    elif vtype == "Float":
        value = draw(st.floats(width=32))
    elif vtype == "Boolean":
        value = draw(st.floats(allow_nan=False))
    else:
        lo, hi = _INT_RANGES[vtype]
        value = draw(st.floats(lo, hi, allow_nan=False, allow_infinity=False).filter(lambda v: lo <= round(v) <= hi))
    return draw(node_ids), vtype, value


def _expected_variant(value: float, vtype: str) -> ua.Variant:
    """What the Actuator writes for an output (its documented conversion), built the plain asyncua way."""
    if vtype in ("Double", "Float"):
        return ua.Variant(float(value), ua.VariantType[vtype])
    if vtype == "Boolean":
        return ua.Variant(value >= 0.5, ua.VariantType.Boolean)
    return ua.Variant(int(round(value)), ua.VariantType[vtype])


def _plain(writes: list[tuple[ua.NodeId, str, float]]) -> ua.WriteParameters:
    return ua.WriteParameters(NodesToWrite=[
        ua.WriteValue(NodeId=nid, AttributeId=ua.AttributeIds.Value, Value=ua.DataValue(_expected_variant(v, vt)))
        for nid, vt, v in writes])


def _header() -> ua.RequestHeader:
    return ua.RequestHeader(AuthenticationToken=ua.NodeId(uuid.uuid4(), 0, ua.NodeIdType.Guid),
                            Timestamp=datetime(2025, 5, 1, 12, 0, tzinfo=timezone.utc), RequestHandle=42, TimeoutHint=4000)


@settings(max_examples=300, deadline=None)
@given(st.lists(outputs(), max_size=30))
def test_request_bytes_are_asyncuas(writes: list[tuple[ua.NodeId, str, float]]) -> None:
    encoder = WriteEncoder({i: (nid, vt) for i, (nid, vt, _) in enumerate(writes)})
    encoded = encoder.encode(list(range(len(writes))), [v for _, _, v in writes])
    header = _header()
    expected = ua_binary.struct_to_binary(ua.WriteRequest(RequestHeader=header, Parameters=_plain(writes)))
    assert fastencode.install()
    # what asyncua's client protocol calls to encode the request
    assert ua_client.struct_to_binary(ua.WriteRequest(RequestHeader=header, Parameters=encoded)) == expected  # type: ignore[arg-type]
    # and asyncua's generic encoder, should it be the one called, builds the same WriteValues
    assert ua_binary.struct_to_binary(ua.WriteRequest(RequestHeader=header, Parameters=encoded)) == expected  # type: ignore[arg-type]
    assert len(encoded) == len(writes)


def test_a_subset_in_any_order_encodes_as_asyncua_would() -> None:
    nodes = {f"k{i}": (ua.NodeId(f"R{i}.x", 2), "Double") for i in range(5)}
    encoder = WriteEncoder(nodes)
    keys, values = ["k3", "k0", "k4"], [1.5, -2.0, math.pi]
    plain = _plain([(nodes[k][0], "Double", v) for k, v in zip(keys, values)])
    assert encoder.encode(keys, values).binary == ua_binary.struct_to_binary(plain)


def test_other_requests_are_left_to_asyncua() -> None:
    assert fastencode.install() and fastencode.install()  # idempotent
    request = ua.ReadRequest(RequestHeader=_header(), Parameters=ua.ReadParameters(
        NodesToRead=[ua.ReadValueId(NodeId=ua.NodeId("R1.x", 2), AttributeId=ua.AttributeIds.Value)]))
    assert ua_client.struct_to_binary(request) == ua_binary.struct_to_binary(request)
    plain = ua.WriteRequest(RequestHeader=_header(), Parameters=_plain([(ua.NodeId("R1.x", 2), "Double", 1.0)]))
    assert ua_client.struct_to_binary(plain) == ua_binary.struct_to_binary(plain)


@pytest.mark.parametrize(("vtype", "value"), [("Int16", 1e6), ("Byte", -3.0), ("Float", 1e300)])
def test_a_value_its_type_cannot_hold_raises_uaerror_as_asyncua_does(vtype: str, value: float) -> None:
    nid = ua.NodeId("R1.x", 2)
    with pytest.raises(ua.UaError):
        ua_binary.struct_to_binary(_plain([(nid, vtype, value)]))
    with pytest.raises(ua.UaError):
        WriteEncoder({"k": (nid, vtype)}).encode(["k"], [value])


def test_an_output_of_a_non_scalar_type_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="variant_type"):
        Actuator(FixedClient(None), [OutputSpec("R1.feed", "ns=2;s=R1.feed_rate_l_per_h", variant_type="String")])


# ---------------------------------------------------------------------------------- on the wire
@pytest_asyncio.fixture
async def writer(server: SimulatorServer) -> AsyncIterator[Client]:
    async with Client(server.endpoints[0], timeout=5) as c:
        yield c


async def test_encoded_writes_of_every_numeric_type_reach_the_server(writer: Client, server: SimulatorServer) -> None:
    """Float, integer and Double outputs arrive as the values asyncua would have written (the
    simulator accepts any number and stores it as Double)."""
    cases = [("R1.agitation_rpm", "Int32", 700.4), ("R2.agitation_rpm", "UInt16", 699.6),
             ("R1.feed_rate_l_per_h", "Float", 0.25), ("R2.feed_rate_l_per_h", "Double", 0.1)]
    encoder = WriteEncoder({key: (ua.NodeId(key, 2), vt) for key, vt, _ in cases})
    params = encoder.encode([k for k, _, _ in cases], [v for _, _, v in cases])
    results = await writer.uaclient.write(params)  # type: ignore[arg-type]
    assert [r.value for r in results] == [ua.StatusCodes.Good] * 4
    values = server.plants[0].read().values
    assert (values["agitation_rpm"][0], values["agitation_rpm"][1]) == (700.0, 700.0)
    assert (values["feed_rate_l_per_h"][0], values["feed_rate_l_per_h"][1]) == (0.25, 0.1)


async def test_actuator_sends_encoded_parameters(writer: Client) -> None:
    sent: list[object] = []
    session = writer.uaclient.session
    inner = session._send_request

    async def spy(request: object, *args: object, **kwargs: object) -> object:
        if isinstance(request, ua.WriteRequest):
            sent.append(request.Parameters)
        return await inner(request, *args, **kwargs)

    session._send_request = spy  # type: ignore[method-assign]
    actuator = Actuator(FixedClient(writer), [OutputSpec("R1.do_sp_pct", "ns=2;s=R1.do_sp_pct", lo=10.0, hi=60.0)])
    results = await actuator.write({"R1.do_sp_pct": 33.0}, process_time_s=1.0)
    assert results["R1.do_sp_pct"].verified is True
    assert len(sent) == 1 and isinstance(sent[0], EncodedWriteParameters)


# ---------------------------------------------------------------------------- write responses
_codes = st.lists(st.sampled_from([0, ua.StatusCodes.BadOutOfRange, ua.StatusCodes.BadNotWritable,
                                   ua.StatusCodes.GoodClamped, ua.StatusCodes.BadUserAccessDenied]), max_size=50)


@given(codes=_codes, diagnostics=st.sampled_from([None, [], [ua.DiagnosticInfo(SymbolicId=3)]]),
       header_diagnostics=st.booleans())
@settings(max_examples=200, deadline=None)
def test_write_responses_decode_to_asyncuas_results(codes: list[int], diagnostics: list[ua.DiagnosticInfo] | None,
                                                    header_diagnostics: bool) -> None:
    response = ua.WriteResponse(Results=[ua.StatusCode(c) for c in codes], DiagnosticInfos=diagnostics)
    response.ResponseHeader.RequestHandle = 7
    if header_diagnostics:
        response.ResponseHeader.ServiceDiagnostics = ua.DiagnosticInfo(AdditionalInfo="x")
    data = Buffer(ua_binary.struct_to_binary(response))
    expected = [r.value for r in ua_binary.struct_from_binary(ua.WriteResponse, Buffer(bytes(data))).Results]
    assert fastencode.decode_write_response(data) == expected == codes
    assert len(data) > 0  # the caller's buffer is not consumed


def test_a_failed_write_service_raises_as_asyncua_does() -> None:
    response = ua.WriteResponse()
    response.ResponseHeader.ServiceResult = ua.StatusCode(ua.StatusCodes.BadTooManyOperations)
    with pytest.raises(ua.UaStatusCodeError) as caught:
        fastencode.decode_write_response(Buffer(ua_binary.struct_to_binary(response)))
    assert caught.value.code == ua.StatusCodes.BadTooManyOperations


async def test_writes_come_back_as_status_codes(writer: Client) -> None:
    params = WriteEncoder({k: (ua.NodeId(k, 2), "Double") for k in ("R1.agitation_rpm", "R1.do_pct")}).encode(
        ["R1.agitation_rpm", "R1.do_pct"], [650.0, 40.0])
    assert await fastencode.write(writer, params) == [ua.StatusCodes.Good, ua.StatusCodes.BadNotWritable]
