"""Checks across sections, and the resolved view the service runs on.

Resolution expands the templates a user writes once (``[reactor_defaults]``, node templates,
loop and feed sets with per-reactor overrides) into concrete tags, loops and feeds per
reactor, checking on the way that every name used somewhere is defined somewhere else.

``resolve`` also runs on a partially valid file (``broken`` names the parts that failed their
own validation) so that ``check-config`` reports cross-reference errors together with type
errors; references into a broken part are skipped rather than reported twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from telemetry.config.errors import Issue, format_loc, suggest
from telemetry.config.fieldtypes import template_fields
from telemetry.config.models import Feed, Loop, Reactor, ReactorSpec, Tag, TagSpec
from telemetry.config.signals import CANONICAL_SIGNALS

Loc = tuple[str | int, ...]
_FEED_ADAPTER: TypeAdapter[Any] = TypeAdapter(Feed)
_WRITABLE = ("actuator", "setpoint")
_SAME = object()


@dataclass
class Resolved:
    reactors: dict[str, Reactor] = field(default_factory=dict)
    loops: dict[str, list[Loop]] = field(default_factory=dict)
    feeds: dict[str, list[Any]] = field(default_factory=dict)


class _Resolver:
    def __init__(self, cfg: Any, broken: frozenset[Loc], broken_names: dict[str, set[str]]) -> None:
        self.cfg = cfg
        self.broken = broken
        self.broken_names = broken_names
        self.issues: list[Issue] = []
        self.out = Resolved()
        # Reactors whose tags are known; loops and feeds check references only against these.
        self.known: set[str] = set()

    def add(self, loc: Loc, message: str, value: object = None) -> None:
        self.issues.append(Issue(loc, message, value))

    def defined(self, section: str) -> list[str]:
        """Names defined in a section, including ones whose table has errors (for suggestions)."""
        return list(dict.fromkeys([*getattr(self.cfg, section), *sorted(self.broken_names.get(section, ()))]))

    def is_broken(self, loc: Loc) -> bool:
        return any(loc[: len(b)] == b for b in self.broken)

    # -- reactors and tags ---------------------------------------------------------------------

    def reactors(self) -> None:
        cfg = self.cfg
        if not cfg.reactors and not self.is_broken(("reactors",)):
            self.add(("reactors",), "at least one reactor is required: add a [reactors.<name>] table")
        if self.is_broken(("reactor_defaults",)):
            return
        seen_nodes: dict[tuple[str, str], str] = {}
        for name, spec in cfg.reactors.items():
            if self.is_broken(("reactors", name)):
                continue
            reactor = self._reactor(name, cfg.reactor_defaults, spec)
            if reactor is None:
                continue
            self.out.reactors[name] = reactor
            self.known.add(name)
            for tag in reactor.tags.values():
                address = tag.node_id or tag.browse_path or ""
                other = seen_nodes.setdefault((tag.endpoint, address), f"{name}.{tag.signal}")
                if other != f"{name}.{tag.signal}":
                    self.add(("reactors", name, "tags", tag.signal),
                             f"same node as {other} on endpoint '{tag.endpoint}'", address)

    def _reactor(self, name: str, defaults: ReactorSpec, spec: ReactorSpec) -> Reactor | None:
        here: Loc = ("reactors", name)

        def pick(key: str) -> tuple[Any, Loc]:
            value = getattr(spec, key)
            if value is not None:
                return value, (*here, key)
            return getattr(defaults, key), ("reactor_defaults", key)

        ok = True
        endpoint, endpoint_loc = pick("endpoint")
        if endpoint is None:
            self.add((*here, "endpoint"), "required: name an [endpoints.<name>] table (here or in [reactor_defaults])")
            ok = False
        elif endpoint not in self.cfg.endpoints:
            if not self.is_broken(("endpoints", endpoint)):
                defined = self.defined("endpoints")
                self.add(endpoint_loc, "no such endpoint; defined: " + _names(defined) + suggest(endpoint, defined),
                         endpoint)
            ok = False

        node_template, node_loc = pick("node_template")
        browse_template, browse_loc = pick("browse_template")
        if spec.browse_template is not None and spec.node_template is None:
            node_template = None  # the reactor chose browse paths over the defaults' NodeIds
        elif spec.node_template is not None:
            browse_template = None
        template, template_loc = (node_template, node_loc) if node_template is not None else (browse_template, browse_loc)
        variables = {**(defaults.template_vars or {}), **(spec.template_vars or {})}
        if template is not None:
            unknown = template_fields(template) - {"reactor", "signal"} - set(variables)
            if unknown:
                self.add(template_loc, f"unknown placeholder {sorted(unknown)}; allowed: reactor, signal, "
                         f"or a key of template_vars", template)
                ok = False

        signals, signals_loc = pick("signals")
        tag_specs = {**(defaults.tags or {})}
        for sig, tag in (spec.tags or {}).items():
            base = tag_specs.get(sig)
            tag_specs[sig] = tag if base is None else base.model_copy(update=tag.model_dump(exclude_none=True))
        order = list(dict.fromkeys([*(signals or []), *tag_specs]))
        sampling_default, _ = pick("sampling_interval_ms")
        queue_default, _ = pick("queue_size")

        tags: dict[str, Tag] = {}
        for sig in order:
            tag = tag_specs.get(sig, TagSpec())
            in_signals = signals is not None and sig in signals
            loc: Loc = (*signals_loc, signals.index(sig)) if in_signals else (*here, "tags", sig)
            canonical = CANONICAL_SIGNALS.get(sig)
            kind = tag.kind or (canonical.kind if canonical else None)
            if kind is None:
                self.add(loc, "not a canonical signal" + suggest(sig, CANONICAL_SIGNALS)
                         + f"; a plant-specific signal needs kind = 'measurement'|'actuator'|'setpoint' "
                           f"in [reactors.{name}.tags.{sig}] or [reactor_defaults.tags.{sig}]", sig)
                ok = False
                continue
            node_id, browse_path = tag.node, tag.browse_path
            if node_id is None and browse_path is None:
                if template is None:
                    self.add((*here, "tags", sig), "no address: set node or browse_path, or a node_template/"
                             "browse_template for the reactor", None)
                    ok = False
                    continue
                if not ok:
                    continue
                address = template.format(reactor=name, signal=sig, **variables)
                node_id, browse_path = (address, None) if template is node_template else (None, address)
            if tag.deadband_abs is not None:
                deadband: tuple[Any, float] = ("absolute", tag.deadband_abs)
            elif tag.deadband_pct is not None:
                deadband = ("percent", tag.deadband_pct)
            else:
                deadband = ("none", 0.0)
            tags[sig] = Tag(
                reactor=name, signal=sig, endpoint=endpoint or "", node_id=node_id, browse_path=browse_path,
                kind=kind, unit=tag.unit if tag.unit is not None else (canonical.unit if canonical else ""),
                sampling_interval_ms=tag.sampling_interval_ms if tag.sampling_interval_ms is not None
                else sampling_default,
                deadband_type=deadband[0], deadband_value=deadband[1],
                queue_size=tag.queue_size if tag.queue_size is not None else queue_default,
                lo=tag.lo, hi=tag.hi)
        if not tags and ok:
            self.add(here, "no tags: list signals (with a template) or add [reactors.<name>.tags.<signal>] tables")
        return Reactor(name=name, endpoint=endpoint, tags=tags) if ok else None

    # -- loops and feeds --------------------------------------------------------------------------

    def _instances(self, kind: str, i: int, item: Any, validate: Any) -> dict[str, Any]:
        """Per-reactor copies of a loop or feed with that reactor's overrides applied."""
        all_reactors = list(self.cfg.reactors)
        defined = self.defined("reactors")
        if item.reactors is None:
            reactors = all_reactors
        else:
            reactors = []
            for j, r in enumerate(item.reactors):
                if r in self.cfg.reactors:
                    reactors.append(r)
                elif not self.is_broken(("reactors", r)):
                    self.add((kind, i, "reactors", j), "no such reactor; defined: " + _names(defined)
                             + suggest(r, defined), r)
        instances: dict[str, Any] = {}
        for r, values in item.overrides.items():
            if r not in reactors:
                self.add((kind, i, "overrides", r), f"this {kind[:-1]} does not run on reactor '{r}'; it runs on: "
                         + _names(reactors) + suggest(r, reactors), None)
        base = item.model_dump(exclude={"overrides"}, exclude_unset=True)
        for r in reactors:
            override = item.overrides.get(r)
            if not override:
                instances[r] = item
                continue
            try:
                instances[r] = validate(_deep_merge(base, override))
            except ValidationError as exc:
                for err in exc.errors():
                    loc = tuple(p for p in err["loc"] if p not in _FEED_KINDS)
                    self.issues.append(Issue((kind, i, "overrides", r, *loc), err["msg"], err.get("input"),
                                             err["type"], err.get("ctx")))
        return instances

    def loops_and_feeds(self) -> None:
        cfg = self.cfg
        names: dict[str, Loc] = {}
        loops: dict[str, tuple[int, Loop]] = {}
        for kind, items in (("loops", cfg.loops), ("feeds", cfg.feeds)):
            for i, item in items:
                if item.name in names:
                    self.add((kind, i, "name"), f"duplicate name: already used by {_path(names[item.name])}", item.name)
                    continue
                names[item.name] = (kind, i)
                if kind == "loops":
                    loops[item.name] = (i, item)

        outer_of = self._cascades(loops)
        drivers: dict[tuple[str, str], Loc] = {}
        for i, loop in cfg.loops:
            instances = self._instances("loops", i, loop, Loop.model_validate)
            for r, inst in instances.items():
                inst = self._loop_refs(i, r, inst, loops, outer_of)
                self.out.loops.setdefault(r, []).append(inst)
                for j, mv in enumerate(inst.outputs):
                    self._claim(drivers, r, mv, ("loops", i), _mv_loc(inst, j))
        for i, feed in cfg.feeds:
            instances = self._instances("feeds", i, feed, _FEED_ADAPTER.validate_python)
            for r, inst in instances.items():
                self._feed_refs(i, r, inst)
                self.out.feeds.setdefault(r, []).append(inst)
                self._claim(drivers, r, inst.mv, ("feeds", i), ("mv",))

    def _claim(self, drivers: dict[tuple[str, str], Loc], reactor: str, mv: str, owner: Loc, mv_loc: Loc) -> None:
        first = drivers.setdefault((reactor, mv), owner)
        if first != owner:
            self.add((*owner, *mv_loc), f"on reactor '{reactor}' this actuator is already driven by {_path(first)}", mv)

    def _tag(self, reactor: str, loc: Loc, signal: str, kinds: Iterable[str], role: str,
             value: object = _SAME) -> Tag | None:
        if reactor not in self.known:
            return None
        shown = signal if value is _SAME else value
        tag = self.out.reactors[reactor].tags.get(signal)
        if tag is None:
            tags = self.out.reactors[reactor].tags
            self.add(loc, f"reactor '{reactor}' has no tag '{signal}'" + suggest(signal, tags), shown)
            return None
        kinds = tuple(kinds)
        if tag.kind not in kinds:
            self.add(loc, f"{role} must be a tag of kind {' or '.join(kinds)}; '{signal}' is a {tag.kind}", shown)
        return tag

    def _cascades(self, loops: dict[str, tuple[int, Loop]]) -> dict[str, str]:
        broken = self.broken_names.get("loops", set())
        outer_of: dict[str, str] = {}
        for name, (i, loop) in loops.items():
            inner = loop.cascade_to
            if inner is None:
                continue
            if inner not in loops:
                if inner not in broken:
                    self.add(("loops", i, "cascade_to"), "no such loop" + suggest(inner, loops), inner)
                continue
            if inner in outer_of:
                self.add(("loops", i, "cascade_to"), f"loop '{inner}' already has outer loop '{outer_of[inner]}'", inner)
                continue
            outer_of[inner] = name
            j, inner_loop = loops[inner]
            if inner_loop.reactors is not None and (loop.reactors is None or not set(loop.reactors) <= set(inner_loop.reactors)):
                self.add(("loops", i, "reactors"), f"the inner loop '{inner}' must run on every reactor this loop runs on",
                         loop.reactors)
        for name, (i, loop) in loops.items():
            if loop.sp_from is None:
                continue
            if loop.sp_from not in loops:
                if loop.sp_from not in broken:
                    self.add(("loops", i, "sp_from"), "no such loop" + suggest(loop.sp_from, loops), loop.sp_from)
            elif loops[loop.sp_from][1].cascade_to != name:
                self.add(("loops", i, "sp_from"), f"loop '{loop.sp_from}' must have cascade_to = '{name}'", loop.sp_from)
        reported: set[frozenset[str]] = set()
        for name, (i, _) in loops.items():
            chain, current = [name], loops[name][1].cascade_to
            while current in loops and current not in chain:
                chain.append(current)
                current = loops[current][1].cascade_to
            if current == name and frozenset(chain) not in reported:
                reported.add(frozenset(chain))
                self.add(("loops", i, "cascade_to"), "cascade cycle: " + " -> ".join([*chain, name]),
                         loops[name][1].cascade_to)
        return outer_of

    def _loop_refs(self, i: int, r: str, loop: Loop, loops: dict[str, tuple[int, Loop]],
                   outer_of: dict[str, str]) -> Loop:
        here: Loc = ("loops", i)
        has_outer = loop.name in outer_of
        if loop.sp is None and not has_outer:
            self.add((*here, "sp"), "required (a number or a setpoint tag), unless an outer loop cascades to this one")
        if loop.mode == "cascade" and not has_outer:
            self.add((*here, "mode"), "'cascade' needs an outer loop with cascade_to = "
                     f"'{loop.name}'; allowed here: 'auto', 'manual'", loop.mode)
        self._tag(r, (*here, "pv"), loop.pv, ("measurement", "actuator", "setpoint"), "pv")
        if isinstance(loop.sp, str):
            self._tag(r, (*here, "sp"), loop.sp, ("setpoint", "measurement"), "sp")
        update: dict[str, float] = {}
        if loop.mv is not None:
            tag = self._tag(r, (*here, "mv"), loop.mv, _WRITABLE, "mv")
            if tag is not None:
                lo = loop.out_lo if loop.out_lo is not None else tag.lo
                hi = loop.out_hi if loop.out_hi is not None else tag.hi
                if lo is None or hi is None:
                    self.add((*here, "out_lo" if lo is None else "out_hi"),
                             f"required: the mv tag '{loop.mv}' of reactor '{r}' has no lo/hi to default to")
                else:
                    update = {"out_lo": lo, "out_hi": hi}
                    for key, value in update.items():
                        if (tag.lo is not None and value < tag.lo) or (tag.hi is not None and value > tag.hi):
                            self.add((*here, key), f"outside the range of tag '{loop.mv}' on '{r}' "
                                     f"({tag.lo}..{tag.hi})", value)
        elif loop.cascade_to is not None and loop.cascade_to in loops:
            inner = loops[loop.cascade_to][1]
            lo = loop.out_lo if loop.out_lo is not None else inner.sp_lo
            hi = loop.out_hi if loop.out_hi is not None else inner.sp_hi
            if lo is None or hi is None:
                self.add((*here, "out_lo" if lo is None else "out_hi"),
                         f"required: the inner loop '{inner.name}' has no sp_lo/sp_hi to default to")
            else:
                update = {"out_lo": lo, "out_hi": hi}
        else:
            update = {"out_lo": 0.0 if loop.out_lo is None else loop.out_lo,
                      "out_hi": 100.0 if loop.out_hi is None else loop.out_hi}
            key = "split_range" if loop.split_range is not None else "sequence"
            for j, stage in enumerate(loop.split_range or loop.sequence or []):
                tag = self._tag(r, (*here, key, j, "mv"), stage.mv, _WRITABLE, "a stage's mv")
                if tag is None:
                    continue
                for end in ("mv_at_lo", "mv_at_hi"):
                    value = getattr(stage, end)
                    if (tag.lo is not None and value < tag.lo) or (tag.hi is not None and value > tag.hi):
                        self.add((*here, key, j, end), f"outside the range of tag '{stage.mv}' on '{r}' "
                                 f"({tag.lo}..{tag.hi})", value)
        return loop.model_copy(update=update) if update else loop

    def _feed_refs(self, i: int, r: str, feed: Any) -> None:
        here: Loc = ("feeds", i)
        tag = self._tag(r, (*here, "mv"), feed.mv, _WRITABLE, "mv")
        if tag is not None and feed.max_rate_l_per_h is not None and tag.hi is not None \
                and feed.max_rate_l_per_h > tag.hi:
            self.add((*here, "max_rate_l_per_h"), f"above the range of tag '{feed.mv}' on '{r}' (hi = {tag.hi})",
                     feed.max_rate_l_per_h)
        needs: list[tuple[Loc, str]] = []
        start = feed.start
        if start.kind == "do_spike":
            needs.append(((*here, "start", "kind"), "do_pct"))
        elif start.kind == "glucose_below":
            needs.append(((*here, "start", "kind"), "glucose_g_per_l"))
        elif start.kind == "our_drop":
            needs.append(((*here, "start", "kind"), "our_mmol_per_l_h"))
        if feed.max_volume_l is not None:
            needs.append(((*here, "max_volume_l"), "volume_l"))
        if feed.kind == "exponential":
            if feed.v0_l is None:
                needs.append(((*here, "v0_l"), "volume_l"))
            if feed.x0_g_per_l is None:
                needs.append(((*here, "biomass_tag"), feed.biomass_tag))
        elif feed.kind == "do_stat":
            needs.append(((*here, "kind"), "do_pct"))
        elif feed.kind == "ph_stat":
            needs.append(((*here, "kind"), "ph"))
        for loc, signal in needs:
            self._tag(r, loc, signal, ("measurement",), f"'{signal}' (needed here)", value=None)


_FEED_KINDS = frozenset({"exponential", "linear", "piecewise", "do_stat", "ph_stat",
                         "immediately", "time", "do_spike", "glucose_below", "our_drop"})


def resolve(cfg: Any, broken: frozenset[Loc] = frozenset(),
            broken_names: dict[str, set[str]] | None = None) -> tuple[Resolved, list[Issue]]:
    """Expand templates into per-reactor tags, loops and feeds; return them with every problem.

    ``cfg`` is a :class:`~telemetry.config.models.ServiceConfig` or any object with the same
    attributes, where ``loops`` and ``feeds`` are lists of ``(index, item)`` pairs when called
    from the partial check (a ServiceConfig's plain lists are enumerated here).
    """
    view = _View(cfg)
    resolver = _Resolver(view, broken, broken_names or {})
    resolver.reactors()
    resolver.loops_and_feeds()
    return resolver.out, resolver.issues


class _View:
    """Presents a ServiceConfig like the partial view: loops/feeds as (index, item) pairs."""

    def __init__(self, cfg: Any) -> None:
        self.endpoints = cfg.endpoints
        self.reactor_defaults = cfg.reactor_defaults
        self.reactors = cfg.reactors
        self.loops = _indexed(cfg.loops)
        self.feeds = _indexed(cfg.feeds)


def _indexed(items: Any) -> list[tuple[int, Any]]:
    items = list(items)
    if items and isinstance(items[0], tuple):
        return items
    return list(enumerate(items))


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _mv_loc(loop: Loop, j: int) -> Loc:
    if loop.mv is not None:
        return ("mv",)
    return ("split_range" if loop.split_range is not None else "sequence", j, "mv")


def _names(names: Iterable[str]) -> str:
    listed = ", ".join(f"'{n}'" for n in names)
    return listed or "(none)"


def _path(loc: Loc) -> str:
    return format_loc(loc)
