"""Burst delivery: Fermentry's subscription path vs asyncua's default iterator-style subscription.

10 writable tags of a simulated reactor are changed ROUNDS times as fast as a second client can
write (each value a change), with a 10 ms sampling interval, queue size 1000 and a 500 ms
publishing interval, so one publish response carries over a thousand values. Counted: values
delivered to the application. Run: ``python bench/acquisition_burst.py``.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from asyncua import Client, ua

from simulators.opcua import ManualClock, SimulatorServer
from simulators.process import make_plant
from telemetry.acquisition import EndpointSpec, EndpointSupervisor, SampleBuffer, TagSpec
from telemetry.tags import TagTable

WRITABLE = ["feed_rate_l_per_h", "base_rate_l_per_h", "acid_rate_l_per_h", "antifoam_rate_l_per_h",
            "agitation_rpm", "air_flow_slpm", "o2_flow_slpm", "jacket_temp_c", "do_sp_pct", "temperature_sp_c"]
ROUNDS = 300
REPEATS = 3
PUBLISHING_MS = 500.0


async def burst(writer: Client, nodes: list, lohi: list[tuple[float, float]], start: int) -> int:  # type: ignore[type-arg]
    for k in range(start, start + ROUNDS):
        frac = 0.1 + 0.8 * (k % 97) / 97.0
        await writer.write_values(nodes, [ua.Variant(lo + (hi - lo) * frac, ua.VariantType.Double) for lo, hi in lohi])
    return ROUNDS * len(nodes)


async def settle(s: float = 1.5) -> None:
    await asyncio.sleep(s)  # three publishing intervals: everything published has arrived


async def run_ours(url: str, writer: Client, nodes: list, lohi: list, start: int) -> tuple[int, int]:  # type: ignore[type-arg]
    names = [f"R1.{s}" for s in WRITABLE]
    table = TagTable(names)
    samples = SampleBuffer()
    tags = tuple(TagSpec(i, node_id=f"ns=2;s={n}", sampling_interval_ms=10.0, queue_size=1000) for i, n in enumerate(names))
    spec = EndpointSpec("bench", url, tags, publishing_interval_ms=PUBLISHING_MS)
    async with EndpointSupervisor(spec, table, samples) as sup:
        await sup.wait_connected(10)
        await settle()
        samples.drain()
        sent = await burst(writer, nodes, lohi, start)
        await settle()
        return sent, len(samples.drain())


async def run_iterator(url: str, writer: Client, nodes: list, lohi: list, start: int) -> tuple[int, int]:  # type: ignore[type-arg]
    client = Client(url)
    await client.connect()
    try:
        sub = await client.create_subscription(PUBLISHING_MS)  # iterator mode, asyncua defaults
        await sub.subscribe_data_change([client.get_node(n.nodeid) for n in nodes], queuesize=1000, sampling_interval=10.0)
        received = 0

        async def consume() -> None:
            nonlocal received
            async for _ in sub:
                received += 1

        task = asyncio.create_task(consume())
        await settle()
        received = 0
        sent = await burst(writer, nodes, lohi, start)
        await settle()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sub.delete()
        return sent, received
    finally:
        await client.disconnect()


async def main() -> None:
    async with SimulatorServer(make_plant("ecoli", 1), port=0, clock=ManualClock()) as srv:
        ranges = {s.name: (s.lo, s.hi) for s in srv.plants[0].signals}
        lohi = [ranges[s] for s in WRITABLE]
        writer = Client(srv.endpoints[0])
        await writer.connect()
        nodes = [writer.get_node(f"ns=2;s=R1.{s}") for s in WRITABLE]
        results: dict[str, list[float]] = {"ours": [], "iterator": []}
        t0 = time.perf_counter()
        for rep in range(REPEATS):
            for name, fn in (("ours", run_ours), ("iterator", run_iterator)):
                sent, got = await fn(srv.endpoints[0], writer, nodes, lohi, start=(2 * rep + (name == "iterator")) * ROUNDS)
                results[name].append(got / sent)
                print(f"repeat {rep} {name:8s} sent {sent} delivered {got} ({100 * got / sent:.1f} %)")
        await writer.disconnect()
    ours, it = statistics.median(results["ours"]), statistics.median(results["iterator"])
    print(f"FIGURE delivered_fraction_fermentry {ours:.4f}")
    print(f"FIGURE delivered_fraction_asyncua_iterator_default {it:.4f}")
    print(f"RATIO delivered_fermentry_over_asyncua_iterator {ours / it if it else float('inf'):.3f}")
    print(f"FIGURE bench_wall_s {time.perf_counter() - t0:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
