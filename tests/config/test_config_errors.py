"""A bad configuration gives one report: every problem with file, field path, value, what is allowed."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from telemetry.config import ConfigError, validate_config

BASE: dict[str, Any] = {
    "endpoints": {"sim": {"url": "opc.tcp://127.0.0.1:4840/fermentry/"}},
    "reactor_defaults": {
        "endpoint": "sim",
        "node_template": "ns=2;s={reactor}.{signal}",
        "signals": ["do_pct", "ph", "temperature_c", "volume_l", "od600", "agitation_rpm", "air_flow_slpm",
                    "base_rate_l_per_h", "acid_rate_l_per_h", "jacket_temp_c", "feed_rate_l_per_h", "do_sp_pct"],
        "tags": {"jacket_temp_c": {"lo": 4.0, "hi": 80.0}, "feed_rate_l_per_h": {"lo": 0.0, "hi": 1.0},
                 "agitation_rpm": {"lo": 0.0, "hi": 1500.0}},
    },
    "reactors": {"R1": {}, "R2": {}},
    "loops": [
        {"name": "do", "pv": "do_pct", "sp": "do_sp_pct", "kp": 2.0, "ti_s": 90.0,
         "sequence": [
             {"mv": "agitation_rpm", "out_lo": 0.0, "out_hi": 50.0, "mv_at_lo": 300.0, "mv_at_hi": 1200.0},
             {"mv": "air_flow_slpm", "out_lo": 50.0, "out_hi": 100.0, "mv_at_lo": 5.0, "mv_at_hi": 15.0}]},
        {"name": "temperature", "pv": "temperature_c", "sp": 37.0, "mv": "jacket_temp_c", "kp": 4.0, "ti_s": 400.0},
    ],
    "feeds": [{"name": "glucose", "kind": "exponential", "mu_set_per_h": 0.25, "y_xs_g_per_g": 0.5,
               "s_f_g_per_l": 500.0, "start": {"kind": "do_spike"}}],
}


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    if value is _DELETE:
        del data[path[-1]]
    else:
        data[path[-1]] = value


_DELETE = object()


def _report(*changes: tuple[tuple[Any, ...], Any]) -> str:
    data = copy.deepcopy(BASE)
    for path, value in changes:
        _set(data, path, value)
    with pytest.raises(ConfigError) as info:
        validate_config(data, source="plant.toml")
    return str(info.value)


def test_base_is_valid() -> None:
    cfg = validate_config(copy.deepcopy(BASE), source="plant.toml")
    assert [loop.name for loop in cfg.loops_for("R2")] == ["do", "temperature"]
    assert cfg.loops_for("R1")[1].out_lo == 4.0  # defaulted from the jacket tag's lo


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param([(("loops", 1, "kp"), -1.0)], "plant.toml: loops[1].kp = -1.0: allowed: > 0", id="range"),
        pytest.param([(("service",), {"write_mode": "yes"})],
                     "service.write_mode = 'yes': allowed: 'write' or 'shadow'", id="literal"),
        pytest.param([(("service",), {"control_period_s": "5s"})],
                     "service.control_period_s = '5s': durations are plain numbers in the unit of the field name (s): "
                     "write 5.0", id="duration-string"),
        pytest.param([(("service",), {"control_period_s": "100ms"})], "write 0.1", id="duration-ms"),
        pytest.param([(("service",), {"control_period_s": 0})], "service.control_period_s = 0: allowed: > 0",
                     id="duration-zero"),
        pytest.param([(("reactor_defaults", "tags", "do_pct"), {"deadband_abs": True})],
                     "reactor_defaults.tags.do_pct.deadband_abs = True: expected a number", id="bool-not-number"),
        pytest.param([(("loops", 1, "out_lo"), 50.0), (("loops", 1, "out_hi"), 20.0)],
                     "loops[1].out_lo = 50.0: out_lo must be < out_hi (20.0)", id="out-order"),
        pytest.param([(("loops", 1, "sp_hi"), 30.0)], "loops[1].sp = 37.0: must be <= sp_hi (30.0)", id="sp-limits"),
        pytest.param([(("loops", 1, "pv"), "temperature")],
                     "loops[1].pv = 'temperature': reactor 'R1' has no tag 'temperature' (did you mean 'temperature_c'?)",
                     id="pv-tag"),
        pytest.param([(("loops", 1, "mv"), "volume_l")],
                     "loops[1].mv = 'volume_l': mv must be a tag of kind actuator or setpoint; 'volume_l' is a measurement",
                     id="mv-kind"),
        pytest.param([(("loops", 1, "mv"), "air_flow_slpm")],
                     "loops[1].out_lo: required: the mv tag 'air_flow_slpm' of reactor 'R1' has no lo/hi", id="out-default"),
        pytest.param([(("loops", 1, "out_hi"), 95.0)],
                     "loops[1].out_hi = 95.0: outside the range of tag 'jacket_temp_c' on 'R1' (4.0..80.0)",
                     id="out-within-tag"),
        pytest.param([(("loops", 0, "sequence", 1, "mv"), "agitation_rpm")],
                     "loops[0].sequence = ['agitation_rpm', 'agitation_rpm']: each stage drives a different mv", id="stage-duplicate"),
        pytest.param([(("loops", 0, "sequence", 1, "out_lo"), 60.0)],
                     "loops[0].sequence[1].out_lo = 60.0: sequence bands must be contiguous", id="sequence-gap"),
        pytest.param([(("loops", 0, "sequence", 0, "mv_at_hi"), 2000.0)],
                     "loops[0].sequence[0].mv_at_hi = 2000.0: outside the range of tag 'agitation_rpm'", id="stage-range"),
        pytest.param([(("loops", 1, "name"), "do")], "loops[1].name = 'do': duplicate name: already used by loops[0]",
                     id="duplicate-name"),
        pytest.param([(("loops", 1, "mv"), "feed_rate_l_per_h"), (("loops", 1, "out_lo"), 0.0),
                      (("loops", 1, "out_hi"), 1.0)],
                     "feeds[0].mv = 'feed_rate_l_per_h': on reactor 'R1' this actuator is already driven by loops[1]",
                     id="actuator-conflict"),
        pytest.param([(("loops", 1, "cascade_to"), "tempp")],
                     "loops[1].cascade_to", id="two-outputs"),
        pytest.param([(("loops", 1, "on_bad_pv"), "safe")], "loops[1].safe_output: required with on_bad_pv = 'safe'",
                     id="safe-output"),
        pytest.param([(("loops", 1, "mode"), "cascade")],
                     "loops[1].mode = 'cascade': 'cascade' needs an outer loop", id="cascade-mode"),
        pytest.param([(("loops", 1, "reactors"), ["R1", "R3"])],
                     "loops[1].reactors[1] = 'R3': no such reactor; defined: 'R1', 'R2'", id="unknown-reactor"),
        pytest.param([(("loops", 1, "overrides"), {"R2": {"kp": 0.0}})],
                     "loops[1].overrides.R2.kp = 0.0: allowed: > 0", id="override-value"),
        pytest.param([(("loops", 1, "overrides"), {"R2": {"name": "x"}})],
                     "loops[1].overrides.R2.name = 'x': cannot be overridden per reactor", id="override-fixed"),
        pytest.param([(("loops", 1, "overrides"), {"R7": {"kp": 1.0}})],
                     "loops[1].overrides.R7: this loop does not run on reactor 'R7'", id="override-reactor"),
        pytest.param([(("feeds", 0, "kind"), "exponentail")],
                     "feeds[0].kind = 'exponentail': allowed: 'exponential', 'linear', 'piecewise', 'do_stat', 'ph_stat'",
                     id="feed-kind"),
        pytest.param([(("feeds", 0, "mu_set_per_h"), 5.0)], "feeds[0].mu_set_per_h = 5.0: allowed: <= 2",
                     id="feed-range"),
        pytest.param([(("feeds", 0, "start"), {"kind": "do_spike", "rise_pct": -3.0})],
                     "feeds[0].start.rise_pct = -3.0: allowed: > 0", id="start-range"),
        pytest.param([(("feeds", 0, "start"), {"kind": "glucose"})],
                     "feeds[0].start.kind = 'glucose': allowed: 'immediately', 'time', 'do_spike', 'glucose_below'",
                     id="start-kind"),
        pytest.param([(("feeds", 0, "start"), {"kind": "glucose_below", "glucose_g_per_l": 1.0})],
                     "feeds[0].start.kind: reactor 'R1' has no tag 'glucose_g_per_l'", id="start-needs-tag"),
        pytest.param([(("reactor_defaults", "endpoint"), "simm")],
                     "reactor_defaults.endpoint = 'simm': no such endpoint; defined: 'sim' (did you mean 'sim'?)",
                     id="endpoint-ref"),
        pytest.param([(("reactor_defaults", "node_template"), "ns=2;s={reactor}.do_pct")],
                     "reactor_defaults.node_template = 'ns=2;s={reactor}.do_pct': a tag template must contain '{signal}'",
                     id="template-signal"),
        pytest.param([(("reactor_defaults", "node_template"), "ns=2;s={plant}.{signal}")],
                     "unknown placeholder ['plant']; allowed: reactor, signal, or a key of template_vars", id="template-var"),
        pytest.param([(("reactors", "R1"), {"tags": {"do_pct": {"node": "R1.do_pct"}}})],
                     "reactors.R1.tags.do_pct.node = 'R1.do_pct': not an OPC UA NodeId", id="node-id"),
        pytest.param([(("reactors", "R1"), {"tags": {"do_pct": {"browse_path": "Objects//x"}}})],
                     "reactors.R1.tags.do_pct.browse_path = 'Objects//x': not a browse path", id="browse-path"),
        pytest.param([(("reactors", "R1"), {"tags": {"do_pct": {"deadband_abs": 1.0, "deadband_pct": 1.0}}})],
                     "reactors.R1.tags.do_pct.deadband_pct = 1.0: set only one of deadband_abs, deadband_pct",
                     id="deadband-both"),
        pytest.param([(("reactors", "R2"), {"tags": {"do_pct": {"node": "ns=2;s=R1.do_pct"}}})],
                     "reactors.R2.tags.do_pct = 'ns=2;s=R1.do_pct': same node as R1.do_pct", id="same-node"),
        pytest.param([(("reactor_defaults", "signals"), ["do_pct", "stirrer_speed"])],
                     "reactor_defaults.signals[1] = 'stirrer_speed': not a canonical signal", id="custom-signal-kind"),
        pytest.param([(("reactors",), {})], "reactors: at least one reactor is required", id="no-reactors"),
        pytest.param([(("reactors", "1st"), {})], "reactors.1st = '1st': invalid name: allowed: a name of letters",
                     id="reactor-name"),
        pytest.param([(("endpoints", "sim"), {"url": "opc.tcp://h:4840", "security_policy": "Basic256Sha256",
                                              "security_mode": "SignAndEncrypt"})],
                     "endpoints.sim.certificate: required with security_policy 'Basic256Sha256'", id="cert-required"),
        pytest.param([(("endpoints", "sim"), {"url": "opc.tcp://h:4840", "security_policy": "Basic256Sha512"})],
                     "endpoints.sim.security_policy = 'Basic256Sha512': allowed: 'None', 'Basic128Rsa15', 'Basic256', "
                     "'Basic256Sha256'", id="policy-literal"),
        pytest.param([(("endpoints", "sim"), {"url": "opc.tcp://me:pw@h:4840"})],
                     "endpoints.sim.url = 'opc.tcp://me:pw@h:4840': allowed: 'opc.tcp://host:port/path' "
                     "(no credentials in the URL)", id="url-credentials"),
        pytest.param([(("endpoints", "sim"), {"url": "opc.tcp://h:4840", "password_env": "PW"})],
                     "endpoints.sim.user: required when a password is configured", id="password-needs-user"),
        pytest.param([(("influxdb",), {"url": "http://h:8086", "api": "v2"})],
                     "influxdb.org: required with api = 'v2'", id="influx-org"),
        pytest.param([(("influxdb",), {"url": "http://h:8086", "bucket": "db/rp/x"})],
                     "influxdb.bucket = 'db/rp/x': allowed: 'bucket', or 'database/retention-policy'", id="influx-bucket"),
        pytest.param([(("influxdb",), {"url": "http://h:8086", "token_env": "abc.def=="})],
                     "influxdb.token_env = 'abc.def==': allowed: the NAME of an environment variable", id="token-env"),
    ],
)
def test_bad_config_names_path_value_and_allowed(changes: list[tuple[tuple[Any, ...], Any]], expected: str) -> None:
    report = _report(*changes)
    assert expected in report, report


@pytest.mark.parametrize(
    ("section", "key", "suggestion"),
    [
        (("service",), "control_period", "control_period_s"),
        (("loops", 1), "ti", "ti_s"),
        (("loops", 0, "sequence", 0), "mv_at_high", "mv_at_hi"),
        (("reactor_defaults", "tags", "do_pct"), "deadband_absolute", "deadband_abs"),
        (("feeds", 0), "mu_set", "mu_set_per_h"),
        (("feeds", 0, "start"), "threshold", "threshold_pct"),
        (("endpoints", "sim"), "security_polcy", "security_policy"),
    ],
)
def test_unknown_key_gets_a_suggestion(section: tuple[Any, ...], key: str, suggestion: str) -> None:
    data = copy.deepcopy(BASE)
    target: Any = data
    for part in section:
        target = target.setdefault(part, {}) if isinstance(target, dict) else target[part]
    target[key] = 1.0
    with pytest.raises(ConfigError) as info:
        validate_config(data, source="plant.toml")
    path = ".".join(str(p) for p in section).replace(".0", "[0]").replace(".1", "[1]")
    assert f"{path}.{key}: unknown key (did you mean '{suggestion}'?)" in str(info.value)


@pytest.mark.parametrize(
    ("section", "key", "alternative"),
    [
        (("influxdb",), "token", "token_env"),
        (("endpoints", "sim"), "password", "password_env"),
        (("endpoints", "sim"), "opcua_password", "password_env"),
        (("influxdb",), "api_token", "token_env"),
    ],
)
def test_secret_in_file_is_refused_without_echoing_it(section: tuple[str, ...], key: str, alternative: str) -> None:
    data = copy.deepcopy(BASE)
    data.setdefault("influxdb", {"url": "http://h:8086"})
    target: Any = data
    for part in section:
        target = target[part]
    target[key] = "s3cr3t-value"
    with pytest.raises(ConfigError) as info:
        validate_config(data, source="plant.toml")
    report = str(info.value)
    assert f"{'.'.join(section)}.{key}: secrets must not be in the configuration file" in report
    assert alternative in report
    assert "s3cr3t-value" not in report


def test_every_error_is_reported_at_once() -> None:
    report = _report(
        (("loops", 1, "kp"), -1.0),                       # a type/range error in a loop ...
        (("loops", 1, "out_lo"), 50.0),                   # ... and a cross-field error in the same loop
        (("loops", 1, "out_hi"), 20.0),
        (("service",), {"write_mode": "on"}),
        (("loops", 0, "pv"), "do"),                       # a cross-reference error elsewhere
        (("reactors", "R2"), {"tags": {"ph": {"kindd": "measurement"}}}),
        (("feeds", 0, "mu_set_per_h"), -0.1),
    )
    expected = ["plant.toml: 6 configuration errors", "loops[1].kp = -1.0", "loops[1].out_lo = 50.0",
                "service.write_mode = 'on'", "loops[0].pv = 'do'", "reactors.R2.tags.ph.kindd: unknown key",
                "feeds[0].mu_set_per_h = -0.1"]
    for line in expected:
        assert line in report, report


@pytest.mark.parametrize(
    "cycle",
    [["a", "b"], ["a", "b", "c"]],
    ids=["two", "three"],
)
def test_cascade_cycle_is_reported(cycle: list[str]) -> None:
    data = copy.deepcopy(BASE)
    for i, name in enumerate(cycle):
        data["loops"].append({"name": name, "pv": "ph", "kp": 1.0, "sp_lo": 0.0, "sp_hi": 14.0,
                              "out_lo": 0.0, "out_hi": 14.0, "cascade_to": cycle[(i + 1) % len(cycle)]})
    with pytest.raises(ConfigError) as info:
        validate_config(data, source="plant.toml")
    assert "cascade cycle: " + " -> ".join([*cycle, cycle[0]]) in str(info.value)
