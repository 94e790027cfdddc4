"""Line protocol encoder: exact escaping, non-finite handling, columns == points, real servers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry.lineproto import (
    encode_columns,
    encode_point,
    format_field_value,
    parse_line,
    series_key,
    split_series_time,
)
from tests.servers import InfluxDB1Server, VictoriaMetricsServer, http

# Names: anything printable (the protocol cannot carry a newline in a name).
names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)
string_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
field_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    string_values,
)


@pytest.mark.parametrize(
    ("measurement", "tags", "fields", "expected"),
    [
        ("m", {}, {"v": 1.5}, "m v=1.5 7"),
        ("my meas,x", {"t k": "a,b=c"}, {"f=k": 1}, r"my\ meas\,x,t\ k=a\,b\=c f\=k=1i 7"),
        ("m=eq", {"b": "2", "a": "1"}, {"s": 'say "hi" \\o/'}, r'm=eq,a=1,b=2 s="say \"hi\" \\o/" 7'),
        ("m", {"t": "line\nbreak"}, {"ok": True, "bad": False}, r"m,t=line\nbreak ok=true,bad=false 7"),
        ("m", {"empty": "", "t": "°C µ"}, {"v": -0.0}, "m,t=°C\\ µ v=-0.0 7"),
        ("m", {}, {"s": "multi\nline"}, 'm s="multi\nline" 7'),
    ],
)
def test_escaping_examples(measurement, tags, fields, expected) -> None:
    assert encode_point(measurement, tags, fields, 7) == expected


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.float32("nan")])
def test_non_finite_field_is_dropped_and_empty_line_is_none(bad) -> None:
    assert encode_point("m", {}, {"v": bad, "q": 1}, 1) == "m q=1i 1"
    assert encode_point("m", {}, {"v": bad}, 1) is None


@pytest.mark.parametrize(
    ("value", "text"),
    [(np.float64(2.5), "2.5"), (np.int32(-3), "-3i"), (np.bool_(True), "true"), (1e-300, "1e-300"), (2**63 - 1, f"{2**63 - 1}i")],
)
def test_numpy_and_edge_values(value, text) -> None:
    assert format_field_value(value) == text


@pytest.mark.parametrize("value", [2**63, None, b"bytes"])
def test_unencodable_field_value_raises(value) -> None:
    with pytest.raises((TypeError, ValueError)):
        format_field_value(value)


@settings(max_examples=300, deadline=None)
@given(
    measurement=names,
    tags=st.dictionaries(names, names, max_size=4),
    fields=st.dictionaries(names, field_values, min_size=1, max_size=4),
    time_ns=st.integers(min_value=-(2**62), max_value=2**62),
)
def test_round_trip_through_parser(measurement, tags, fields, time_ns) -> None:
    line = encode_point(measurement, tags, fields, time_ns)
    assert line is not None and "\n" not in line.split('"')[0]
    parsed = parse_line(line)
    assert parsed.measurement == measurement
    assert parsed.tags == tags
    assert parsed.time_ns == time_ns
    assert parsed.fields == fields
    assert {k: type(v) for k, v in parsed.fields.items()} == {k: type(v) for k, v in fields.items()}
    assert split_series_time(line) == (series_key(measurement, tags), time_ns)


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            names,
            st.sampled_from(["R1", "R 2", "r=3", ""]),
            st.one_of(st.floats(), st.just(math.nan)),
            st.integers(min_value=-5, max_value=5),
            st.booleans(),
            st.integers(min_value=0, max_value=2**62),
        ),
        max_size=30,
    )
)
def test_columns_equal_points(rows) -> None:
    signals = [r[0] for r in rows]
    reactors = [r[1] for r in rows]
    values = np.array([r[2] for r in rows], dtype=np.float64)
    quality = np.array([r[3] for r in rows], dtype=np.int64)
    good = np.array([r[4] for r in rows], dtype=bool)
    times = np.array([r[5] for r in rows], dtype=np.int64)
    batch = encode_columns(
        "sample",
        {"signal": signals, "reactor": reactors, "unit": "%"},
        {"value": values, "quality": quality, "good": good},
        times,
    )
    expected = [
        encode_point("sample", {"signal": s, "reactor": r, "unit": "%"}, {"value": v, "quality": q, "good": g}, t)
        for s, r, v, q, g, t in rows
    ]
    assert batch.lines == [e for e in expected if e is not None]
    assert batch.dropped_fields == int(np.sum(~np.isfinite(values)))
    assert batch.series == [split_series_time(line)[0] for line in batch.lines]
    assert batch.time_ns.tolist() == [split_series_time(line)[1] for line in batch.lines]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=50),
       st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=50))
def test_column_numbers_read_back_exactly(floats, ints) -> None:
    n = min(len(floats), len(ints))
    batch = encode_columns("m", {}, {"f": np.array(floats[:n]), "k": np.array(ints[:n], dtype=np.int64)},
                           np.arange(n, dtype=np.int64))
    got = [parse_line(line).fields for line in batch.lines]
    assert [g["f"] for g in got] == floats[:n] and [g["k"] for g in got] == ints[:n]
    assert all(float(format_field_value(x)) == x for x in floats[:n])  # type: ignore[arg-type]


def test_columns_drop_and_count_lines_with_no_finite_field() -> None:
    batch = encode_columns("m", {"r": ["a", "b", "c"]}, {"v": [1.0, math.nan, math.inf]}, np.array([1, 2, 3]))
    assert batch.lines == ["m,r=a v=1.0 1"]
    assert (batch.dropped_lines, batch.dropped_fields) == (2, 2)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"time_ns": np.array([1.0])}, TypeError),
        ({"time_ns": np.array([[1]])}, ValueError),
        ({"fields": {"v": [1.0, 2.0]}}, ValueError),
        ({"fields": {}}, ValueError),
        ({"measurement": ""}, ValueError),
    ],
)
def test_columns_reject_bad_shapes(kwargs, error) -> None:
    args = {"measurement": "m", "tags": {}, "fields": {"v": [1.0]}, "time_ns": np.array([1])} | kwargs
    with pytest.raises(error):
        encode_columns(**args)


TRICKY = ["spa ce", "com,ma", "equ=als", 'quo"te', "ünïcødé °C", "é,= x"]


@pytest.mark.servers
def test_tricky_names_survive_influxd(influxd_server: InfluxDB1Server, influxd_db: str) -> None:
    lines = [
        encode_point("tricky m", {"tag " + t: t}, {"f " + t: float(i), "s": t + ' \\ "x"\nnext'}, 1000 + i)
        for i, t in enumerate(TRICKY)
    ]
    influxd_server.write([x for x in lines if x], influxd_db)
    rows = influxd_server.rows('SELECT * FROM "tricky m" GROUP BY *', influxd_db)
    assert len(rows) == len(TRICKY)
    for i, t in enumerate(TRICKY):
        (row,) = [r for r in rows if r["time"] == 1000 + i]
        assert row["tag " + t] == t
        assert row["f " + t] == float(i)
        assert row["s"] == t + ' \\ "x"\nnext'


@pytest.mark.servers
def test_tricky_names_survive_victoria_metrics(vm_server: VictoriaMetricsServer, fresh_name: str) -> None:
    tricky = [*TRICKY, "back\\slash"]
    lines = [encode_point(fresh_name, {"t": t}, {"v": float(i)}, (1700000000 + i) * 10**9) for i, t in enumerate(tricky)]
    status, _, body = http("POST", f"{vm_server.url}/api/v2/write?bucket=b", body="\n".join(lines).encode())
    assert status == 204, body
    got = vm_server.samples(f"{fresh_name}_v")
    assert {labels[0][1]: vals for (_, labels), vals in got.items()} == {
        t: [((1700000000 + i) * 1000, float(i))] for i, t in enumerate(tricky)
    }


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 40)), min_size=1, max_size=20))
def test_repeated_timestamps_are_written_on_every_line(runs) -> None:
    times = np.repeat([1_700_000_000_000_000_000 + 7 * t for t, _ in runs], [n for _, n in runs])
    batch = encode_columns("m", {}, {"v": np.arange(times.size, dtype=np.int64)}, times)
    assert [parse_line(line).time_ns for line in batch.lines] == times.tolist()
    assert [parse_line(line).fields["v"] for line in batch.lines] == list(range(times.size))
