"""The durable local store: ordering, cursors, queries, retention, dead letters, crash safety."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from telemetry.lineproto import encode_columns, encode_point
from telemetry.store import Store


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "store.sqlite3", clock_ns=lambda: 42) as s:
        yield s


def _lines(n: int, start: int = 0, measurement: str = "m") -> list[str]:
    return [f"{measurement},r=R{i % 3} v={i}i {1000 + i}" for i in range(start, start + n)]


def test_append_gives_increasing_ids_and_reads_back_in_order(store: Store) -> None:
    one_series = [f"a v={i}i {1000 + i}" for i in range(8)]
    first = store.append(one_series[:5])
    second = store.append(one_series[5:])
    assert list(first) == [1, 2, 3, 4, 5] and list(second) == [6, 7, 8]
    got = store.read_after(2, limit=4)
    assert [p.id for p in got] == [3, 4, 5, 6]
    assert [p.line for p in got] == one_series[2:6] and [p.time_ns for p in got] == [1002, 1003, 1004, 1005]
    assert store.last_id() == 8


def test_one_append_is_stored_grouped_by_series_each_in_input_order(store: Store) -> None:
    lines = _lines(9)  # series r=R0, R1, R2 interleaved
    assert list(store.append(lines)) == list(range(1, 10))
    stored = [p.line for p in store.read_after(0, 100)]
    assert sorted(stored) == sorted(lines)
    by_series = [line.split(" ")[0] for line in stored]
    assert by_series == sorted(by_series, key=lambda key: by_series.index(key))  # contiguous groups
    for r in ("R0", "R1", "R2"):
        assert [line for line in stored if f"r={r} " in line] == [line for line in lines if f"r={r} " in line]


def test_forwarding_reads_span_appends_and_survive_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with Store(path) as s:
        for k in range(5):
            s.append(_lines(7, start=7 * k))
        run = s.read_run(3, limit=20)
        assert run is not None and (run.first_id, run.last_id) == (4, 23)
        assert s.read_run(35, limit=10) is None
        expected = [(p.id, p.line) for p in s.read_after(0, 100)]
    with Store(path) as s:  # a new process: nothing cached, read from the blobs
        assert [(p.id, p.line) for p in s.read_after(0, 100)] == expected
        assert len(expected) == 35 and s.count() == 35


def test_a_run_stops_at_a_gap_left_by_retention(store: Store) -> None:
    store.append(["m v=1i 10"])
    store.append(["m v=2i 20"])
    store.append(["m v=3i 30"])
    store.prune(before_ns=25)  # no cursor: everything counts as forwarded; ids 1 and 2 go
    store.append(["m v=4i 40"])
    run = store.read_run(0, 10)
    assert run is not None and (run.first_id, run.lines) == (3, ["m v=3i 30", "m v=4i 40"])


def test_big_appends_are_split_into_chunks_and_unicode_names_query_by_bytes(tmp_path: Path) -> None:
    import telemetry.store as store_module

    n = store_module._CHUNK_MAX_LINES + 10
    names = ["Réacteur 1", "β-gal, R2", "R3"]
    batch = encode_columns(
        "sample",
        {"reactor": [names[i % 3] for i in range(n)], "signal": "do_pct"},
        {"value": np.arange(n, dtype=float)},
        np.arange(n, dtype=np.int64),
    )
    with Store(tmp_path / "s.sqlite3") as s:
        assert len(s.append(batch)) == n
    with Store(tmp_path / "s.sqlite3") as s:
        for k, name in enumerate(names):
            got = s.query("sample", tags={"reactor": name}, start_ns=100, end_ns=200)
            assert [p.time_ns for p in got] == [t for t in range(100, 200) if t % 3 == k]
            assert all(p.parsed().tags["reactor"] == name for p in got)
            assert [p.parsed().fields["value"] for p in got] == [float(p.time_ns) for p in got]
        assert sum(1 for _ in s.read_after(0, 10**9)) == n


def test_a_store_of_the_row_per_point_layout_is_converted_keeping_ids_and_cursors(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "v1.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE series (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, measurement TEXT NOT NULL);
            CREATE TABLE points (id INTEGER PRIMARY KEY AUTOINCREMENT, series_id INTEGER NOT NULL,
                                 time_ns INTEGER NOT NULL, line TEXT NOT NULL);
            CREATE TABLE cursors (sink TEXT PRIMARY KEY, last_id INTEGER NOT NULL, updated_ns INTEGER NOT NULL);
        """)
        db.executemany("INSERT INTO series VALUES (?, ?, 'm')", [(1, "m,r=A"), (2, "m,r=B")])
        rows = [(i, 1 + i % 2, 100 + i, f"m,r={'AB'[i % 2]} v={i}i {100 + i}") for i in range(1, 13)]
        db.executemany("INSERT INTO points VALUES (?, ?, ?, ?)", rows)
        db.execute("DELETE FROM points WHERE id <= 2")  # retention had run
        db.execute("INSERT INTO cursors VALUES ('influx', 7, 0)")
    with Store(path) as s:
        assert s.last_id() == 12 and s.count() == 10 and s.cursors() == {"influx": 7}
        points = s.read_after(0, 100)
        assert [p.id for p in points] == list(range(3, 13))
        assert {p.line for p in points[:5]} == {line for i, _, _, line in rows if 3 <= i <= 7}
        assert [p.time_ns for p in s.query("m", tags={"r": "B"})] == [103, 105, 107, 109, 111]
        assert list(s.append(["m,r=A v=0i 200"])) == [13]


def test_line_without_timestamp_gets_the_store_clock_written_into_it(store: Store) -> None:
    store.append(["m v=1"])
    (point,) = store.read_after(0, 10)
    assert point.line == "m v=1 42" and point.time_ns == 42


def test_ids_are_never_reused_after_retention_empties_the_store(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with Store(path) as s:
        s.append(_lines(4))
        assert s.prune(before_ns=10**18).deleted == 4
        assert s.count() == 0
    with Store(path) as s:
        assert list(s.append(_lines(1))) == [5]


def test_encoded_batch_append_and_query_by_tags_and_time(store: Store) -> None:
    n = 12
    batch = encode_columns(
        "sample",
        {"reactor": [f"R{i % 2}" for i in range(n)], "signal": "do_pct"},
        {"value": np.arange(n, dtype=float)},
        np.arange(n, dtype=np.int64) * 10,
    )
    store.append(batch)
    store.append([encode_point("loop", {"reactor": "R0"}, {"sp": 1.0}, 5)])
    got = store.query("sample", tags={"reactor": "R1"}, start_ns=20, end_ns=90)
    assert [p.time_ns for p in got] == [30, 50, 70]
    assert [p.parsed().fields["value"] for p in got] == [3.0, 5.0, 7.0]
    assert [p.parsed().measurement for p in store.query(tags={"reactor": "R0"}, end_ns=6)] == ["sample", "loop"]
    assert store.series("sample") == ["sample,reactor=R0,signal=do_pct", "sample,reactor=R1,signal=do_pct"]


def test_cursors_are_durable_and_never_move_backwards(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with Store(path) as s:
        s.append(_lines(10))
        assert s.register_sink("a") == 0
        assert s.register_sink("b", start="latest") == 10
        s.ack("a", 7)
        s.ack("a", 3)
    with Store(path) as s:
        assert s.cursors() == {"a": 7, "b": 10}
        assert s.register_sink("a") == 7
        with pytest.raises(KeyError):
            s.ack("unknown", 1)


@pytest.mark.parametrize(
    ("drop_unforwarded", "expected_left", "expected_dropped"),
    [(False, [5, 6, 7, 8, 9, 10], 0), (True, [9, 10], 4)],
)
def test_retention_keeps_unforwarded_points_unless_told(
    store: Store, drop_unforwarded: bool, expected_left: list[int], expected_dropped: int
) -> None:
    for k in range(5):  # 5 chunks of 2 points: times 1000..1009, ids 1..10
        store.append(_lines(2, start=2 * k))
    store.register_sink("slow")
    store.register_sink("fast")
    store.ack("slow", 4)
    store.ack("fast", 10)
    result = store.prune(before_ns=1008, drop_unforwarded=drop_unforwarded)
    assert [p.id for p in store.read_after(0, 100)] == expected_left
    assert result.deleted == 10 - len(expected_left)
    assert result.dropped_unforwarded == expected_dropped
    assert result.kept_unforwarded == (0 if drop_unforwarded else 4)
    assert store.counter("dropped_unforwarded") == expected_dropped


def test_retention_keeps_a_chunk_until_its_newest_point_is_old(store: Store) -> None:
    store.append(_lines(10))  # one chunk, times 1000..1009
    assert store.prune(before_ns=1009).deleted == 0
    assert store.prune(before_ns=1010).deleted == 10


def test_dead_letters_keep_line_reason_and_sink(store: Store) -> None:
    store.dead_letter("influx", [(3, "m x=1", "HTTP 400: field type conflict")])
    (letter,) = store.dead_letters("influx")
    assert (letter.point_id, letter.sink, letter.line, letter.reason, letter.time_ns) == (
        3, "influx", "m x=1", "HTTP 400: field type conflict", 42,
    )
    assert store.dead_letters("other") == []


def test_listener_hears_each_committed_append(store: Store) -> None:
    heard: list[int] = []
    store.add_listener(heard.append)
    store.append(_lines(3))
    store.append(_lines(2))
    store.remove_listener(heard.append)
    store.append(_lines(1))
    assert heard == [3, 5]


_APPENDER = textwrap.dedent(
    """
    import sys
    from telemetry.store import Store
    store = Store(sys.argv[1])
    batch = 0
    while True:
        ids = store.append([f"m,b={batch} v={i}i {batch * 1000 + i}" for i in range(100)])
        sys.stdout.write(f"{ids[-1]}\\n")
        sys.stdout.flush()
        batch += 1
    """
)


def test_every_returned_append_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-c", _APPENDER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert proc.stdout is not None
    confirmed = 0
    for line in proc.stdout:
        confirmed = int(line)
        if confirmed >= 3000:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    with Store(path) as s:
        points = s.read_after(0, 10**9)
    assert len(points) >= confirmed
    assert [p.id for p in points] == list(range(1, len(points) + 1))
    for p in points[:confirmed]:
        batch, i = divmod(p.id - 1, 100)
        assert p.line == f"m,b={batch} v={i}i {batch * 1000 + i}"


_STATE_WRITER = textwrap.dedent(
    """
    import sys
    from telemetry.store import Store

    s = Store(sys.argv[1])
    for i in range(1, 10**9):
        s.put_state("feeds/R1", f"v{i}")
        print(i, flush=True)
    """
)


def test_put_state_survives_sigkill_and_replaces_the_value(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    proc = subprocess.Popen([sys.executable, "-c", _STATE_WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert proc.stdout is not None
    confirmed = 0
    for line in proc.stdout:
        confirmed = int(line)
        if confirmed >= 50:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    with Store(path) as s:
        value = s.get_state("feeds/R1")
        assert value is not None and int(value[1:]) >= confirmed  # the last confirmed value or a later one
        assert s.get_state("feeds/R2") is None


def test_an_old_store_without_the_state_table_upgrades(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite3"
    Store(path).close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("DROP TABLE state")
    with Store(path, clock_ns=lambda: 7) as s:
        s.put_states({"a": "1", "b": "2"})
        s.put_state("a", "3")
        assert (s.get_state("a"), s.get_state("b")) == ("3", "2")
