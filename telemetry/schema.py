"""The time-series schema Fermentry writes: measurements ``sample``, ``loop`` and ``event``.

Designed for Grafana/Flux/InfluxQL users: a series is identified by reactor, batch and signal
(or loop), which are tags; everything that changes every scan is a field, so cardinality is
bounded by reactors x batches x signals. Quality travels in the same line as the value.

``sample``  tags ``reactor, batch, signal, unit``; fields ``value`` (float, left out when not
            finite), ``good`` (bool), ``quality`` (int, OPC UA StatusCode, 0 = Good).
            Time = the value's *source* timestamp, so an at-line result recorded on many scans
            overwrites itself instead of repeating.
``loop``    tags ``reactor, batch, loop``; fields ``sp, pv, mv, p, i, d, ff`` (float, engineering
            units of the loop's pv/mv), ``mode`` (string), ``saturated``, ``pv_ok`` (bool).
            Time = the controller's scan time.
``event``   tags ``reactor, kind, severity``; fields ``message`` (string), ``batch`` (string),
            ``count`` (int 1, so stores that drop strings still see the event).

Process time (s since batch start) becomes a timestamp through ``epoch_ns``, the wall-clock
time of process time zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from telemetry.lineproto import EncodedBatch, encode_columns, encode_point

SAMPLE = "sample"
LOOP = "loop"
EVENT = "event"

QUALITY_GOOD = 0
QUALITY_BAD = 0x80000000  # OPC UA StatusCode "Bad", used when no finer code is known

_LOOP_FLOAT_FIELDS = ("sp", "pv", "mv", "p", "i", "d", "ff")


def process_time_to_ns(epoch_ns: int, time_s: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Timestamps in ns since the Unix epoch for process times ``time_s`` (s), any shape."""
    t = np.asarray(time_s, dtype=np.float64)
    if not np.all(np.isfinite(t)):
        raise ValueError("process times must be finite")
    return epoch_ns + np.round(t * 1e9).astype(np.int64)


def encode_samples(
    *,
    epoch_ns: int,
    reactors: Sequence[str],
    batches: Sequence[str],
    units: Mapping[str, str],
    values: Mapping[str, npt.ArrayLike],
    good: Mapping[str, npt.ArrayLike],
    sample_time_s: Mapping[str, npt.ArrayLike],
    quality: Mapping[str, npt.ArrayLike] | None = None,
) -> EncodedBatch:
    """Lines of measurement ``sample`` for every signal of every reactor of one scan.

    Parameters
    ----------
    epoch_ns : int
        Wall-clock ns of process time zero.
    reactors, batches : sequence of str, shape (n_reactors,)
        Reactor id and current batch id of each reactor.
    units : mapping of signal name to str
        Engineering unit of each signal (a tag: constant per series).
    values, good, sample_time_s : mapping of signal name to array, shape (n_reactors,)
        Value (signal's unit), quality flag, and process time in s the value was taken.
        These have the shapes of ``simulators.plant.Readings``.
    quality : mapping of signal name to int array, shape (n_reactors,), optional
        OPC UA StatusCodes; default ``QUALITY_GOOD``/``QUALITY_BAD`` from ``good``.
    """
    n = len(reactors)
    if len(batches) != n:
        raise ValueError(f"{len(batches)} batch ids for {n} reactors")
    out = EncodedBatch()
    for signal, raw in values.items():
        value = np.asarray(raw, dtype=np.float64)
        ok = np.asarray(good[signal], dtype=bool)
        t_s = np.asarray(sample_time_s[signal], dtype=np.float64)
        for name, arr in (("values", value), ("good", ok), ("sample_time_s", t_s)):
            if arr.shape != (n,):
                raise ValueError(f"{name}[{signal!r}] has shape {arr.shape}, expected ({n},)")
        if quality is not None and signal in quality:
            code = np.asarray(quality[signal], dtype=np.int64)
        else:
            code = np.where(ok, QUALITY_GOOD, QUALITY_BAD).astype(np.int64)
        out.extend(
            encode_columns(
                SAMPLE,
                {"reactor": reactors, "batch": batches, "signal": signal, "unit": units.get(signal, "")},
                {"value": value, "good": ok, "quality": code},
                process_time_to_ns(epoch_ns, t_s),
            )
        )
    return out


def encode_loops(
    *,
    scan_time_ns: int,
    reactors: Sequence[str],
    batches: Sequence[str],
    loops: Sequence[str],
    terms: Mapping[str, npt.ArrayLike],
    mode: Sequence[str],
    saturated: npt.ArrayLike,
    pv_ok: npt.ArrayLike,
) -> EncodedBatch:
    """Lines of measurement ``loop`` for every control loop of one scan.

    Parameters
    ----------
    scan_time_ns : int
        Timestamp of the scan, ns since the Unix epoch.
    reactors, batches, loops : sequence of str, shape (n_loops,)
        Reactor, batch and loop name (e.g. ``do``, ``ph``, ``temperature``) of each loop row.
    terms : mapping of str to array, shape (n_loops,)
        Any of ``sp, pv, mv, p, i, d, ff`` in the loop's engineering units; NaN left out.
    mode : sequence of str, shape (n_loops,)
        Loop mode (``auto``, ``manual``, ``cascade``, ...).
    saturated, pv_ok : bool array, shape (n_loops,)
        Output at a limit; pv usable (good and fresh).
    """
    n = len(loops)
    unknown = set(terms) - set(_LOOP_FLOAT_FIELDS)
    if unknown:
        raise ValueError(f"unknown loop terms {sorted(unknown)}; allowed: {_LOOP_FLOAT_FIELDS}")
    fields: dict[str, npt.NDArray[Any]] = {}
    for name in _LOOP_FLOAT_FIELDS:
        if name in terms:
            fields[name] = np.asarray(terms[name], dtype=np.float64)
    fields["mode"] = np.asarray(list(mode), dtype=object)
    fields["saturated"] = np.asarray(saturated, dtype=bool)
    fields["pv_ok"] = np.asarray(pv_ok, dtype=bool)
    return encode_columns(
        LOOP,
        {"reactor": list(reactors), "batch": list(batches), "loop": list(loops)},
        fields,
        np.full(n, scan_time_ns, dtype=np.int64),
    )


def encode_event(
    *, time_ns: int, reactor: str, kind: str, severity: str, message: str, batch: str = ""
) -> str:
    """One line of measurement ``event`` (alarms, phase changes, operator actions)."""
    line = encode_point(
        EVENT,
        {"reactor": reactor, "kind": kind, "severity": severity},
        {"message": message, "batch": batch, "count": 1},
        time_ns,
    )
    if line is None:  # cannot happen: string and int fields are never dropped
        raise RuntimeError("event line lost its fields")
    return line
