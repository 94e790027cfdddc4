"""One control scan: tag table in, actuator demands and records out. No I/O here.

The scan gathers every loop's pv and setpoint from the tag table with one fancy-index per
group, steps each group's compiled program once, computes the feeds for all reactors at
once, and reports what to write and what to record. Loops whose measurement is bad or
stale hold (or go to their safe output) inside the controllers; the scan raises an alarm
on the change and clears it on recovery (log on a change of state, not per scan).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from telemetry.service.plan import LoopGroup, ServicePlan
from telemetry.service.recorder import Recorder
from telemetry.tags import TagTable

_MODE_NAMES = ("manual", "auto", "cascade")  # controllers.pid mode codes

EventSink = Callable[[float, str, str, str, str], None]  # (time_s, reactor, kind, severity, message)


@dataclass
class ScanOutput:
    """What one scan asks to write: output key (``R1.agitation_rpm``) -> value, and whether
    the loops driving it are all healthy (a held loop's demand is still written: it is the
    held value, which keeps the rate limiter and read-back honest)."""

    requests: dict[str, float] = field(default_factory=dict)
    bad_loops: int = 0
    loop_records: list[tuple[Any, ...]] = field(default_factory=list)
    """Arguments of ``Recorder.loops`` for each loop of the scan: recorded by :meth:`ControlScan.record`
    after the outputs are written, so encoding loop internals never delays a write."""


class ControlScan:
    """Steps every loop group and the feeds for one grid point of the process clock.

    Parameters
    ----------
    plan : ServicePlan
    feeds : object with ``inputs``, ``outputs`` and ``step(t_s, dt_s, values, ok)``, or None
        The feed bank (``telemetry.service.feeds.build_feed_bank``).
    recorder : Recorder
    on_event : callable
        Receives alarms and feed events ``(time_s, reactor, kind, severity, message)``.
    """

    def __init__(self, plan: ServicePlan, feeds: object | None, recorder: Recorder, on_event: EventSink) -> None:
        self.plan = plan
        self.table: TagTable = plan.table
        self.feeds = feeds
        self.recorder = recorder
        self.on_event = on_event
        self._initialised = [np.zeros((len(g.program.loop_names), len(g.reactors)), dtype=bool) for g in plan.groups]
        self._alarm = [np.zeros((len(g.program.loop_names), len(g.reactors)), dtype=bool) for g in plan.groups]
        # actuator -> row of the loop that drives it, per group
        self._driver_row = [{m[0]: g.program.loop_names.index(loop) for loop, maps in g.output_maps.items() for m in maps}
                            for g in plan.groups]
        self._output_ids = [_loop_output_ids(plan, g) for g in plan.groups]
        self._process_time_ids = np.array([plan.tag_id(r, "process_time_s") for r in plan.reactors], dtype=np.intp)
        self._batch_start_s = np.full(len(plan.reactors), np.nan)
        if feeds is not None:
            self._feed_inputs = {sig: np.array([plan.tag_id(r, sig) for r in plan.reactors], dtype=np.intp)
                                 for sig in feeds.inputs}  # type: ignore[attr-defined]
        self.scans = 0

    # ------------------------------------------------------------------------------------------
    def step(self, t_s: float, dt_s: float, now_s: float, batch_of: dict[str, str]) -> ScanOutput:
        """Run one scan at process time ``t_s`` (dt since the previous scan), judging
        freshness at ``now_s`` on the service's monotonic clock."""
        usable = self.table.usable(now_s, self.plan.stale_after_s)
        out = ScanOutput()
        for k, group in enumerate(self.plan.groups):
            self._step_group(k, group, t_s, dt_s, usable, batch_of, out)
        if self.feeds is not None:
            self._step_feeds(t_s, dt_s, usable, out)
        self.scans += 1
        return out

    def record(self, out: ScanOutput) -> None:
        """Hand the scan's loop internals to the recorder (after its outputs are written)."""
        for args in out.loop_records:
            self.recorder.loops(*args)
        out.loop_records.clear()

    def check_alarms(self, t_s: float, now_s: float) -> None:
        """Raise or clear bad-measurement alarms without stepping the loops (the runner's
        watchdog, when no new source time arrives: a silent plant must still alarm)."""
        usable = self.table.usable(now_s, self.plan.stale_after_s)
        for k, group in enumerate(self.plan.groups):
            _, pv_ok = self._gather(group.pv_ids, usable)
            self._alarms(k, group, t_s, pv_ok)

    def _gather(self, ids: npt.NDArray[np.intp], usable: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        have = ids >= 0
        safe_ids = np.where(have, ids, 0)
        values = np.where(have, self.table.value[safe_ids], np.nan)
        ok = have & usable[safe_ids]
        return values, ok

    def _step_group(self, k: int, g: LoopGroup, t_s: float, dt_s: float, usable: npt.NDArray[np.bool_],
                    batch_of: dict[str, str], out: ScanOutput) -> None:
        prog = g.program
        restore = self._hold_offline(k, g) + self._bumpless_start(k, g, usable)
        pv, pv_ok = self._gather(g.pv_ids, usable)
        sp_tag, sp_ok = self._gather(g.sp_ids, usable)
        # A bad setpoint tag keeps the current setpoint (NaN = keep), never a jump to garbage.
        sp = np.where(g.sp_ids >= 0, np.where(sp_ok, sp_tag, np.nan), g.sp_const)
        result = prog.step(pv, pv_ok, dt_s, sp=sp)
        for name, r, mode in restore:
            prog.set_mode(name, mode, reactor=r)  # type: ignore[arg-type]
        ready = self._initialised[k]
        for actuator, keys in g.actuator_keys.items():
            row = self._driver_row[k][actuator]
            for r, (key, value) in enumerate(zip(keys, result.actuators[actuator].tolist())):
                # A loop that could not yet read the output the plant holds does not write:
                # its first output would be a guess, and a guess bumps a running vessel.
                if ready[row, r]:
                    out.requests[key] = value
        self._alarms(k, g, t_s, pv_ok)
        out.bad_loops += int((~pv_ok).sum())
        batches = [batch_of.get(r, "unknown") for r in g.reactors]
        comps = prog.components()
        for row, name in enumerate(prog.loop_names):
            c = comps[name]
            # copies: the bank's arrays change in place at the next step
            terms = {"sp": c["sp"].copy(), "pv": pv[row].copy(), "mv": c["out"].copy(), "p": c["p"].copy(),
                     "i": c["i"].copy(), "d": c["d"].copy()}
            out.loop_records.append((t_s, g.reactors, name, batches, terms, c["mode"].copy(),
                                     (c["sat_hi"] > 0) | (c["sat_lo"] > 0), pv_ok[row].copy()))

    def _hold_offline(self, k: int, g: LoopGroup) -> list[tuple[str, int, str]]:
        """Hold the loops whose actuators sit on a lost endpoint, and take them over again afterwards.

        Nothing the loop computes can reach the plant while its endpoint is gone, so a "safe"
        ramp would only be written as a bump after the reconnect; and a restarted PLC may come
        back holding other outputs. So such a loop steps in manual at its present output this
        scan (mode restored after the step, as in :meth:`_bumpless_start`) and is marked
        uninitialised: once its actuators are readable again it restarts from what the plant holds.
        """
        ids = self._output_ids[k]
        have = ids >= 0
        offline = (have & self.table.disconnected[np.where(have, ids, 0)]).any(axis=1)
        if not offline.any():
            return []
        self._initialised[k] &= ~offline
        prog = g.program
        comps = prog.components()
        restore = []
        for row, r in zip(*np.nonzero(offline)):
            name = prog.loop_names[row]
            mode = _MODE_NAMES[int(comps[name]["mode"][r])]
            if mode != "manual":
                prog.set_mode(name, "manual", reactor=int(r))
                restore.append((name, int(r), mode))
        return restore

    def _bumpless_start(self, k: int, g: LoopGroup, usable: npt.NDArray[np.bool_]) -> list[tuple[str, int, str]]:
        """Start each loop from the output the plant holds now, so taking over a running
        vessel does not bump its actuators (once per loop, when its actuators are readable).

        The loop steps once in manual at that output (its integrator tracks it), then goes
        back to its mode, which the PID bank switches without a bump. Returns the
        ``(loop, reactor index, mode)`` to restore after this scan's step.
        """
        todo = ~self._initialised[k]
        if not todo.any():
            return []
        prog = g.program
        comps = prog.components()
        restore = []
        for row, name in enumerate(prog.loop_names):
            maps = g.output_maps.get(name, [])
            for r, reactor in enumerate(g.reactors):
                if not todo[row, r]:
                    continue
                if not maps:
                    self._initialised[k][row, r] = True  # a master tracks its slave's setpoint
                    continue
                ids = [self.plan.tag_id(reactor, m[0]) for m in maps]
                if any(i < 0 or not usable[i] for i in ids):
                    continue
                self._initialised[k][row, r] = True
                u = _invert_maps(maps, [float(self.table.value[i]) for i in ids])
                mode = _MODE_NAMES[int(comps[name]["mode"][r])]
                if u is None or mode == "manual":
                    continue
                prog.set_mode(name, "manual", reactor=r)
                prog.set_output(name, u, reactor=r)
                restore.append((name, r, mode))
        return restore

    def _alarms(self, k: int, g: LoopGroup, t_s: float, pv_ok: npt.NDArray[np.bool_]) -> None:
        bad = ~pv_ok
        changed = bad != self._alarm[k]
        if not changed.any():
            return
        for row, r in zip(*np.nonzero(changed)):
            loop, reactor = g.program.loop_names[row], g.reactors[r]
            pv_tag = f"{reactor}.{g.loops[row].pv}" if row < len(g.loops) else reactor
            if bad[row, r]:
                self.on_event(t_s, reactor, "bad_pv", "alarm",
                              f"loop {loop}: measurement {pv_tag} is bad or stale; output held or safe")
            else:
                self.on_event(t_s, reactor, "bad_pv", "cleared", f"loop {loop}: measurement {pv_tag} is good again")
        self._alarm[k] = bad

    def _batch_start(self, t_s: float, usable: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        """Process time of each reactor's inoculation: from its ``process_time_s`` tag where the
        plant publishes one, else the time the service first saw the reactor (hour-based
        recipe triggers then count from the service's start)."""
        elapsed, ok = self._gather(self._process_time_ids, usable)
        known = ok & np.isfinite(elapsed)
        self._batch_start_s = np.where(known, t_s - elapsed,
                                       np.where(np.isnan(self._batch_start_s), t_s, self._batch_start_s))
        return self._batch_start_s

    def _step_feeds(self, t_s: float, dt_s: float, usable: npt.NDArray[np.bool_], out: ScanOutput) -> None:
        values, ok = {}, {}
        for sig, ids in self._feed_inputs.items():
            values[sig], ok[sig] = self._gather(ids, usable)
        res = self.feeds.step(t_s, dt_s, values, ok,  # type: ignore[attr-defined]
                              batch_start_s=self._batch_start(t_s, usable))
        for mv, rates in res.rate_l_per_h.items():
            for reactor, rate in zip(self.plan.reactors, np.asarray(rates).tolist()):
                key = f"{reactor}.{mv}"
                if rate == rate and key in self.plan.output_endpoint:  # NaN: no such feed on this reactor
                    out.requests[key] = rate
        for r, feed, kind, message in res.events:
            self.on_event(t_s, self.plan.reactors[r], kind, "info", f"feed {feed}: {message}")


def _loop_output_ids(plan: ServicePlan, g: LoopGroup) -> npt.NDArray[np.intp]:
    """Tag ids of the actuators each loop drives, shape (n_loops, n_maps, n_reactors); -1: none."""
    names = g.program.loop_names
    n_maps = max((len(g.output_maps.get(name, [])) for name in names), default=0)
    ids = np.full((len(names), max(n_maps, 1), len(g.reactors)), -1, dtype=np.intp)
    for row, name in enumerate(names):
        for j, m in enumerate(g.output_maps.get(name, [])):
            ids[row, j] = [plan.tag_id(reactor, m[0]) for reactor in g.reactors]
    return ids


def _invert_maps(maps: list[tuple[str, float, float, float, float]], mv: list[float]) -> float | None:
    """The controller output that reproduces the actuators' present values (None if none does).

    Each map sends ``u`` in ``[u_lo, u_hi]`` linearly to ``[mv_lo, mv_hi]`` and holds the ends
    outside. An actuator strictly inside its range pins ``u``; one at an end bounds it.
    """
    lo, hi = -np.inf, np.inf
    for (_, u_lo, u_hi, mv_lo, mv_hi), value in zip(maps, mv):
        if mv_hi == mv_lo:
            continue
        frac = (value - mv_lo) / (mv_hi - mv_lo)
        if 0.0 < frac < 1.0:
            return u_lo + frac * (u_hi - u_lo)
        # At the mv_lo end u is on the u_lo side of the map; at mv_hi on the u_hi side.
        bound, at_low_end = (u_lo, True) if frac <= 0.0 else (u_hi, False)
        below = at_low_end == (u_lo < u_hi)  # u <= bound
        if below:
            hi = min(hi, bound)
        else:
            lo = max(lo, bound)
    if np.isfinite(lo) and np.isfinite(hi):
        return (lo + hi) / 2 if lo <= hi else None
    if np.isfinite(lo):
        return lo
    if np.isfinite(hi):
        return hi
    return None
