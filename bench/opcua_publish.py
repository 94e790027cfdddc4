"""Simulator OPC UA server: cost of publishing one tick, without and with a subscribed client.

The server runs here on a :class:`ManualClock`; ticks of 0.1 s (1x) are delivered on a 100 ms
grid. The client is a child process (so its decoding does not count as server time) that
subscribes to every signal of every reactor the way the service does: no filter, 100 ms
publishing interval, a keep-alive every interval.

Reports, per phase: median and p90 of ``clock.advance(0.1)`` (plant step + publish), server CPU
per tick (process time over the window: includes encoding and sending notifications), and the
notifications per second the client received.

``--asyncua`` runs the server without our fast paths and heap freeze (``fast_paths=False,
freeze_heap=False``): asyncua's generic encoding of every notification, the baseline.

Run: ``.venv/bin/python bench/opcua_publish.py [--reactors 100] [--ticks 100] [--profile] [--asyncua]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


async def subscribe_signals(client: object, handler: object, n_reactors: int, names: list[str], *,
                            publishing_ms: float, lifetime_count: int, keepalive_count: int) -> list[object]:
    """Subscribe ``client`` to ``names`` of every reactor, unfiltered, as the service does."""
    from asyncua import ua

    from simulators.opcua import signal_nodeid

    params = ua.CreateSubscriptionParameters(
        RequestedPublishingInterval=publishing_ms, RequestedLifetimeCount=lifetime_count,
        RequestedMaxKeepAliveCount=keepalive_count, MaxNotificationsPerPublish=0, PublishingEnabled=True, Priority=0)
    sub = await client.create_subscription(params, handler)  # type: ignore[attr-defined]
    nodes = [client.get_node(signal_nodeid(f"R{k + 1}", n)) for k in range(n_reactors) for n in names]  # type: ignore[attr-defined]
    for i in range(0, len(nodes), 1000):
        await sub.subscribe_data_change(nodes[i:i + 1000], queuesize=10, sampling_interval=0.0)
    return nodes


async def _client(url: str, n_reactors: int) -> None:
    from asyncua import Client

    from simulators.process import make_plant

    names = [s.name for s in make_plant("ecoli", 1).signals]
    count = 0

    class Handler:
        def datachange_notification(self, node: object, val: object, data: object) -> None:
            nonlocal count
            count += 1

    async with Client(url, timeout=30) as client:
        nodes = await subscribe_signals(client, Handler(), n_reactors, names, publishing_ms=100.0,
                                        lifetime_count=600, keepalive_count=1)
        print(f"SUBSCRIBED {len(nodes)}", flush=True)
        while True:
            line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            if line.startswith("COUNT"):
                print(f"COUNT {count}", flush=True)
            elif not line or line.startswith("QUIT"):
                return


async def _ticks(clock: object, n: int, period_s: float = 0.1) -> tuple[list[float], float]:
    loop = asyncio.get_running_loop()
    times, due = [], loop.time()
    cpu0 = time.process_time()
    for _ in range(n):
        await asyncio.sleep(max(0.0, due - loop.time()))
        t0 = time.perf_counter()
        await clock.advance(0.1)  # type: ignore[attr-defined]
        times.append(time.perf_counter() - t0)
        due = max(due + period_s, loop.time())
    return times, (time.process_time() - cpu0) / n


def _report(label: str, times: list[float], cpu_per_tick: float, extra: str = "") -> None:
    q = sorted(times)
    print(f"{label}: tick median {1e3 * statistics.median(q):.1f} ms, p90 {1e3 * q[int(0.9 * len(q))]:.1f} ms, "
          f"server CPU {1e3 * cpu_per_tick:.1f} ms/tick{extra}", flush=True)


async def main(n_reactors: int, n_ticks: int, profile: bool, ours: bool) -> None:
    from simulators.opcua import ManualClock, SimulatorServer
    from simulators.process import make_plant

    clock = ManualClock()
    async with SimulatorServer(make_plant("ecoli", n_reactors), port=0, clock=clock,
                               fast_paths=ours, freeze_heap=ours) as srv:
        await clock.advance(0.1, ticks=5)  # warm-up
        times, cpu = await _ticks(clock, n_ticks)
        _report(f"{n_reactors} reactors, no client", times, cpu)

        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--client", srv.endpoints[0], "--reactors", str(n_reactors),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert child.stdin is not None and child.stdout is not None

        async def ask_count() -> int:
            child.stdin.write(b"COUNT\n")  # type: ignore[union-attr]
            while True:
                line = (await child.stdout.readline()).decode()  # type: ignore[union-attr]
                if line.startswith("COUNT"):
                    return int(line.split()[1])

        try:
            # keep ticking while the client subscribes (as the real clock would)
            ready = asyncio.ensure_future(child.stdout.readline())
            while not ready.done():
                await clock.advance(0.1)
                await asyncio.sleep(0.1)
            print(f"client: {ready.result().decode().strip()}", flush=True)
            await _ticks(clock, 20)  # drain initial values
            n0, t0 = await ask_count(), time.perf_counter()
            profiler = None
            if profile:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            times, cpu = await _ticks(clock, n_ticks)
            if profiler is not None:
                import pstats

                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            n1, t1 = await ask_count(), time.perf_counter()
            _report(f"{n_reactors} reactors, 1 client subscribed to all signals", times, cpu,
                    f"; client received {(n1 - n0) / (t1 - t0):,.0f} notifications/s")
        finally:
            child.stdin.write(b"QUIT\n")
            await asyncio.wait_for(child.wait(), 30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reactors", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=100)
    parser.add_argument("--profile", action="store_true", help="cProfile the server while subscribed")
    parser.add_argument("--asyncua", action="store_true", help="asyncua's generic paths, no heap freeze (baseline)")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(_client(args.client, args.reactors))
    else:
        asyncio.run(main(args.reactors, args.ticks, args.profile, not args.asyncua))
