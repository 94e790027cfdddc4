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
from itertools import repeat
from typing import Any, Union

import numpy as np
import numpy.typing as npt

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
        return repr(as_float) if math.isfinite(as_float) else None
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

    Attributes
    ----------
    lines : list of str
        One line per kept point, without trailing newline.
    series : list of str
        ``series_key`` of each kept line, same length as ``lines``.
    time_ns : list of int
        Timestamp of each kept line in ns since the epoch, same length as ``lines``.
    dropped_lines : int
        Points left out because none of their fields was finite.
    dropped_fields : int
        Non-finite float fields left out (those of dropped lines included).
    """

    lines: list[str] = field(default_factory=list)
    series: list[str] = field(default_factory=list)
    time_ns: list[int] = field(default_factory=list)
    dropped_lines: int = 0
    dropped_fields: int = 0

    def __len__(self) -> int:
        return len(self.lines)

    def extend(self, other: EncodedBatch) -> None:
        self.lines.extend(other.lines)
        self.series.extend(other.series)
        self.time_ns.extend(other.time_ns)
        self.dropped_lines += other.dropped_lines
        self.dropped_fields += other.dropped_fields


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
    if not isinstance(measurement, str) and len(measurement) != n:
        raise ValueError(f"measurement has {len(measurement)} rows, time_ns has {n}")
    return _encode_columns_impl(measurement, tags, fields, times.astype(np.int64, copy=False).tolist(), n)


def _is_scalar(column: object) -> bool:
    return isinstance(column, (str, bytes, int, float, bool, np.generic)) or column is None


def _encode_columns_impl(
    measurement: str | Sequence[str],
    tags: Mapping[str, str | Sequence[str]],
    fields: Mapping[str, ColumnLike],
    times: list[int],
    n: int,
) -> EncodedBatch:
    # Series prefix in sorted tag order; constant parts are escaped once, per-row values once per
    # distinct value (signal and reactor names repeat on every scan).
    segments: list[str | list[str]] = []
    if isinstance(measurement, str):
        segments.append(escape_measurement(_check_measurement(measurement)))
    else:
        cache: dict[str, str] = {}
        segments.append([_cached(cache, m, _escape_measurement_checked) for m in measurement])
    for key in sorted(tags):
        column = tags[key]
        ekey = "," + escape_key(key) + "="
        if isinstance(column, str) or column is None:
            if column:
                _append_constant(segments, ekey + escape_key(column))
            continue
        cache = {}
        segments.append(
            ["" if not v else _cached(cache, v, lambda s, k=ekey: k + escape_key(str(s))) for v in column]
        )
    if len(segments) == 1 and isinstance(segments[0], str):
        series = [segments[0]] * n
    else:
        columns = [repeat(seg, n) if isinstance(seg, str) else seg for seg in segments]
        series = ["".join(parts) for parts in zip(*columns)]

    field_columns: list[list[str | None] | str] = []
    dropped_fields = 0
    has_holes = False
    for key, column in fields.items():
        ekey = escape_key(key) + "="
        if _is_scalar(column):
            text = format_field_value(column)  # type: ignore[arg-type]
            if text is None:
                dropped_fields += n
                continue
            field_columns.append(ekey + text)
            continue
        texts, n_dropped = _format_column(ekey, column)
        dropped_fields += n_dropped
        has_holes = has_holes or n_dropped > 0 or any(t is None for t in texts)
        field_columns.append(texts)

    per_row_fields = [c for c in field_columns if not isinstance(c, str)]
    constant_fields = ",".join(c for c in field_columns if isinstance(c, str))
    out = EncodedBatch(dropped_fields=dropped_fields)
    if not per_row_fields:
        if not constant_fields:
            out.dropped_lines = n
            return out
        out.lines = [f"{s} {constant_fields} {t}" for s, t in zip(series, times)]
        out.series, out.time_ns = series, times
        return out
    if not has_holes:
        sep = "," if constant_fields else ""
        joined = [",".join(row) for row in zip(*per_row_fields)]  # type: ignore[arg-type]
        out.lines = [f"{s} {f}{sep}{constant_fields} {t}" for s, f, t in zip(series, joined, times)]
        out.series, out.time_ns = series, times
        return out
    for s, t, row in zip(series, times, zip(*per_row_fields)):
        kept = [f for f in row if f is not None]
        if constant_fields:
            kept.append(constant_fields)
        if not kept:
            out.dropped_lines += 1
            continue
        out.lines.append(f"{s} {','.join(kept)} {t}")
        out.series.append(s)
        out.time_ns.append(t)
    return out


def _format_column(ekey: str, column: ColumnLike) -> tuple[list[str | None], int]:
    """Per-row ``key=value`` texts of one field column and the count of non-finite floats."""
    arr = np.asarray(column)
    if arr.ndim != 1:
        raise ValueError(f"field column {ekey[:-1]!r} must be 1-D, got shape {arr.shape}")
    kind = arr.dtype.kind
    if kind == "f":
        as_float = arr.astype(np.float64, copy=False)
        finite = np.isfinite(as_float)
        values = as_float.tolist()
        if finite.all():
            return [f"{ekey}{v!r}" for v in values], 0
        return [f"{ekey}{v!r}" if ok else None for v, ok in zip(values, finite.tolist())], int((~finite).sum())
    if kind == "b":
        return [ekey + ("true" if v else "false") for v in arr.tolist()], 0
    if kind in "iu":
        if kind == "u" and arr.size and int(arr.max()) > _INT64_MAX:
            raise ValueError(f"field column {ekey[:-1]!r} holds values above the int64 range")
        return [f"{ekey}{v}i" for v in arr.tolist()], 0
    if kind in "OU":
        texts: list[str | None] = []
        dropped = 0
        for v in arr.tolist():
            if v is None:
                texts.append(None)
                continue
            text = format_field_value(v)
            if text is None:
                dropped += 1
            texts.append(None if text is None else ekey + text)
        return texts, dropped
    raise TypeError(f"field column {ekey[:-1]!r} has unsupported dtype {arr.dtype}")


def _append_constant(segments: list[str | list[str]], text: str) -> None:
    if segments and isinstance(segments[-1], str):
        segments[-1] += text
    else:
        segments.append(text)


def _cached(cache: dict[str, str], value: str, fn: Any) -> str:
    try:
        return cache[value]
    except KeyError:
        cache[value] = out = fn(value)
        return out


def _escape_measurement_checked(name: str) -> str:
    return escape_measurement(_check_measurement(name))


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
