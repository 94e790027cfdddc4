"""``fermentry check-config FILE [FILE...]``: validate configuration files without connecting.

Prints every problem of every file (file, field path, value, what is allowed) and exits 1, or
a one-line summary per file and exits 0. No network I/O: it is safe to run in CI on a config
for a plant the machine cannot reach.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("check-config", help="validate configuration files (no network I/O)",
                       description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", metavar="FILE", help="TOML configuration file(s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check each file; report to stdout (valid) or stderr (problems). Exit code 0 or 1."""
    from telemetry.config import ConfigError, load_config

    failed = 0
    for path in args.files:
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            failed += 1
            print(exc, file=sys.stderr)
            continue
        print(f"{path}: OK: {cfg.summary()}")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run as ``python -m telemetry.check_config FILE...`` (same as ``fermentry check-config``)."""
    parser = argparse.ArgumentParser(prog="fermentry")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["check-config", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
