"""``fermentry check-config`` end to end, as a user runs it (a subprocess)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from telemetry import check_config

ROOT = Path(__file__).resolve().parents[2]
GOOD = ROOT / "config" / "demo.toml"
BAD = """
[service]
control_period_s = "5s"

[endpoints.sim]
url = "opc.tcp://127.0.0.1:4840/fermentry/"
password = "hunter2"

[reactors.R1]
endpoint = "sim"
node_template = "ns=2;s={reactor}.{signal}"
signals = ["do_pct", "agitation_rpm"]

[[loops]]
name = "do"
pv = "do_pct"
sp = 30.0
mv = "agitation_rpm"
kp = -2.0
out_lo = 1200.0
out_hi = 300.0
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "telemetry.check_config", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


def test_good_file_exits_0_with_a_summary() -> None:
    result = _run(str(GOOD))
    assert result.returncode == 0, result.stderr
    from telemetry.config import load_config

    n_tags = len(load_config(GOOD).tags)  # every listed signal of each of the 3 reactors
    assert n_tags % 3 == 0 and n_tags >= 90
    assert f"{GOOD}: OK: 1 endpoints, 3 reactors, {n_tags} tags, 9 loops, 3 feeds" in result.stdout
    assert "Traceback" not in result.stderr


def test_bad_file_exits_1_listing_every_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD, encoding="utf-8")
    result = _run(str(GOOD), str(bad))
    assert result.returncode == 1
    assert f"{GOOD}: OK" in result.stdout
    err = result.stderr
    assert "Traceback" not in err and "hunter2" not in err
    for line in [
        f"{bad}: 4 configuration errors",
        f"{bad}: service.control_period_s = '5s': durations are plain numbers",
        f"{bad}: endpoints.sim.password: secrets must not be in the configuration file",
        f"{bad}: loops[0].kp = -2.0: allowed: > 0",
        f"{bad}: loops[0].out_lo = 1200.0: out_lo must be < out_hi (300.0)",
    ]:
        assert line in err, err


def test_syntax_error_exits_1_with_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "syntax.toml"
    bad.write_text("[service]\nwrite_mode = write\n", encoding="utf-8")
    result = _run(str(bad))
    assert result.returncode == 1
    assert f"{bad}:2:14: TOML syntax error: Invalid value" in result.stderr


@pytest.mark.parametrize(("argv", "code"), [([str(GOOD)], 0), ([str(GOOD), "/nonexistent/x.toml"], 1)])
def test_add_parser_registers_the_subcommand(argv: list[str], code: int, capsys: pytest.CaptureFixture[str]) -> None:
    # The same registration telemetry.cli performs for its _SUBCOMMANDS.
    parser = argparse.ArgumentParser(prog="fermentry")
    check_config.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["check-config", *argv])
    assert args.func(args) == code
    assert "OK:" in capsys.readouterr().out


def test_secrets_missing_here_are_warnings_not_errors(tmp_path: Path) -> None:
    example = ROOT / "config" / "plant.example.toml"
    env_free = {k: v for k, v in os.environ.items() if not k.startswith("FERMENTRY_")}
    result = subprocess.run([sys.executable, "-m", "telemetry.check_config", str(example)], cwd=ROOT, env=env_free,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "password_env: environment variable FERMENTRY_OPCUA_PASSWORD is not set here" in result.stderr
    with_secret = subprocess.run([sys.executable, "-m", "telemetry.check_config", str(example)], cwd=ROOT,
                                 env={**env_free, "FERMENTRY_OPCUA_PASSWORD": "x"},
                                 capture_output=True, text=True, timeout=60, check=False)
    assert with_secret.returncode == 0 and "FERMENTRY_OPCUA_PASSWORD" not in with_secret.stderr
