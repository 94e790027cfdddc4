"""``fermentry simulate``: serve simulated fermenters over OPC UA (filled in by the simulators work)."""
from __future__ import annotations
import argparse

def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("simulate", help="serve simulated fermenters over OPC UA")
    p.set_defaults(func=lambda args: 2)
