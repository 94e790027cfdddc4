"""The tag table: the latest value of every tag, as NumPy arrays indexed by tag id.

Acquisition writes into it (all values of an OPC UA publish response or of a batched
read in one :meth:`TagTable.update_many`); the control scan reads whole columns once per
period. Everything runs on one asyncio event loop, so there is no locking: an update is
a few array stores and never awaits.

Times:
- ``source_time_s``: the source's timestamp of the value (POSIX seconds). For a
  simulator this is its process clock, which may run faster than wall time.
- ``received_s``: when the value arrived, on the service's monotonic clock (seconds);
  staleness is judged on this clock, because a stuck source clock must not hide a
  silent source.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

# OPC UA StatusCode severity lives in the top two bits: 00 Good, 01 Uncertain, 10/11 Bad.
_SEVERITY_MASK = np.uint32(0xC0000000)
STATUS_GOOD = 0
STATUS_BAD_WAITING_FOR_INITIAL_DATA = 0x80320000
STATUS_BAD_NO_COMMUNICATION = 0x80310000
STATUS_BAD_TYPE_MISMATCH = 0x80740000


@dataclass(frozen=True)
class Sample:
    """One value of one tag, as it is recorded (quality travels with the value)."""

    tag: int
    value: float
    source_time_s: float
    status: int


class SampleColumns(NamedTuple):
    """Many samples as columns, in arrival order (one row per value, as :class:`Sample`).

    ``value`` is NaN wherever the status is Bad because the value was not a finite real
    number; ``status`` is the raw 32-bit OPC UA status code (0 is Good).
    """

    tag: npt.NDArray[np.intp]
    value: npt.NDArray[np.float64]
    source_time_s: npt.NDArray[np.float64]
    status: npt.NDArray[np.int64]

    @classmethod
    def empty(cls) -> SampleColumns:
        return cls(np.empty(0, np.intp), np.empty(0, np.float64), np.empty(0, np.float64), np.empty(0, np.int64))

    @classmethod
    def from_samples(cls, samples: Sequence[Sample]) -> SampleColumns:
        n = len(samples)
        return cls(np.fromiter((s.tag for s in samples), dtype=np.intp, count=n),
                   np.fromiter((s.value for s in samples), dtype=np.float64, count=n),
                   np.fromiter((s.source_time_s for s in samples), dtype=np.float64, count=n),
                   np.fromiter((s.status for s in samples), dtype=np.int64, count=n))

    def samples(self) -> list[Sample]:
        """The rows as :class:`Sample` objects (Python scalars, like :meth:`TagTable.update` makes)."""
        columns = (self.tag.tolist(), self.value.tolist(), self.source_time_s.tolist(), self.status.tolist())
        return [Sample(*row) for row in zip(*columns)]


class TagTable:
    """Latest value, source time, OPC UA status and receipt time per tag.

    Parameters
    ----------
    names : sequence of str
        Unique tag names; a tag's id is its index here.
    """

    def __init__(self, names: Sequence[str]) -> None:
        if len(set(names)) != len(names):
            raise ValueError("tag names must be unique")
        self.names: tuple[str, ...] = tuple(names)
        self.index: dict[str, int] = {n: i for i, n in enumerate(self.names)}
        n = len(self.names)
        self.value: npt.NDArray[np.float64] = np.full(n, np.nan)
        self.source_time_s: npt.NDArray[np.float64] = np.full(n, np.nan)
        self.received_s: npt.NDArray[np.float64] = np.full(n, -np.inf)
        self.status: npt.NDArray[np.uint32] = np.full(n, STATUS_BAD_WAITING_FOR_INITIAL_DATA, dtype=np.uint32)
        #: tags whose source reports they are unreachable (endpoint lost): stale at once
        self.disconnected: npt.NDArray[np.bool_] = np.zeros(n, dtype=bool)

    def __len__(self) -> int:
        return len(self.names)

    def ids(self, names: Sequence[str]) -> npt.NDArray[np.intp]:
        """Tag ids for ``names`` (raises KeyError naming the first unknown tag)."""
        return np.fromiter((self.index[n] for n in names), dtype=np.intp, count=len(names))

    def update(self, tag: int, value: object, source_time_s: float, status: int, received_s: float) -> Sample:
        """Store one value; a value that is not a finite real number is kept as NaN with Bad status.

        Called by acquisition for every data change. Returns the sample to record.
        """
        v = as_finite_float(value)
        if v is None:
            v, status = math.nan, (status if status & 0x80000000 else STATUS_BAD_TYPE_MISMATCH)
        self.value[tag] = v
        self.source_time_s[tag] = source_time_s
        self.status[tag] = status
        self.received_s[tag] = received_s
        self.disconnected[tag] = False
        return Sample(tag, v, source_time_s, status)

    def update_many(
        self,
        tags: npt.ArrayLike,
        values: npt.ArrayLike,
        source_time_s: npt.ArrayLike,
        status: npt.ArrayLike,
        received_s: float,
    ) -> SampleColumns:
        """Store many values at once, with the semantics of :meth:`update` applied to each in order.

        Parameters
        ----------
        tags : array of int, shape (n,)
            Tag ids; a tag may occur more than once (a server queue delivering several
            values of one item): the table keeps the last, every one is returned.
        values : array of float, shape (n,)
            Values; a non-finite one is kept as NaN with Bad status (its own status when
            that is already Bad, else BadTypeMismatch), as :meth:`update` does.
        source_time_s : float or array of float, shape (n,)
            Source times (POSIX seconds).
        status : array of int, shape (n,)
            Raw 32-bit OPC UA status codes.
        received_s : float
            Arrival time of all of them on the monotonic clock.

        Returns
        -------
        SampleColumns
            The samples to record, in the order given (new arrays: the caller may keep them).
        """
        # copies: the returned columns are the caller's to keep
        tag = np.array(tags, dtype=np.intp)
        n = len(tag)
        v = np.array(values, dtype=np.float64)
        st = np.array(status, dtype=np.int64)
        t = np.array(np.broadcast_to(np.asarray(source_time_s, dtype=np.float64), (n,)))
        if v.shape != (n,) or st.shape != (n,):
            raise ValueError(f"tags, values and status must have the same length, got {n}, {v.shape}, {st.shape}")
        not_finite = ~np.isfinite(v)
        if not_finite.any():
            v[not_finite] = np.nan
            st[not_finite & ((st & 0x80000000) == 0)] = STATUS_BAD_TYPE_MISMATCH
        # NumPy does not promise which of repeated indices an assignment keeps, so store
        # only the last occurrence of each tag (first in the reversed order)
        stored, first_reversed = np.unique(tag[::-1], return_index=True)
        last = n - 1 - first_reversed
        self.value[stored] = v[last]
        self.source_time_s[stored] = t[last]
        self.status[stored] = st[last]
        self.received_s[stored] = received_s
        self.disconnected[stored] = False
        return SampleColumns(tag, v, t, st)

    def touch(self, tags: npt.NDArray[np.intp], received_s: float) -> None:
        """The source proved ``tags`` still current (a subscription keep-alive: values inside
        their deadband are unchanged, not stale)."""
        self.received_s[tags] = received_s

    def mark_disconnected(self, tags: npt.NDArray[np.intp] | Sequence[int]) -> None:
        """The source of ``tags`` is gone: they count as stale until their next update."""
        self.disconnected[np.asarray(tags, dtype=np.intp)] = True

    def usable(self, now_s: float, stale_after_s: npt.NDArray[np.float64] | float) -> npt.NDArray[np.bool_]:
        """Mask of tags a controller may act on: Good status, finite, fresh, connected.

        Parameters
        ----------
        now_s : float
            The service's monotonic clock, same clock as ``received_s``.
        stale_after_s : float or array, shape (n_tags,)
            Age after which a value is stale (e.g. 3 publishing intervals).
        """
        good = (self.status & _SEVERITY_MASK) == 0
        fresh = (now_s - self.received_s) <= stale_after_s
        return good & fresh & np.isfinite(self.value) & ~self.disconnected

    def stale(self, now_s: float, stale_after_s: npt.NDArray[np.float64] | float) -> npt.NDArray[np.bool_]:
        """Mask of tags whose data stopped arriving (or whose source is disconnected)."""
        return ((now_s - self.received_s) > stale_after_s) | self.disconnected


def as_finite_float(value: object) -> float | None:
    """A finite float from an OPC UA value, or None (strings, NaN, Inf, None, arrays)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    return None
