"""One control scan's batched OPC UA write of 1000 outputs: asyncua's path against ours.

The simulator server (100 reactors) runs in a child process, as in ``bench/pipeline.py`` part (c),
so server and client each have a core. The client subscribes to every written output the way the
service reads its outputs back (no filter, 100 ms publishing interval), so each write also pays
for its data-change notifications. Each repeat writes the 10 e2e outputs of every reactor (new
values each time, all within range) in one WriteRequest; writes start on a ``--period-ms`` grid so
the notifications of one are delivered before the next, as with the service's 1 s control scan.

Two configurations, each with a fresh server:

asyncua
    the client builds ``ua.WriteParameters`` (as our Actuator used to) and asyncua encodes them;
    the server runs asyncua's generic decode and write path (``fast_paths=False``,
    ``freeze_heap=False``): where we started.
ours
    the client encodes with ``telemetry.acquisition.fastencode`` (as the Actuator now does); the
    server runs ``simulators.opcua.fastpath`` with a frozen heap (the simulator's defaults).

For each: the median and p90 of the round trip (build + encode + send + server + response
decode), the client's build+encode, the server's own time per WriteRequest measured inside the
child (decode, apply, response) and its garbage-collection pauses over the window. Then::

    FIGURE write_1000_ms <median round trip, ours>
    FIGURE write_1000_asyncua_ms <median round trip, asyncua>
    RATIO opcua_write_vs_asyncua <asyncua median / ours>

Run: ``.venv/bin/python bench/opcua_write.py [--reactors 100] [--repeats 40] [--tick-ms 0]
[--period-ms 250] [--load] [--profile]``. ``--tick-ms 50`` ticks the plant as ``fermentry simulate
--tick-ms 50`` does; ``--load`` adds a third process subscribed to every other signal with a 20 ms
publishing interval (with the writer, the service's load on the server in ``bench/pipeline.py``
part (c), ~25k notifications/s with ``--tick-ms 50``); ``--profile`` prints the server's cProfile of the measured
window (ours only).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# the outputs of bench/pipeline.py part (c): 10 loops per reactor, one output each
OUTPUTS = ["agitation_rpm", "base_rate_l_per_h", "jacket_temp_c", "air_flow_slpm", "o2_flow_slpm",
           "acid_rate_l_per_h", "feed_rate_l_per_h", "antifoam_rate_l_per_h", "do_sp_pct", "ph_sp"]
SPANS = ("total", "decode", "apply", "respond", "gc")


# ------------------------------------------------------------------------------------ server side
def _instrument(spans: dict[str, list[float]]) -> None:
    """Time the server's handling of WriteRequests, per part, and every garbage collection."""
    from asyncua.server.internal_session import InternalSession
    from asyncua.server.uaprocessor import UaProcessor

    from simulators.opcua import fastpath
    from simulators.opcua.write_guard import GuardedAttributeService

    state = {"in_write": False, "gc_t0": 0.0}

    def wrap(owner: Any, name: str, key: str, is_async: bool) -> None:
        inner = getattr(owner, name)

        def record(t0: float) -> None:
            if state["in_write"]:
                spans[key].append(time.perf_counter() - t0)

        if is_async:
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return await inner(*args, **kwargs)
                finally:
                    record(t0)
        else:
            def wrapper(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
                t0 = time.perf_counter()
                try:
                    return inner(*args, **kwargs)
                finally:
                    record(t0)
        setattr(owner, name, wrapper)

    process_message = UaProcessor.process_message

    async def timed_process_message(self: Any, seqhdr: Any, body: Any) -> Any:
        if body.copy(4).read(4) != fastpath.WRITE_REQUEST_TYPEID:
            return await process_message(self, seqhdr, body)
        state["in_write"] = True
        t0 = time.perf_counter()
        try:
            return await process_message(self, seqhdr, body)
        finally:
            state["in_write"] = False
            spans["total"].append(time.perf_counter() - t0)

    UaProcessor.process_message = timed_process_message  # type: ignore[method-assign]
    wrap(InternalSession, "write", "apply", True)  # asyncua's path
    wrap(UaProcessor, "send_response", "respond", False)
    wrap(GuardedAttributeService, "write_plan", "apply", True)  # the fast path (its answer is sent inside)
    wrap(fastpath, "_plan", "decode", False)  # a known layout's gather, or the full decode
    wrap(fastpath, "_send", "respond", False)

    def gc_timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            state["gc_t0"] = time.perf_counter()
        else:
            spans["gc"].append(time.perf_counter() - state["gc_t0"])

    gc.callbacks.append(gc_timer)


async def _serve(n_reactors: int, tick_ms: float, ours: bool, profile: bool) -> None:
    """The child: a simulator server answering RESET, STATS and QUIT on stdin."""
    from simulators.opcua import ManualClock, RealTimeClock, SimulatorServer
    from simulators.process import make_plant

    spans: dict[str, list[float]] = {k: [] for k in SPANS}
    _instrument(spans)
    clock = RealTimeClock(tick_s=tick_ms / 1000.0) if tick_ms > 0 else ManualClock()
    profiler = None
    async with SimulatorServer(make_plant("ecoli", n_reactors), port=0, clock=clock,
                               fast_paths=ours, freeze_heap=ours) as srv:
        print(f"READY {srv.endpoints[0]}", flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if line.startswith("RESET"):
                for v in spans.values():
                    v.clear()
                if profile:
                    import cProfile

                    profiler = cProfile.Profile()
                    profiler.enable()
                print("OK", flush=True)
            elif line.startswith("STATS"):
                if profiler is not None:
                    import pstats

                    profiler.disable()
                    pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(30)
                    profiler = None
                print("STATS " + json.dumps(spans), flush=True)
            elif not line or line.startswith("QUIT"):
                return


class _Server:
    """A child process running :func:`_serve`, spoken to over its stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc, self.url = proc, url

    @classmethod
    async def start(cls, *args: str) -> _Server:
        """This script as a child with ``args``, once it printed READY (and the URL it serves)."""
        proc = await asyncio.create_subprocess_exec(sys.executable, __file__, *args, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE)
        line = (await cls._line(proc, "READY")).split()
        return cls(proc, line[1] if len(line) > 1 else "")

    @staticmethod
    async def _line(proc: asyncio.subprocess.Process, prefix: str) -> str:
        assert proc.stdout is not None
        while True:
            line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
            if not line:
                raise RuntimeError("simulator child exited")
            if line.startswith(prefix):
                return line

    async def ask(self, command: str, answer: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\n".encode())
        return await self._line(self.proc, answer)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"QUIT\n")
            await asyncio.wait_for(self.proc.wait(), 30)


# ------------------------------------------------------------------------------------ load
async def _load_client(url: str, n_reactors: int) -> None:
    """The ``--load`` child: subscribes to every signal the writing client does not (the outputs),
    so that together they load the server as the service does, until QUIT."""
    from asyncua import Client

    from simulators.process import make_plant

    class Handler:
        def datachange_notification(self, node: object, val: object, data: object) -> None:
            pass

    names = [s.name for s in make_plant("ecoli", 1).signals if s.name not in OUTPUTS]
    from opcua_publish import subscribe_signals  # bench/ is the script's directory, on sys.path

    async with Client(url, timeout=30) as client:
        await subscribe_signals(client, Handler(), n_reactors, names, publishing_ms=20.0,
                                lifetime_count=10000, keepalive_count=5000)
        print("READY", flush=True)
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        assert not line or line.startswith("QUIT")


# ------------------------------------------------------------------------------------ client side
def _writer(client: Any, node_ids: list[Any], ours: bool) -> Callable[[list[float]], tuple[float, Awaitable[Any]]]:
    """A function that builds and encodes one batch (returning its cost) and the awaitable write."""
    from asyncua import ua
    from asyncua.ua.ua_binary import struct_to_binary

    from telemetry.acquisition.fastencode import WriteEncoder

    if ours:
        encoder = WriteEncoder({i: (nid, "Double") for i, nid in enumerate(node_ids)})
        keys = list(range(len(node_ids)))

        def write_ours(values: list[float]) -> tuple[float, Awaitable[Any]]:
            t0 = time.perf_counter()
            params = encoder.encode(keys, values)
            return time.perf_counter() - t0, client.uaclient.write(params)

        return write_ours

    def build(values: list[float]) -> Any:
        return ua.WriteParameters(NodesToWrite=[
            ua.WriteValue(NodeId=nid, AttributeId=ua.AttributeIds.Value,
                          Value=ua.DataValue(ua.Variant(v, ua.VariantType.Double)))
            for nid, v in zip(node_ids, values)])

    def write_asyncua(values: list[float]) -> tuple[float, Awaitable[Any]]:
        # uaclient.write encodes inside; its share is timed on a copy, apart from the round trip
        t0 = time.perf_counter()
        struct_to_binary(ua.WriteRequest(Parameters=build(values)))
        return time.perf_counter() - t0, client.uaclient.write(build(values))

    return write_asyncua


async def _measure(server: _Server, n_reactors: int, repeats: int, period_s: float, ours: bool) -> dict[str, list[float]]:
    from asyncua import Client

    from simulators.opcua import signal_nodeid
    from simulators.process import make_plant

    signals = {s.name: s for s in make_plant("ecoli", 1).signals}
    keys = [(f"R{k + 1}", name) for k in range(n_reactors) for name in OUTPUTS]
    node_ids = [signal_nodeid(r, name) for r, name in keys]
    ranges = [(signals[name].lo, signals[name].hi) for _, name in keys]

    class Handler:
        def datachange_notification(self, node: object, val: object, data: object) -> None:
            pass

    out: dict[str, list[float]] = {"round_trip": [], "client": []}
    loop = asyncio.get_running_loop()
    async with Client(server.url, timeout=30) as client:
        sub = await client.create_subscription(100.0, Handler())
        await sub.subscribe_data_change([client.get_node(n) for n in node_ids], queuesize=10, sampling_interval=0.0)
        write = _writer(client, node_ids, ours)
        due = loop.time()
        for j in range(-5, repeats):  # 5 to warm up
            await asyncio.sleep(max(0.0, due - loop.time()))
            due += period_s
            if j == 0:
                await server.ask("RESET", "OK")
            values = [lo + (hi - lo) * (((j * 7 + i) % 97) / 96.0) for i, (lo, hi) in enumerate(ranges)]
            t0 = time.perf_counter()
            client_s, pending = write(values)
            results = await pending
            elapsed = time.perf_counter() - t0
            bad = [r for r in results if not r.is_good()]
            if bad:
                raise RuntimeError(f"{len(bad)} writes refused, e.g. {bad[0]}")
            if j >= 0:
                out["round_trip"].append(elapsed)
                out["client"].append(client_s)
    return out


def _ms(values: list[float], q: float = 0.5) -> str:
    if not values:
        return "-"
    s = sorted(values)
    return f"{1e3 * (statistics.median(s) if q == 0.5 else s[min(len(s) - 1, int(q * len(s)))]):.2f} ms"


async def main(n_reactors: int, repeats: int, tick_ms: float, period_ms: float, load: bool, profile: bool) -> None:
    medians = {}
    for ours in ((True,) if profile else (False, True)):
        server = await _Server.start("--serve", "--reactors", str(n_reactors), "--tick-ms", str(tick_ms),
                                     *(["--ours"] if ours else []), *(["--profile"] if profile else []))
        loader = None
        try:
            if load:
                loader = await _Server.start("--load-client", server.url, "--reactors", str(n_reactors))
            times = await _measure(server, n_reactors, repeats, period_ms / 1000.0, ours)
            spans = json.loads((await server.ask("STATS", "STATS ")).split(" ", 1)[1])
        finally:
            if loader is not None:
                await loader.stop()
            await server.stop()
        label = "ours" if ours else "asyncua"
        rt, total, gcs = times["round_trip"], spans["total"], spans["gc"]
        decode = spans["decode"] or [t - a - r for t, a, r in zip(total, spans["apply"], spans["respond"])]
        print(f"{label}: {n_reactors * len(OUTPUTS)} outputs, {repeats} writes, tick {tick_ms:g} ms"
              f"{', with a load client' if load else ''}: "
              f"round trip median {_ms(rt)}, p90 {_ms(rt, 0.9)}; client build+encode {_ms(times['client'])}")
        print(f"  server per WriteRequest {_ms(total)} (decode {_ms(decode)}, apply {_ms(spans['apply'])}, "
              f"response {_ms(spans['respond'])}); {len(gcs)} garbage collections, {1e3 * sum(gcs):.0f} ms "
              f"in all, longest {1e3 * max(gcs, default=0.0):.1f} ms")
        medians[label] = statistics.median(rt)
    if "asyncua" in medians:
        print(f"FIGURE write_1000_ms {1e3 * medians['ours']:.2f}")
        print(f"FIGURE write_1000_asyncua_ms {1e3 * medians['asyncua']:.2f}")
        print(f"RATIO opcua_write_vs_asyncua {medians['asyncua'] / medians['ours']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reactors", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--tick-ms", type=float, default=0.0, help="plant tick in the server; 0: no ticking")
    parser.add_argument("--period-ms", type=float, default=250.0, help="one write every period")
    parser.add_argument("--load", action="store_true", help="a third process subscribed to every other signal")
    parser.add_argument("--profile", action="store_true", help="cProfile the server over the measured window")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ours", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--load-client", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.reactors, args.tick_ms, args.ours, args.profile))
    elif args.load_client:
        asyncio.run(_load_client(args.load_client, args.reactors))
    else:
        asyncio.run(main(args.reactors, args.repeats, args.tick_ms, args.period_ms, args.load, args.profile))
