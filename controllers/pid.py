"""A bank of N PID loops stepped together: one call advances every loop of every reactor.

Control law (ISA/standard form, per row ``k``; ``s`` is +1 for reverse action, -1 for direct)::

    P = s*Kp*(b*sp - pv)                          (setpoint weight b, 2-DOF)
    D = Tf/(Tf+dt)*D + s*Kp*Td/(Tf+dt)*Δ(c*sp - pv)  (Tf = Td/N; c = 0: derivative on measurement)
    v = P + I + D + ff
    u = rate_limit(clip(v, out_lo, out_hi))
    I += s*Kp*dt/Ti * e  -  dt/Tt * (v - u)       (back-calculation, tracking time Tt)

The integral increment is skipped while ``v - u`` and the increment have the same sign
(conditional integration); together with back-calculation this keeps the integrator from
winding up against output limits *and* output rate limits. While a loop is not in control
(manual, tracking, or no valid measurement) the integrator is set so that ``v == u``, which
makes every mode change bumpless.

Reverse action (the default) means the output rises when pv falls below sp: heating,
base addition, DO via agitation. Direct action: cooling, acid addition.

The step is pure: ``dt`` and arrays come in, arrays go out. The hot path is a fixed sequence
of in-place NumPy calls on preallocated rows of one ``(n_fields, N)`` float64 block; large
banks are processed in cache-sized column chunks so that each field streams from memory once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

Mode = Literal["manual", "auto", "cascade"]
Action = Literal["reverse", "direct"]
BadPvPolicy = Literal["hold", "safe"]

# Positional-out ufuncs: np.clip's Python wrapper alone costs ~1.5 us per call.
_clip = getattr(np, "_core", getattr(np, "core", None)).umath.clip
_add, _subtract, _multiply = np.add, np.subtract, np.multiply
_less_equal, _logical_and = np.less_equal, np.logical_and
_copyto, _count_nonzero, _less = np.copyto, np.count_nonzero, np.less
# Measurements beyond this magnitude are treated as invalid (no sensor reads 1e100);
# with parameters bounded as in _check_params no intermediate can overflow.
_ABS_MAX = 1e100
_ABS2_MAX = _ABS_MAX * _ABS_MAX

MANUAL, AUTO, CASCADE = 0, 1, 2
_MODE_CODES = {"manual": MANUAL, "auto": AUTO, "cascade": CASCADE}
MODE_NAMES = ("manual", "auto", "cascade")

# Rows of the float block. Derived coefficients (KPS..NDB) are recomputed from the user
# parameters when dt, parameters or modes change; the rest is state or per-loop inputs.
(KPS, KPBM1, C, KI, KT, AD, BD, SPSTEP, NSPSTEP, RSTEP, OUT_LO, OUT_HI, SP_LO, SP_HI,
 DB, NDB, SAFE_GAIN, SAFE_OUT, SP, SP_EFF, PV_LAST, PBIAS, IB, D, OUT, MAN) = range(26)
_NF = 26
# Rows of the bool block.
CTRL, CASC, HOLD_HI, HOLD_LO = range(4)
_NB = 4

_PARAM_DEFAULTS: dict[str, float] = {
    "kp": 1.0, "ti_s": math.inf, "td_s": 0.0, "b": 1.0, "c": 0.0, "deriv_filter_n": 10.0,
    "tt_s": math.nan, "out_lo": 0.0, "out_hi": 100.0, "out_rate_per_s": math.inf,
    "sp_lo": -math.inf, "sp_hi": math.inf, "sp_rate_per_s": math.inf, "deadband": 0.0,
    "safe_out": 0.0,
}
PARAM_NAMES = tuple(_PARAM_DEFAULTS)


@dataclass(frozen=True)
class PidSpec:
    """Tuning, limits and policies of one PID loop (ISA standard form).

    Parameters
    ----------
    kp : float
        Proportional gain, output units per pv unit (>= 0; the sign comes from ``action``).
    ti_s : float
        Integral time, s. ``inf`` disables integral action (the integrator then only holds
        the manual bias, so manual->auto stays bumpless).
    td_s : float
        Derivative time, s. 0 disables derivative action.
    b, c : float
        Setpoint weights for P and D. ``b < 1`` softens setpoint steps; ``c = 0`` (default)
        puts the derivative on the measurement so a setpoint step gives no derivative kick.
    deriv_filter_n : float
        Derivative filter: first-order filter with time constant ``Td / N``; limits the
        high-frequency gain to ``Kp*N`` so sensor noise does not slam the actuator.
    tt_s : float
        Anti-windup tracking time, s. NaN picks ``sqrt(Ti*Td)`` (or ``Ti`` without D), the
        usual compromise: fast enough to unwind, slow enough not to reset on noise.
    out_lo, out_hi : float
        Output limits in output units. They also bound the integrator via back-calculation.
    out_rate_per_s : float
        Maximum output change, units per second (``inf`` = none). Protects pumps and
        valves; the integrator does not wind up against it either.
    sp_lo, sp_hi, sp_rate_per_s : float
        Setpoint clamp and ramp rate (units per s) applied to every setpoint source,
        including a cascade master's output.
    action : {"reverse", "direct"}
        Reverse: output rises as pv falls below sp (heating, base, DO). Direct: the opposite.
    deadband : float
        Error band (pv units) inside which P and I see zero error; outside it the error is
        reduced by the band, so crossing its edge never steps the output.
    mode : {"manual", "auto", "cascade"}
        Initial mode.
    bad_pv : {"hold", "safe"}
        On an invalid measurement: hold the last output, or move to ``safe_out``
        (still rate limited). The integrator is frozen either way.
    sp : float
        Initial local setpoint.
    out0 : float | None
        Initial output; None starts at ``clip(0, out_lo, out_hi)``.
    """

    kp: float = 1.0
    ti_s: float = math.inf
    td_s: float = 0.0
    b: float = 1.0
    c: float = 0.0
    deriv_filter_n: float = 10.0
    tt_s: float = math.nan
    out_lo: float = 0.0
    out_hi: float = 100.0
    out_rate_per_s: float = math.inf
    sp_lo: float = -math.inf
    sp_hi: float = math.inf
    sp_rate_per_s: float = math.inf
    action: Action = "reverse"
    deadband: float = 0.0
    mode: Mode = "auto"
    bad_pv: BadPvPolicy = "hold"
    safe_out: float = 0.0
    sp: float = 0.0
    out0: float | None = None

    def __post_init__(self) -> None:
        if self.action not in ("reverse", "direct"):
            raise ValueError(f"action must be 'reverse' or 'direct', got {self.action!r}")
        if self.mode not in _MODE_CODES:
            raise ValueError(f"mode must be one of {tuple(_MODE_CODES)}, got {self.mode!r}")
        if self.bad_pv not in ("hold", "safe"):
            raise ValueError(f"bad_pv must be 'hold' or 'safe', got {self.bad_pv!r}")
        _check_params({k: np.array([getattr(self, k)]) for k in PARAM_NAMES})


def _check_params(par: dict[str, FloatArray]) -> None:
    """Reject parameter sets that would make the law meaningless (raise ValueError)."""
    def bad(mask: BoolArray, what: str) -> None:
        if np.any(mask):
            raise ValueError(f"invalid PID parameters: {what}")
    # Magnitude bounds are far outside any real tuning; they guarantee the step's
    # arithmetic cannot overflow for |pv| < 1e100.
    bad(~((par["kp"] >= 0) & (par["kp"] <= 1e9)), "kp must be in [0, 1e9]")
    bad(~(par["ti_s"] >= 1e-6), "ti_s must be >= 1e-6 s (inf disables I)")
    bad(~((par["td_s"] >= 0) & (par["td_s"] <= 1e9)), "td_s must be in [0, 1e9] s")
    bad(~((np.abs(par["b"]) <= 1e3) & (np.abs(par["c"]) <= 1e3)), "b and c must be finite, |b|,|c| <= 1e3")
    bad(~((par["deriv_filter_n"] > 0) & (par["deriv_filter_n"] <= 1e3)), "deriv_filter_n must be in (0, 1e3]")
    bad(par["tt_s"] <= 0, "tt_s must be > 0 or NaN (automatic)")
    bad(~((np.abs(par["out_lo"]) <= 1e15) & (np.abs(par["out_hi"]) <= 1e15)), "out_lo/out_hi must be finite, |.| <= 1e15")
    bad(par["out_lo"] > par["out_hi"], "out_lo must be <= out_hi")
    bad(np.isnan(par["sp_lo"]) | np.isnan(par["sp_hi"]) | (par["sp_lo"] > par["sp_hi"]),
        "sp_lo must be <= sp_hi")
    bad(~(par["out_rate_per_s"] > 0) | ~(par["sp_rate_per_s"] > 0), "rates must be > 0 (inf = none)")
    bad(~np.isfinite(par["deadband"]) | (par["deadband"] < 0), "deadband must be finite and >= 0")
    bad(~np.isfinite(par["safe_out"]), "safe_out must be finite")
    for k in ("sp_lo", "sp_hi"):
        bad(np.isfinite(par[k]) & (np.abs(par[k]) > 1e15), f"{k} must be within +-1e15 (or +-inf: none)")


class PidBank:
    """N independent PID loops as rows of arrays, advanced by one :meth:`step`.

    Parameters
    ----------
    specs : sequence of PidSpec
        One spec per row; row ``k`` of every array argument is loop ``k``.
    dt_max_s : float
        Largest dt integrated in one step. A longer gap (a stalled source, a resumed
        simulation) is integrated as ``dt_max_s`` and the derivative restarts, so a gap
        never makes the output jump.
    chunk : int
        Column block size for large banks: every NumPy call of the step runs on one block
        at a time, so temporaries stay in cache and each field streams from memory once.
        The default was the fastest measured on a 2-core EPYC VM (bench/pid.py).

    Notes
    -----
    Returned arrays are views of internal state, valid until the next call that mutates
    the bank; copy them to keep them.
    """

    def __init__(self, specs: "list[PidSpec] | tuple[PidSpec, ...]", *, dt_max_s: float = 60.0,
                 chunk: int = 65536) -> None:
        n = len(specs)
        if n == 0:
            raise ValueError("a PidBank needs at least one loop")
        if not dt_max_s > 0:
            raise ValueError("dt_max_s must be > 0")
        self.n = n
        self.dt_max_s = float(dt_max_s)
        self._par = {k: np.array([getattr(s, k) for s in specs], dtype=np.float64) for k in PARAM_NAMES}
        self._sign = np.array([1.0 if s.action == "reverse" else -1.0 for s in specs])
        self._safe_policy = np.array([s.bad_pv == "safe" for s in specs])
        self._mode = np.array([_MODE_CODES[s.mode] for s in specs], dtype=np.int8)
        self._track = np.zeros(n, dtype=bool)
        self._f = np.zeros((_NF, n))
        self._b = np.zeros((_NB, n), dtype=bool)
        f = self._f
        f[SP] = [s.sp for s in specs]
        f[SP_EFF] = np.clip(f[SP], self._par["sp_lo"], self._par["sp_hi"])
        out0 = np.array([0.0 if s.out0 is None else s.out0 for s in specs])
        f[OUT] = np.clip(out0, self._par["out_lo"], self._par["out_hi"])
        f[IB] = f[OUT]  # P and D start at zero: the first auto step continues from out0
        f[MAN] = f[OUT]
        # Until a first valid sample, rows compute on pv = sp: finite, and held as bad pv.
        f[PV_LAST] = f[SP_EFF]
        self._sp_active = True
        self._valid = np.ones(n, dtype=bool)
        self._any_bad = False
        self._dt_cached = math.nan
        self._fresh = np.ones(n, dtype=bool)  # rows without a valid pv yet: no derivative kick
        self._any_fresh = True
        self._set_chunking(chunk)

    # ----------------------------------------------------------------- layout
    def _set_chunking(self, chunk: int) -> None:
        n = self.n
        self.chunk = max(1, min(int(chunk), n))
        w = self.chunk
        self._s = np.empty((6, w))
        self._sb = np.empty((2, w), dtype=bool)
        self._bounds = [(a, min(a + w, n)) for a in range(0, n, w)]
        # Per-chunk row views, built once: slicing ~40 views per step would cost more than
        # the arithmetic for small banks.
        self._views = [(tuple(self._f[:, a:e]), tuple(self._b[:, a:e]),
                        tuple(self._s[:, : e - a]), tuple(self._sb[:, : e - a]))
                       for a, e in self._bounds]

    # ----------------------------------------------------------------- coefficients
    def _refresh(self, dt: float) -> None:
        """Recompute dt-, parameter- and mode-dependent coefficient rows (whole bank)."""
        p, f, bf = self._par, self._f, self._b
        ctrl = ((self._mode != MANUAL) & ~self._track)
        bf[CTRL] = ctrl
        bf[CASC] = (self._mode == CASCADE) & ~self._track
        kps = self._sign * p["kp"]
        f[KPS] = kps
        f[KPBM1] = kps * (p["b"] - 1.0)
        pbias = f[KPBM1] * f[SP_EFF]
        f[IB] += pbias - f[PBIAS]  # ib = I + pbias: keep I (and the output) unchanged
        f[PBIAS] = pbias
        f[C] = p["c"]
        with np.errstate(invalid="ignore", divide="ignore"):
            ki = np.where(np.isinf(p["ti_s"]), 0.0, kps * dt / p["ti_s"])
            tt_auto = np.where(p["td_s"] > 0, np.sqrt(p["ti_s"] * p["td_s"]), p["ti_s"])
            tt = np.where(np.isnan(p["tt_s"]), tt_auto, p["tt_s"])
            kt = np.minimum(dt / tt, 1.0)  # > 1 would overshoot the tracking target
        f[KI] = np.where(ctrl, ki, 0.0)
        f[KT] = np.where(ctrl, kt, 1.0)  # not in control: integrator tracks u exactly
        tf = p["td_s"] / p["deriv_filter_n"]
        f[AD] = tf / (tf + dt)
        f[BD] = kps * p["td_s"] / (tf + dt)
        f[SPSTEP] = p["sp_rate_per_s"] * dt
        f[NSPSTEP] = -f[SPSTEP]
        f[RSTEP] = p["out_rate_per_s"] * dt
        f[OUT_LO], f[OUT_HI] = p["out_lo"], p["out_hi"]
        f[SP_LO], f[SP_HI] = p["sp_lo"], p["sp_hi"]
        f[DB] = p["deadband"]
        f[NDB] = -p["deadband"]
        f[SAFE_GAIN] = self._safe_policy
        f[SAFE_OUT] = p["safe_out"]
        self._any_manual = not bool(ctrl.all())
        self._any_casc = bool(bf[CASC].any())
        self._any_db = bool((p["deadband"] > 0).any())
        self._any_hold = bool(bf[HOLD_HI].any() or bf[HOLD_LO].any())
        self._dt_cached = dt

    # ----------------------------------------------------------------- step
    def step(self, pv: FloatArray, pv_ok: BoolArray | None, dt_s: float,
             sp_ext: FloatArray | None = None, ff: FloatArray | None = None) -> FloatArray:
        """Advance every loop by ``dt_s`` and return the outputs.

        Parameters
        ----------
        pv : ndarray, shape (N,)
            Measurements in pv units. NaN/Inf rows count as invalid.
        pv_ok : ndarray of bool, shape (N,), or None
            False marks a measurement as invalid (Bad quality, stale). None: all good.
        dt_s : float
            Process time since the previous step, s. ``dt <= 0`` or non-finite: nothing
            changes. Above ``dt_max_s``: integrated as ``dt_max_s``.
        sp_ext : ndarray, shape (N,), or None
            Remote setpoint used by rows in cascade mode (pv units); non-finite entries
            keep the current setpoint.
        ff : ndarray, shape (N,), or None
            Feedforward added to the output before limits, output units.

        Returns
        -------
        out : ndarray, shape (N,)
            Controller outputs, within ``[out_lo, out_hi]`` (view of internal state).
        """
        pv = np.asarray(pv, dtype=np.float64)
        if pv.shape != (self.n,):
            raise ValueError(f"pv must have shape ({self.n},), got {pv.shape}")
        if pv_ok is not None:
            pv_ok = np.asarray(pv_ok, dtype=bool)
            if pv_ok.shape != (self.n,):
                raise ValueError(f"pv_ok must have shape ({self.n},), got {pv_ok.shape}")
        if sp_ext is not None:
            sp_ext = np.asarray(sp_ext, dtype=np.float64)
            if sp_ext.shape != (self.n,):
                raise ValueError(f"sp_ext must have shape ({self.n},), got {sp_ext.shape}")
            sane = np.abs(sp_ext) <= 1e15  # False for NaN
            if not sane.all():
                sp_ext = np.where(sane, sp_ext, self._f[SP_EFF])
        if ff is not None:
            ff = np.asarray(ff, dtype=np.float64)
            if ff.shape != (self.n,):
                raise ValueError(f"ff must have shape ({self.n},), got {ff.shape}")
        dt = float(dt_s)
        if not (dt > 0.0 and math.isfinite(dt)):
            return self._f[OUT]
        restart_d = dt > self.dt_max_s
        if restart_d:
            dt = self.dt_max_s
        self._step_impl(pv, pv_ok, dt, sp_ext, ff, restart_d)
        return self._f[OUT]

    def _step_impl(self, pv: FloatArray, pv_ok: BoolArray | None, dt: float,
                   sp_ext: FloatArray | None, ff: FloatArray | None, restart_d: bool) -> None:
        if dt != self._dt_cached:
            self._refresh(dt)
        fresh = self._fresh if self._any_fresh else None
        if len(self._bounds) == 1:
            fv, bv, sv, sbv = self._views[0]
            with np.errstate(over="ignore", invalid="ignore"):  # dot product is expected
                moved = self._kernel(fv, bv, sv, sbv, pv, pv_ok, sp_ext, ff, self._valid, restart_d, fresh)
        else:
            moved = False
            with np.errstate(over="ignore", invalid="ignore"):  # dot product is expected
                for (a, e), (fv, bv, sv, sbv) in zip(self._bounds, self._views):
                    moved |= self._kernel(
                        fv, bv, sv, sbv, pv[a:e], None if pv_ok is None else pv_ok[a:e],
                        None if sp_ext is None else sp_ext[a:e],
                        None if ff is None else ff[a:e], self._valid[a:e], restart_d,
                        None if fresh is None else fresh[a:e])
        self._sp_active = moved
        if self._any_fresh:
            self._fresh &= ~self._valid
            self._any_fresh = bool(self._fresh.any())

    def _kernel(self, fv: tuple[FloatArray, ...], bv: tuple[BoolArray, ...],
                sv: tuple[FloatArray, ...], sbv: tuple[BoolArray, ...], pv: FloatArray,
                pv_ok: BoolArray | None, sp_ext: FloatArray | None, ff: FloatArray | None,
                valid_out: BoolArray, restart_d: bool, fresh: BoolArray | None) -> bool:
        """One column block. Returns True if the block's setpoints moved (ramp still active).

        Every call passes ``out`` positionally: at 10 loops the cost is call overhead.
        """
        (kps, kpbm1, c, ki, kt, ad, bd, spstep, nspstep, rstep, out_lo, out_hi, sp_lo,
         sp_hi, db, ndb, safe_gain, safe_out, sp_local, sp, pv_last, pbias, ib, d, out, man) = fv
        s0, s1, s2, s3, s4, s5 = sv
        valid, freeze = sbv
        # Validity on the common path: one dot product bounds every |pv| by 1e100 (NaN, Inf
        # and overflow all fail the comparison and take the exact path). The bound keeps
        # every product below finite in the arithmetic that follows.
        n = pv.shape[0]
        all_valid = (pv.dot(pv) < _ABS2_MAX and (pv_ok is None or _count_nonzero(pv_ok) == n)
                     and (ff is None or ff.dot(ff) < _ABS2_MAX))
        if all_valid:
            _subtract(pv_last, pv, s2)  # -Δpv for the derivative
            _copyto(pv_last, pv)
            pvu = pv
        else:
            _less(np.abs(pv), _ABS_MAX, valid)  # False for NaN too
            if pv_ok is not None:
                _logical_and(valid, pv_ok, valid)
            # Invalid rows compute on their last good pv: every term stays finite, the
            # derivative decays, and output/integrator are overridden below.
            _copyto(s2, pv_last)
            _copyto(pv_last, pv, where=valid)
            _subtract(s2, pv_last, s2)
            pvu = pv_last
            if ff is not None:
                ff = np.where(np.abs(ff) < _ABS_MAX, ff, 0.0)
        # Setpoint: source -> clamp -> ramp. Skipped once every setpoint has settled,
        # since the usual setpoint is constant for hours.
        sp_moved = False
        if self._sp_active or sp_ext is not None:
            if self._any_casc and sp_ext is not None:
                spt = np.where(bv[CASC], sp_ext, sp_local)
            else:
                spt = sp_local
            _clip(spt, sp_lo, sp_hi, s0)
            _subtract(s0, sp, s0)
            _clip(s0, nspstep, spstep, s0)
            _add(sp, s0, sp)
            sp_moved = _count_nonzero(s0) > 0
            if sp_moved:
                # P = s*Kp*(b*sp - pv) = s*Kp*e + pbias; pbias lives inside ib so the
                # settled path spends no pass on it.
                _multiply(kpbm1, sp, s3)
                _add(ib, s3, ib)
                _subtract(ib, pbias, ib)
                _copyto(pbias, s3)
                _multiply(s0, c, s0)
                _add(s2, s0, s2)  # Δ(c*sp - pv)
        # Error e (deadband shrinks it without a step at the band edge).
        _subtract(sp, pvu, s1)
        if self._any_db:
            _clip(s1, ndb, db, s3)
            _subtract(s1, s3, s1)
        # Filtered derivative, backward difference of c*sp - pv.
        _multiply(d, ad, d)
        if not restart_d:
            if fresh is not None:
                _multiply(s2, ~fresh, s2)  # no history before the first valid sample
            _multiply(s2, bd, s2)
            _add(d, s2, d)
        # v = P + I + D + ff (kept in s4).
        _multiply(s1, kps, s4)
        _add(s4, ib, s4)
        _add(s4, d, s4)
        if ff is not None:
            _add(s4, ff, s4)
        # Target: v in control, the manual/tracking value otherwise, hold/safe on bad pv.
        if self._any_manual:
            _copyto(s5, man)
            _copyto(s5, s4, where=bv[CTRL])
            tgt = s5
        else:
            tgt = s4
        if not all_valid:
            if tgt is s4:
                _copyto(s5, s4)
                tgt = s5
            bad_target = out + safe_gain * (safe_out - out)
            _copyto(tgt, bad_target, where=~valid & bv[CTRL])
        # Rate limit as a clip between out -/+ step: the result is exactly the limited
        # target or a point between it and the old output, so float rounding can never
        # leave [out_lo, out_hi] (out + (target - out) could).
        _clip(tgt, out_lo, out_hi, s5)
        _subtract(out, rstep, s0)
        _add(out, rstep, s3)
        _clip(s5, s0, s3, out)
        # Integrator: conditional integration + back-calculation on the excess v - u.
        _multiply(s1, ki, s1)
        _subtract(s4, out, s4)
        _multiply(s4, s1, s5)
        _less_equal(s5, 0.0, freeze)
        if self._any_hold:
            freeze &= ~((bv[HOLD_HI] & (s1 > 0)) | (bv[HOLD_LO] & (s1 < 0)))
        _multiply(s1, freeze, s1)
        _multiply(s4, kt, s4)
        if all_valid:
            if self._any_bad:
                valid_out.fill(True)
        else:
            _multiply(s1, valid, s1)
            _multiply(s4, valid, s4)
            _copyto(valid_out, valid)
            self._any_bad = True
        _subtract(s1, s4, s1)
        _add(ib, s1, ib)
        return sp_moved

    # ----------------------------------------------------------------- run-time changes
    def _rows(self, rows: "int | slice | npt.ArrayLike | None") -> npt.NDArray[np.intp]:
        if rows is None:
            return np.arange(self.n)
        idx = np.arange(self.n)[rows]
        return np.atleast_1d(idx)

    def set_mode(self, rows: "int | slice | npt.ArrayLike | None", mode: Mode) -> None:
        """Switch rows to ``manual``, ``auto`` or ``cascade`` without bumping the output.

        To manual the manual output starts at the current output; leaving cascade the
        local setpoint takes the current (remote) setpoint; the integrator already
        tracks the output while not in control.
        """
        if mode not in _MODE_CODES:
            raise ValueError(f"mode must be one of {tuple(_MODE_CODES)}, got {mode!r}")
        idx = self._rows(rows)
        code = _MODE_CODES[mode]
        f = self._f
        if code == MANUAL:
            to_manual = idx[self._mode[idx] != MANUAL]
            f[MAN, to_manual] = f[OUT, to_manual]
        leaving_casc = idx[(self._mode[idx] == CASCADE) & (code != CASCADE)]
        f[SP, leaving_casc] = f[SP_EFF, leaving_casc]
        self._mode[idx] = code
        self._dt_cached = math.nan
        self._sp_active = True

    def set_tracking(self, rows: "int | slice | npt.ArrayLike | None", track: "bool | BoolArray",
                     value: "float | FloatArray | None" = None) -> None:
        """Make rows follow an external value (a cascade master whose slave is not in cascade).

        Tracking rows output ``value`` (like manual) with a bumpless return to their mode.
        """
        idx = self._rows(rows)
        track_arr = np.broadcast_to(np.asarray(track, dtype=bool), idx.shape)
        if value is not None:
            self._f[MAN, idx[track_arr]] = np.broadcast_to(np.asarray(value, float), idx.shape)[track_arr]
        if not np.array_equal(self._track[idx], track_arr):
            self._track[idx] = track_arr
            self._dt_cached = math.nan

    def set_output(self, rows: "int | slice | npt.ArrayLike | None", value: "float | FloatArray") -> None:
        """Take over outputs the plant already holds (service start on a running vessel).

        Sets the output, the manual output and the integrator to ``value`` (clipped to the
        output limits) at once, with no rate limit: nothing moves, the bank only learns where
        the actuator is. Step once in manual and the integrator tracks the P and D terms, so
        the switch back to auto or cascade continues from ``value`` without a bump.
        """
        idx = self._rows(rows)
        val = np.broadcast_to(np.asarray(value, dtype=np.float64), idx.shape)
        if not np.isfinite(val).all():
            raise ValueError("output must be finite")
        f = self._f
        f[OUT, idx] = np.clip(val, self._par["out_lo"][idx], self._par["out_hi"][idx])
        f[MAN, idx] = f[OUT, idx]
        f[IB, idx] = f[OUT, idx] + f[PBIAS, idx]

    def set_manual_output(self, rows: "int | slice | npt.ArrayLike | None",
                          value: "float | FloatArray") -> None:
        """Operator output for rows in manual (applied with limits and rate limit)."""
        idx = self._rows(rows)
        val = np.broadcast_to(np.asarray(value, dtype=np.float64), idx.shape)
        if not np.isfinite(val).all():
            raise ValueError("manual output must be finite")
        self._f[MAN, idx] = val

    def set_setpoint(self, rows: "int | slice | npt.ArrayLike | None",
                     value: "float | FloatArray") -> None:
        """Local setpoint (pv units); clamped and ramped in the step. NaN entries are ignored."""
        idx = self._rows(rows)
        val = np.broadcast_to(np.asarray(value, dtype=np.float64), idx.shape)
        ok = np.isfinite(val)
        if np.any(np.abs(val[ok]) > 1e15):
            raise ValueError("setpoint magnitude must be <= 1e15")
        self._f[SP, idx[ok]] = val[ok]
        self._sp_active = True

    def set_windup_block(self, hold_hi: BoolArray, hold_lo: BoolArray) -> None:
        """Forbid integration upward (``hold_hi``) / downward (``hold_lo``), shape (N,).

        Used by cascades: a master must not integrate further in the direction its
        slave can no longer follow because the slave's output is saturated.
        """
        self._b[HOLD_HI] = hold_hi
        self._b[HOLD_LO] = hold_lo
        self._any_hold = bool(self._b[HOLD_HI].any() or self._b[HOLD_LO].any())

    def retune(self, rows: "int | slice | npt.ArrayLike | None", **params: "float | FloatArray | str") -> None:
        """Change parameters of some rows at run time without bumping their output.

        Accepts any :class:`PidSpec` parameter name (``kp``, ``ti_s``, ``out_hi``, ...)
        plus ``action`` and ``bad_pv``. The integrator absorbs the change of the
        proportional term, so the output continues from where it was.
        """
        idx = self._rows(rows)
        unknown = set(params) - set(PARAM_NAMES) - {"action", "bad_pv"}
        if unknown:
            raise ValueError(f"unknown PID parameters {sorted(unknown)}; allowed: {PARAM_NAMES + ('action', 'bad_pv')}")
        new = {k: v.copy() for k, v in self._par.items()}
        sign, policy = self._sign.copy(), self._safe_policy.copy()
        for k, v in params.items():
            if k == "action":
                if v not in ("reverse", "direct"):
                    raise ValueError(f"action must be 'reverse' or 'direct', got {v!r}")
                sign[idx] = 1.0 if v == "reverse" else -1.0
            elif k == "bad_pv":
                if v not in ("hold", "safe"):
                    raise ValueError(f"bad_pv must be 'hold' or 'safe', got {v!r}")
                policy[idx] = v == "safe"
            else:
                new[k][idx] = np.broadcast_to(np.asarray(v, dtype=np.float64), idx.shape)
        _check_params(new)
        p_old = self._p_term_for(idx, self._par, self._sign)
        p_new = self._p_term_for(idx, new, sign)
        self._par, self._sign, self._safe_policy = new, sign, policy
        f = self._f
        f[IB, idx] += p_old - p_new
        self._dt_cached = math.nan
        self._sp_active = True

    def _p_term_for(self, idx: npt.NDArray[np.intp], par: dict[str, FloatArray],
                    sign: FloatArray) -> FloatArray:
        f = self._f
        sp, pv = f[SP_EFF, idx], f[PV_LAST, idx]  # exactly what the last step used
        e = sp - pv
        db = par["deadband"][idx]
        wp = par["b"][idx] * sp - pv - np.clip(e, -db, db)
        out = sign[idx] * par["kp"][idx] * wp
        return np.where(np.isfinite(out), out, 0.0)

    # ----------------------------------------------------------------- recording
    @property
    def out(self) -> FloatArray:
        """Outputs, shape (N,), output units."""
        return self._f[OUT]

    @property
    def sp_eff(self) -> FloatArray:
        """Working setpoint after source selection, clamp and ramp, shape (N,), pv units."""
        return self._f[SP_EFF]

    def saturation(self) -> tuple[BoolArray, BoolArray]:
        """Rows whose output sits on its upper / lower limit, two bool arrays of shape (N,)."""
        f = self._f
        return f[OUT] >= self._par["out_hi"], f[OUT] <= self._par["out_lo"]

    @property
    def modes(self) -> list[str]:
        """Mode name per row."""
        return [MODE_NAMES[m] for m in self._mode]

    @property
    def mode_codes(self) -> npt.NDArray[np.int8]:
        """Mode per row: 0 manual, 1 auto, 2 cascade (shape (N,))."""
        return self._mode

    @property
    def tracking(self) -> BoolArray:
        """Rows currently tracking an external value, shape (N,)."""
        return self._track

    @property
    def pv_bad(self) -> BoolArray:
        """Rows whose last measurement was invalid (output held or safe), shape (N,)."""
        return ~self._valid

    def params(self, name: str) -> FloatArray:
        """Current value of one parameter for every row (copy), shape (N,)."""
        if name not in self._par:
            raise ValueError(f"unknown parameter {name!r}; allowed: {PARAM_NAMES}")
        return self._par[name].copy()

    def components(self) -> dict[str, FloatArray]:
        """P, I, D terms, output, setpoint, mode and saturation flags (copies), shape (N,) each.

        ``sat_hi``/``sat_lo`` are 1.0 where the output sits on a limit; ``pv_bad`` is 1.0 where
        the last measurement was invalid. Everything is float so it records as one table.
        """
        f = self._f
        all_rows = np.arange(self.n)
        return {
            "p": self._p_term_for(all_rows, self._par, self._sign), "i": f[IB] - f[PBIAS],
            "d": f[D].copy(), "out": f[OUT].copy(),
            "sp": f[SP_EFF].copy(), "mode": self._mode.astype(np.float64),
            "sat_hi": (f[OUT] >= self._par["out_hi"]).astype(np.float64),
            "sat_lo": (f[OUT] <= self._par["out_lo"]).astype(np.float64),
            "pv_bad": (~self._valid).astype(np.float64),
        }
