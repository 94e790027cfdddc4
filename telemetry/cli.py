"""The ``fermentry`` command: one entry point, a subcommand per job.

Each subcommand lives next to the code it runs and registers itself through an
``add_parser(subparsers)`` function listed in ``_SUBCOMMANDS``. Those modules keep their
heavy imports inside the command function, so ``fermentry --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# (subcommand, module with add_parser(subparsers) that sets func=callable(args) -> int)
_SUBCOMMANDS: tuple[tuple[str, str], ...] = (
    ("simulate", "simulators.cli"),
    ("check-config", "telemetry.check_config"),
    ("run", "telemetry.run_cmd"),
    ("demo", "telemetry.demo"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fermentry",
        description="Process-control telemetry for bioreactors.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for _name, module in _SUBCOMMANDS:
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2) if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncua").setLevel(max(level, logging.WARNING))
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
