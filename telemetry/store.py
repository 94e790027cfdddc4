"""The durable local store: embedded historian and forwarders' outbox, in one SQLite file.

Every point is a line-protocol line with a sequence id that only grows; ids are never reused,
even after retention empties the store, so a forwarder's cursor can never point at a different
point later. :meth:`Store.append` returns only once its points are committed to disk.

Layout: one append is one *chunk* row holding all its lines as one UTF-8 blob (``\\n``-separated),
plus one ``chunk_series`` index row per series in it (time range, row range and byte range of that
series' lines, which are stored together). Why chunks and not a row per point: a row per point
cost SQLite ~6 us per point (B-tree inserts into the table and its (series, time) index), which
made the durable commit, not the network, the bottleneck of the write path; a chunk costs one
blob write plus a handful of index rows, and the forwarder reads back exactly the text it sends.
Within a chunk the lines are grouped by series (stable, so each series stays in time order) and
ids follow that stored order. Queries find a series' chunks through the index and read only its
byte range of each blob (SQLite incremental blob I/O).

Durability: WAL mode with ``synchronous=FULL`` fsyncs the log at every commit, so a committed
chunk survives a process crash *and* a power cut (``NORMAL``, selectable, survives a process
crash only). Automatic checkpoints are off on the writing connection, because a checkpoint run
by the committing thread copies the whole chunk a second time before ``append`` returns; a
background thread checkpoints instead (PASSIVE: it never blocks writers or readers). Readers
(forwarders, queries) use their own connection, so they never wait for an fsync; the chunks
appended last are also kept decoded in memory for the forwarders.

Retention (:meth:`Store.prune`) works on whole chunks: a chunk goes when its newest point is
older than the cut-off and every registered forwarder has acknowledged it. Chunks a forwarder has
not taken yet are kept, whatever their age, unless the caller passes ``drop_unforwarded=True``;
then they are deleted, counted in the ``dropped_unforwarded`` counter and logged as a warning.
Lines a sink refused for good go to the dead-letter table with the reason, and count as
acknowledged for that sink.

A small key-value table (:meth:`Store.put_state`, :meth:`Store.get_state`) keeps the service's
own state across restarts, such as the feed strategies' (a started feed must resume).

A store written by an earlier version (one row per point) is converted on open, keeping every
point and every cursor.

Thread safety: every method may be called from any thread (forwarders call them through
``asyncio.to_thread``); writes share one connection behind a lock, reads another.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

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
CREATE TABLE IF NOT EXISTS chunks (
    first_id INTEGER PRIMARY KEY,          -- id of the chunk's first point (ids first..last)
    last_id  INTEGER NOT NULL,
    t_min    INTEGER NOT NULL,             -- oldest and newest point, ns since the epoch
    t_max    INTEGER NOT NULL,
    lines    BLOB NOT NULL                 -- the lines, UTF-8, '\\n'-separated, grouped by series
);
CREATE INDEX IF NOT EXISTS chunks_last ON chunks (last_id);
CREATE TABLE IF NOT EXISTS chunk_series (
    series_id INTEGER NOT NULL,
    chunk_id  INTEGER NOT NULL,            -- chunks.first_id
    t_min     INTEGER NOT NULL,
    t_max     INTEGER NOT NULL,
    row0      INTEGER NOT NULL,            -- the series' lines are rows row0..row1-1 of the chunk
    row1      INTEGER NOT NULL,
    byte0     INTEGER NOT NULL,            -- and bytes byte0..byte1-1 of its blob
    byte1     INTEGER NOT NULL,
    PRIMARY KEY (series_id, chunk_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunk_series_chunk ON chunk_series (chunk_id);
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

_SEQ = "last_point_id"  # counters row: the highest id ever given
_CHUNK_MAX_LINES = 50_000  # bigger appends are split: bounds the memory of one chunk read
_CACHE_MAX_LINES = 200_000  # decoded lines of the newest chunks kept for the forwarders
_CHECKPOINT_EVERY_S = 1.0


class StoredPoint(NamedTuple):
    """One stored line. ``id`` is the store's sequence number, ``time_ns`` the point's timestamp."""

    id: int
    time_ns: int
    line: str

    def parsed(self) -> ParsedLine:
        return parse_line(self.line)


class StoredRun(NamedTuple):
    """Points with consecutive ids ``first_id .. first_id + count - 1``, in id order.

    ``body`` is their lines as stored (UTF-8, ``\n``-separated): exactly what a sink sends,
    so forwarding never builds a Python string per line.
    """

    first_id: int
    count: int
    body: bytes

    @property
    def last_id(self) -> int:
        return self.first_id + self.count - 1

    @property
    def lines(self) -> list[str]:
        return self.body.decode().split("\n") if self.count else []

    @classmethod
    def from_lines(cls, first_id: int, lines: Sequence[str]) -> StoredRun:
        return cls(first_id, len(lines), "\n".join(lines).encode())


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
    """Points of chunks older than the cut-off kept because a forwarder still needs them."""


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
        self._synchronous = synchronous
        self._clock_ns = clock_ns
        self._lock = threading.Lock()  # the writing connection
        self._rlock = threading.Lock()  # the reading connection
        self._cache_lock = threading.Lock()
        # first_id -> (blob, start offset of every line plus one past the end): the newest chunks
        self._cache: OrderedDict[int, tuple[bytes, npt.NDArray[np.int64]]] = OrderedDict()
        self._cache_lines = 0
        self._memory = self.path == ":memory:"
        try:
            self._db = self._connect()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._db.executescript(_SCHEMA)
            self._migrate_points_table()
            self._rdb = self._db if self._memory else self._connect()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        self._series_ids: dict[str, int] = dict(self._db.execute("SELECT key, id FROM series").fetchall())
        self._last_id = self._read_seq()
        self._listeners: list[Callable[[int], None]] = []
        self._closing = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if not self._memory:
            self._checkpointer = threading.Thread(target=self._checkpoint_loop, name=f"store-checkpoint {self.path}",
                                                  daemon=True)
            self._checkpointer.start()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA busy_timeout=10000")
        return db

    def _read_seq(self) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (_SEQ,)).fetchone()
        return int(row[0]) if row else 0

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
            The ids given to the points. They follow the stored order, which groups the lines
            of one append by series (each series keeping its input order).
        """
        if isinstance(points, EncodedBatch):
            lines, keys, codes, times = points.lines, points.keys, points.codes, points.time_ns
        else:
            lines = list(points)
            keys, stamps = [], []
            for i, line in enumerate(lines):
                key, stamp = split_series_time(line)
                if stamp is None:
                    stamp = self._clock_ns()
                    lines[i] = f"{line} {stamp}"
                keys.append(key)
                stamps.append(stamp)
            codes = np.arange(len(lines), dtype=np.int64)
            times = np.asarray(stamps, dtype=np.int64)
        if not lines:
            return range(0)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    key_ids = np.array([self._series_id(key) for key in keys], dtype=np.int64)
                    first = self._last_id + 1
                    chunks = self._write_chunks(first, lines, key_ids[codes], times)
                    last = first + len(lines) - 1
                    self._db.execute(
                        "INSERT INTO counters (name, value) VALUES (?, ?) "
                        "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (_SEQ, last))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    self._series_ids = dict(self._db.execute("SELECT key, id FROM series").fetchall())
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"append to {self.path} failed: {exc}") from exc
            self._last_id = last
            listeners = list(self._listeners)
        with self._cache_lock:
            for chunk_first, blob, offsets in chunks:
                self._cache_put(chunk_first, blob, offsets)
        for listener in listeners:
            listener(last)
        return range(first, last + 1)

    def _write_chunks(self, first: int, lines: list[str], series_ids: npt.NDArray[np.int64],
                      times: npt.NDArray[np.int64]) -> list[tuple[int, bytes, npt.NDArray[np.int64]]]:
        """Insert the lines as chunks (grouped by series), with their index rows; caller commits."""
        if series_ids.size > 1 and not bool(np.all(series_ids[1:] >= series_ids[:-1])):
            order = np.argsort(series_ids, kind="stable")
            lines = list(map(lines.__getitem__, order.tolist()))
            series_ids, times = series_ids[order], times[order]
        written = []
        for start in range(0, len(lines), _CHUNK_MAX_LINES):
            stop = min(start + _CHUNK_MAX_LINES, len(lines))
            part = lines[start:stop] if (start, stop) != (0, len(lines)) else lines
            blob, offsets = self._insert_chunk(first + start, part, series_ids[start:stop], times[start:stop])
            written.append((first + start, blob, offsets))
        return written

    def _insert_chunk(self, first: int, lines: list[str], series_ids: npt.NDArray[np.int64],
                      times: npt.NDArray[np.int64]) -> tuple[bytes, npt.NDArray[np.int64]]:
        n = len(lines)
        text = "\n".join(lines)
        blob = text.encode()
        lengths = np.fromiter(map(len, lines), dtype=np.int64, count=n)
        if len(blob) != len(text):  # not ASCII: byte lengths differ from character counts
            lengths = np.fromiter((len(line.encode()) for line in lines), dtype=np.int64, count=n)
        ends = np.cumsum(lengths + 1) - 1  # byte offset just past each line (before its '\n')
        starts = ends - lengths
        group = np.flatnonzero(np.r_[True, series_ids[1:] != series_ids[:-1]])
        group_end = np.r_[group[1:], n]
        self._db.execute("INSERT INTO chunks (first_id, last_id, t_min, t_max, lines) VALUES (?, ?, ?, ?, ?)",
                         (first, first + n - 1, int(times.min()), int(times.max()), blob))
        self._db.executemany(
            "INSERT INTO chunk_series (series_id, chunk_id, t_min, t_max, row0, row1, byte0, byte1) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            zip(series_ids[group].tolist(), repeat(first), np.minimum.reduceat(times, group).tolist(),
                np.maximum.reduceat(times, group).tolist(), group.tolist(), group_end.tolist(),
                starts[group].tolist(), ends[group_end - 1].tolist()),
        )
        return blob, np.append(starts, len(blob) + 1)

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

    def read_run(self, after_id: int, limit: int) -> StoredRun | None:
        """Up to ``limit`` points with consecutive ids after ``after_id`` (None: nothing newer).

        The forwarding read: the run stops early where retention left a gap in the ids.
        """
        parts: list[bytes] = []
        count = 0
        run_first = 0
        next_id = after_id + 1
        while count < limit:
            with self._rlock:
                row = self._rdb.execute(
                    "SELECT first_id, last_id FROM chunks WHERE last_id >= ? ORDER BY last_id LIMIT 1", (next_id,)
                ).fetchone()
            if row is None:
                break
            first, last = row
            if parts and first != next_id:
                break  # a gap: the next run starts there
            chunk = self._chunk(first)
            if chunk is None:  # pruned meanwhile
                break
            blob, offsets = chunk
            a = max(next_id, first) - first
            b = min(a + limit - count, len(offsets) - 1)
            if not parts:
                run_first = first + a
            parts.append(blob[int(offsets[a]) : int(offsets[b]) - 1])
            count += b - a
            next_id = first + b
            if next_id <= last:
                break
        if not parts:
            return None
        return StoredRun(run_first, count, parts[0] if len(parts) == 1 else b"\n".join(parts))

    def read_after(self, after_id: int, limit: int) -> list[StoredPoint]:
        """Up to ``limit`` points with id > ``after_id``, in id order, as StoredPoints."""
        out: list[StoredPoint] = []
        while len(out) < limit:
            run = self.read_run(after_id, limit - len(out))
            if run is None:
                break
            out.extend(StoredPoint(run.first_id + i, _time_of(line), line) for i, line in enumerate(run.lines))
            after_id = run.last_id
        return out

    def _chunk(self, first_id: int) -> tuple[bytes, npt.NDArray[np.int64]] | None:
        """A chunk's blob and line offsets, from the cache or the file."""
        with self._cache_lock:
            chunk = self._cache.get(first_id)
            if chunk is not None:
                self._cache.move_to_end(first_id)
                return chunk
        with self._rlock:
            row = self._rdb.execute("SELECT lines FROM chunks WHERE first_id = ?", (first_id,)).fetchone()
        if row is None:
            return None
        blob = bytes(row[0])
        newlines = np.flatnonzero(np.frombuffer(blob, dtype=np.uint8) == 10)
        offsets = np.concatenate([[0], newlines + 1, [len(blob) + 1]]).astype(np.int64)
        with self._cache_lock:
            self._cache_put(first_id, blob, offsets)
        return blob, offsets

    def _cache_put(self, first_id: int, blob: bytes, offsets: npt.NDArray[np.int64]) -> None:
        if first_id in self._cache:
            return
        self._cache[first_id] = (blob, offsets)
        self._cache_lines += len(offsets) - 1
        while self._cache_lines > _CACHE_MAX_LINES and len(self._cache) > 1:
            _, (_, old) = self._cache.popitem(last=False)
            self._cache_lines -= len(old) - 1

    def last_id(self) -> int:
        """Highest id ever given (0 for a new store); survives retention."""
        with self._lock:
            return self._last_id

    def count(self) -> int:
        with self._rlock:
            return int(self._rdb.execute("SELECT coalesce(sum(last_id - first_id + 1), 0) FROM chunks").fetchone()[0])

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
        with self._rlock:
            if measurement is None:
                series = self._rdb.execute("SELECT id, key FROM series").fetchall()
            else:
                series = self._rdb.execute("SELECT id, key FROM series WHERE measurement = ?", (measurement,)).fetchall()
        if tags:
            wanted = tags.items()
            series = [(sid, key) for sid, key in series if wanted <= parse_line(key + " x=0").tags.items()]
        if not series:
            return []
        lo = -(2**63) if start_ns is None else start_ns
        hi = 2**63 - 1 if end_ns is None else end_ns
        out: list[StoredPoint] = []
        with self._rlock:
            ranges = self._rdb.execute(
                f"SELECT chunk_id, row0, byte0, byte1 FROM chunk_series WHERE series_id IN "
                f"({','.join(str(sid) for sid, _ in series)}) AND t_max >= ? AND t_min < ?", (lo, hi)).fetchall()
            for chunk_id, row0, byte0, byte1 in ranges:
                try:
                    with self._rdb.blobopen("chunks", "lines", chunk_id, readonly=True) as blob:
                        blob.seek(byte0)
                        text = blob.read(byte1 - byte0).decode()
                except sqlite3.OperationalError:  # the chunk was pruned after the index was read
                    continue
                for i, line in enumerate(text.split("\n")):
                    t = _time_of(line)
                    if lo <= t < hi:
                        out.append(StoredPoint(chunk_id + row0 + i, t, line))
        out.sort(key=lambda p: (p.time_ns, p.id))
        return out if limit is None else out[: int(limit)]

    def series(self, measurement: str | None = None) -> list[str]:
        """Series keys known to the store (escaped, as in the lines)."""
        with self._rlock:
            if measurement is None:
                rows = self._rdb.execute("SELECT key FROM series ORDER BY key").fetchall()
            else:
                rows = self._rdb.execute(
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
            initial = self._last_id if start == "latest" else 0
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
        """Record that ``sink`` has every point up to ``last_id``; never moves backwards.

        Committed without an fsync of its own (it reaches the disk with the next append's):
        a power cut may undo the last acknowledgements, and the forwarder then sends those
        points again, which delivery tolerates (at-least-once; InfluxDB overwrites a repeat).
        Saves an fsync per batch that would otherwise queue behind the appends' fsyncs.
        """
        with self._lock:
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                cur = self._db.execute(
                    "UPDATE cursors SET last_id = max(last_id, ?), updated_ns = ? WHERE sink = ?",
                    (last_id, self._clock_ns(), sink),
                )
            finally:
                self._db.execute(f"PRAGMA synchronous={self._synchronous}")
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
        with self._rlock:
            if sink is None:
                rows = self._rdb.execute(
                    "SELECT id, point_id, sink, line, reason, time_ns FROM dead_letters ORDER BY id LIMIT ?", (limit,)
                ).fetchall()
            else:
                rows = self._rdb.execute(
                    "SELECT id, point_id, sink, line, reason, time_ns FROM dead_letters WHERE sink = ? "
                    "ORDER BY id LIMIT ?",
                    (sink, limit),
                ).fetchall()
        return [DeadLetter(*row) for row in rows]

    # ---------------------------------------------------------------------------- retention

    def prune(self, before_ns: int, *, drop_unforwarded: bool = False) -> PruneResult:
        """Delete chunks whose newest point is older than ``before_ns``, keeping those a
        forwarder still needs.

        With ``drop_unforwarded=True`` old chunks are deleted even when a forwarder has not
        acknowledged them; their unacknowledged points are counted
        (``counter("dropped_unforwarded")``) and logged.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT min(last_id) FROM cursors").fetchone()
                acked = row[0] if row[0] is not None else self._last_id
                old = self._db.execute(
                    "SELECT first_id, last_id FROM chunks WHERE t_max < ?", (before_ns,)).fetchall()
                done = [(f, last) for f, last in old if last <= acked]
                needed = [(f, last) for f, last in old if last > acked]
                unacked = sum(last - max(f - 1, acked) for f, last in needed)
                doomed = done + (needed if drop_unforwarded else [])
                for chunk_ids in _batches([f for f, _ in doomed], 500):
                    marks = ",".join("?" * len(chunk_ids))
                    self._db.execute(f"DELETE FROM chunks WHERE first_id IN ({marks})", chunk_ids)
                    self._db.execute(f"DELETE FROM chunk_series WHERE chunk_id IN ({marks})", chunk_ids)
                deleted = sum(last - f + 1 for f, last in doomed)
                dropped = unacked if drop_unforwarded else 0
                if dropped:
                    self._db.execute(
                        "INSERT INTO counters (name, value) VALUES ('dropped_unforwarded', ?) "
                        "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                        (dropped,),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        with self._cache_lock:
            for f, _ in doomed:
                if f in self._cache:
                    self._cache_lines -= len(self._cache.pop(f)[1]) - 1
        if dropped:
            log.warning("retention dropped %d points that were never forwarded (store %s)", dropped, self.path)
        return PruneResult(deleted, dropped, unacked - dropped)

    def counter(self, name: str) -> int:
        with self._rlock:
            row = self._rdb.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
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
        with self._rlock:
            row = self._rdb.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # -------------------------------------------------------------------------- maintenance

    def _checkpoint_loop(self) -> None:
        """Copy committed WAL pages into the database file in the background (see module doc)."""
        try:
            db = self._connect()
        except sqlite3.Error:
            log.exception("store %s: cannot open the checkpoint connection; the WAL will grow", self.path)
            return
        try:
            while not self._closing.wait(_CHECKPOINT_EVERY_S):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # busy or I/O: the next round tries again
                    log.debug("store %s: checkpoint failed: %s", self.path, exc)
        finally:
            db.close()

    def _migrate_points_table(self) -> None:
        """Convert a store of the one-row-per-point layout, keeping ids and cursors valid.

        Points are regrouped by series only within runs that no cursor splits, so every
        cursor still separates the same points.
        """
        if not self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'points'").fetchone():
            return
        cuts = {row[0] for row in self._db.execute("SELECT last_id FROM cursors")}
        seq = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'points'").fetchone()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            run: list[tuple[int, int, int, str]] = []

            def flush() -> None:
                if run:
                    self._write_chunks(run[0][0], [r[3] for r in run], np.array([r[1] for r in run], dtype=np.int64),
                                       np.array([r[2] for r in run], dtype=np.int64))
                    run.clear()

            for row in self._db.execute("SELECT id, series_id, time_ns, line FROM points ORDER BY id").fetchall():
                if run and (row[0] != run[-1][0] + 1 or run[-1][0] in cuts or len(run) >= _CHUNK_MAX_LINES):
                    flush()
                run.append(row)
            flush()
            self._db.execute("INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)", (_SEQ, seq[0] if seq else 0))
            self._db.execute("DROP TABLE points")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        log.info("store %s converted to the chunk layout", self.path)

    # ------------------------------------------------------------------------------ closing

    def close(self) -> None:
        self._closing.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
        with self._lock, self._rlock:
            if self._rdb is not self._db:
                self._rdb.close()
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass  # a reader elsewhere holds the WAL: the next open checkpoints it
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _time_of(line: str) -> int:
    """The timestamp of a stored line (every stored line ends with one)."""
    return int(line[line.rfind(" ") + 1 :])


def _batches(items: list[int], size: int) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
