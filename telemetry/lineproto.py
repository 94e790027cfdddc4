"""InfluxDB line protocol: an exact encoder (one point or whole columns at once) and a parser.

Escaping follows the InfluxDB line protocol reference (the same rules as ``influxdb-client``
and Telegraf):

========================  =========================================================
element                   escaped characters
========================  =========================================================
measurement               ``\\`` ``,`` space; newline/CR/tab written as ``\\n`` ``\\r`` ``\\t``
tag key, tag value,       ``\\`` ``,`` ``=`` space; newline/CR/tab as above
field key
string field value        ``\\`` and ``"`` (newlines are legal inside the quotes)
========================  =========================================================

Two limits of the protocol itself, not of this encoder: a newline cannot be part of a name (it
is written as the two characters ``\\n``), and InfluxDB 1.x (unlike 2.x and VictoriaMetrics)
keeps an escaped backslash in a name as two backslashes.

Non-finite floats (NaN, +-Inf) are never written: such a field is dropped, and a line left with
no field is dropped and counted (``EncodedBatch.dropped_lines``). Tags with an empty value are
left out (the protocol has no empty tag value). Tags are sorted by key, which is what the
servers prefer. Timestamps are integer nanoseconds since the Unix epoch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Any, Union

import numpy as np
import numpy.typing as npt
import orjson

FieldValue = Union[float, int, bool, str, np.floating, np.integer, np.bool_]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPE_MEASUREMENT = str.maketrans({"\\": "\\\\", ",": "\\,", " ": "\\ ", **_CONTROL})
_ESCAPE_KEY = str.maketrans({"\\": "\\\\", ",": "\\,", "=": "\\=", " ": "\\ ", **_CONTROL})
_ESCAPE_STRING = str.maketrans({"\\": "\\\\", '"': '\\"'})


def escape_measurement(name: str) -> str:
    return name.translate(_ESCAPE_MEASUREMENT)


def escape_key(name: str) -> str:
    """Escape a tag key, tag value or field key."""
    return name.translate(_ESCAPE_KEY)


def escape_string_field(value: str) -> str:
    """The quoted form of a string field value."""
    return '"' + value.translate(_ESCAPE_STRING) + '"'


def format_field_value(value: FieldValue) -> str | None:
    """Line-protocol text of one field value; None when it must not be written (NaN, Inf).

    Raises
    ------
    TypeError
        For a value of another type (None included: leave the field out instead).
    ValueError
        For an integer outside the int64 range.
    """
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        as_int = int(value)
        if not _INT64_MIN <= as_int <= _INT64_MAX:
            raise ValueError(f"integer field {as_int} is outside the int64 range")
        return f"{as_int}i"
    if isinstance(value, (float, np.floating)):
        as_float = float(value)
        return orjson.dumps(as_float).decode() if math.isfinite(as_float) else None
    if isinstance(value, str):
        return escape_string_field(value)
    raise TypeError(f"unsupported field value type {type(value).__name__}: {value!r}")


def series_key(measurement: str, tags: Mapping[str, str] | None = None) -> str:
    """The escaped ``measurement,tag=value,...`` prefix that names a series (tags sorted)."""
    head = escape_measurement(_check_measurement(measurement))
    if not tags:
        return head
    parts = [head]
    for key in sorted(tags):
        value = tags[key]
        if value == "" or value is None:
            continue
        parts.append(f"{escape_key(key)}={escape_key(str(value))}")
    return ",".join(parts)


def encode_point(
    measurement: str,
    tags: Mapping[str, str] | None,
    fields: Mapping[str, FieldValue],
    time_ns: int | None = None,
) -> str | None:
    """Encode one point; None when no field is left after dropping non-finite floats.

    Parameters
    ----------
    measurement : str
        Measurement name, not empty.
    tags : mapping of str to str, optional
        Tag set; empty values are left out.
    fields : mapping of str to value
        float, int (written ``1i``), bool or str values.
    time_ns : int, optional
        Nanoseconds since the Unix epoch; without it the server stamps the point.
    """
    field_parts = []
    for key, value in fields.items():
        text = format_field_value(value)
        if text is not None:
            field_parts.append(f"{escape_key(key)}={text}")
    if not field_parts:
        return None
    line = series_key(measurement, tags) + " " + ",".join(field_parts)
    return line if time_ns is None else f"{line} {int(time_ns)}"


@dataclass
class EncodedBatch:
    """Lines ready to append to the store or send, with what the store indexes them by.

    The series of each line is given by a code into ``keys`` (the encoder knows which rows share
    a series, so the store maps a few distinct keys to ids instead of one key per line).

    Attributes
    ----------
    lines : list of str
        One line per kept point, without trailing newline.
    keys : list of str
        Distinct ``series_key`` texts the codes point into (a key may repeat after ``extend``).
    codes : ndarray of int64, shape (len(lines),)
        Index into ``keys`` of each line's series.
    time_ns : ndarray of int64, shape (len(lines),)
        Timestamp of each line in ns since the epoch.
    dropped_lines : int
        Points left out because none of their fields was finite.
    dropped_fields : int
        Non-finite float fields left out (those of dropped lines included).
    """

    lines: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    codes: npt.NDArray[np.int64] = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    time_ns: npt.NDArray[np.int64] = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    dropped_lines: int = 0
    dropped_fields: int = 0

    def __len__(self) -> int:
        return len(self.lines)

    @property
    def series(self) -> list[str]:
        """The series key of every line (built on demand)."""
        return list(map(self.keys.__getitem__, self.codes.tolist()))

    def extend(self, other: EncodedBatch) -> None:
        self.lines.extend(other.lines)
        self.codes = np.concatenate([self.codes, other.codes + len(self.keys)])
        self.keys.extend(other.keys)
        self.time_ns = np.concatenate([self.time_ns, other.time_ns])
        self.dropped_lines += other.dropped_lines
        self.dropped_fields += other.dropped_fields

    def add_line(self, line: str) -> None:
        """Append one already encoded line (it must carry a timestamp)."""
        key, stamp = split_series_time(line)
        if stamp is None:
            raise ValueError(f"line has no timestamp: {line[:200]!r}")
        self.lines.append(line)
        self.codes = np.append(self.codes, len(self.keys))
        self.keys.append(key)
        self.time_ns = np.append(self.time_ns, np.int64(stamp))


ColumnLike = Union[str, FieldValue, Sequence[Any], npt.NDArray[Any]]


def encode_columns(
    measurement: str | Sequence[str],
    tags: Mapping[str, str | Sequence[str]],
    fields: Mapping[str, ColumnLike],
    time_ns: npt.ArrayLike,
) -> EncodedBatch:
    """Encode n points given as columns; each tag or field is one value for all rows or n values.

    Parameters
    ----------
    measurement : str or sequence of str, shape (n,)
        Measurement of every row, or of each row.
    tags : mapping of str to (str or sequence of str, shape (n,))
        Tag columns; a row with an empty value leaves that tag out.
    fields : mapping of str to (scalar or array, shape (n,))
        Field columns. The column's dtype picks the type: float (NaN/Inf dropped per row),
        integer (``i`` suffix), bool, or str/object (strings; a None entry is left out).
    time_ns : array_like of int, shape (n,)
        Timestamps, ns since the Unix epoch.

    Returns
    -------
    EncodedBatch
        Rows in input order, minus rows with no field left.
    """
    times = _check_columns(tags, fields, time_ns)
    n = int(times.shape[0])
    if not isinstance(measurement, str) and len(measurement) != n:
        raise ValueError(f"measurement has {len(measurement)} rows, time_ns has {n}")
    keys, codes = _series_codes(measurement, tags, n)
    return _encode_rows(keys, codes, fields, times)


def encode_series(
    keys: Sequence[str],
    codes: npt.ArrayLike,
    fields: Mapping[str, ColumnLike],
    time_ns: npt.ArrayLike,
) -> EncodedBatch:
    """Encode n points whose series keys the caller already has (the recorder caches them).

    Parameters
    ----------
    keys : sequence of str
        Series keys as made by :func:`series_key` (escaped, tags sorted).
    codes : array_like of int, shape (n,)
        Index into ``keys`` of each row.
    fields, time_ns
        As for :func:`encode_columns`.
    """
    times = _check_columns({}, fields, time_ns)
    codes_arr = np.asarray(codes, dtype=np.int64)
    if codes_arr.shape != times.shape:
        raise ValueError(f"codes has shape {codes_arr.shape}, time_ns has {times.shape}")
    if codes_arr.size and (codes_arr.min() < 0 or codes_arr.max() >= len(keys)):
        raise ValueError(f"codes must index into the {len(keys)} keys")
    return _encode_rows(list(keys), codes_arr, fields, times)


def _check_columns(
    tags: Mapping[str, str | Sequence[str]], fields: Mapping[str, ColumnLike], time_ns: npt.ArrayLike
) -> npt.NDArray[np.int64]:
    times = np.asarray(time_ns)
    if times.ndim != 1:
        raise ValueError(f"time_ns must be 1-D, got shape {times.shape}")
    if times.size and not np.issubdtype(times.dtype, np.integer):
        raise TypeError(f"time_ns must hold integers (ns), got dtype {times.dtype}")
    n = int(times.shape[0])
    if not fields:
        raise ValueError("at least one field column is needed")
    for name, column in [*tags.items(), *fields.items()]:
        if not _is_scalar(column) and len(column) != n:  # type: ignore[arg-type]
            raise ValueError(f"column {name!r} has {len(column)} rows, time_ns has {n}")  # type: ignore[arg-type]
    return times.astype(np.int64, copy=False)


def _is_scalar(column: object) -> bool:
    return isinstance(column, (str, bytes, int, float, bool, np.generic)) or column is None


def _series_codes(
    measurement: str | Sequence[str], tags: Mapping[str, str | Sequence[str]], n: int
) -> tuple[list[str], npt.NDArray[np.int64]]:
    """Distinct series keys and each row's index into them.

    Rows are grouped by the tuple of their per-row tag values (one dict lookup per row); only
    distinct tuples are escaped and joined, since reactor, batch and signal names repeat on
    every scan.
    """
    names: list[str | None] = []  # per-row column names in key order (None: the measurement)
    columns: list[Sequence[str]] = []
    constant: list[tuple[str | None, str]] = []
    if isinstance(measurement, str):
        constant.append((None, measurement))
        _check_measurement(measurement)
    else:
        names.append(None)
        columns.append(measurement)
    for key in sorted(tags):
        column = tags[key]
        if isinstance(column, str) or column is None:
            if column:
                constant.append((key, column))
            continue
        names.append(key)
        columns.append(column)
    if not columns:
        return [series_key(str(measurement), {k: v for k, v in constant if k is not None})], np.zeros(n, np.int64)
    index: dict[tuple[str, ...], int] = {}
    codes = [index.setdefault(row, len(index)) for row in zip(*columns)]
    keys = []
    for row in index:
        values = dict(constant)
        values.update(zip(names, row))
        head = values.pop(None)
        keys.append(series_key(head, values))  # type: ignore[arg-type]
    return keys, np.fromiter(codes, dtype=np.int64, count=n)


def _encode_rows(
    keys: list[str], codes: npt.NDArray[np.int64], fields: Mapping[str, ColumnLike], times: npt.NDArray[np.int64]
) -> EncodedBatch:
    n = int(times.shape[0])
    out = EncodedBatch()
    if n == 0:
        return out
    # (escaped key + "=", per-row texts or None for a left-out value, suffix) per field column
    per_row: list[tuple[str, list[str | None], str]] = []
    constant_fields: list[str] = []
    has_holes = False
    for key, column in fields.items():
        ekey = escape_key(key) + "="
        if _is_scalar(column):
            text = format_field_value(column)  # type: ignore[arg-type]
            if text is None:
                out.dropped_fields += n
            else:
                constant_fields.append(ekey + text)
            continue
        texts, suffix, n_dropped, holes = _format_column(key, column)
        out.dropped_fields += n_dropped
        has_holes = has_holes or holes
        per_row.append((ekey, texts, suffix))
    constants = ",".join(constant_fields)
    series = list(map(keys.__getitem__, codes.tolist()))
    stamps = _time_texts(times)
    if not per_row and not constants:
        out.dropped_lines = n
        return out
    if not has_holes:
        # One "".join per row over alternating constant and per-row parts; a field's suffix
        # ("i" of integers) rides on the constant that follows it.
        parts: list[object] = [series]
        sep = " "
        for ekey, texts, suffix in per_row:
            parts.append(repeat(sep + ekey))
            parts.append(texts)
            sep = suffix + ","
        tail = sep + constants if constants else sep[:-1]
        parts.append(repeat(tail + " "))
        parts.append(stamps)
        out.lines = list(map("".join, zip(*parts)))  # type: ignore[call-overload]
        out.keys, out.codes, out.time_ns = keys, codes, times
        return out
    keep = np.ones(n, dtype=bool)
    full = [[None if t is None else ekey + t + suffix for t in texts] for ekey, texts, suffix in per_row]
    lines = []
    for i, (s, t, row) in enumerate(zip(series, stamps, zip(*full))):
        kept = [f for f in row if f is not None]
        if constants:
            kept.append(constants)
        if not kept:
            keep[i] = False
            continue
        lines.append(f"{s} {','.join(kept)} {t}")
    out.lines = lines
    out.dropped_lines = n - len(lines)
    out.keys, out.codes, out.time_ns = keys, codes[keep], times[keep]
    return out


def _int_texts(values: npt.NDArray[np.int64]) -> list[str]:
    """Decimal texts of an int64 array (orjson formats in C: ~10x faster than ``str`` per value)."""
    return orjson.dumps(np.ascontiguousarray(values, dtype=np.int64), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].decode().split(",")


def _time_texts(times: npt.NDArray[np.int64]) -> list[str]:
    """Integers as text; runs of equal values (one scan's timestamps, Good status codes) are
    formatted once and repeated."""
    if times.size < 2:
        return _int_texts(times)
    change = np.flatnonzero(np.r_[True, times[1:] != times[:-1]])
    if change.size * 4 > times.size:
        return _int_texts(times)
    lengths = np.diff(np.r_[change, times.size]).tolist()
    return list(chain.from_iterable(map(repeat, _int_texts(times[change]), lengths)))


def _float_texts(values: npt.NDArray[np.float64]) -> list[str]:
    """Shortest round-trip texts of finite floats (non-finite ones come out as ``null``).

    orjson prints the same digits as ``repr`` (shortest string that reads back to the same
    double); it differs only in spelling small/large exponents (``0.00001`` for ``1e-05``),
    which every line-protocol parser reads the same. 4x faster than ``repr`` per value.
    """
    return orjson.dumps(np.ascontiguousarray(values, dtype=np.float64), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].decode().split(",")


def _format_column(name: str, column: ColumnLike) -> tuple[list[str | None], str, int, bool]:
    """Per-row value texts of one field column (None: left out), the type suffix, the count of
    non-finite floats, and whether any row is left out."""
    arr = np.asarray(column)
    if arr.ndim != 1:
        raise ValueError(f"field column {name!r} must be 1-D, got shape {arr.shape}")
    kind = arr.dtype.kind
    if kind == "f":
        as_float = arr.astype(np.float64, copy=False)
        texts: list[str | None] = _float_texts(as_float)  # type: ignore[assignment]
        finite = np.isfinite(as_float)
        if finite.all():
            return texts, "", 0, False
        for i in np.flatnonzero(~finite).tolist():
            texts[i] = None
        return texts, "", int((~finite).sum()), True
    if kind == "b":
        return list(map(("false", "true").__getitem__, arr.astype(np.intp).tolist())), "", 0, False
    if kind in "iu":
        if kind == "u" and arr.size and int(arr.max()) > _INT64_MAX:
            raise ValueError(f"field column {name!r} holds values above the int64 range")
        return _time_texts(arr.astype(np.int64)), "i", 0, False  # type: ignore[return-value]
    if kind in "OU":
        out: list[str | None] = []
        dropped = 0
        cache: dict[object, str | None] = {}
        for v in arr.tolist():
            if v is None:
                out.append(None)
                continue
            try:
                text = cache[v]
            except (KeyError, TypeError):
                text = format_field_value(v)
                if isinstance(v, str):
                    cache[v] = text
            if text is None:
                dropped += 1
            out.append(text)
        return out, "", dropped, dropped > 0 or None in out
    raise TypeError(f"field column {name!r} has unsupported dtype {arr.dtype}")


def _check_measurement(name: str) -> str:
    if not name:
        raise ValueError("measurement name must not be empty")
    return name


# ------------------------------------------------------------------------------------ parsing


@dataclass(frozen=True)
class ParsedLine:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, float | int | bool | str]
    time_ns: int | None


_UNESCAPE_NAME = {",": ",", " ": " ", "=": "=", "\\": "\\"}


def split_series_time(line: str) -> tuple[str, int | None]:
    """The series key (escaped, as written) and the timestamp of a line, without a full parse."""
    i = _find_unescaped(line, " ", 0)
    if i < 0:
        raise ValueError(f"no field set in line {line[:200]!r}")
    series = line[:i]
    last = line.rfind(" ")
    tail = line[last + 1 :]
    stamp = int(tail) if last > i and (tail.isdigit() or (tail[:1] == "-" and tail[1:].isdigit())) else None
    return series, stamp


def parse_line(line: str) -> ParsedLine:
    """Parse one line of line protocol (2.x escaping rules).

    Used to read points back from the local store and to check the encoder.
    """
    end_series = _find_unescaped(line, " ", 0)
    if end_series <= 0:
        raise ValueError(f"no measurement or no field set in {line[:200]!r}")
    series = line[:end_series]
    parts = _split_unescaped(series, ",")
    measurement = _unescape(parts[0])
    if not measurement:
        raise ValueError(f"empty measurement in {line[:200]!r}")
    tags: dict[str, str] = {}
    for part in parts[1:]:
        eq = _find_unescaped(part, "=", 0)
        if eq <= 0:
            raise ValueError(f"bad tag {part!r}")
        tags[_unescape(part[:eq])] = _unescape(part[eq + 1 :])

    fields: dict[str, float | int | bool | str] = {}
    i = end_series + 1
    n = len(line)
    while True:
        eq = _find_unescaped(line, "=", i)
        if eq < 0:
            raise ValueError(f"bad field set in {line[:200]!r}")
        key = _unescape(line[i:eq])
        j = eq + 1
        if j < n and line[j] == '"':
            chars = []
            j += 1
            while j < n and line[j] != '"':
                if line[j] == "\\" and j + 1 < n and line[j + 1] in '"\\':
                    j += 1
                chars.append(line[j])
                j += 1
            if j >= n:
                raise ValueError(f"unterminated string field in {line[:200]!r}")
            fields[key] = "".join(chars)
            j += 1
        else:
            k = j
            while k < n and line[k] not in ", ":
                k += 1
            fields[key] = _parse_scalar(line[j:k])
            j = k
        if j >= n:
            return ParsedLine(measurement, tags, fields, None)
        if line[j] == ",":
            i = j + 1
            continue
        stamp = line[j + 1 :]
        return ParsedLine(measurement, tags, fields, int(stamp) if stamp else None)


def _parse_scalar(text: str) -> float | int | bool:
    if text.endswith("i"):
        return int(text[:-1])
    if text in ("t", "T", "true", "True", "TRUE"):
        return True
    if text in ("f", "F", "false", "False", "FALSE"):
        return False
    return float(text)


def _find_unescaped(text: str, char: str, start: int) -> int:
    i = text.find(char, start)
    while i > 0 and text[i - 1] == "\\":
        # count the backslashes in front: an even number escape each other, not the char
        k = i - 1
        while k >= 0 and text[k] == "\\":
            k -= 1
        if (i - 1 - k) % 2 == 0:
            return i
        i = text.find(char, i + 1)
    return i


def _split_unescaped(text: str, char: str) -> list[str]:
    out = []
    start = 0
    while True:
        i = _find_unescaped(text, char, start)
        if i < 0:
            out.append(text[start:])
            return out
        out.append(text[start:i])
        start = i + 1


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    chars = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in _UNESCAPE_NAME:
            chars.append(text[i + 1])
            i += 2
            continue
        chars.append(c)
        i += 1
    return "".join(chars)
