"""The repository's user-facing files stay valid: compose file, Dockerfile inputs, CLI entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_is_valid_and_consistent() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"influxdb", "simulator", "fermentry", "grafana"} <= services.keys()
    named_volumes = set(compose.get("volumes", {}))
    for name, svc in services.items():
        assert ("image" in svc) != ("build" in svc), f"{name}: exactly one of image/build"
        for dep in svc.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown service {dep}"
        for vol in svc.get("volumes", []):
            source = vol.split(":", 1)[0]
            assert source in named_volumes, f"{name}: volume {source} not declared"
    # The configs the compose services run must exist in the image.
    for svc in services.values():
        cmd = svc.get("command", [])
        if "--config" in cmd:
            assert (ROOT / cmd[cmd.index("--config") + 1]).is_file()


def test_dockerfile_copies_every_package() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for package in ("telemetry", "controllers", "simulators", "config"):
        assert f"COPY {package} " in text


def test_cli_lists_its_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "telemetry.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "simulate" in out
