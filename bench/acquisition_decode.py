"""Receiving OPC UA data changes: asyncua's generic PublishResponse decoding and ours, same process, same bytes.

The bytes are real: the simulator (``--reactors`` E. coli reactors, 30 signals each) runs here on a
manual clock, the service's acquisition (``EndpointSupervisor``) subscribes to every signal, the
clock advances one tick, and the largest PublishResponse body received is kept: ~1300 changed
Double values, each with status, source and server timestamps, as the simulator sends them.
A synthetic response of the same size with a failed sensor (Bad, no value) every 10th value
and one with Int32 and Double values alternating show the decoder off its best case.

Measured, medians over ``--repeats`` (each kind alternates with its baseline, so drift hits both):

* decode: ``struct_from_binary(ua.PublishResponse, data)`` (what ``UaSession.publish`` does) vs
  ``decode_publish_response``                      -> RATIO publish_decode_vs_asyncua,
                                                      FIGURE publish_decode_us_per_value
* ingest, decode + TagTable + SampleBuffer: before (asyncua decode, then per value
  ``decode_datavalue`` + ``TagTable.update`` + ``SampleBuffer.append``, as ``EndpointSession._ingest``
  did) vs now (fast decode + ``EndpointSession._ingest``)  -> RATIO ingest_vs_before
* hand-over to the recorder: ``drain()`` + the recorder's four ``np.fromiter`` vs ``drain_columns()``

Run: ``.venv/bin/python bench/acquisition_decode.py [--reactors 130] [--repeats 30]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asyncua import Client, ua  # noqa: E402
from asyncua.common.utils import Buffer  # noqa: E402
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary  # noqa: E402

from simulators.opcua import ManualClock, SimulatorServer  # noqa: E402
from simulators.process import make_plant  # noqa: E402
from telemetry.acquisition import AcquisitionStats, EndpointSession, EndpointSpec, EndpointSupervisor, SampleBuffer, TagSpec  # noqa: E402
from telemetry.acquisition.publish_decode import DataChangeColumns, decode_publish_response  # noqa: E402
from telemetry.acquisition.samples import decode_datavalue  # noqa: E402
from telemetry.tags import TagTable  # noqa: E402


def wanted(subscription_id: int) -> bool:
    return True


# ---- the bytes ----------------------------------------------------------------------------------
async def capture_real(n_reactors: int) -> tuple[bytes, list[str]]:
    """The largest PublishResponse body our acquisition receives after one simulator tick."""
    plant = make_plant("ecoli", n_reactors, seed=1)
    names = [f"R{k}.{s.name}" for k in range(1, n_reactors + 1) for s in plant.signals]
    bodies: list[bytes] = []

    def client_factory(spec: EndpointSpec) -> Client:
        client = Client(spec.url, timeout=spec.request_timeout_s)
        session = client.uaclient.session
        inner = session._send_request

        async def send_request(request: Any, timeout: float | None = None,
                               message_type: ua.MessageType = ua.MessageType.SecureMessage) -> Buffer:
            data = await inner(request, timeout, message_type)
            if isinstance(request, ua.PublishRequest):
                bodies.append(data.copy().read(len(data)))
            return data

        session._send_request = send_request  # type: ignore[method-assign]
        return client

    clock = ManualClock()
    table, samples = TagTable(names), SampleBuffer()
    async with SimulatorServer(plant, port=0, clock=clock, speed=60.0) as srv:
        tags = tuple(TagSpec(i, node_id=f"ns=2;s={n}") for i, n in enumerate(names))
        spec = EndpointSpec("bench", srv.endpoints[0], tags, publishing_interval_ms=100.0, request_timeout_s=30.0,
                            read_chunk_size=1000)
        async with EndpointSupervisor(spec, table, samples, client_factory=client_factory) as sup:
            await sup.wait_connected(60)
            await asyncio.wait_for(samples.wait_total(len(names)), 60)  # initial values
            n = samples.total
            bodies.clear()
            await clock.advance(1.0)
            await asyncio.wait_for(samples.wait_total(n + 1), 60)
    return max(bodies, key=len), names


def synthetic(n: int, kind: str) -> bytes:
    """A response of ``n`` values shaped as the simulator's, with Bad values or Int32 values mixed in."""
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def datavalue(k: int) -> ua.DataValue:
        source = t0 + timedelta(milliseconds=k)
        if kind == "bad_every_10th" and k % 10 == 3:
            return ua.DataValue(ua.Variant(None, ua.VariantType.Null), ua.StatusCode(ua.StatusCodes.BadSensorFailure),
                                SourceTimestamp=source, ServerTimestamp=t0)
        if kind == "int32_double_alternating" and k % 2:
            return ua.DataValue(ua.Variant(k, ua.VariantType.Int32), ua.StatusCode(0), SourceTimestamp=source, ServerTimestamp=t0)
        return ua.DataValue(ua.Variant(k * 0.5, ua.VariantType.Double), ua.StatusCode(0), SourceTimestamp=source, ServerTimestamp=t0)

    items = [ua.MonitoredItemNotification(ClientHandle=k, Value=datavalue(k)) for k in range(n)]
    message = ua.NotificationMessage(SequenceNumber=2, PublishTime=t0, NotificationData=[ua.DataChangeNotification(MonitoredItems=items)])
    return struct_to_binary(ua.PublishResponse(Parameters=ua.PublishResult(SubscriptionId=1, NotificationMessage=message)))


def values_in(response: ua.PublishResponse) -> int:
    return sum(len(n.handle) for n in response.Parameters.NotificationMessage.NotificationData if isinstance(n, DataChangeColumns))


# ---- the two ways of ingesting ------------------------------------------------------------------
def ingest_before(message: ua.NotificationMessage, table: TagTable, samples: SampleBuffer, live: set[int],
                  live_ids: np.ndarray, stats: AcquisitionStats) -> None:
    """``EndpointSession._ingest`` as it was: one decode_datavalue, update and append per value."""
    now, wall = time.monotonic(), time.time()
    notifications = message.NotificationData or ()
    for notification in notifications:
        if isinstance(notification, ua.StatusChangeNotification) and not notification.Status.is_good():
            return
    stats.publish_responses += 1
    table.touch(live_ids, now)
    for notification in notifications:
        if isinstance(notification, ua.DataChangeNotification):
            for item in notification.MonitoredItems:
                tag = item.ClientHandle
                if tag not in live:
                    continue
                value, source_time_s, status, overflow = decode_datavalue(item.Value, wall)
                stats.overflows += overflow
                stats.notifications += 1
                samples.append(table.update(tag, value, source_time_s, status, now))


def recorder_columns(samples: list[Any]) -> tuple[np.ndarray, ...]:
    """What the recorder does with ``drain()`` today (telemetry/service/recorder.py)."""
    n = len(samples)
    return (np.fromiter((s.tag for s in samples), dtype=np.intp, count=n),
            np.fromiter((s.value for s in samples), dtype=np.float64, count=n),
            np.fromiter((s.source_time_s for s in samples), dtype=np.float64, count=n),
            np.fromiter((s.status for s in samples), dtype=np.int64, count=n))


def timed(fn: Callable[[], Any]) -> float:
    """Seconds of one call, with the garbage collector off: a collection triggered by the other
    side's garbage must not land in this one's time. asyncua's decoding makes ~10 objects a value,
    ours a few per response, so leaving collections out makes asyncua's figure, and the ratios,
    conservative. (No ``gc.collect()`` before: a full collection flushes the CPU caches, and the
    service does not run one before every publish response.)"""
    gc.disable()
    try:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t
    finally:
        gc.enable()


def median_pair(repeats: int, baseline: Callable[[], Any], ours: Callable[[], Any]) -> tuple[float, float]:
    times: dict[int, list[float]] = {0: [], 1: []}
    baseline(), ours()  # warm caches (asyncua builds its decoders on first use)
    for _ in range(repeats):
        for k, fn in enumerate((baseline, ours)):
            times[k].append(timed(fn))
    return statistics.median(times[0]), statistics.median(times[1])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reactors", type=int, default=130)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    t_start = time.perf_counter()
    real, names = await capture_real(args.reactors)
    n = values_in(decode_publish_response(Buffer(real), wanted))
    print(f"captured a real PublishResponse: {len(real)} bytes, {n} values ({args.reactors} reactors)")
    cases = {"real": real, "bad_every_10th": synthetic(n, "bad_every_10th"),
             "int32_double_alternating": synthetic(n, "int32_double_alternating")}

    for case, data in cases.items():
        t_asyncua, t_ours = median_pair(args.repeats, lambda: struct_from_binary(ua.PublishResponse, Buffer(data)),
                                        lambda: decode_publish_response(Buffer(data), wanted))
        k = values_in(decode_publish_response(Buffer(data), wanted))
        print(f"decode {case:25s} asyncua {1e3 * t_asyncua:7.2f} ms ({1e6 * t_asyncua / k:6.2f} us/value)   "
              f"ours {1e3 * t_ours:6.3f} ms ({1e6 * t_ours / k:6.3f} us/value)   {t_asyncua / t_ours:6.1f}x")
        if case == "real":
            decode_ratio, decode_us = t_asyncua / t_ours, 1e6 * t_ours / k
            decode_asyncua_us = 1e6 * t_asyncua / k

    # ingest of the real response into a TagTable and a SampleBuffer, before and now
    table_before, table_now = TagTable(names), TagTable(names)
    before_samples, now_samples = SampleBuffer(), SampleBuffer()
    ids = set(range(len(names)))
    live_ids = np.arange(len(names), dtype=np.intp)
    stats_before = AcquisitionStats()
    spec = EndpointSpec("bench", "opc.tcp://127.0.0.1:4840/", tuple(TagSpec(i, node_id=f"ns=2;s={x}") for i, x in enumerate(names)))
    # a session that never connects: only its ingest is used, on responses decoded here
    session = EndpointSession(spec, Client(spec.url), table_now, now_samples, AcquisitionStats(), on_event=lambda e: None,
                              clock=time.monotonic, wall_clock=time.time, sleep=asyncio.sleep)
    session._set_live({i: t for i, t in enumerate(spec.tags)})

    def before() -> None:
        message = struct_from_binary(ua.PublishResponse, Buffer(real)).Parameters.NotificationMessage
        ingest_before(message, table_before, before_samples, ids, live_ids, stats_before)

    def now() -> None:
        session._ingest(decode_publish_response(Buffer(real), wanted).Parameters.NotificationMessage)

    t_before, t_now = median_pair(args.repeats, before, now)
    assert before_samples.total == now_samples.total and stats_before.notifications == session.stats.notifications
    np.testing.assert_array_equal(table_before.value, table_now.value)
    np.testing.assert_array_equal(table_before.status, table_now.status)
    np.testing.assert_array_equal(table_before.source_time_s, table_now.source_time_s)
    print(f"ingest (decode + table + buffer) before {1e6 * t_before / n:6.2f} us/value ({1e3 * t_before:.2f} ms)   "
          f"now {1e6 * t_now / n:6.3f} us/value ({1e3 * t_now:.3f} ms)   {t_before / t_now:6.1f}x")

    # hand-over to the recorder of one response's samples
    def drain_before() -> None:
        recorder_columns(before_samples.drain())

    def drain_now() -> None:
        now_samples.drain_columns()

    drain_times: dict[str, list[float]] = {"before": [], "now": []}
    for _ in range(args.repeats):
        before(), now()
        for key, fn in (("before", drain_before), ("now", drain_now)):
            drain_times[key].append(timed(fn))
    d_before, d_now = (statistics.median(drain_times[k]) for k in ("before", "now"))
    print(f"recorder hand-over before {1e6 * d_before / n:6.3f} us/value   now {1e6 * d_now / n:6.3f} us/value")

    print(f"FIGURE publish_decode_asyncua_us_per_value {decode_asyncua_us:.2f}")
    print(f"FIGURE publish_decode_us_per_value {decode_us:.3f}")
    print(f"RATIO publish_decode_vs_asyncua {decode_ratio:.1f}")
    print(f"FIGURE ingest_before_us_per_value {1e6 * t_before / n:.2f}")
    print(f"FIGURE ingest_us_per_value {1e6 * t_now / n:.3f}")
    print(f"RATIO ingest_vs_before {t_before / t_now:.1f}")
    print(f"FIGURE bench_wall_s {time.perf_counter() - t_start:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
