"""``fermentry simulate`` (serve simulated fermenters over OPC UA) and ``fermentry demo``.

Heavy imports (asyncua, numpy, the process models) stay inside the command functions so
``fermentry --help`` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import sys
from pathlib import Path
from typing import Any

PASSWORD_ENV = "FERMENTRY_OPCUA_PASSWORD"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "simulate",
        help="serve simulated fermenters over OPC UA",
        description="Serve N simulated bioreactors over OPC UA until Ctrl-C / SIGTERM. "
        "Prints one endpoint URL per line, then a status line every --status-every seconds.",
    )
    p.add_argument("--reactors", type=_positive_int, default=3, help="number of reactors (default 3)")
    p.add_argument("--organism", choices=("ecoli", "cho"), default="ecoli")
    p.add_argument("--speed", type=_positive_float, default=1.0, help="process seconds per wall second (default 1)")
    p.add_argument("--port", type=int, default=4840, help="TCP port; 0 picks a free one (default 4840)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the process models")
    p.add_argument("--faults", type=Path, help="TOML fault schedule ([[fault]] tables)")
    p.add_argument("--endpoint-per-reactor", action="store_true",
                   help="one server per reactor on consecutive ports, like one controller per vessel")
    p.add_argument("--tick-ms", type=_positive_float, default=100.0, metavar="MS",
                   help="wall milliseconds between plant steps and publishes (default 100)")
    p.add_argument("--status-every", type=_positive_float, default=10.0, metavar="S",
                   help="wall seconds between status lines (default 10)")
    sec = p.add_argument_group("security (all optional; without --cert the endpoint is unsecured)")
    sec.add_argument("--cert", type=Path, help="server certificate (PEM or DER)")
    sec.add_argument("--key", type=Path, help="server private key (PEM or DER)")
    sec.add_argument("--policy", action="append", metavar="NAME",
                     help="security policy, repeatable (default Basic256Sha256_SignAndEncrypt)")
    sec.add_argument("--trust", action="append", type=Path, default=[], metavar="PATH",
                     help="trusted client certificate file or folder, repeatable")
    sec.add_argument("--user", help=f"require this user name; the password comes from ${PASSWORD_ENV}")
    p.set_defaults(func=_simulate)


def add_demo_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "demo",
        help="run simulated fermenters and watch them over OPC UA for a while",
        description="Start an E. coli simulator at high speed, subscribe to DO, pH and temperature "
        "with an independent OPC UA client, print a table every few seconds, then a summary.",
    )
    p.add_argument("--reactors", type=_positive_int, default=3)
    p.add_argument("--speed", type=_positive_float, default=600.0, help="default 600x real time")
    p.add_argument("--duration", type=_positive_float, default=20.0, help="wall seconds to run (default 20)")
    p.add_argument("--every", type=_positive_float, default=4.0, help="wall seconds between tables (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_demo)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


# --------------------------------------------------------------------------- simulate
def _simulate(args: argparse.Namespace) -> int:
    try:
        security = _security_from_args(args)
    except ValueError as exc:
        print(f"fermentry simulate: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_serve(args, security))


def _security_from_args(args: argparse.Namespace) -> Any:
    if args.cert is None and args.key is None:
        if args.user or args.trust or args.policy:
            raise ValueError("--user/--trust/--policy need --cert and --key")
        return None
    if args.cert is None or args.key is None:
        raise ValueError("--cert and --key go together")
    from simulators.opcua import SecurityConfig

    users = {}
    if args.user:
        password = os.environ.get(PASSWORD_ENV)
        if not password:
            raise ValueError(f"--user needs the password in ${PASSWORD_ENV}")
        users[args.user] = password
    policies = tuple(args.policy) if args.policy else ("Basic256Sha256_SignAndEncrypt",)
    return SecurityConfig(args.cert, args.key, policies=policies,
                          trusted_client_certificates=tuple(args.trust), users=users)


async def _serve(args: argparse.Namespace, security: Any) -> int:
    from simulators.opcua import RealTimeClock, SimulatorServer
    from simulators.process import make_plant

    faults: list[Any] = []
    if args.faults is not None:
        from simulators.process.faults import load_faults

        faults = list(load_faults(args.faults))
    plant = make_plant(args.organism, args.reactors, seed=args.seed, faults=faults)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with SimulatorServer(plant, host=args.host, port=args.port, speed=args.speed,
                               clock=RealTimeClock(tick_s=args.tick_ms / 1000.0),
                               endpoint_per_reactor=args.endpoint_per_reactor,
                               security=security, faults=faults) as srv:
        for url in srv.endpoints:
            print(url, flush=True)
        while not stop.is_set():
            try:
                async with asyncio.timeout(args.status_every):
                    await stop.wait()
            except TimeoutError:
                print(_status_line(srv), flush=True)
    print(f"stopped at process time {_hms(srv.process_time_s)}", flush=True)
    return 0


def _status_line(srv: Any) -> str:
    parts = [f"t={_hms(srv.process_time_s)} speed={srv.speed:g}x"]
    for ref in srv.reactors:
        readings = ref.plant.read()
        vals = readings.values
        do, ph, temp = (float(vals[k][ref.index]) for k in ("do_pct", "ph", "temperature_c"))
        parts.append(f"{ref.name}[{ref.plant.phases[ref.index]}] DO={do:.0f}% pH={ph:.2f} T={temp:.1f}C")
    offline = [url for i, url in enumerate(srv.endpoints) if not srv.is_online(i)]
    if offline:
        parts.append(f"OFFLINE: {' '.join(offline)}")
    return " | ".join(parts)


def _hms(seconds: float) -> str:
    h, rem = divmod(int(seconds), 3600)
    return f"{h:d}:{rem // 60:02d}:{rem % 60:02d}"


# ------------------------------------------------------------------------------- demo
_DEMO_SIGNALS = ("do_pct", "ph", "temperature_c")


def _demo(args: argparse.Namespace) -> int:
    return asyncio.run(_run_demo(args))


class _Latest:
    """Subscription handler keeping the newest value and a count per (reactor, signal)."""

    def __init__(self, by_nodeid: dict[str, tuple[str, str]]) -> None:
        self.by_nodeid = by_nodeid
        self.values: dict[tuple[str, str], float] = {}
        self.lo: dict[tuple[str, str], float] = {}
        self.hi: dict[tuple[str, str], float] = {}
        self.count = 0

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        key = self.by_nodeid.get(node.nodeid.to_string())
        if key is None or val is None:
            return
        value = float(val)
        self.values[key] = value
        self.lo[key] = min(self.lo.get(key, value), value)
        self.hi[key] = max(self.hi.get(key, value), value)
        self.count += 1


async def _run_demo(args: argparse.Namespace) -> int:
    from asyncua import Client

    from simulators.opcua import SimulatorServer
    from simulators.process import make_plant

    plant = make_plant("ecoli", args.reactors, seed=args.seed)
    loop = asyncio.get_running_loop()
    async with SimulatorServer(plant, port=0, speed=args.speed) as srv:
        url = srv.endpoints[0]
        print(f"E. coli simulator: {args.reactors} reactors at {args.speed:g}x on {url}", flush=True)
        names = [r.name for r in srv.reactors]
        by_nodeid = {f"ns=2;s={r}.{s}": (r, s) for r in names for s in _DEMO_SIGNALS}
        latest = _Latest(by_nodeid)
        client = Client(url)
        client.session_timeout = 600_000  # the server caps it there; asking for more only logs a warning
        async with client:
            sub = await client.create_subscription(500, latest)
            await sub.subscribe_data_change([client.get_node(n) for n in by_nodeid])
            t0 = loop.time()
            start_s = srv.process_time_s
            while (left := args.duration - (loop.time() - t0)) > 0:
                await asyncio.sleep(min(args.every, left))
                print(f"\nprocess time {_hms(srv.process_time_s)}", flush=True)
                print(f"{'reactor':8}{'DO %':>8}{'pH':>8}{'T degC':>8}")
                for r in names:
                    row = [latest.values.get((r, s), math.nan) for s in _DEMO_SIGNALS]
                    print(f"{r:8}{row[0]:8.1f}{row[1]:8.2f}{row[2]:8.2f}", flush=True)
            await sub.delete()
        covered = srv.process_time_s - start_s
    print(f"\nsummary: {latest.count} data changes over {_hms(covered)} of process time "
          f"({covered / 3600:.1f} h in {args.duration:g} s wall)")
    for r in names:
        ranges = "  ".join(
            f"{s} {latest.lo.get((r, s), math.nan):.2f}..{latest.hi.get((r, s), math.nan):.2f}" for s in _DEMO_SIGNALS
        )
        print(f"  {r}: {ranges}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m simulators.cli simulate|demo ...``: the same commands without the ``fermentry`` entry point."""
    parser = argparse.ArgumentParser(prog="python -m simulators.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    add_demo_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
