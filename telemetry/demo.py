"""``fermentry demo``: simulated fermenters and the service together, on the embedded default.

Starts three simulated E. coli fed-batch reactors served over OPC UA on a free loopback
port, runs the service on ``config/demo.toml`` against them at high speed (local store,
no database needed), prints a live status table, and a summary at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from telemetry import diagnostics

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "demo.toml"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="simulated fermenters + the service, with a live status table")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="service configuration (default: config/demo.toml)")
    p.add_argument("--reactors", type=int, default=3, help="simulated reactors (the config must list them)")
    p.add_argument("--speed", type=float, default=200.0, help="process seconds per wall second (default 200)")
    p.add_argument("--duration", type=float, default=120.0,
                   help="wall seconds to run (default 120: 6.7 h of process time at 200x)")
    p.add_argument("--start-h", type=float, default=0.0, help="fast-forward the simulator this many process hours first")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--inoculum", type=float, default=1.0, metavar="G_PER_L",
                   help="biomass at inoculation, g/L (default 1.0: the batch phase ends after about 5 h)")
    p.add_argument("--every", type=float, default=3.0, help="status table every N wall seconds")
    p.add_argument("--store", help="local store folder (default: the config's [store] path)")
    p.set_defaults(func=run)


def demo_config(path: Path, *, url: str, speed: float, store: str | None) -> Any:
    """The demo configuration pointed at our simulator, with OPC UA intervals scaled to ``speed``.

    Publishing and sampling intervals are wall time; the control period is process time. At
    300x a 1 s publishing interval would be 5 process minutes between values, so they shrink
    by the speed factor, but no lower than 50 ms: asyncua (pure Python) cannot promise a
    shorter publishing cycle, and tags go stale after 3 missed cycles.
    """
    from telemetry.config import validate_config

    data = tomllib.loads(path.read_text())
    interval_ms = lambda ms: max(50.0, ms / speed)  # noqa: E731
    for ep in data.get("endpoints", {}).values():
        ep["url"] = url
        ep["publishing_interval_ms"] = interval_ms(ep.get("publishing_interval_ms", 1000.0))
    defaults = data.setdefault("reactor_defaults", {})
    if "sampling_interval_ms" in defaults:
        defaults["sampling_interval_ms"] = interval_ms(defaults["sampling_interval_ms"])
    if store is not None:
        data.setdefault("store", {})["path"] = str(Path(store).resolve())
    return validate_config(data, source=str(path), base_dir=path.parent)


def run(args: argparse.Namespace) -> int:
    from telemetry.errors import ConfigError

    try:
        return asyncio.run(_demo(args))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1


async def _demo(args: argparse.Namespace) -> int:
    from simulators.opcua import RealTimeClock, SimulatorServer
    from simulators.process import make_plant
    from telemetry.service.runner import Service
    from telemetry.service.status import StatusView

    plant = make_plant("ecoli", args.reactors, seed=args.seed, biomass_g_per_l=args.inoculum)
    if args.start_h > 0:
        plant.advance(args.start_h * 3600.0)
    tick_s = max(0.02, min(0.1, 5.0 / args.speed))  # about one simulator step per control period
    server = SimulatorServer(plant, port=0, speed=args.speed, clock=RealTimeClock(tick_s=tick_s))
    await server.start()
    try:
        url = server.endpoints[0]
        cfg = demo_config(Path(args.config), url=url, speed=args.speed, store=args.store)
        service = Service(cfg)
        view = StatusView(service, every_s=args.every)
        view.attach()
        print(f"simulator: {args.reactors} E. coli reactors at {args.speed:g}x on {url}")
        print(f"service:   {len(service.plan.table)} tags, {sum(len(g.program.loop_names) for g in service.plan.groups)} "
              f"loops per reactor group, store {Path(cfg.store.path).resolve()}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        diagnostics.install(loop)  # kill -USR1: task stacks, -USR2: thread stacks
        wall0 = time.monotonic()
        runner = asyncio.create_task(service.run(stop))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(args.duration):
                await stop.wait()
        stop.set()
        await runner
        wall = time.monotonic() - wall0
        print(view.render())
        print(_summary(service, plant, wall))
    finally:
        await server.stop()
    return 0


def _summary(service: Any, plant: Any, wall_s: float) -> str:
    """What the run did, and each reactor's true state from the model (not the sensors)."""
    s = service.stats
    lines = [
        "",
        f"summary: {wall_s:.0f} s wall, {s.scans} control scans, {service.recorder.committed} points committed "
        f"to the local store, {s.writes} output writes ({s.write_failures} failed), {s.events} events",
    ]
    truth = plant.true_values()
    for i, reactor in enumerate(service.plan.reactors):
        parts = [reactor, f"phase {plant.phases[i]}"]
        for key, label in (("biomass_g_per_l", "X"), ("glucose_g_per_l", "S"), ("acetate_g_per_l", "Ac"),
                           ("volume_l", "V")):
            if key in truth:
                parts.append(f"{label}={float(truth[key][i]):.2f}")
        lines.append("  " + "  ".join(parts))
    lines.append(f"query it: python -c \"from telemetry.store import Store; "
                 f"print(Store('{service.store_path}').query('sample', tags={{'signal': 'do_pct'}}, limit=5))\"")
    return "\n".join(lines)
