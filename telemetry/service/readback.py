"""Read-back verification of written outputs through the subscription, off the control path.

A Read after every Write doubles the round trips of each scan (measured: 128 ms -> 68 ms
median for 1000 outputs against the simulator). The actuator tags are subscribed anyway, so
the server's own report of each written node arrives with the next publish: the check
compares it with what was written and raises an alarm only when a mismatch outlasts a grace
period (a publish already in flight when the write landed still shows the old value).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from telemetry.tags import TagTable


class ReadbackCheck:
    """Tracks written outputs until the acquired value confirms them.

    Parameters
    ----------
    table : TagTable
        Where acquisition stores what the server reports.
    grace_s : ndarray, shape (n_tags,)
        How long after a write the acquired value may still differ (service monotonic s);
        a few publishing intervals.
    rel_tol : float
        Relative tolerance (a Float variable on the server rounds a Double).
    """

    def __init__(self, table: TagTable, grace_s: npt.NDArray[np.float64], rel_tol: float = 1e-6) -> None:
        self.table = table
        self.grace_s = grace_s
        self.rel_tol = rel_tol
        self._expected: dict[int, tuple[float, float]] = {}  # tag -> (written value, written at)
        self.mismatched: set[int] = set()  # tags in alarm

    def expect(self, tag: int, value: float, now_s: float) -> None:
        """``value`` was written to ``tag`` at ``now_s``."""
        self._expected[tag] = (value, now_s)

    def check(self, now_s: float) -> tuple[list[tuple[int, float, float]], list[int]]:
        """Compare pending writes with the acquired values.

        Returns ``(new_mismatches, cleared)``: ``(tag, written, read back)`` for writes the
        server did not take within the grace period, and tags whose alarm cleared.
        """
        t = self.table
        new: list[tuple[int, float, float]] = []
        cleared: list[int] = []
        for tag, (written, at) in list(self._expected.items()):
            if t.received_s[tag] <= at:
                if now_s - at > self.grace_s[tag] and t.disconnected[tag]:
                    del self._expected[tag]  # the endpoint is gone: the connection alarm covers it
                continue
            actual = float(t.value[tag])
            if abs(actual - written) <= self.rel_tol * max(1.0, abs(written)):
                del self._expected[tag]
                if tag in self.mismatched:
                    self.mismatched.discard(tag)
                    cleared.append(tag)
            elif now_s - at > self.grace_s[tag]:
                del self._expected[tag]
                if tag not in self.mismatched:
                    self.mismatched.add(tag)
                    new.append((tag, written, actual))
        return new, cleared
