"""Fixtures for service tests: a simulator on a free port driven by a manual clock, and the
demo configuration pointed at it with its store in a temp dir."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from simulators.opcua import ManualClock, SimulatorServer
from telemetry.demo import DEFAULT_CONFIG, demo_config
from telemetry.service.runner import Service

SPEED = 1.0  # the manual clock's wall seconds are process seconds
STEP_S = 5.0  # one simulator tick per control period (config/demo.toml: 5 s)


@pytest.fixture
def sim_clock() -> ManualClock:
    return ManualClock()


@pytest_asyncio.fixture
async def sim(sim_clock: ManualClock) -> AsyncIterator[SimulatorServer]:
    from simulators.process import make_plant

    async with SimulatorServer(make_plant("ecoli", 3, seed=7), port=0, clock=sim_clock, speed=SPEED) as srv:
        yield srv


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Any]:
    """The demo config against ``url``; publishing fast (wall) so scans follow the manual clock."""

    def make(url: str, *, influx: dict[str, Any] | None = None, store: Path | None = None, **service: Any) -> Any:
        import tomllib

        from telemetry.config import validate_config

        data = tomllib.loads(DEFAULT_CONFIG.read_text())
        for ep in data["endpoints"].values():
            ep["url"] = url
            ep["publishing_interval_ms"] = 50.0
        data["reactor_defaults"]["sampling_interval_ms"] = 0.0
        data["store"]["path"] = str(store or tmp_path / "store")
        data["service"].update(service)
        if influx is not None:
            data["influxdb"] = influx
        return validate_config(data, source="test.toml", base_dir=DEFAULT_CONFIG.parent)

    return make


class ScanWatch:
    """Wakes a test when the service has run a scan (no wall-clock sleeps)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._cond = asyncio.Condition()
        service.on_scan = self._on_scan

    def _on_scan(self, _svc: Service) -> None:
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    async def scans(self, n: int, timeout_s: float = 20.0) -> None:
        """Wait until the service has run ``n`` control scans in total."""
        async def wait() -> None:
            async with self._cond:
                await self._cond.wait_for(lambda: self.service.stats.scans >= n)

        await asyncio.wait_for(wait(), timeout_s)


async def drive(clock: ManualClock, watch: ScanWatch, steps: int, step_s: float = STEP_S) -> None:
    """Advance the simulator ``steps`` control periods, waiting for the service's scan each time."""
    for _ in range(steps):
        target = watch.service.stats.scans + 1
        await clock.advance(step_s)
        await watch.scans(target)


async def eventually(condition: Callable[[], bool], *, timeout_s: float = 20.0, what: str = "a condition",
                     poll_s: float = 0.02) -> None:
    """Wait until ``condition()`` holds (polled: for state that has no event to await, such as
    another process's files or a server's answers); fails after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(poll_s)


def write_demo_config(path: Path, *, url: str, store: Path, publishing_interval_ms: float = 50.0,
                      sampling_interval_ms: float = 0.0, append: str = "") -> Path:
    """A copy of ``config/demo.toml`` as a user would edit it: endpoint URL, OPC UA intervals
    and store path changed, everything else kept (``append`` adds TOML at the end)."""
    import re

    text = DEFAULT_CONFIG.read_text()
    for pattern, value in ((r'^url = "opc\.tcp://[^"]*"', f'url = "{url}"'),
                           (r"^publishing_interval_ms = \S+", f"publishing_interval_ms = {publishing_interval_ms}"),
                           (r"^sampling_interval_ms = \S+", f"sampling_interval_ms = {sampling_interval_ms}"),
                           (r'^path = "[^"]*"', f'path = "{store}"')):
        text, n = re.subn(pattern, value, text, count=1, flags=re.MULTILINE)
        if n != 1:
            raise AssertionError(f"config/demo.toml has no line matching {pattern!r}")
    path.write_text(text + "\n" + append)
    return path


__all__ = ["ScanWatch", "demo_config", "drive", "eventually", "write_demo_config"]
