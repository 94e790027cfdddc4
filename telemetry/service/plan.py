"""From a validated configuration to the arrays the service runs on.

Everything here happens once at start-up: tag ids, acquisition and actuation specs, the
compiled control programs and the index arrays that gather each scan's inputs from the
tag table. The scan itself then only does fancy-indexing and one controller step per
group of reactors that share a loop graph (usually one group: a plant runs identical vessels).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from controllers.pid import PidSpec
from controllers.program import Cascade, ControlProgram, LoopSpec, RangeMap, SplitRange, compile_program
from telemetry.acquisition import EndpointSpec, OutputSpec, TagSpec, stale_after_s
from telemetry.config import ServiceConfig
from telemetry.config.models import Endpoint, Loop
from telemetry.errors import ConfigError
from telemetry.tags import TagTable

# Loop parameters that may differ per reactor inside one compiled program (retuned per row).
_TUNABLE = ("kp", "ti_s", "td_s", "b", "c", "deriv_filter_n", "tt_s", "out_lo", "out_hi", "out_rate_per_s",
            "sp_lo", "sp_hi", "sp_rate_per_s", "deadband", "safe_out")


@dataclass
class LoopGroup:
    """Reactors that share one loop graph, stepped by one :class:`ControlProgram`.

    Index arrays have shape ``(n_loops, n_reactors)`` and hold tag ids (``-1``: none).
    """

    reactors: list[str]
    program: ControlProgram
    loops: list[Loop]                      # the first reactor's loops (names, wiring)
    pv_ids: npt.NDArray[np.intp]
    sp_ids: npt.NDArray[np.intp]           # setpoint tag, or -1 for a constant
    sp_const: npt.NDArray[np.float64]      # constant setpoints (NaN where a tag is used)
    actuator_keys: dict[str, list[str]]    # actuator signal -> output key per reactor ("R1.agitation_rpm")
    actuator_ids: dict[str, npt.NDArray[np.intp]]  # actuator signal -> tag id per reactor (-1: not acquired)
    #: loop -> [(actuator, u_lo, u_hi, mv_lo, mv_hi)]: how its output reaches the plant (empty: cascade master)
    output_maps: dict[str, list[tuple[str, float, float, float, float]]] = field(default_factory=dict)


@dataclass
class ServicePlan:
    """The start-up product of a configuration (see module docstring)."""

    reactors: list[str]
    table: TagTable
    tag_reactor: list[str]                 # per tag id
    tag_signal: list[str]
    tag_unit: list[str]
    endpoints: list[EndpointSpec]
    outputs: dict[str, list[OutputSpec]]   # endpoint name -> writable outputs
    output_endpoint: dict[str, str]        # output key -> endpoint name
    groups: list[LoopGroup]
    stale_after_s: npt.NDArray[np.float64]
    batch_nodes: dict[str, tuple[str, str]]  # reactor -> (endpoint, node id of its batch-id string)
    batch_ids: dict[str, str]              # reactor -> configured (or last read) batch id
    reactor_endpoint: dict[str, str] = field(default_factory=dict)

    def tag_id(self, reactor: str, signal: str) -> int:
        return self.table.index.get(f"{reactor}.{signal}", -1)


def build_plan(cfg: ServiceConfig, *, env: Mapping[str, str] | None = None) -> ServicePlan:
    """Resolve tags, endpoints, outputs and loop programs; raises ConfigError on secrets that cannot be read."""
    env = os.environ if env is None else env
    reactors = list(cfg.resolved_reactors)
    tags = cfg.tags
    names = [f"{t.reactor}.{t.signal}" for t in tags]
    table = TagTable(names)

    by_endpoint: dict[str, list[TagSpec]] = {name: [] for name in cfg.endpoints}
    outputs: dict[str, list[OutputSpec]] = {name: [] for name in cfg.endpoints}
    output_endpoint: dict[str, str] = {}
    for tag_id, t in enumerate(tags):
        by_endpoint[t.endpoint].append(TagSpec(
            tag_id=tag_id,
            node_id=t.node_id,
            browse_path=None if t.node_id else t.browse_path,
            sampling_interval_ms=t.sampling_interval_ms,
            deadband_abs=t.deadband_value if t.deadband_type == "absolute" else None,
            deadband_pct=t.deadband_value if t.deadband_type == "percent" else None,
            queue_size=t.queue_size,
        ))
        if t.kind in ("actuator", "setpoint") and t.node_id:
            key = f"{t.reactor}.{t.signal}"
            outputs[t.endpoint].append(OutputSpec(
                key=key, node_id=t.node_id,
                lo=-math.inf if t.lo is None else t.lo,
                hi=math.inf if t.hi is None else t.hi,
            ))
            output_endpoint[key] = t.endpoint

    try:
        endpoints = [_endpoint_spec(name, ep, tuple(by_endpoint[name]), env) for name, ep in cfg.endpoints.items()]
    except ConfigError as exc:  # secrets are read here, not at validation: name the file like validation does
        raise ConfigError(f"{cfg.source}: {exc}") from exc
    stale = stale_after_s(endpoints, len(table)) * cfg.service.stale_after_publishing_intervals / 3.0

    batch_nodes: dict[str, tuple[str, str]] = {}
    batch_ids: dict[str, str] = {}
    reactor_endpoint: dict[str, str] = {}
    for name, reactor in cfg.resolved_reactors.items():
        spec, defaults = cfg.reactors[name], cfg.reactor_defaults
        reactor_endpoint[name] = reactor.endpoint
        batch_ids[name] = spec.batch_id or defaults.batch_id or "unknown"
        node = spec.batch_node or defaults.batch_node
        if node:
            batch_nodes[name] = (reactor.endpoint, node.format(reactor=name))

    plan = ServicePlan(
        reactors=reactors, table=table,
        tag_reactor=[t.reactor for t in tags], tag_signal=[t.signal for t in tags], tag_unit=[t.unit for t in tags],
        endpoints=endpoints, outputs=outputs, output_endpoint=output_endpoint, groups=[],
        stale_after_s=stale, batch_nodes=batch_nodes, batch_ids=batch_ids, reactor_endpoint=reactor_endpoint,
    )
    plan.groups = _loop_groups(cfg, plan)
    return plan


def _endpoint_spec(name: str, ep: Endpoint, tags: tuple[TagSpec, ...], env: Mapping[str, str]) -> EndpointSpec:
    password = None
    if ep.password_env is not None:
        if ep.password_env not in env:
            raise ConfigError(f"endpoints.{name}.password_env: environment variable {ep.password_env} is not set")
        password = env[ep.password_env]
    elif ep.password_file is not None:
        try:
            password = Path(ep.password_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"endpoints.{name}.password_file: cannot read {ep.password_file}: {exc}") from exc
    trusted: list[Path] = []
    if ep.server_certificate is not None:
        trusted.append(Path(ep.server_certificate))
    if ep.trusted_certificates_dir is not None:
        trusted.append(Path(ep.trusted_certificates_dir))
    extra = {} if ep.application_uri is None else {"application_uri": ep.application_uri}
    return EndpointSpec(
        name=name, url=ep.url, tags=tags,
        mode="subscribe" if ep.acquisition == "subscription" else "poll",
        publishing_interval_ms=ep.publishing_interval_ms,
        security_policy=ep.security_policy, security_mode=ep.security_mode,
        client_cert=None if ep.certificate is None else Path(ep.certificate),
        client_key=None if ep.private_key is None else Path(ep.private_key),
        trusted_server_certs=tuple(trusted),
        username=ep.user, password=password,
        connect_timeout_s=ep.connect_timeout_s,
        reconnect_initial_s=ep.reconnect_min_s, reconnect_max_s=ep.reconnect_max_s,
        **extra,
    )


def _pid_spec(loop: Loop) -> PidSpec:
    return PidSpec(
        kp=loop.kp,
        ti_s=math.inf if not loop.ti_s else loop.ti_s,
        td_s=loop.td_s, b=loop.b, c=loop.c, deriv_filter_n=loop.td_filter,
        tt_s=math.nan if loop.tracking_time_s is None else loop.tracking_time_s,
        out_lo=0.0 if loop.out_lo is None else loop.out_lo,
        out_hi=100.0 if loop.out_hi is None else loop.out_hi,
        out_rate_per_s=math.inf if loop.out_rate_per_s is None else loop.out_rate_per_s,
        sp_lo=-math.inf if loop.sp_lo is None else loop.sp_lo,
        sp_hi=math.inf if loop.sp_hi is None else loop.sp_hi,
        sp_rate_per_s=math.inf if loop.sp_rate_per_s is None else loop.sp_rate_per_s,
        action=loop.action, deadband=loop.deadband,
        # A cascade slave is compiled in "auto" and the program puts it in cascade.
        mode="auto" if loop.mode == "cascade" else loop.mode,
        bad_pv=loop.on_bad_pv,
        safe_out=0.0 if loop.safe_output is None else loop.safe_output,
        sp=loop.sp if isinstance(loop.sp, float) else 0.0,
    )


def _graph_key(loops: Sequence[Loop]) -> tuple[object, ...]:
    """What must be equal for reactors to share a compiled program: names and wiring."""
    return tuple(
        (lp.name, lp.pv, lp.mv, lp.cascade_to, lp.sp_from, isinstance(lp.sp, str) and lp.sp,
         tuple((s.mv, s.out_lo, s.out_hi, s.mv_at_lo, s.mv_at_hi) for s in (lp.split_range or lp.sequence or ())),
         lp.action, lp.mode, lp.on_bad_pv)
        for lp in loops
    )


def _loop_groups(cfg: ServiceConfig, plan: ServicePlan) -> list[LoopGroup]:
    grouped: dict[tuple[object, ...], list[str]] = {}
    for reactor in plan.reactors:
        loops = cfg.loops_for(reactor)
        if loops:
            grouped.setdefault(_graph_key(loops), []).append(reactor)
    groups = []
    for members in grouped.values():
        loops = cfg.loops_for(members[0])
        specs = [LoopSpec(lp.name, pv=lp.pv, pid=_pid_spec(lp), mv=lp.mv,
                          sp_tag=lp.sp if isinstance(lp.sp, str) else None) for lp in loops]
        cascades = [Cascade(lp.name, lp.cascade_to) for lp in loops if lp.cascade_to]
        cascades += [Cascade(lp.sp_from, lp.name) for lp in loops
                     if lp.sp_from and not any(c.outer == lp.sp_from and c.inner == lp.name for c in cascades)]
        splits = [SplitRange(lp.name, tuple(RangeMap(s.mv, s.out_lo, s.out_hi, s.mv_at_lo, s.mv_at_hi)
                                            for s in (lp.split_range or lp.sequence or ())))
                  for lp in loops if lp.split_range or lp.sequence]
        program = compile_program(specs, cascades=cascades, splits=splits, n_reactors=len(members))
        order = {name: i for i, name in enumerate(program.loop_names)}
        by_name = {lp.name: lp for lp in loops}
        n_loops = len(program.loop_names)
        pv_ids = np.full((n_loops, len(members)), -1, dtype=np.intp)
        sp_ids = np.full((n_loops, len(members)), -1, dtype=np.intp)
        sp_const = np.full((n_loops, len(members)), np.nan)
        for r, reactor in enumerate(members):
            reactor_loops = {lp.name: lp for lp in cfg.loops_for(reactor)}
            for name, row in order.items():
                lp = reactor_loops[name]
                pv_ids[row, r] = plan.tag_id(reactor, lp.pv)
                if isinstance(lp.sp, str):
                    sp_ids[row, r] = plan.tag_id(reactor, lp.sp)
                elif lp.sp is not None:
                    sp_const[row, r] = lp.sp
                _retune_row(program, name, r, _pid_spec(by_name[name]), _pid_spec(lp))
        actuator_keys = {a: [f"{m}.{a}" for m in members] for a in program.actuator_names}
        actuator_ids = {a: np.array([plan.tag_id(m, a) for m in members], dtype=np.intp)
                        for a in program.actuator_names}
        output_maps = {lp.name: _output_maps(lp, _pid_spec(lp)) for lp in loops}
        groups.append(LoopGroup(members, program, loops, pv_ids, sp_ids, sp_const, actuator_keys, actuator_ids,
                                output_maps))
    return groups


def _output_maps(loop: Loop, pid: PidSpec) -> list[tuple[str, float, float, float, float]]:
    if loop.mv is not None:
        return [(loop.mv, pid.out_lo, pid.out_hi, pid.out_lo, pid.out_hi)]
    return [(s.mv, s.out_lo, s.out_hi, s.mv_at_lo, s.mv_at_hi) for s in (loop.split_range or loop.sequence or ())]


def _retune_row(program: ControlProgram, loop: str, reactor: int, base: PidSpec, mine: PidSpec) -> None:
    """Apply a reactor's overrides (e.g. a different kp for R3) to its row only."""
    changed = {k: getattr(mine, k) for k in _TUNABLE
               if not _same(getattr(mine, k), getattr(base, k))}
    if changed:
        program.retune(loop, reactor=reactor, **changed)
    if not _same(mine.sp, base.sp):
        program.set_setpoint(loop, mine.sp, reactor=reactor)


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))
