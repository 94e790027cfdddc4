"""Recording pipeline benchmark: our code and the influxdb-client baseline, same process, same data.

(a) line-protocol encoding of 100k sample records: ``encode_columns`` vs
    ``Point(...).to_line_protocol()``                          -> RATIO lineproto_vs_point
(b) writing 100k points into a real VictoriaMetrics started here: our path (encode -> durable
    store -> forwarder -> InfluxV2Sink) vs influxdb-client's default batching
    ``write_api(write_options=WriteOptions())`` fed Point objects -> RATIO write_vs_influx_batching
(c) end to end (simulators -> OPC UA -> control -> recording): see ``bench_end_to_end`` (lead).

Run: ``.venv/bin/python bench/pipeline.py [--points N] [--repeats K]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from telemetry.lineproto import encode_columns, parse_line  # noqa: E402
from telemetry.sinks import Forwarder, InfluxV2Sink  # noqa: E402
from telemetry.store import Store  # noqa: E402

T0_NS = 1_750_000_000 * 10**9
SIGNALS = ["do_pct", "ph", "temperature_c", "pressure_bar", "volume_l", "offgas_o2_pct", "offgas_co2_pct",
           "our_mmol_per_l_h", "cer_mmol_per_l_h", "rq", "feed_total_l", "base_total_l", "acid_total_l",
           "foam", "glucose_g_per_l", "titer_g_per_l", "od600", "acetate_g_per_l", "agitation_rpm", "air_flow_slpm"]


def make_records(n: int) -> dict[str, object]:
    """n sample records as columns: 8 reactors x 20 signals per scan, one scan per second."""
    rng = np.random.default_rng(0)
    k = np.arange(n)
    n_series = 8 * len(SIGNALS)
    return {
        "reactor": [f"R{(i // len(SIGNALS)) % 8}" for i in range(n)],
        "batch": [f"B-{(i // len(SIGNALS)) % 8:03d}" for i in range(n)],
        "signal": [SIGNALS[i % len(SIGNALS)] for i in range(n)],
        "unit": "%",
        "value": rng.normal(50.0, 10.0, n),
        "quality": np.zeros(n, dtype=np.int64),
        "time_ns": T0_NS + (k // n_series) * 10**9,
    }


def encode_ours(rec: dict[str, object], measurement: str = "sample"):
    return encode_columns(
        measurement,
        {"reactor": rec["reactor"], "batch": rec["batch"], "signal": rec["signal"], "unit": rec["unit"]},
        {"value": rec["value"], "quality": rec["quality"]},
        rec["time_ns"],
    )


def make_points(rec: dict[str, object], measurement: str = "sample") -> list[object]:
    from influxdb_client import Point, WritePrecision

    values = rec["value"].tolist()  # type: ignore[union-attr]
    quality = rec["quality"].tolist()  # type: ignore[union-attr]
    times = rec["time_ns"].tolist()  # type: ignore[union-attr]
    return [
        Point(measurement)
        .tag("reactor", r).tag("batch", b).tag("signal", s).tag("unit", rec["unit"])
        .field("value", v).field("quality", q)
        .time(t, WritePrecision.NS)
        for r, b, s, v, q, t in zip(rec["reactor"], rec["batch"], rec["signal"], values, quality, times)  # type: ignore[call-overload]
    ]


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_encoding(n: int, repeats: int) -> None:
    rec = make_records(n)
    ours = median_time(lambda: encode_ours(rec), repeats)
    theirs = median_time(lambda: [p.to_line_protocol() for p in make_points(rec)], repeats)
    same = [parse_line(x) for x in encode_ours(rec).lines[:200]] == [
        parse_line(p.to_line_protocol()) for p in make_points(rec)[:200]  # Point sorts fields: compare parsed
    ]
    if not same:
        raise SystemExit("our lines and influxdb-client's differ")
    print(f"(a) encode {n} records: ours {ours * 1e3:.1f} ms ({n / ours:,.0f}/s), "
          f"Point.to_line_protocol {theirs * 1e3:.1f} ms ({n / theirs:,.0f}/s)")
    print(f"FIGURE encode_points_per_s {n / ours:.0f}")
    print(f"RATIO lineproto_vs_point {theirs / ours:.2f}")


def bench_write(n: int, repeats: int) -> None:
    from influxdb_client import InfluxDBClient, WriteOptions

    from tests.servers import VictoriaMetricsServer, find_binary

    binary = find_binary("victoria-metrics")
    if binary is None:
        print("(b) skipped: victoria-metrics not installed (apt-get install victoria-metrics)")
        return
    rec = make_records(n)
    with tempfile.TemporaryDirectory() as tmp, VictoriaMetricsServer(binary, Path(tmp) / "vm") as vm:
        run_id = [0]

        def ours() -> None:
            run_id[0] += 1
            with Store(Path(tmp) / f"outbox{run_id[0]}.sqlite3") as store:
                store.append(encode_ours(rec, f"ours{run_id[0]}"))
                asyncio.run(_forward_all(store, InfluxV2Sink(vm.url, bucket="bench")))

        def baseline() -> None:
            run_id[0] += 1
            with InfluxDBClient(url=vm.url, token="", org="-") as client:
                with client.write_api(write_options=WriteOptions()) as write_api:
                    write_api.write("bench", "-", make_points(rec, f"base{run_id[0]}"))
                # leaving the block flushes and waits for every batch

        t_ours = median_time(ours, repeats)
        t_base = median_time(baseline, repeats)
        got = sum(len(s["values"]) for s in vm.export('{__name__=~"ours1_.*"}'))
        assert got == 2 * n, f"VictoriaMetrics holds {got} samples of run 1, expected {2 * n}"
    print(f"(b) write {n} points to VictoriaMetrics: ours (durable store + forwarder) {t_ours:.2f} s "
          f"({n / t_ours:,.0f}/s), influxdb-client WriteOptions() batching {t_base:.2f} s ({n / t_base:,.0f}/s)")
    print(f"FIGURE write_points_per_s {n / t_ours:.0f}")
    print(f"FIGURE influx_batching_points_per_s {n / t_base:.0f}")
    print(f"RATIO write_vs_influx_batching {t_base / t_ours:.2f}")


async def _forward_all(store: Store, sink: InfluxV2Sink) -> None:
    async with Forwarder(store, sink) as forwarder:
        await forwarder.wait_acked(store.last_id())


def bench_end_to_end() -> None:
    """Part (c), end to end: added by the lead."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    bench_encoding(args.points, max(args.repeats, 3))
    bench_write(args.points, args.repeats)
    bench_end_to_end()
    return 0


if __name__ == "__main__":
    sys.exit(main())
