"""Benchmark: the vectorized PID bank against simple-pid (one object per loop, Python loop).

Run: ``python bench/pid.py [--quick]``. Prints absolute per-step times, then
``RATIO pid_vs_simple_pid_<n> <speedup>`` and ``FIGURE pid_1M_dram_fraction <x>``.

Both sides run the same PID law per loop (Kp, Ti, Td with output limits) in the same
process; ours additionally runs every feature enabled: setpoint weights b/c, derivative
filter, back-calculation + conditional integration, output rate limit, setpoint clamp and
ramp, deadband, feedforward, a pv-quality mask and the safe-output policy. simple-pid at
100k and 1M loops is timed on a 20k-object sample and scaled linearly.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import simple_pid

from controllers.pid import PidBank, PidSpec

DT = 1.0
KP, TI, TD = 2.0, 30.0, 2.0
SPEC = PidSpec(kp=KP, ti_s=TI, td_s=TD, b=0.8, c=0.1, deriv_filter_n=8.0, tt_s=10.0,
               out_lo=0.0, out_hi=100.0, out_rate_per_s=5.0, sp_lo=0.0, sp_hi=100.0,
               sp_rate_per_s=1.0, deadband=0.01, sp=50.0, bad_pv="safe", safe_out=10.0)
# Arrays the steady-state step streams through, bytes per loop: inputs pv (8), pv_ok (1),
# ff (8); coefficient rows kps, ki, kt, ad, bd, rate*dt, out_lo, out_hi, db, -db, sp_eff
# (11 x 8); state pv_last, ib, d, out read and written (4 x 16).
BYTES_PER_LOOP = 8 + 1 + 8 + 11 * 8 + 4 * 16


def median_time(fn, repeats: int, number: int) -> float:
    """Median over ``repeats`` of the mean time of ``number`` calls, s."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


def ours_stepper(n: int, moving_sp: bool = False):
    """A warmed-up closure stepping a bank of ``n`` loops once, plus calls per timing."""
    bank = PidBank([SPEC] * n)
    rng = np.random.default_rng(0)
    pv = rng.uniform(40, 60, n)
    ok = np.ones(n, dtype=bool)
    ff = rng.uniform(-1, 1, n)
    sp = np.array([50.0, 50.5])
    k = [0]

    def step() -> None:
        if moving_sp:
            k[0] ^= 1
            bank.set_setpoint(None, sp[k[0]])
        bank.step(pv, ok, DT, ff=ff)
    for _ in range(10):  # first steps of a big bank pay page faults
        step()
    return step, max(1, min(2000, 200_000 // n))


def simple_pid_stepper(n: int):
    """A closure stepping ``n`` simple_pid.PID objects once, plus calls per timing."""
    pids = [simple_pid.PID(KP, KP / TI, KP * TD, setpoint=50.0, sample_time=None, output_limits=(0.0, 100.0))
            for _ in range(n)]
    pv = np.random.default_rng(0).uniform(40, 60, n)
    out = [0.0] * n

    def step() -> None:
        values = pv.tolist()  # a caller holding a NumPy tag table must convert too
        for k, pid in enumerate(pids):
            out[k] = pid(values[k], dt=DT)
    step()
    return step, max(1, min(500, 20_000 // n))


def interleaved(a, b, repeats: int) -> tuple[float, float]:
    """Median per-call times of two steppers, alternated so machine load hits both alike."""
    (fa, na), (fb, nb) = a, b
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(median_time(fa, 1, na))
        tb.append(median_time(fb, 1, nb))
    return statistics.median(ta), statistics.median(tb)


def copy_bandwidth_bytes_per_s(repeats: int) -> float:
    """Read + write bytes per second of np.copyto on arrays far larger than the caches."""
    src = np.random.default_rng(0).random(16_000_000)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    t = median_time(lambda: np.copyto(dst, src), repeats, 3)
    return 2 * src.nbytes / t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    args = ap.parse_args()
    reps = 5 if args.quick else 11
    sample = 20_000
    for n, label in [(10, "10"), (10_000, "10k"), (100_000, "100k"), (1_000_000, "1M")]:
        m = min(n, sample)
        t_ours, t_simple = interleaved(ours_stepper(n), simple_pid_stepper(m), reps)
        how = "measured" if m == n else f"scaled from {m} loops"
        t_simple *= n / m
        print(f"n={n:>8}: ours {t_ours * 1e6:10.1f} us/step ({t_ours / n * 1e9:7.1f} ns/loop)   "
              f"simple-pid {t_simple * 1e6:12.1f} us/step ({how})")
        print(f"RATIO pid_vs_simple_pid_{label} {t_simple / t_ours:.2f}")
        if n == 1_000_000:
            f_moving, k_moving = ours_stepper(n, moving_sp=True)
            t_moving = median_time(f_moving, reps, k_moving)
            print(f"n={n:>8}: ours with the setpoint moving every step {t_moving * 1e6:10.1f} us/step")
            bw = copy_bandwidth_bytes_per_s(reps)
            touched = BYTES_PER_LOOP * n
            print(f"copy bandwidth {bw / 1e9:.2f} GB/s (read+write); step touches {touched / 1e6:.0f} MB "
                  f"-> {touched / t_ours / 1e9:.2f} GB/s")
            print(f"FIGURE pid_1M_dram_fraction {touched / t_ours / bw:.3f}")
            print(f"FIGURE pid_1M_step_ms {t_ours * 1e3:.2f}")


if __name__ == "__main__":
    main()
