"""Reading a TOML configuration, validating it, and turning pydantic's errors into a report.

Validation happens once, at start-up, with no network I/O: file paths are resolved (relative
to the configuration file) but not opened, and the InfluxDB API choice ``auto`` is left to run
time. Every problem is reported at once: when a part of the file fails its own validation, the
remaining parts are still cross-checked (see :func:`telemetry.config.resolve.resolve`).
"""

from __future__ import annotations

import os
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from telemetry.config.errors import ConfigError, Problem, format_loc, suggest
from telemetry.config.models import (
    SECRET_KEYS,
    Endpoint,
    Loop,
    ReactorSpec,
    ServiceConfig,
)
from telemetry.config.resolve import _FEED_ADAPTER, _FEED_KINDS, resolve

_TOML_POSITION = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$")
_START_KINDS = "'immediately', 'time', 'do_spike', 'glucose_below'"
_FEED_KIND_LIST = "'exponential', 'linear', 'piecewise', 'do_stat', 'ph_stat'"
_PATTERN_HELP = {
    "^[A-Za-z][A-Za-z0-9_.-]{0,63}$": "allowed: a name of letters, digits, '_', '-', '.', starting with a letter",
    "^[a-z][a-z0-9_]{0,63}$": "allowed: a signal name in lower case with units in the name, e.g. 'do_pct'",
    "^[A-Za-z_][A-Za-z0-9_]*$": "allowed: the NAME of an environment variable (e.g. 'INFLUX_TOKEN'), "
                                "never the secret itself",
    "^https?://[^/@\\s]+(/\\S*)?$": "allowed: 'http://host:port' or 'https://host:port' (no credentials in the URL)",
    "^opc\\.tcp://[^/@\\s]+(/\\S*)?$": "allowed: 'opc.tcp://host:port/path' (no credentials in the URL)",
    "^[a-z_][a-z0-9_]*$": "allowed: a placeholder name in lower case, e.g. 'plc_prefix'",
}
_TYPE_HELP = {
    "float_type": "expected a number",
    "int_type": "expected a whole number",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "dict_type": "expected a table",
    "model_type": "expected a table",
    "list_type": "expected an array",
    "float_parsing": "expected a number",
    "int_from_float": "expected a whole number",
}


def load_config(path: str | os.PathLike[str]) -> ServiceConfig:
    """Read, validate and resolve a configuration file.

    Raises
    ------
    ConfigError
        With every problem found: TOML syntax (``file:line:col``), types, ranges, unknown keys
        (with a suggestion), secrets in the file, and broken references across sections.
    """
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [Problem("(file)", f"cannot read the file: {exc}")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_POSITION.match(str(exc))
        if m:
            message, position = m.group(1), (int(m.group(2)), int(m.group(3)))
        else:  # "... (at end of document)": an unclosed string, array or table
            message = str(exc).removesuffix(" (at end of document)") + " at the end of the file"
            position = (text.count("\n") + 1, len(text) - (text.rfind("\n") + 1) + 1)
        raise ConfigError(source, [Problem("(syntax)", f"TOML syntax error: {message}", position=position)]) from None
    return validate_config(data, source=source, base_dir=os.path.dirname(os.path.abspath(source)))


def validate_config(data: dict[str, Any], *, source: str = "<config>", base_dir: str | None = None) -> ServiceConfig:
    """Validate already parsed TOML data (see :func:`load_config`)."""
    context = {"base_dir": base_dir}
    try:
        cfg = ServiceConfig.model_validate(data, context=context)
    except ValidationError as exc:
        problems = [_problem(err, data) for err in exc.errors()]
        problems += _partial_problems(data, context)
        unique = {(p.path, p.message, repr(p.value)): p for p in problems}
        raise ConfigError(source, list(unique.values())) from None
    cfg._source = source
    return cfg


def apply_overrides(cfg: ServiceConfig, *, influx_url: str | None = None,
                    influx_bucket: str | None = None) -> ServiceConfig:
    """A copy of ``cfg`` with command-line values (``fermentry run --influx-url/--influx-bucket``).

    The result is validated again, so a bad URL is reported like a bad file.
    """
    if influx_url is None and influx_bucket is None:
        return cfg
    data = cfg.model_dump()
    influx = dict(data.get("influxdb") or {})
    if influx_url is not None:
        influx["url"] = influx_url
    if influx_bucket is not None:
        influx["bucket"] = influx_bucket
    data["influxdb"] = influx
    flags = " ".join(f for f, v in (("--influx-url", influx_url), ("--influx-bucket", influx_bucket)) if v is not None)
    return validate_config(data, source=f"{cfg.source} with {flags}")


# -- reporting ---------------------------------------------------------------------------------


def _problem(err: Any, data: dict[str, Any]) -> Problem:
    raw_loc: tuple[str | int, ...] = tuple(err["loc"])
    loc = _clean_loc(raw_loc)
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        if _is_secret(key):
            return Problem(format_loc(loc), "secrets must not be in the configuration file: name an environment "
                           f"variable with {_secret_alternative(key)}_env or a file with {_secret_alternative(key)}_file")
        allowed = _fields_at(raw_loc[:-1], data)
        hint = suggest(key, allowed)
        message = "unknown key" + (hint or ("; allowed keys: " + ", ".join(allowed) if allowed else ""))
        return Problem(format_loc(loc), message)
    if kind == "missing":
        return Problem(format_loc(loc), "required")
    if kind == "literal_error":
        message = f"allowed: {ctx['expected']}"
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": (">", "gt"), "greater_than_equal": (">=", "ge"),
              "less_than": ("<", "lt"), "less_than_equal": ("<=", "le")}[kind]
        message = f"allowed: {op[0]} {_num(ctx[op[1]])}"
    elif kind == "string_pattern_mismatch":
        message = _PATTERN_HELP.get(ctx.get("pattern", ""), f"must match {ctx.get('pattern')}")
    elif kind == "union_tag_invalid":
        message = f"allowed: {ctx['expected_tags']}"
        value = ctx.get("tag")
        loc = (*loc, "kind")
    elif kind == "union_tag_not_found":
        message = "required: kind = " + (_START_KINDS if loc and loc[-1] == "start" else _FEED_KIND_LIST)
        value = None
    elif kind in _TYPE_HELP:
        message = _TYPE_HELP[kind]
    else:
        message = err["msg"]
    if isinstance(value, dict) or (raw_loc and raw_loc[-1] == "[key]"):
        value = None if isinstance(value, dict) else value
    if raw_loc and raw_loc[-1] == "[key]":
        message = "invalid name: " + message
    return Problem(format_loc(loc), message, value)


def _clean_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Drop pydantic's union-member segments (``feeds.0.exponential.x`` -> ``feeds[0].x``)."""
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if part == "[key]":
            continue
        if isinstance(part, str) and part in _FEED_KINDS and i > 0 and (isinstance(loc[i - 1], int) or loc[i - 1] == "start"):
            continue
        if isinstance(part, str) and part.startswith("function-"):
            continue
        out.append(part)
    return tuple(out)


def _is_secret(key: str) -> bool:
    low = key.lower()
    return low in SECRET_KEYS or low.endswith(("password", "_token", "secret"))


def _secret_alternative(key: str) -> str:
    return "token" if "token" in key.lower() or "api" in key.lower() else "password"


def _num(x: object) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _fields_at(loc: tuple[str | int, ...], data: dict[str, Any]) -> list[str]:
    """The keys allowed at ``loc`` (pydantic's raw loc), to suggest one for an unknown key."""
    tp: Any = ServiceConfig
    parts = list(loc)
    while True:
        tp = _unwrap(tp)
        members = [m for m in typing.get_args(tp) if m is not type(None)] if _is_union(tp) else None
        if members is not None:
            if len(members) == 1:
                tp = members[0]
                continue
            if parts and isinstance(parts[0], str):
                chosen = [m for m in members if _is_model(m) and parts[0] in _kind_tags(m)]
                if chosen:
                    tp = chosen[0]
                    parts.pop(0)
                    continue
            return []
        if not parts:
            break
        part = parts.pop(0)
        origin = typing.get_origin(tp)
        if _is_model(tp):
            if part not in tp.model_fields:
                return []
            tp = tp.model_fields[part].annotation
        elif origin is list:
            tp = typing.get_args(tp)[0]
        elif origin is dict:
            tp = typing.get_args(tp)[1]
        else:
            return []
    return list(tp.model_fields) if _is_model(tp) else []


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _kind_tags(model: type[BaseModel]) -> tuple[str, ...]:
    field = model.model_fields.get("kind")
    return typing.get_args(field.annotation) if field is not None else ()


# -- best-effort cross-checks of a file with errors ------------------------------------------------


class _Partial:
    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}
        self.reactor_defaults = ReactorSpec()
        self.reactors: dict[str, ReactorSpec] = {}
        self.loops: list[tuple[int, Loop]] = []
        self.feeds: list[tuple[int, Any]] = []


def _partial_problems(data: dict[str, Any], context: dict[str, Any]) -> list[Problem]:
    """Cross-section problems among the parts of a file that are valid on their own."""
    view = _Partial()
    broken: set[tuple[str | int, ...]] = set()
    names: dict[str, set[str]] = {"loops": set(), "feeds": set(), "endpoints": set(), "reactors": set()}
    for key, model in (("endpoints", Endpoint), ("reactors", ReactorSpec)):
        raw = data.get(key, {})
        if not isinstance(raw, dict):
            broken.add((key,))
            continue
        names[key].update(str(k) for k in raw)
        adapter: TypeAdapter[Any] = TypeAdapter(dict[str, model])  # type: ignore[valid-type]
        for name, value in raw.items():
            try:
                getattr(view, key)[name] = adapter.validate_python({name: value}, context=context)[name]
            except ValidationError:
                broken.add((key, name))
    try:
        view.reactor_defaults = ReactorSpec.model_validate(data.get("reactor_defaults", {}), context=context)
    except ValidationError:
        broken.add(("reactor_defaults",))
    for key, validate in (("loops", Loop.model_validate), ("feeds", _FEED_ADAPTER.validate_python)):
        raw = data.get(key, [])
        if not isinstance(raw, list):
            broken.add((key,))
            continue
        for i, item in enumerate(raw):
            try:
                getattr(view, key).append((i, validate(item)))
            except ValidationError:
                broken.add((key, i))
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    names[key].add(item["name"])
    if not broken:
        return []  # the whole-file validation already ran the cross-checks
    _, issues = resolve(view, frozenset(broken), names)
    return [_problem(i.as_error_dict(), data) for i in issues]
