"""A live status table per reactor for the terminal (works over SSH, no curses needed)."""

from __future__ import annotations

import math
import sys
import time
from datetime import datetime, timezone
from typing import TextIO

from telemetry.service.runner import Service

_MODES = {0.0: "M", 1.0: "A", 2.0: "C"}
_COLUMNS = (("do_pct", "DO %", "{:6.1f}"), ("ph", "pH", "{:5.2f}"), ("temperature_c", "T degC", "{:6.2f}"),
            ("feed_rate_l_per_h", "feed L/h", "{:8.4f}"), ("agitation_rpm", "stir rpm", "{:8.0f}"),
            ("volume_l", "V L", "{:5.2f}"))


class StatusView:
    """Prints a table of every reactor every ``every_s`` seconds of wall time."""

    def __init__(self, service: Service, every_s: float = 2.0, out: TextIO = sys.stdout,
                 start_process_s: float | None = None) -> None:
        self.service = service
        self.every_s = every_s
        self.out = out
        self.start_process_s = start_process_s
        self._last = 0.0

    def attach(self) -> None:
        self.service.on_scan = self._maybe_print

    def _maybe_print(self, service: Service) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self.out.write(self.render() + "\n")
            self.out.flush()

    def render(self) -> str:
        svc = self.service
        table, plan = svc.plan.table, svc.plan
        t = svc.process_clock.now_s
        if self.start_process_s is None and math.isfinite(t):
            self.start_process_s = t
        elapsed_h = (t - self.start_process_s) / 3600 if self.start_process_s is not None and math.isfinite(t) else 0.0
        stamp = datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if math.isfinite(t) else "-"
        usable = table.usable(svc.clock(), plan.stale_after_s)
        head = (f"process time {stamp} UTC (+{elapsed_h:5.2f} h)  scans {svc.stats.scans}  "
                f"points {svc.recorder.committed}  writes {svc.stats.writes} (failed {svc.stats.write_failures})  "
                f"mode {svc.write_mode}")
        cols = ["reactor", "batch"] + [c[1] for c in _COLUMNS] + ["loops", "alarms"]
        rows = []
        modes = self._modes()
        for reactor in plan.reactors:
            cells = [reactor, svc.batch_of.get(reactor, "")[:14]]
            for signal, _, fmt in _COLUMNS:
                i = plan.tag_id(reactor, signal)
                if i < 0:
                    cells.append("")
                elif not usable[i]:
                    cells.append("BAD")
                else:
                    cells.append(fmt.format(table.value[i]).strip())
            cells.append(modes.get(reactor, ""))
            bad = [name for name, ok in self._loop_health(reactor, usable) if not ok]
            cells.append(",".join(bad) if bad else "-")
            rows.append(cells)
        widths = [max(len(str(x)) for x in col) for col in zip(cols, *rows)]
        line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))  # noqa: E731
        return "\n".join([head, line(cols), *(line(r) for r in rows)])

    def _modes(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for g in self.service.plan.groups:
            comps = g.program.components()
            for r, reactor in enumerate(g.reactors):
                out[reactor] = " ".join(f"{name}:{_MODES.get(float(comps[name]['mode'][r]), '?')}"
                                        for name in g.program.loop_names)
        return out

    def _loop_health(self, reactor: str, usable: object) -> list[tuple[str, bool]]:
        out = []
        for g in self.service.plan.groups:
            if reactor not in g.reactors:
                continue
            r = g.reactors.index(reactor)
            for row, name in enumerate(g.program.loop_names):
                i = g.pv_ids[row, r]
                out.append((name, bool(i >= 0 and usable[i])))  # type: ignore[index]
        return out
