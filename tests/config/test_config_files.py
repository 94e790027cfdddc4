"""The sample configurations load; file-level errors (syntax, I/O) are located; overrides re-validate."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from telemetry.config import ConfigError, apply_overrides, load_config
from telemetry.config.signals import CANONICAL_SIGNALS

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
# faults*.toml are simulator fault schedules, not service configurations.
SAMPLES = sorted(p for p in CONFIG_DIR.glob("*.toml") if not p.name.startswith("faults"))


def test_the_documented_samples_exist() -> None:
    assert {"demo.toml", "plant.example.toml", "reference.toml"} <= {p.name for p in SAMPLES}


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_config_loads(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.source == str(path)
    assert cfg.tags and cfg.endpoints
    for reactor in cfg.reactors:
        for loop in cfg.loops_for(reactor):
            assert loop.out_lo is not None and loop.out_hi is not None and loop.out_lo < loop.out_hi


def test_demo_matches_the_simulator_naming() -> None:
    cfg = load_config(CONFIG_DIR / "demo.toml")
    assert list(cfg.reactors) == ["R1", "R2", "R3"]
    assert cfg.endpoints["sim"].url == "opc.tcp://127.0.0.1:4840/fermentry/"
    tag = cfg.resolved_reactors["R2"].tags["feed_rate_l_per_h"]
    assert tag.node_id == "nsu=urn:fermentry:simulator;s=R2.feed_rate_l_per_h"
    assert (tag.kind, tag.unit, tag.lo, tag.hi) == ("actuator", "L/h", 0.0, 1.0)
    assert all(t.signal in CANONICAL_SIGNALS for t in cfg.tags)
    by_name = {loop.name: loop for loop in cfg.loops_for("R1")}
    assert [s.mv for s in by_name["do"].sequence or []] == ["agitation_rpm", "air_flow_slpm", "o2_flow_slpm"]
    assert {s.mv for s in by_name["ph"].split_range or []} == {"base_rate_l_per_h", "acid_rate_l_per_h"}
    assert by_name["temperature"].mv == "jacket_temp_c"
    feeds = {r: cfg.feeds_for(r)[0] for r in cfg.reactors}
    assert feeds["R1"].kind == "exponential" and feeds["R1"].start.kind == "our_drop"
    assert (feeds["R1"].mu_set_per_h, feeds["R3"].mu_set_per_h) == (0.25, 0.18)  # R3's override


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    text = (CONFIG_DIR / "demo.toml").read_text(encoding="utf-8")
    (tmp_path / "sub").mkdir()
    target = tmp_path / "sub" / "plant.toml"
    target.write_text(text.replace('path = "../var/demo-store"', 'path = "store"'), encoding="utf-8")
    assert load_config(target).store.path == os.path.join(str(tmp_path / "sub"), "store")


@pytest.mark.parametrize(
    ("text", "line", "col"),
    [
        ("[service]\ncontrol_period_s = 5.0\nwrite_mode = shadow\n", 3, 14),
        ("[service\n", 1, 9),
        ("[[loops]]\nname = \"do\"\nkp = [1,\n", 4, 1),
        ("a = 1\na = 2\n", 2, 6),
    ],
    ids=["bare-word", "unclosed-table", "unclosed-array", "duplicate-key"],
)
def test_toml_syntax_error_gives_file_line_col(tmp_path: Path, text: str, line: int, col: int) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}:{line}:{col}: TOML syntax error:" in str(info.value)
    assert info.value.problems[0].position == (line, col)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "nope.toml")


def test_apply_overrides_sets_influxdb_and_revalidates() -> None:
    cfg = load_config(CONFIG_DIR / "demo.toml")
    assert cfg.influxdb is None
    out = apply_overrides(cfg, influx_url="http://127.0.0.1:8086", influx_bucket="fermentry/autogen")
    assert out.influxdb is not None
    assert (out.influxdb.url, out.influxdb.database, out.influxdb.retention_policy) == (
        "http://127.0.0.1:8086", "fermentry", "autogen")
    assert out.tags == cfg.tags and out.loops_for("R1") == cfg.loops_for("R1")
    assert apply_overrides(cfg) is cfg


def test_apply_overrides_rejects_a_bad_url_like_a_bad_file() -> None:
    cfg = load_config(CONFIG_DIR / "plant.example.toml")
    with pytest.raises(ConfigError) as info:
        apply_overrides(cfg, influx_url="influx:8086")
    report = str(info.value)
    assert "with --influx-url" in report
    assert "influxdb.url = 'influx:8086': allowed: 'http://host:port'" in report


def test_readme_example_is_valid(tmp_path: Path) -> None:
    doc = (CONFIG_DIR.parent / "README.md").read_text(encoding="utf-8")
    section = doc.split("### A short example", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```")[0]
    path = tmp_path / "example.toml"
    path.write_text(example, encoding="utf-8")
    cfg = load_config(path)
    assert [loop.kp for r in cfg.reactors for loop in cfg.loops_for(r)] == [4.0, 3.0]
