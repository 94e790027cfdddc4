"""``fermentry check-config FILE [FILE...]``: validate configuration files without connecting.

Prints every problem of every file (file, field path, value, what is allowed) and exits 1, or
a one-line summary per file and exits 0. No network I/O: it is safe to run in CI on a config
for a plant the machine cannot reach. Secrets named by the file (``password_env``,
``token_env``, ``*_file``) that this environment lacks are reported as warnings, not errors:
the machine that checks a file is often not the one that runs it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any


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
        for note in missing_secrets(cfg, os.environ):
            print(f"{path}: warning: {note}", file=sys.stderr)
    return 1 if failed else 0


def missing_secrets(cfg: Any, env: Mapping[str, str]) -> list[str]:
    """What ``fermentry run`` would miss here: unset secret variables, unreadable secret files."""
    notes = []
    sources = [(f"endpoints.{name}", ep, "password") for name, ep in cfg.endpoints.items()]
    if cfg.influxdb is not None:
        sources.append(("influxdb", cfg.influxdb, "token"))
    for where, section, secret in sources:
        var, path = getattr(section, f"{secret}_env"), getattr(section, f"{secret}_file")
        if var is not None and var not in env:
            consequence = "fermentry run refuses to start" if secret == "password" else "fermentry run writes without a token"
            notes.append(f"{where}.{secret}_env: environment variable {var} is not set here ({consequence})")
        if path is not None and not os.access(path, os.R_OK):
            notes.append(f"{where}.{secret}_file: {path} is not readable here")
    return notes


def main(argv: Sequence[str] | None = None) -> int:
    """Run as ``python -m telemetry.check_config FILE...`` (same as ``fermentry check-config``)."""
    parser = argparse.ArgumentParser(prog="fermentry")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["check-config", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
