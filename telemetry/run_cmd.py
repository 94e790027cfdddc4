"""``fermentry run``: the service on a configuration file, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from telemetry import diagnostics

log = logging.getLogger("fermentry")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run the service: OPC UA -> control -> local store -> InfluxDB")
    p.add_argument("--config", "-c", required=True, help="TOML configuration file (see config/)")
    p.add_argument("--influx-url", help="override [influxdb] url, e.g. http://127.0.0.1:8086")
    p.add_argument("--influx-bucket", help="override [influxdb] bucket (1.x: database/retention-policy)")
    p.add_argument("--shadow", action="store_true", help="compute and record outputs, never write them")
    p.add_argument("--status-every", type=float, default=0.0, metavar="S",
                   help="print a status table every S seconds of wall time (0: never)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from telemetry.config import apply_overrides, load_config
    from telemetry.errors import ConfigError
    from telemetry.service.runner import Service

    try:
        cfg = load_config(args.config)
        if args.influx_url is not None or args.influx_bucket is not None:
            cfg = apply_overrides(cfg, influx_url=args.influx_url, influx_bucket=args.influx_bucket)
        service = Service(cfg, write_mode="shadow" if args.shadow else None)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return asyncio.run(_serve(service, args.status_every))


async def _serve(service: object, status_every: float) -> int:
    from telemetry.service.runner import Service
    from telemetry.service.status import StatusView

    assert isinstance(service, Service)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    diagnostics.install(loop)  # kill -USR1: task stacks, -USR2: thread stacks
    if status_every > 0:
        StatusView(service, every_s=status_every).attach()
    log.info("fermentry running: %d reactors, %d tags, %d endpoints, write mode %s, store %s",
             len(service.plan.reactors), len(service.plan.table), len(service.plan.endpoints),
             service.write_mode, service.store.path if hasattr(service.store, "path") else "")
    await service.run(stop)
    print(f"stopped: {service.stats.scans} scans, {service.recorder.committed} points recorded", flush=True)
    return 0
