"""The durable local store: embedded historian and forwarders' outbox, in one SQLite file.

Every point is a line-protocol line, committed to disk before :meth:`Store.append` returns, with
a sequence id that only grows (``AUTOINCREMENT``: ids are never reused, even after retention
empties the table, so a forwarder's cursor can never point at a different point later).

Why SQLite in WAL mode with ``synchronous=FULL``: the architecture says a point counts as taken
only once it is on disk. In WAL mode, ``FULL`` fsyncs the log at every commit, so a committed
batch survives a process crash *and* a power cut. ``NORMAL`` (selectable) survives a process crash
but may lose the last commits on power loss; it is faster only when batches are tiny. Appending
a batch is one transaction, so one fsync covers thousands of points.

Why lines and not structured rows: forwarding is the hot read path, and it needs exactly the
text the sinks send; storing it once avoids re-encoding after an outage and makes "what was sent"
equal "what was stored". Queries (dashboard, replay) filter on an indexed ``(series, time)``
pair and parse only the lines they return.

Retention (:meth:`Store.prune`) deletes points older than a cut-off that every registered
forwarder has acknowledged. Points no forwarder has taken yet are kept, whatever their age,
unless the caller passes ``drop_unforwarded=True``; then they are deleted, counted in the
``dropped_unforwarded`` counter and logged as a warning. Lines a sink refused for good go to the
dead-letter table with the reason, and count as acknowledged for that sink.

A small key-value table (:meth:`Store.put_state`, :meth:`Store.get_state`) keeps the service's
own state across restarts, such as the feed strategies' (a started feed must resume).

Thread safety: one connection behind a lock; every method may be called from any thread
(forwarders call them through ``asyncio.to_thread``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

from telemetry.errors import StoreError
from telemetry.lineproto import EncodedBatch, ParsedLine, parse_line, split_series_time

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id          INTEGER PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE,      -- escaped 'measurement,tag=v,...' as in the line
    measurement TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS series_measurement ON series (measurement);
CREATE TABLE IF NOT EXISTS points (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    series_id INTEGER NOT NULL,
    time_ns   INTEGER NOT NULL,
    line      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS points_series_time ON points (series_id, time_ns);
CREATE TABLE IF NOT EXISTS cursors (
    sink       TEXT PRIMARY KEY,
    last_id    INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    point_id INTEGER,
    sink     TEXT NOT NULL,
    line     TEXT NOT NULL,
    reason   TEXT NOT NULL,
    time_ns  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    key        TEXT PRIMARY KEY,          -- e.g. 'feeds/R1'
    value      TEXT NOT NULL,
    updated_ns INTEGER NOT NULL
);
"""


class StoredPoint(NamedTuple):
    """One stored line. ``id`` is the store's sequence number, ``time_ns`` the point's timestamp.

    A NamedTuple, not a dataclass: forwarders read thousands per batch and this is 5x cheaper.
    """

    id: int
    time_ns: int
    line: str

    def parsed(self) -> ParsedLine:
        return parse_line(self.line)


@dataclass(frozen=True)
class DeadLetter:
    id: int
    point_id: int | None
    sink: str
    line: str
    reason: str
    time_ns: int


@dataclass(frozen=True)
class PruneResult:
    deleted: int
    """Points deleted in total."""
    dropped_unforwarded: int
    """Of those, points some forwarder had not acknowledged (only with ``drop_unforwarded``)."""
    kept_unforwarded: int
    """Points older than the cut-off kept because a forwarder still needs them."""


class Store:
    """Durable, ordered, queryable point store in one SQLite file.

    Parameters
    ----------
    path : str or Path
        Database file (created if missing). ``":memory:"`` gives a non-durable store for tests.
    synchronous : {"FULL", "NORMAL"}
        SQLite ``synchronous`` in WAL mode; see the module docstring.
    clock_ns : callable
        Wall clock in ns since the epoch; stamps lines that arrive without a timestamp and
        dead letters.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}")
        self.path = str(path)
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        self._series_ids: dict[str, int] = dict(self._db.execute("SELECT key, id FROM series").fetchall())
        self._listeners: list[Callable[[int], None]] = []

    # ------------------------------------------------------------------------------ writing

    def append(self, points: EncodedBatch | Sequence[str]) -> range:
        """Commit points durably in one transaction and return their sequence ids.

        Parameters
        ----------
        points : EncodedBatch or sequence of str
            Lines to store. A line without a timestamp gets the store's clock as timestamp,
            written into the line so a late forward still carries the original time.

        Returns
        -------
        range
            The ids given to the points, in input order (empty range for no points).
        """
        if isinstance(points, EncodedBatch):
            lines, keys, times = points.lines, points.series, points.time_ns
        else:
            lines = list(points)
            keys, times = [], []
            for i, line in enumerate(lines):
                key, stamp = split_series_time(line)
                if stamp is None:
                    stamp = self._clock_ns()
                    lines[i] = f"{line} {stamp}"
                keys.append(key)
                times.append(stamp)
        if not lines:
            return range(0)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    ids = [self._series_id(key) for key in keys]
                    first = self._next_id()
                    self._db.executemany(
                        "INSERT INTO points (series_id, time_ns, line) VALUES (?, ?, ?)", zip(ids, times, lines)
                    )
                    last = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'points'").fetchone()[0]
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    self._series_ids = dict(self._db.execute("SELECT key, id FROM series").fetchall())
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"append to {self.path} failed: {exc}") from exc
            listeners = list(self._listeners)
        if last - first + 1 != len(lines):
            raise StoreError(f"sequence ids not contiguous: {first}..{last} for {len(lines)} points")
        for listener in listeners:
            listener(last)
        return range(first, last + 1)

    def _next_id(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'points'").fetchone()
        return (row[0] if row else 0) + 1

    def _series_id(self, key: str) -> int:
        found = self._series_ids.get(key)
        if found is not None:
            return found
        measurement = parse_line(key + " x=0").measurement
        cur = self._db.execute("INSERT INTO series (key, measurement) VALUES (?, ?)", (key, measurement))
        self._series_ids[key] = new_id = int(cur.lastrowid)  # type: ignore[arg-type]
        return new_id

    def add_listener(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(last_id)`` after each committed append, in the appending thread."""
        with self._lock:
            self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[int], None]) -> None:
        with self._lock:
            if callback in self._listeners:
                self._listeners.remove(callback)

    # ------------------------------------------------------------------------------ reading

    def read_after(self, after_id: int, limit: int) -> list[StoredPoint]:
        """Up to ``limit`` points with id > ``after_id``, in id order (the forwarding order)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, time_ns, line FROM points WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
            ).fetchall()
        return list(map(StoredPoint._make, rows))

    def last_id(self) -> int:
        """Highest id ever given (0 for a new store); survives retention."""
        with self._lock:
            return self._next_id() - 1

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM points").fetchone()[0])

    def query(
        self,
        measurement: str | None = None,
        *,
        tags: Mapping[str, str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int | None = None,
    ) -> list[StoredPoint]:
        """Points of a measurement whose tags include ``tags``, with ``start_ns <= time < end_ns``.

        Ordered by time, then id. Without a measurement every series is searched.
        """
        with self._lock:
            if measurement is None:
                series = self._db.execute("SELECT id, key FROM series").fetchall()
            else:
                series = self._db.execute(
                    "SELECT id, key FROM series WHERE measurement = ?", (measurement,)
                ).fetchall()
        if tags:
            wanted = tags.items()
            series = [(sid, key) for sid, key in series if wanted <= parse_line(key + " x=0").tags.items()]
        if not series:
            return []
        clauses = [f"series_id IN ({','.join(str(sid) for sid, _ in series)})"]
        params: list[int] = []
        if start_ns is not None:
            clauses.append("time_ns >= ?")
            params.append(start_ns)
        if end_ns is not None:
            clauses.append("time_ns < ?")
            params.append(end_ns)
        sql = f"SELECT id, time_ns, line FROM points WHERE {' AND '.join(clauses)} ORDER BY time_ns, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return list(map(StoredPoint._make, rows))

    def series(self, measurement: str | None = None) -> list[str]:
        """Series keys known to the store (escaped, as in the lines)."""
        with self._lock:
            if measurement is None:
                rows = self._db.execute("SELECT key FROM series ORDER BY key").fetchall()
            else:
                rows = self._db.execute(
                    "SELECT key FROM series WHERE measurement = ? ORDER BY key", (measurement,)
                ).fetchall()
        return [row[0] for row in rows]

    # ---------------------------------------------------------------------- forwarders' cursors

    def register_sink(self, sink: str, *, start: Literal["oldest", "latest"] = "oldest") -> int:
        """Make sure ``sink`` has a durable cursor and return it.

        A new sink starts before the oldest stored point (it receives the history) or, with
        ``start="latest"``, after the newest. An existing cursor is left as it is.
        """
        with self._lock:
            row = self._db.execute("SELECT last_id FROM cursors WHERE sink = ?", (sink,)).fetchone()
            if row is not None:
                return int(row[0])
            initial = self._next_id() - 1 if start == "latest" else 0
            self._db.execute(
                "INSERT INTO cursors (sink, last_id, updated_ns) VALUES (?, ?, ?)", (sink, initial, self._clock_ns())
            )
            return initial

    def cursor(self, sink: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT last_id FROM cursors WHERE sink = ?", (sink,)).fetchone()
        if row is None:
            raise KeyError(f"no cursor for sink {sink!r}; call register_sink first")
        return int(row[0])

    def cursors(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT sink, last_id FROM cursors").fetchall())

    def ack(self, sink: str, last_id: int) -> None:
        """Durably record that ``sink`` has every point up to ``last_id``; never moves backwards."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE cursors SET last_id = max(last_id, ?), updated_ns = ? WHERE sink = ?",
                (last_id, self._clock_ns(), sink),
            )
        if cur.rowcount != 1:
            raise KeyError(f"no cursor for sink {sink!r}; call register_sink first")

    def remove_sink(self, sink: str) -> None:
        """Forget a sink's cursor, so it no longer holds back retention."""
        with self._lock:
            self._db.execute("DELETE FROM cursors WHERE sink = ?", (sink,))

    # ------------------------------------------------------------------------- dead letters

    def dead_letter(self, sink: str, entries: Iterable[tuple[int | None, str, str]]) -> int:
        """Record lines ``sink`` refused for good: ``(point_id, line, reason)`` each."""
        now = self._clock_ns()
        rows = [(pid, sink, line, reason, now) for pid, line, reason in entries]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO dead_letters (point_id, sink, line, reason, time_ns) VALUES (?, ?, ?, ?, ?)", rows
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(rows)

    def dead_letters(self, sink: str | None = None, *, limit: int = 10_000) -> list[DeadLetter]:
        with self._lock:
            if sink is None:
                rows = self._db.execute(
                    "SELECT id, point_id, sink, line, reason, time_ns FROM dead_letters ORDER BY id LIMIT ?", (limit,)
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT id, point_id, sink, line, reason, time_ns FROM dead_letters WHERE sink = ? "
                    "ORDER BY id LIMIT ?",
                    (sink, limit),
                ).fetchall()
        return [DeadLetter(*row) for row in rows]

    # ---------------------------------------------------------------------------- retention

    def prune(self, before_ns: int, *, drop_unforwarded: bool = False) -> PruneResult:
        """Delete points with ``time_ns < before_ns``, keeping those a forwarder still needs.

        With ``drop_unforwarded=True`` old points are deleted even when a forwarder has not
        acknowledged them; they are counted (``counter("dropped_unforwarded")``) and logged.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT min(last_id) FROM cursors").fetchone()
                acked = row[0] if row[0] is not None else self._next_id() - 1
                old_unacked = int(
                    self._db.execute(
                        "SELECT count(*) FROM points WHERE id > ? AND time_ns < ?", (acked, before_ns)
                    ).fetchone()[0]
                )
                deleted = self._db.execute(
                    "DELETE FROM points WHERE id <= ? AND time_ns < ?", (acked, before_ns)
                ).rowcount
                dropped = 0
                if drop_unforwarded and old_unacked:
                    dropped = self._db.execute(
                        "DELETE FROM points WHERE id > ? AND time_ns < ?", (acked, before_ns)
                    ).rowcount
                    self._db.execute(
                        "INSERT INTO counters (name, value) VALUES ('dropped_unforwarded', ?) "
                        "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                        (dropped,),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        if dropped:
            log.warning("retention dropped %d points that were never forwarded (store %s)", dropped, self.path)
        return PruneResult(deleted + dropped, dropped, old_unacked - dropped)

    def counter(self, name: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------------ service state

    def put_state(self, key: str, value: str) -> None:
        """Durably store ``value`` under ``key`` (replacing it), committed like an append."""
        self.put_states({key: value})

    def put_states(self, items: Mapping[str, str]) -> None:
        """Durably store several keys in one transaction (one fsync)."""
        if not items:
            return
        now = self._clock_ns()
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany(
                        "INSERT INTO state (key, value, updated_ns) VALUES (?, ?, ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_ns = excluded.updated_ns",
                        [(key, value, now) for key, value in items.items()],
                    )
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"saving state to {self.path} failed: {exc}") from exc

    def get_state(self, key: str) -> str | None:
        """The value last stored under ``key``, or None."""
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # ------------------------------------------------------------------------------ closing

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

