"""Fast binary encoding of the Actuator's WriteRequests (scalar values, one batch per control scan).

asyncua encodes a request with a generic, reflective serializer: for a WriteRequest of 1000
outputs that is ~7 ms of building ``WriteValue``/``DataValue``/``Variant`` objects and walking
their dataclass fields, on the control path of every scan. The bytes of one WriteValue for a
given node differ from scan to scan only in the value, so :class:`WriteEncoder` encodes every
node's prefix once and a scan is ``prefix + struct.pack(value)`` per output (~0.5 ms).

The result, :class:`EncodedWriteParameters`, is passed to asyncua's ordinary
``uaclient.write``; :func:`install` teaches the one function asyncua's client protocol uses to
encode requests (``asyncua.client.ua_client.struct_to_binary``, process-wide) to emit the
pre-encoded bytes for it. Every other request, and every field of the request but the parameters (header,
request handle, timeout, security), stays asyncua's. The bytes are identical to what asyncua
sends for the equivalent ``ua.WriteParameters`` (tested). Without the patch (a future asyncua
that encodes elsewhere) the object still encodes correctly through the generic serializer,
because its ``NodesToWrite`` builds the equivalent WriteValues on demand: only slower.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from asyncua import Client, ua
from asyncua.client import ua_client
from asyncua.common.utils import Buffer
from asyncua.ua import ua_binary

__all__ = ["SCALAR_TYPES", "EncodedWriteParameters", "WriteEncoder", "decode_write_response", "install", "write"]

_INT32 = struct.Struct("<i")
_GOOD = b"\x00\x00\x00\x00"  # the StatusCode of the written DataValue

#: VariantType -> (struct format of the value, conversion of a float output into the variant's value)
_SCALARS: dict[ua.VariantType, tuple[str, Callable[[float], Any]]] = {
    ua.VariantType.Double: ("<d", float),
    ua.VariantType.Float: ("<f", float),
    ua.VariantType.Boolean: ("<?", lambda v: bool(v >= 0.5)),
    ua.VariantType.SByte: ("<b", lambda v: int(round(v))),
    ua.VariantType.Byte: ("<B", lambda v: int(round(v))),
    ua.VariantType.Int16: ("<h", lambda v: int(round(v))),
    ua.VariantType.UInt16: ("<H", lambda v: int(round(v))),
    ua.VariantType.Int32: ("<i", lambda v: int(round(v))),
    ua.VariantType.UInt32: ("<I", lambda v: int(round(v))),
    ua.VariantType.Int64: ("<q", lambda v: int(round(v))),
    ua.VariantType.UInt64: ("<Q", lambda v: int(round(v))),
}

#: the variant types an output may have (OutputSpec.variant_type)
SCALAR_TYPES = tuple(vt.name for vt in _SCALARS)


class EncodedWriteParameters:
    """``ua.WriteParameters`` of scalar Value writes, already in OPC UA binary.

    Built by :meth:`WriteEncoder.encode`; pass it to ``client.uaclient.write``. ``binary`` is the
    encoding of the whole WriteParameters (count and WriteValues).
    """

    __slots__ = ("binary", "_nodes", "_values")

    def __init__(self, binary: bytes, nodes: list[_Node], values: list[Any]) -> None:
        self.binary = binary
        self._nodes = nodes
        self._values = values  # already converted to each node's variant type

    @property
    def NodesToWrite(self) -> list[ua.WriteValue]:  # noqa: N802 (asyncua's field name)
        """The equivalent WriteValues, built on demand: for asyncua's generic encoder, logging and tests."""
        return [ua.WriteValue(NodeId=node.node_id, AttributeId=ua.AttributeIds.Value,
                              Value=ua.DataValue(ua.Variant(value, node.vtype)))
                for node, value in zip(self._nodes, self._values, strict=True)]

    def __len__(self) -> int:
        return len(self._nodes)

    def __repr__(self) -> str:
        return f"EncodedWriteParameters({len(self)} scalar writes, {len(self.binary)} bytes)"


class _Node:
    """One output's constant part of a WriteValue and how its value is packed."""

    __slots__ = ("node_id", "vtype", "prefix", "pack", "convert")

    def __init__(self, node_id: ua.NodeId, vtype: ua.VariantType) -> None:
        fmt, convert = _SCALARS[vtype]
        self.node_id, self.vtype, self.convert = node_id, vtype, convert
        self.pack = struct.Struct(fmt).pack
        # NodeId, AttributeId=Value, IndexRange=null, DataValue mask Value|StatusCode, Variant type byte.
        # The mask and the trailing Good status are what asyncua sends for ua.DataValue(variant),
        # whose StatusCode defaults to Good rather than absent.
        self.prefix = (ua_binary.nodeid_to_binary(node_id) + struct.pack("<Ii", ua.AttributeIds.Value, -1)
                       + bytes((0x03, vtype.value)))


class WriteEncoder:
    """Encodes Value writes of scalars to a fixed set of nodes.

    Parameters
    ----------
    nodes : mapping of key to (NodeId, variant type)
        The variant type by name (``"Double"``, ``"Int32"``...) or as ``ua.VariantType``; any
        scalar numeric type or Boolean.

    Raises
    ------
    KeyError
        For a variant type that is not a scalar number or Boolean.
    """

    def __init__(self, nodes: dict[Any, tuple[ua.NodeId, str | ua.VariantType]]) -> None:
        self._nodes = {
            key: _Node(nid, vtype if isinstance(vtype, ua.VariantType) else ua.VariantType[vtype])
            for key, (nid, vtype) in nodes.items()
        }

    def encode(self, keys: Sequence[Any], values: Sequence[float]) -> EncodedWriteParameters:
        """WriteParameters writing ``values[i]`` to ``keys[i]``: as a float for Double and Float
        nodes, ``value >= 0.5`` for Boolean ones, rounded to nearest for integer ones.

        Raises ``ua.UaError`` for a value its variant type cannot hold (as asyncua does when it
        encodes such a Variant) and KeyError for an unknown key.
        """
        nodes = [self._nodes[key] for key in keys]
        converted = [node.convert(value) for node, value in zip(nodes, values, strict=True)]
        parts = [_INT32.pack(len(nodes))]
        append = parts.append
        for node, v in zip(nodes, converted):
            try:
                append(node.prefix + node.pack(v) + _GOOD)
            except (struct.error, OverflowError) as exc:
                raise ua.UaError(f"Cannot pack VariantType.{node.vtype.name} with value {v!r}: {exc}") from exc
        return EncodedWriteParameters(b"".join(parts), nodes, converted)


_original_struct_to_binary = ua_binary.struct_to_binary
_WRITE_REQUEST = ua.WriteRequest


def _struct_to_binary(obj: Any) -> bytes:
    """asyncua's ``struct_to_binary``, except for a WriteRequest carrying EncodedWriteParameters."""
    if obj.__class__ is _WRITE_REQUEST:
        params = obj.Parameters
        if params.__class__ is EncodedWriteParameters:
            return ua_binary.nodeid_to_binary(obj.TypeId) + _original_struct_to_binary(obj.RequestHeader) + params.binary
    return _original_struct_to_binary(obj)


def install() -> bool:
    """Idempotent: let asyncua's client protocol send EncodedWriteParameters as they are.

    Returns False (and changes nothing) when this asyncua does not encode requests through
    ``ua_client.struct_to_binary``; EncodedWriteParameters then take asyncua's generic path.
    """
    current = getattr(ua_client, "struct_to_binary", None)
    if current is _struct_to_binary:
        return True
    if current is not _original_struct_to_binary:
        return False
    ua_client.struct_to_binary = _struct_to_binary  # type: ignore[attr-defined]
    return True


_WRITE_RESPONSE_TYPEID = ua_binary.nodeid_to_binary(ua.FourByteNodeId(ua.ObjectIds.WriteResponse_Encoding_DefaultBinary))
_NO_DIAGNOSTICS = (b"\xff\xff\xff\xff", b"\x00\x00\x00\x00")  # a null or empty DiagnosticInfo array


def decode_write_response(data: Buffer) -> list[int]:
    """The status codes of a WriteResponse, as asyncua's ``UaSession.write`` returns them (as ints).

    asyncua decodes the response generically: a StatusCode object per result, ~1.7 ms for a
    1000-output scan. Here the header goes through asyncua's decoder and the results are one
    ``struct.unpack``. A response with diagnostics (or any other shape) is decoded by asyncua.
    Raises what asyncua raises for a failed service result (``ua.UaStatusCodeError``).
    """
    raw = data.copy().read(len(data))
    if raw.startswith(_WRITE_RESPONSE_TYPEID):
        buf = Buffer(raw)
        buf.skip(len(_WRITE_RESPONSE_TYPEID))
        header = ua_binary.struct_from_binary(ua.ResponseHeader, buf)
        header.ServiceResult.check()
        pos = buf.cur_pos
        (count,) = _INT32.unpack_from(raw, pos)
        end = pos + 4 + 4 * max(count, 0)
        if raw[end:] in _NO_DIAGNOSTICS:
            return list(struct.unpack_from(f"<{max(count, 0)}I", raw, pos + 4))
    response = ua_binary.struct_from_binary(ua.WriteResponse, Buffer(raw))
    response.ResponseHeader.ServiceResult.check()
    return [code.value for code in response.Results or ()]


async def write(client: Client, params: EncodedWriteParameters | ua.WriteParameters) -> list[int]:
    """``client.uaclient.write(params)``, its result decoded by :func:`decode_write_response`.

    Falls back to asyncua's ``write`` when its session does not expose ``_send_request`` (an
    asyncua whose internals moved): slower, same results.
    """
    session = getattr(client.uaclient, "session", None)
    send = getattr(session, "_send_request", None)
    if send is None:
        return [code.value for code in await client.uaclient.write(params)]  # type: ignore[arg-type]
    request = ua.WriteRequest()
    request.Parameters = params  # type: ignore[assignment]
    return decode_write_response(await send(request))
