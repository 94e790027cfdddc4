"""Output limits and rate limits: the last line of defence before a value goes to a fermenter.

Pure NumPy, no I/O, no clock: the actuator passes process-time steps in.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
LIMIT_NONE, LIMIT_LO, LIMIT_HI, LIMIT_RATE, LIMIT_HELD = 0, 1, 2, 3, 4
LIMIT_NAMES = {LIMIT_NONE: None, LIMIT_LO: "lo", LIMIT_HI: "hi", LIMIT_RATE: "rate", LIMIT_HELD: "held"}


def limit_outputs(
    requested: FloatArray,
    last: FloatArray,
    dt_s: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    max_rate_per_s: FloatArray,
) -> tuple[FloatArray, npt.NDArray[np.int8]]:
    """Clamp requested outputs into their range and their rate of change.

    Parameters
    ----------
    requested : array, shape (n,)
        What the controllers ask for, engineering units; NaN/Inf allowed (held).
    last : array, shape (n,)
        Last value written (or read from the device); NaN when unknown, which disables
        the rate limit for that output (the range still applies).
    dt_s : array, shape (n,)
        Process seconds since ``last`` was written; >= 0.
    lo, hi : array, shape (n,)
        Range; a value outside is clamped onto it.
    max_rate_per_s : array, shape (n,)
        Largest change per process second; ``inf`` for none. A rate limit stops a
        retuned or confused controller from slamming a feed pump from 0 to full in one period.

    Returns
    -------
    value : array, shape (n,)
        What to write; NaN where nothing may be written (non-finite request, no last value).
    limit : array of int8, shape (n,)
        Which limit acted (LIMIT_NONE, LIMIT_LO, LIMIT_HI, LIMIT_RATE, LIMIT_HELD); when
        both range and rate acted, the range wins, since it is the hard one.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in (requested, last, dt_s, lo, hi, max_rate_per_s)]
    n = arrays[0].shape
    if arrays[0].ndim != 1 or any(a.shape != n for a in arrays):
        raise ValueError(f"all arguments need the same shape (n,), got {[a.shape for a in arrays]}")
    if np.any(arrays[3] > arrays[4]) or np.any(np.isnan(arrays[3]) | np.isnan(arrays[4])):
        raise ValueError("need lo <= hi for every output")
    if np.any(~(arrays[2] >= 0)) or np.any(~(arrays[5] >= 0)):
        raise ValueError("dt_s and max_rate_per_s must be >= 0 (and not NaN)")
    return _limit_outputs_impl(*arrays)


def _limit_outputs_impl(
    requested: FloatArray, last: FloatArray, dt_s: FloatArray, lo: FloatArray, hi: FloatArray, rate: FloatArray
) -> tuple[FloatArray, npt.NDArray[np.int8]]:
    limit = np.zeros(requested.shape, dtype=np.int8)
    held = ~np.isfinite(requested)
    value = np.where(held, last, requested)

    has_last = np.isfinite(last)
    with np.errstate(invalid="ignore"):  # inf rate * 0 s
        step = np.where(np.isfinite(rate), rate * dt_s, np.inf)
    down, up = last - step, last + step
    rate_lo = has_last & ~held & (value < down)
    rate_hi = has_last & ~held & (value > up)
    value = np.where(rate_lo, down, np.where(rate_hi, up, value))
    limit[rate_lo | rate_hi] = LIMIT_RATE

    below, above = value < lo, value > hi
    value = np.clip(value, lo, hi)
    limit[below] = LIMIT_LO
    limit[above] = LIMIT_HI
    limit[held] = LIMIT_HELD
    return value, limit
