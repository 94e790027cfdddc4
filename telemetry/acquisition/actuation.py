"""Batched OPC UA writes of controller outputs, with limits, rate limits, read-back and shadow mode.

One :class:`Actuator` per endpoint. Each control period the service calls :meth:`Actuator.write`
with the outputs it wants; the actuator

1. clamps them into ``[lo, hi]`` and their rate of change (per second of *process* time),
   independently of the controllers: the last line of defence;
2. holds (does not write) any NaN/Inf output: the device keeps its last value;
3. writes all remaining values in ONE Write service call and checks each status (the request
   is encoded by :mod:`telemetry.acquisition.fastencode`: a control scan's 1000 outputs cost
   ~0.3 ms to encode instead of asyncua's ~7 ms);
4. retries the failed ones a bounded number of times, each attempt recorded;
5. reads the written nodes back in one Read call and records any mismatch.

In ``shadow`` mode steps 3-5 are skipped: the results say what *would* have been written,
and nothing is ever written to the server (reads that seed the rate limit are allowed).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

import numpy as np
from asyncua import Client, ua

from telemetry.acquisition.addressing import resolve_node_id
from telemetry.acquisition.errors import AcquisitionError, map_exceptions
from telemetry.acquisition.fastencode import SCALAR_TYPES, WriteEncoder, install
from telemetry.acquisition.fastencode import write as fast_write
from telemetry.acquisition.limits import LIMIT_NAMES, limit_outputs
from telemetry.acquisition.spec import OutputSpec

install()  # asyncua's client sends our pre-encoded WriteParameters as they are

ActuationMode = Literal["write", "shadow"]
WriteAction = Literal["written", "failed", "held", "shadow", "not_connected"]


class ClientSource(Protocol):
    """Anything with a ``client`` that is the live asyncua client or None (an EndpointSupervisor)."""

    @property
    def client(self) -> Client | None: ...


@dataclass(frozen=True)
class FixedClient:
    """A ClientSource for a client the caller connects and owns itself."""

    client: Client | None


class WriteResult(NamedTuple):
    """What happened to one output in one :meth:`Actuator.write` call.

    ``value`` is what was written (or would be, in shadow mode, or is held); ``limited``
    names the limit that changed the request (``lo``, ``hi``, ``rate``, ``held``) or is
    None. ``status`` is the OPC UA status of the last attempt (0 Good), ``statuses`` one
    per attempt. ``verified`` is None when no read-back was done, else whether the value
    read back equals ``value``.

    A NamedTuple, not a frozen dataclass: a scan makes one per output, and a frozen
    dataclass costs ~3 us each to build (1000 outputs: 3 ms on the control path).
    """

    key: str
    requested: float
    value: float
    limited: str | None
    action: WriteAction
    status: int
    attempts: int
    statuses: tuple[int, ...] = ()
    verified: bool | None = None
    read_back: float | None = None

    @property
    def ok(self) -> bool:
        return self.action in ("written", "shadow", "held") and (self.verified is not False)


class Actuator:
    """Writes one endpoint's outputs; see the module docstring.

    Parameters
    ----------
    source : ClientSource
        Usually the endpoint's ``EndpointSupervisor``; writes are skipped (``not_connected``)
        while it has no client.
    outputs : sequence of OutputSpec
    mode : {"write", "shadow"}
    max_attempts : int
        Write attempts per output per call (>= 1).
    verify : bool
        Read written values back in one batched Read.
    verify_rel_tol : float
        Relative tolerance of the read-back comparison (a Float variable rounds).
    retry_delay_s : float
        Pause between attempts; process control periods are short, so keep it small.
    sleep : callable
        ``asyncio.sleep`` or a test's fake.
    """

    def __init__(
        self,
        source: ClientSource,
        outputs: Sequence[OutputSpec],
        *,
        mode: ActuationMode = "write",
        max_attempts: int = 3,
        verify: bool = True,
        verify_rel_tol: float = 1e-6,
        retry_delay_s: float = 0.0,
        request_timeout_s: float = 4.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        name: str = "actuator",
    ) -> None:
        if mode not in ("write", "shadow"):
            raise ValueError(f"mode must be 'write' or 'shadow', got {mode!r}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        keys = [o.key for o in outputs]
        if len(set(keys)) != len(keys):
            raise ValueError("output keys must be unique")
        for o in outputs:
            if o.variant_type not in SCALAR_TYPES:
                raise ValueError(f"output {o.key}: variant_type must be one of {', '.join(SCALAR_TYPES)}, "
                                 f"got {o.variant_type!r}")
        self.source = source
        self.outputs = {o.key: o for o in outputs}
        self.mode: ActuationMode = mode
        self.max_attempts = max_attempts
        self.verify = verify
        self.verify_rel_tol = verify_rel_tol
        self.retry_delay_s = retry_delay_s
        self.request_timeout_s = request_timeout_s
        self.name = name
        self._sleep = sleep
        #: last value written (or read from the device, or computed in shadow mode) and its process time
        self.last_value: dict[str, float] = {}
        self.last_time_s: dict[str, float] = {}
        self._node_ids: dict[str, ua.NodeId] = {}
        self._encoder: WriteEncoder | None = None
        self._bounds: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._resolved_for: Client | None = None

    async def write(self, requested: Mapping[str, float], process_time_s: float) -> dict[str, WriteResult]:
        """Limit, write (or not, in shadow mode), verify; one result per requested key.

        Raises KeyError for a key that is not an output. Never raises for a server's
        refusal or a lost connection: those are results.
        """
        keys = list(requested)
        for key in keys:
            if key not in self.outputs:
                raise KeyError(f"{self.name}: {key!r} is not a configured output")
        if not keys:
            return {}
        client = self.source.client
        if client is not None:
            try:
                await self._prepare(client, keys, process_time_s)
            except AcquisitionError as exc:
                return self._all(keys, requested, "not_connected", _status_of(exc))
        values, limits = self._limit(keys, requested, process_time_s)
        results: dict[str, WriteResult] = {}
        to_write: list[str] = []
        for key, v, lim in zip(keys, values, limits):
            req = float(requested[key])
            limited = LIMIT_NAMES[int(lim)]
            if not math.isfinite(v):
                results[key] = WriteResult(key, req, float(v), limited or "held", "held", ua.StatusCodes.Good, 0)
            elif limited == "held":
                results[key] = WriteResult(key, req, float(v), "held", "held", ua.StatusCodes.Good, 0)
            elif self.mode == "shadow":
                results[key] = WriteResult(key, req, float(v), limited, "shadow", ua.StatusCodes.Good, 0)
                self._remember(key, float(v), process_time_s)
            elif client is None:
                results[key] = WriteResult(key, req, float(v), limited, "not_connected", ua.StatusCodes.BadNotConnected, 0)
            else:
                to_write.append(key)
        if to_write:
            assert client is not None
            value_of = {k: float(v) for k, v in zip(keys, values)}
            limit_of = {k: LIMIT_NAMES[int(lim)] for k, lim in zip(keys, limits)}
            results.update(await self._write_batch(client, to_write, value_of, limit_of, requested, process_time_s))
        return {k: results[k] for k in keys}

    # ---- steps -------------------------------------------------------------------------
    async def _prepare(self, client: Client, keys: list[str], process_time_s: float) -> None:
        """Resolve NodeIds for this client and seed unknown last values from the device."""
        if self._resolved_for is not client:
            namespaces: list[str] = []
            if any(o.node_id.startswith("nsu=") for o in self.outputs.values()):
                with map_exceptions(self.name, "read namespace array"):
                    async with asyncio.timeout(self.request_timeout_s):
                        namespaces = await client.get_namespace_array()
            self._node_ids = {k: resolve_node_id(o.node_id, namespaces) for k, o in self.outputs.items()}
            self._encoder = WriteEncoder({k: (self._node_ids[k], o.variant_type) for k, o in self.outputs.items()})
            self._resolved_for = client
        unseeded = [k for k in keys if k not in self.last_value]
        if unseeded:
            # the rate limit needs a starting point: what the device holds now
            read = await self._read(client, unseeded)
            for key, (value, status) in zip(unseeded, read):
                if status & 0x80000000 == 0 and value is not None and math.isfinite(value):
                    self._remember(key, value, process_time_s)

    def _limit(self, keys: list[str], requested: Mapping[str, float], process_time_s: float) -> tuple[np.ndarray, np.ndarray]:
        bounds = self._bounds.get(tuple(keys))
        if bounds is None:  # the same outputs every scan: their limits are built once
            specs = [self.outputs[k] for k in keys]
            bounds = (np.array([s.lo for s in specs], dtype=np.float64), np.array([s.hi for s in specs], dtype=np.float64),
                      np.array([math.inf if s.max_rate_per_s is None else s.max_rate_per_s for s in specs]))
            if len(self._bounds) > 64:
                self._bounds.clear()
            self._bounds[tuple(keys)] = bounds
        req = np.array([_finite_or_nan(requested[k]) for k in keys], dtype=np.float64)
        last = np.array([self.last_value.get(k, math.nan) for k in keys], dtype=np.float64)
        since = np.array([self.last_time_s.get(k, process_time_s) for k in keys], dtype=np.float64)
        dt = np.maximum(0.0, process_time_s - since)
        return limit_outputs(req, last, dt, *bounds)

    async def _write_batch(
        self,
        client: Client,
        keys: list[str],
        value_of: dict[str, float],
        limit_of: dict[str, str | None],
        requested: Mapping[str, float],
        process_time_s: float,
    ) -> dict[str, WriteResult]:
        assert self._encoder is not None  # _prepare() built it for this client
        statuses: dict[str, list[int]] = {k: [] for k in keys}
        pending = list(keys)
        for attempt in range(self.max_attempts):
            if attempt and self.retry_delay_s > 0:
                await self._sleep(self.retry_delay_s)
            try:
                with map_exceptions(self.name, "write"):
                    params = self._encoder.encode(pending, [value_of[k] for k in pending])
                    async with asyncio.timeout(self.request_timeout_s):
                        codes = await fast_write(client, params)
            except AcquisitionError as exc:
                codes = [_status_of(exc)] * len(pending)
            for key, code in zip(pending, codes):
                statuses[key].append(code)
            pending = [k for k, code in zip(pending, codes) if code & 0x80000000]
            if not pending:
                break
        written = [k for k in keys if not statuses[k][-1] & 0x80000000]
        written_set = set(written)  # membership below: a list made this loop quadratic (7 ms at 1000 outputs)
        for key in written:
            self._remember(key, value_of[key], process_time_s)
        read_back: dict[str, tuple[float | None, int]] = {}
        if self.verify and written:
            try:
                read_back = dict(zip(written, await self._read(client, written)))
            except AcquisitionError as exc:
                read_back = {k: (None, _status_of(exc)) for k in written}
        results = {}
        for key in keys:
            ok = key in written_set
            verified: bool | None = None
            back: float | None = None
            if key in read_back:
                back, status = read_back[key]
                verified = (
                    back is not None
                    and status & 0x80000000 == 0
                    and math.isclose(back, value_of[key], rel_tol=self.verify_rel_tol, abs_tol=1e-12)
                )
            results[key] = WriteResult(
                key,
                float(requested[key]),
                value_of[key],
                limit_of[key],
                "written" if ok else "failed",
                statuses[key][-1],
                len(statuses[key]),
                tuple(statuses[key]),
                verified,
                back,
            )
        return results

    async def _read(self, client: Client, keys: list[str]) -> list[tuple[float | None, int]]:
        params = ua.ReadParameters(
            MaxAge=0,
            TimestampsToReturn=ua.TimestampsToReturn.Neither,
            NodesToRead=[ua.ReadValueId(NodeId=self._node_ids[k], AttributeId=ua.AttributeIds.Value) for k in keys],
        )
        with map_exceptions(self.name, "read"):
            async with asyncio.timeout(self.request_timeout_s):
                dvs = await client.uaclient.read(params)
        out: list[tuple[float | None, int]] = []
        for dv in dvs:
            raw = dv.Value.Value if dv.Value is not None else None
            status = dv.StatusCode.value if dv.StatusCode is not None else 0
            out.append((float(raw) if isinstance(raw, (int, float)) else None, status))
        return out

    def _remember(self, key: str, value: float, process_time_s: float) -> None:
        self.last_value[key] = value
        self.last_time_s[key] = process_time_s

    def _all(self, keys: list[str], requested: Mapping[str, float], action: WriteAction, status: int) -> dict[str, WriteResult]:
        return {k: WriteResult(k, float(requested[k]), math.nan, None, action, status, 0) for k in keys}


def _finite_or_nan(value: object) -> float:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


def _status_of(exc: AcquisitionError) -> int:
    return exc.status if exc.status is not None else ua.StatusCodes.BadCommunicationError
