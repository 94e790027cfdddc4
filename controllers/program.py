"""Declarative loop graphs compiled into an ordered sequence of vector stages.

A :class:`ControlProgram` holds the same loop graph for every reactor. Loops are grouped by
cascade depth: every stage is one :class:`~controllers.pid.PidBank` whose rows are
``loop x reactor``; a master's outputs are gathered into its slaves' remote setpoints with
one fancy-index per stage, and split ranges / sequences are one vectorized map over all
actuator channels. No Python loop over loop objects runs in :meth:`ControlProgram.step`.

Example (DO cascade on one reactor: agitation, then air, then O2)::

    do = LoopSpec("do", pv="do_pct", pid=PidSpec(kp=2.0, ti_s=60.0, out_lo=0, out_hi=100, sp=30.0))
    prog = compile_program([do], splits=[sequence("do", [("agitation_rpm", 200, 1200),
                                                        ("air_flow_slpm", 1, 10),
                                                        ("o2_flow_slpm", 0, 5)])],
                           n_reactors=8)
    result = prog.step(pv, pv_ok, dt_s=5.0)      # pv: (n_loops, n_reactors)
    result.actuators["agitation_rpm"]             # (n_reactors,)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import numpy.typing as npt

from controllers.pid import CASCADE, BoolArray, FloatArray, Mode, PidBank, PidSpec


@dataclass(frozen=True)
class LoopSpec:
    """One loop of the per-reactor graph.

    Parameters
    ----------
    name : str
        Unique loop name (``"do"``, ``"ph"``, ``"temperature"``).
    pv : str
        Measured signal (plant/tag name), e.g. ``"do_pct"``.
    pid : PidSpec
        Tuning, limits, mode, policies; ``pid.sp`` is the initial local setpoint.
    mv : str | None
        Actuator written with the loop output directly. None when the output feeds a
        cascade slave or a split range.
    sp_tag : str | None
        Signal carrying the operator setpoint (e.g. ``"do_sp_pct"``), for the caller that
        wires tags; the program itself takes setpoints through ``step(sp=...)``.
    """

    name: str
    pv: str
    pid: PidSpec = field(default_factory=PidSpec)
    mv: str | None = None
    sp_tag: str | None = None


@dataclass(frozen=True)
class Cascade:
    """``outer``'s output is ``inner``'s remote setpoint (used while inner is in cascade)."""

    outer: str
    inner: str


@dataclass(frozen=True)
class RangeMap:
    """Map controller output ``u`` in ``[u_lo, u_hi]`` linearly onto ``[mv_lo, mv_hi]`` of ``mv``.

    Outside the interval the actuator stays at the nearer end. ``u_lo > u_hi`` is allowed
    (acid on the negative half of a pH output).
    """

    mv: str
    u_lo: float
    u_hi: float
    mv_lo: float
    mv_hi: float

    def __post_init__(self) -> None:
        if self.u_lo == self.u_hi:
            raise ValueError(f"RangeMap for {self.mv!r}: u_lo and u_hi must differ")


@dataclass(frozen=True)
class SplitRange:
    """One loop output driving several actuators (split range or sequencing)."""

    loop: str
    maps: tuple[RangeMap, ...]


def sequence(loop: str, stages: Sequence[tuple[str, float, float]], u_lo: float = 0.0,
             u_hi: float = 100.0, widths: Sequence[float] | None = None) -> SplitRange:
    """Sequenced actuators: consecutive slices of the output drive consecutive stages.

    The classic DO cascade: demand raises agitation first, then air flow, then O2
    enrichment; each stage's range is used up before the next one starts, and the
    earlier stages stay at their maximum.

    Parameters
    ----------
    stages : sequence of (mv, mv_lo, mv_hi)
        Actuators in the order they are used.
    widths : sequence of float, optional
        Relative share of ``[u_lo, u_hi]`` per stage (default equal). Give a stage with a
        strong effect per unit (O2 enrichment) a wider slice so the loop gain stays
        similar across stages and one tuning fits all of them.
    """
    w = np.ones(len(stages)) if widths is None else np.asarray(widths, dtype=np.float64)
    if w.shape != (len(stages),) or np.any(w <= 0):
        raise ValueError("widths must be positive, one per stage")
    edges = u_lo + (u_hi - u_lo) * np.concatenate([[0.0], np.cumsum(w) / w.sum()])
    return SplitRange(loop, tuple(RangeMap(mv, float(edges[k]), float(edges[k + 1]), lo, hi)
                                  for k, (mv, lo, hi) in enumerate(stages)))


def split_range(loop: str, low_side: tuple[str, float], high_side: tuple[str, float],
                u_lo: float = -100.0, u_hi: float = 100.0, u_mid: float = 0.0) -> SplitRange:
    """Two-sided split range: ``high_side`` runs 0..max as u goes mid->hi, ``low_side`` as mid->lo.

    pH: ``split_range("ph", ("acid_rate_l_per_h", 0.2), ("base_rate_l_per_h", 0.2))``.
    """
    return SplitRange(loop, (RangeMap(high_side[0], u_mid, u_hi, 0.0, high_side[1]),
                             RangeMap(low_side[0], u_mid, u_lo, 0.0, low_side[1])))


@dataclass
class StepResult:
    """Outputs of one program step.

    ``mv`` has shape (n_loops, n_reactors) in the declared loop order (output units of each
    loop); ``actuators`` maps actuator names to arrays of shape (n_reactors,).
    """

    mv: FloatArray
    actuators: dict[str, FloatArray]


class ControlProgram:
    """The compiled graph: stages of PID banks plus the actuator map. Build with :func:`compile_program`."""

    def __init__(self, loops: Sequence[LoopSpec], cascades: Sequence[Cascade],
                 splits: Sequence[SplitRange], n_reactors: int, dt_max_s: float,
                 chunk: int) -> None:
        names = [lp.name for lp in loops]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate loop names in {names}")
        if n_reactors < 1:
            raise ValueError("n_reactors must be >= 1")
        index = {n: k for k, n in enumerate(names)}
        outer_of: dict[str, str] = {}
        for cz in cascades:
            for n in (cz.outer, cz.inner):
                if n not in index:
                    raise ValueError(f"cascade names unknown loop {n!r}; loops: {names}")
            if cz.inner in outer_of:
                raise ValueError(f"loop {cz.inner!r} has two cascade masters")
            outer_of[cz.inner] = cz.outer

        def depth(n: str, seen: tuple[str, ...] = ()) -> int:
            if n in seen:
                raise ValueError(f"cascade cycle through {n!r}")
            return 0 if n not in outer_of else 1 + depth(outer_of[n], seen + (n,))

        depths = {n: depth(n) for n in names}
        self.n_reactors = nr = n_reactors
        self.loop_names = tuple(names)
        self._loops = {lp.name: lp for lp in loops}
        self.stages: list[PidBank] = []
        self._stage_loops: list[list[int]] = []  # declared loop indices per stage
        self._where: dict[str, tuple[int, int]] = {}  # loop -> (stage, position in stage)
        for s in range(max(depths.values()) + 1):
            members = [index[n] for n in names if depths[n] == s]
            specs = []
            for k in members:
                spec = loops[k].pid
                if loops[k].name in outer_of:
                    # A slave in cascade mode takes its setpoint from the master.
                    spec = spec if spec.mode != "auto" else replace(spec, mode="cascade")
                specs.extend([spec] * nr)
            self.stages.append(PidBank(specs, dt_max_s=dt_max_s, chunk=chunk))
            self._stage_loops.append(members)
            for pos, k in enumerate(members):
                self._where[names[k]] = (s, pos)
        # Cascade wiring per stage s >= 1: rows of stage s-1 feeding each row of stage s.
        self._sp_src: list[npt.NDArray[np.intp] | None] = [None]
        self._has_master: list[BoolArray | None] = [None]
        r = np.arange(nr)
        for s in range(1, len(self.stages)):
            src = np.zeros(len(self._stage_loops[s]) * nr, dtype=np.intp)
            for pos, k in enumerate(self._stage_loops[s]):
                _, opos = self._where[outer_of[names[k]]]
                src[pos * nr:(pos + 1) * nr] = opos * nr + r
            self._sp_src.append(src)
        # Inverse action of each slave (for the master's windup block), per slave row.
        self._slave_sign = [None] + [
            np.repeat([1.0 if loops[k].pid.action == "reverse" else -1.0 for k in self._stage_loops[s]], nr)
            for s in range(1, len(self.stages))]
        # Master rows are clamped to the slave's setpoint range so the master's own
        # back-calculation sees the limits the slave applies.
        for s in range(1, len(self.stages)):
            inner = self.stages[s]
            master = self.stages[s - 1]
            src = self._sp_src[s]
            for name in ("sp_lo", "sp_hi"):
                vals = inner.params(name)
                finite = np.isfinite(vals)
                if finite.any():
                    master.retune(src[finite], **{"out_lo" if name == "sp_lo" else "out_hi": vals[finite]})
        # Actuator map: direct loops and split ranges, as gather + one vector expression.
        split_loops = {sp.loop for sp in splits}
        self._act_names: list[str] = []
        direct_rows: list[int] = []
        for k, lp in enumerate(loops):
            if lp.mv is not None:
                if lp.name in split_loops:
                    raise ValueError(f"loop {lp.name!r} has both mv and a split range")
                self._act_names.append(lp.mv)
                direct_rows.append(k)
        map_rows, u_lo, u_hi, mv_lo, mv_hi = [], [], [], [], []
        for sp in splits:
            if sp.loop not in index:
                raise ValueError(f"split range names unknown loop {sp.loop!r}; loops: {names}")
            for m in sp.maps:
                self._act_names.append(m.mv)
                map_rows.append(index[sp.loop])
                u_lo.append(m.u_lo); u_hi.append(m.u_hi); mv_lo.append(m.mv_lo); mv_hi.append(m.mv_hi)
        if len(set(self._act_names)) != len(self._act_names):
            raise ValueError(f"an actuator is driven twice: {self._act_names}")
        self._direct_rows = np.array(direct_rows, dtype=np.intp)
        self._map_rows = np.array(map_rows, dtype=np.intp)
        col = lambda xs: np.array(xs, dtype=np.float64)[:, None]  # noqa: E731
        self._u_lo, self._inv_w = col(u_lo), 1.0 / (col(u_hi) - col(u_lo))
        self._mv_lo, self._mv_span = col(mv_lo), col(mv_hi) - col(mv_lo)
        self._mv = np.zeros((len(names), nr))
        self._sync_tracking()

    # ------------------------------------------------------------------ step
    def step(self, pv: FloatArray, pv_ok: BoolArray | None, dt_s: float, *,
             sp: FloatArray | None = None, ff: FloatArray | None = None) -> StepResult:
        """Advance all loops of all reactors by ``dt_s`` seconds.

        Parameters
        ----------
        pv : ndarray, shape (n_loops, n_reactors)
            Measurements in declared loop order (``loop_names``), pv units.
        pv_ok : ndarray of bool, shape (n_loops, n_reactors), or None
            False: invalid measurement (Bad quality, stale).
        dt_s : float
            Process time since the previous step, s.
        sp : ndarray, shape (n_loops, n_reactors), or None
            Local setpoints (operator/recipe values); NaN keeps the current one.
        ff : ndarray, shape (n_loops, n_reactors), or None
            Feedforward per loop, output units.

        Returns
        -------
        StepResult
            Loop outputs and actuator values.
        """
        shape = (len(self.loop_names), self.n_reactors)
        pv = np.asarray(pv, dtype=np.float64)
        if pv.shape != shape:
            raise ValueError(f"pv must have shape {shape}, got {pv.shape}")
        for nm, arr in (("pv_ok", pv_ok), ("sp", sp), ("ff", ff)):
            if arr is not None and np.shape(arr) != shape:
                raise ValueError(f"{nm} must have shape {shape}, got {np.shape(arr)}")
        prev_out: FloatArray | None = None
        for s, bank in enumerate(self.stages):
            rows = self._stage_loops[s]
            if sp is not None:
                bank.set_setpoint(None, np.asarray(sp, dtype=np.float64)[rows].ravel())
            sp_ext = None if s == 0 else prev_out[self._sp_src[s]]  # type: ignore[index]
            out = bank.step(pv[rows].ravel(), None if pv_ok is None else np.asarray(pv_ok)[rows].ravel(),
                            dt_s, sp_ext=sp_ext,
                            ff=None if ff is None else np.asarray(ff, dtype=np.float64)[rows].ravel())
            self._mv[rows] = out.reshape(len(rows), self.n_reactors)
            if s > 0:
                self._block_master_windup(s)
            prev_out = out
        self._sync_tracking()
        return StepResult(self._mv.copy(), self._actuators())

    def _block_master_windup(self, s: int) -> None:
        """Masters must not integrate toward a side their saturated slave cannot follow."""
        inner = self.stages[s]
        hi, lo = inner.saturation()
        in_casc = inner.mode_codes == CASCADE
        rev = self._slave_sign[s] > 0  # type: ignore[operator]
        # Reverse-acting slave: its output rises with its setpoint.
        block_up = in_casc & np.where(rev, hi, lo)
        block_down = in_casc & np.where(rev, lo, hi)
        master = self.stages[s - 1]
        hold_hi = np.zeros(master.n, dtype=bool)
        hold_lo = np.zeros(master.n, dtype=bool)
        src = self._sp_src[s]
        hold_hi[src] = block_up  # type: ignore[index]
        hold_lo[src] = block_down  # type: ignore[index]
        master.set_windup_block(hold_hi, hold_lo)

    def _sync_tracking(self) -> None:
        """Masters of slaves not in cascade follow the slave's setpoint (bumpless switch-over)."""
        for s in range(1, len(self.stages)):
            inner, master, src = self.stages[s], self.stages[s - 1], self._sp_src[s]
            track = inner.mode_codes != CASCADE
            master.set_tracking(src, track, inner.sp_eff)

    def _actuators(self) -> dict[str, FloatArray]:
        acts: dict[str, FloatArray] = {}
        nd = len(self._direct_rows)
        direct = self._mv[self._direct_rows]
        for k in range(nd):
            acts[self._act_names[k]] = direct[k]
        if len(self._map_rows):
            frac = np.clip((self._mv[self._map_rows] - self._u_lo) * self._inv_w, 0.0, 1.0)
            mapped = self._mv_lo + self._mv_span * frac
            for k in range(len(self._map_rows)):
                acts[self._act_names[nd + k]] = mapped[k]
        return acts

    # ------------------------------------------------------------------ run-time changes
    def _rows(self, loop: str, reactor: int | None) -> tuple[PidBank, npt.NDArray[np.intp]]:
        if loop not in self._where:
            raise KeyError(f"unknown loop {loop!r}; loops: {self.loop_names}")
        s, pos = self._where[loop]
        nr = self.n_reactors
        if reactor is None:
            return self.stages[s], np.arange(pos * nr, (pos + 1) * nr)
        if not 0 <= reactor < nr:
            raise IndexError(f"reactor {reactor} out of range 0..{nr - 1}")
        return self.stages[s], np.array([pos * nr + reactor])

    def set_mode(self, loop: str, mode: Mode, reactor: int | None = None) -> None:
        """Switch a loop (all reactors, or one) to manual/auto/cascade, bumplessly."""
        bank, rows = self._rows(loop, reactor)
        if mode == "cascade" and self._where[loop][0] == 0:
            raise ValueError(f"loop {loop!r} has no cascade master")
        bank.set_mode(rows, mode)
        self._sync_tracking()

    def retune(self, loop: str, reactor: int | None = None, **params: float | str) -> None:
        """Change PID parameters of one loop (all reactors, or one) without a bump."""
        bank, rows = self._rows(loop, reactor)
        bank.retune(rows, **params)

    def set_output(self, loop: str, value: float | FloatArray, reactor: int | None = None) -> None:
        """Take over the output the plant holds now, with no rate limit (see ``PidBank.set_output``)."""
        bank, rows = self._rows(loop, reactor)
        bank.set_output(rows, value)

    def set_manual_output(self, loop: str, value: float | FloatArray, reactor: int | None = None) -> None:
        """Operator output of a loop in manual, output units."""
        bank, rows = self._rows(loop, reactor)
        bank.set_manual_output(rows, value)

    def set_setpoint(self, loop: str, value: float | FloatArray, reactor: int | None = None) -> None:
        """Local setpoint of a loop, pv units."""
        bank, rows = self._rows(loop, reactor)
        bank.set_setpoint(rows, value)

    def components(self) -> dict[str, dict[str, FloatArray]]:
        """Per loop: P/I/D terms, output, setpoint, mode, saturation and bad-pv flags, each (n_reactors,)."""
        result: dict[str, dict[str, FloatArray]] = {}
        comps = [bank.components() for bank in self.stages]
        nr = self.n_reactors
        for name, (s, pos) in self._where.items():
            result[name] = {k: v[pos * nr:(pos + 1) * nr] for k, v in comps[s].items()}
        return result

    @property
    def actuator_names(self) -> tuple[str, ...]:
        """Actuators this program drives, in the order of :attr:`StepResult.actuators`."""
        return tuple(self._act_names)


def compile_program(loops: Sequence[LoopSpec], *, cascades: Sequence[Cascade] = (),
                    splits: Sequence[SplitRange] = (), n_reactors: int = 1,
                    dt_max_s: float = 60.0, chunk: int = 65536) -> ControlProgram:
    """Validate a loop graph and compile it into a :class:`ControlProgram`.

    Parameters
    ----------
    loops : sequence of LoopSpec
        The per-reactor loops; every reactor gets the same graph (rows ``loop x reactor``).
    cascades : sequence of Cascade
        Master -> slave links. A slave whose ``pid.mode`` is ``"auto"`` starts in cascade.
        Masters get the slave's ``sp_lo/sp_hi`` as output limits.
    splits : sequence of SplitRange
        Split ranges and sequences (:func:`sequence`, :func:`split_range`).
    n_reactors : int
        Number of reactors stepped together.
    dt_max_s, chunk : see :class:`~controllers.pid.PidBank`.

    Raises
    ------
    ValueError
        Unknown loop names, cycles, two masters for one slave, an actuator driven twice.
    """
    return ControlProgram(loops, cascades, splits, n_reactors, dt_max_s, chunk)
