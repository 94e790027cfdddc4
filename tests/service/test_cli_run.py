"""``fermentry run`` as a user runs it: clear errors for bad files and secrets, no crash on bad
tags, and the issue's "done when" command filling a real InfluxDB 1.x."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from simulators.opcua import ManualClock, SimulatorServer
from telemetry.demo import DEFAULT_CONFIG
from telemetry.service.runner import Service
from telemetry.store import Store
from tests.servers import InfluxDB1Server, free_port
from tests.service.conftest import ScanWatch, drive, eventually, write_demo_config

FERMENTRY = str(Path(sys.executable).parent / "fermentry")
UNSET_ENV = "FERMENTRY_TEST_PASSWORD_NOBODY_SETS"


def fermentry(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FERMENTRY, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


# (name, TOML, what stderr must say: field path and allowed values)
BAD_FILES = [
    ("literal", '[service]\nwrite_mode = "sometimes"\n', ["service.write_mode", "'sometimes'", "'write'", "'shadow'"]),
    ("range_and_typo", "[service]\ncontrol_period_s = -5\nwrite_mod = \"write\"\n",
     ["service.control_period_s", "> 0", "service.write_mod", "did you mean 'write_mode'"]),
    ("syntax", "[service\ncontrol_period_s = 5\n", ["TOML syntax error", ":1:"]),
    ("secret_in_file", '[influxdb]\nurl = "http://127.0.0.1:8086"\ntoken = "s3cret"\n',
     ["influxdb.token", "token_env", "token_file"]),
]


@pytest.mark.parametrize(("name", "text", "expected"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
@pytest.mark.parametrize("command", ["run", "check-config"])
def test_bad_config_file_is_a_clear_error_not_a_crash(
    tmp_path: Path, command: str, name: str, text: str, expected: list[str]
) -> None:
    bad = tmp_path / f"{name}.toml"
    bad.write_text(text)
    args = ["run", "--config", str(bad)] if command == "run" else ["check-config", str(bad)]
    result = fermentry(*args)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert str(bad) in result.stderr
    for words in expected:
        assert words in result.stderr, f"{words!r} missing from:\n{result.stderr}"
    assert "s3cret" not in result.stderr  # a secret is never echoed back


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = fermentry("run", "--config", str(tmp_path / "nowhere.toml"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "nowhere.toml" in result.stderr and "No such file" in result.stderr


def test_unset_password_variable_is_a_clear_error(tmp_path: Path) -> None:
    config = write_demo_config(tmp_path / "secured.toml", url="opc.tcp://127.0.0.1:4999/fermentry/",
                               store=tmp_path / "store")
    text = config.read_text().replace('url = "opc.tcp://127.0.0.1:4999/fermentry/"',
                                      f'url = "opc.tcp://127.0.0.1:4999/fermentry/"\nuser = "operator"\n'
                                      f'password_env = "{UNSET_ENV}"', 1)
    config.write_text(text)
    env = {k: v for k, v in os.environ.items() if k != UNSET_ENV}
    result = subprocess.run([FERMENTRY, "run", "--config", str(config)], capture_output=True, text=True,
                            timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    for words in (str(config), "endpoints.sim.password_env", UNSET_ENV, "not set"):
        assert words in result.stderr, f"{words!r} missing from:\n{result.stderr}"
    # the file itself is valid: check-config (no secrets, no network) accepts it
    checked = subprocess.run([FERMENTRY, "check-config", str(config)], capture_output=True, text=True,
                             timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert checked.returncode == 0 and "OK" in checked.stdout, checked


# ------------------------------------------------------------------------------ bad tag values

WRONG_TYPE_NODE = "nsu=urn:fermentry:simulator;s=R1.batch_id"     # a String, mapped as R1's DO
MISSING_NODE = "nsu=urn:fermentry:simulator;s=R2.ph_does_not_exist"  # R2's pH at a NodeId nobody serves


def bad_tag_config(url: str, store: Path) -> Any:
    from telemetry.config import validate_config

    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    data["endpoints"]["sim"].update(url=url, publishing_interval_ms=50.0)
    data["reactor_defaults"]["sampling_interval_ms"] = 0.0
    data["reactors"]["R1"] = {"tags": {"do_pct": {"node": WRONG_TYPE_NODE}}}
    data["reactors"]["R2"] = {"tags": {"ph": {"node": MISSING_NODE}}}
    data["store"]["path"] = str(store)
    return validate_config(data, source="bad-tags.toml", base_dir=DEFAULT_CONFIG.parent)


async def test_bad_tag_values_are_recorded_bad_and_other_loops_run(
    sim: SimulatorServer, sim_clock: ManualClock, tmp_path: Path
) -> None:
    service = Service(bad_tag_config(sim.endpoints[0], tmp_path / "store"))
    watch = ScanWatch(service)
    await service.start()
    try:
        await service.supervisors["sim"].wait_connected(timeout_s=15)
        await drive(sim_clock, watch, steps=8)
    finally:
        await service.stop()
    store = Store(service.store_path)

    # the String value: recorded with Bad quality and no value, never as a number
    do_r1 = [p.parsed().fields for p in store.query("sample", tags={"reactor": "R1", "signal": "do_pct"})]
    assert do_r1 and all(f["good"] is False and "value" not in f and f["quality"] != 0 for f in do_r1)
    # the unknown node: a tags_rejected alarm naming it, and Bad samples
    rejected = [p.parsed() for p in store.query("event", tags={"reactor": "R2", "kind": "tags_rejected"})]
    assert rejected and "R2.ph" in str(rejected[0].fields["message"])
    assert rejected[0].tags["severity"] == "alarm"
    ph_r2 = [p.parsed().fields for p in store.query("sample", tags={"reactor": "R2", "signal": "ph"})]
    assert ph_r2 and all(f["good"] is False for f in ph_r2)

    def last_loop(reactor: str, loop: str) -> dict[str, Any]:
        rows = store.query("loop", tags={"reactor": reactor, "loop": loop})
        assert len(rows) >= 7, f"{reactor}/{loop}: {len(rows)} scans"
        return rows[-1].parsed().fields

    assert last_loop("R1", "do")["pv_ok"] is False and last_loop("R2", "ph")["pv_ok"] is False
    # every loop on a good tag keeps controlling, on the same reactors too
    for reactor, loop in (("R1", "ph"), ("R1", "temperature"), ("R2", "do"), ("R2", "temperature"),
                          ("R3", "do"), ("R3", "ph"), ("R3", "temperature")):
        fields = last_loop(reactor, loop)
        assert fields["pv_ok"] is True and fields["mode"] == "auto", (reactor, loop, fields)
    # and their outputs reach the plant
    plant_jacket = sim.plants[0].read().values["jacket_temp_c"]
    assert plant_jacket[0] == pytest.approx(last_loop("R1", "temperature")["mv"])


# ------------------------------------------------------------------------- the "done when" command

@pytest.mark.servers
async def test_done_when_run_fills_influxdb_1x(tmp_path: Path, influxd_factory: Any) -> None:
    """``fermentry run --config config/demo.toml --influx-url ... --influx-bucket fermentry/autogen``
    against ``fermentry simulate --reactors 3`` (free ports; a copy of the demo config with the
    endpoint's port changed): points of all three reactors in ``sample`` and ``loop``."""
    influxd: InfluxDB1Server = influxd_factory()
    influxd.create_database("fermentry")
    port = free_port()
    url = f"opc.tcp://127.0.0.1:{port}/fermentry/"
    text = DEFAULT_CONFIG.read_text()
    assert 'url = "opc.tcp://127.0.0.1:4840/fermentry/"' in text and 'path = "../var/demo-store"' in text
    config = tmp_path / "demo.toml"
    config.write_text(text.replace("127.0.0.1:4840", f"127.0.0.1:{port}", 1)
                      .replace('path = "../var/demo-store"', f'path = "{tmp_path / "store"}"', 1))

    logs = {name: (tmp_path / f"{name}.out").open("wb") for name in ("simulate", "run")}
    simulate = await asyncio.create_subprocess_exec(
        FERMENTRY, "simulate", "--reactors", "3", "--port", str(port), stdout=logs["simulate"],
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    run = await asyncio.create_subprocess_exec(
        FERMENTRY, "run", "--config", str(config), "--influx-url", influxd.url, "--influx-bucket", "fermentry/autogen",
        stdout=logs["run"], stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def reactors_in(measurement: str) -> set[str]:
        series = influxd.query(f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "reactor"', "fermentry")
        return {value for s in series for _, value in s["values"]}

    def output() -> str:
        return "\n".join(f"--- {n}\n{(tmp_path / f'{n}.out').read_text()[-3000:]}" for n in logs)

    try:
        def filled() -> bool:
            for proc in (simulate, run):
                if proc.returncode is not None:
                    raise AssertionError(f"a process exited with {proc.returncode}\n{output()}")
            return reactors_in("sample") == reactors_in("loop") == {"R1", "R2", "R3"}

        await eventually(filled, timeout_s=45, poll_s=0.5, what="points of R1..R3 in InfluxDB")
        run.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(run.wait(), 30) == 0, output()
    finally:
        for proc in (run, simulate):
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        for handle in logs.values():
            handle.close()
    assert "Traceback" not in output()
    # the samples are real values with quality, tagged per reactor and batch
    rows = influxd.rows('SELECT "value", "good" FROM "sample" WHERE "signal" = \'do_pct\' GROUP BY "reactor", "batch"',
                        "fermentry")
    assert {r["reactor"] for r in rows if r["good"] and r["value"] is not None} == {"R1", "R2", "R3"}
    assert all(r["batch"] not in ("", "unknown") for r in rows)
