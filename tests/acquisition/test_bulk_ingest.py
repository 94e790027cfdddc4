"""Bulk ingest: TagTable.update_many is update() applied in order; SampleBuffer keeps every sample in order."""

from __future__ import annotations

import asyncio
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry.acquisition import SampleBuffer
from telemetry.tags import STATUS_BAD_TYPE_MISMATCH, Sample, SampleColumns, TagTable

NAMES = [f"t{i}" for i in range(6)]
BAD_SENSOR = 0x808B0000
STATUSES = st.sampled_from([0, 0x480, 0x40000000, BAD_SENSOR, STATUS_BAD_TYPE_MISMATCH])
ROWS = st.lists(st.tuples(st.integers(0, len(NAMES) - 1), st.floats() | st.sampled_from([math.inf, -math.inf, math.nan]),
                          st.floats(0, 2e9), STATUSES), max_size=40)


def table_arrays(table: TagTable) -> list[np.ndarray]:
    return [table.value, table.source_time_s, table.status, table.received_s, table.disconnected]


@settings(max_examples=200, deadline=None)
@given(rows=ROWS)
def test_update_many_is_update_applied_in_order(rows: list[tuple[int, float, float, int]]) -> None:
    one_by_one, bulk = TagTable(NAMES), TagTable(NAMES)
    for table in (one_by_one, bulk):
        table.mark_disconnected(range(len(NAMES)))
    want = [one_by_one.update(tag, value, t, status, 5.0) for tag, value, t, status in rows]
    tags, values, times, statuses = (list(c) for c in zip(*rows)) if rows else ([], [], [], [])
    got = bulk.update_many(np.array(tags, dtype=np.intp), np.array(values), np.array(times), np.array(statuses, dtype=np.uint32), 5.0)
    for a, b in zip(table_arrays(bulk), table_arrays(one_by_one)):
        np.testing.assert_array_equal(a, b)
    assert [got.tag.dtype, got.value.dtype, got.source_time_s.dtype, got.status.dtype] == [np.intp, np.float64, np.float64, np.int64]
    assert len(got.tag) == len(want)
    for sample, expected in zip(got.samples(), want):
        assert sample.tag == expected.tag and sample.status == expected.status and sample.source_time_s == expected.source_time_s
        assert sample.value == expected.value or (math.isnan(sample.value) and math.isnan(expected.value))


def test_update_many_keeps_the_last_of_repeated_tags_and_returns_all() -> None:
    table = TagTable(NAMES)
    tags = np.array([2, 0, 2, 2, 0], dtype=np.intp)
    got = table.update_many(tags, [1.0, 2.0, 3.0, math.nan, 5.0], [10.0, 11.0, 12.0, 13.0, 14.0], [0, 0, 0, 0, BAD_SENSOR], 7.0)
    assert table.value[2] != table.value[2]  # NaN: the last value of tag 2 was not finite
    assert table.status[2] == STATUS_BAD_TYPE_MISMATCH and table.source_time_s[2] == 13.0
    assert table.value[0] == 5.0 and table.status[0] == BAD_SENSOR and table.source_time_s[0] == 14.0
    assert table.received_s[[0, 2]].tolist() == [7.0, 7.0] and table.received_s[1] == -np.inf
    np.testing.assert_array_equal(got.tag, tags)
    np.testing.assert_array_equal(got.value, [1.0, 2.0, 3.0, np.nan, 5.0])
    np.testing.assert_array_equal(got.status, [0, 0, 0, STATUS_BAD_TYPE_MISMATCH, BAD_SENSOR])
    tags[0] = 5
    assert got.tag[0] == 2  # the returned columns are copies


def test_update_many_takes_one_time_for_all() -> None:
    table = TagTable(NAMES)
    got = table.update_many([1, 3], [1.0, 2.0], 99.0, [0, 0], 1.0)
    assert got.source_time_s.tolist() == [99.0, 99.0] and table.source_time_s[[1, 3]].tolist() == [99.0, 99.0]


def columns(tags: list[int], first_value: float = 0.0) -> SampleColumns:
    n = len(tags)
    return SampleColumns(np.array(tags, dtype=np.intp), first_value + np.arange(n, dtype=np.float64),
                         np.full(n, 100.0), np.zeros(n, dtype=np.int64))


async def test_sample_buffer_keeps_arrival_order_across_single_and_column_appends() -> None:
    buffer = SampleBuffer()
    waiter = asyncio.ensure_future(buffer.wait_total(6))
    await asyncio.sleep(0)  # one turn of the loop: the waiter is waiting
    buffer.append(Sample(4, -1.0, 50.0, 0))
    buffer.append_columns(columns([1, 2, 1]))
    buffer.append_columns(columns([]))
    await asyncio.sleep(0)
    assert not waiter.done() and len(buffer) == 4 and buffer.total == 4
    buffer.append(Sample(5, -2.0, 60.0, BAD_SENSOR))
    buffer.append_columns(columns([3], first_value=10.0))
    await asyncio.wait_for(waiter, 1.0)
    assert len(buffer) == 6 and buffer.total == 6
    got = buffer.drain_columns()
    assert got.tag.tolist() == [4, 1, 2, 1, 5, 3]
    assert got.value.tolist() == [-1.0, 0.0, 1.0, 2.0, -2.0, 10.0]
    assert got.source_time_s.tolist() == [50.0, 100.0, 100.0, 100.0, 60.0, 100.0]
    assert got.status.tolist() == [0, 0, 0, 0, BAD_SENSOR, 0]
    assert [c.dtype for c in got] == [np.intp, np.float64, np.float64, np.int64]
    assert len(buffer) == 0 and buffer.total == 6
    empty = buffer.drain_columns()
    assert all(len(c) == 0 for c in empty) and [c.dtype for c in empty] == [c.dtype for c in got]


def test_sample_buffer_drain_gives_samples_of_both_kinds_of_append() -> None:
    buffer = SampleBuffer()
    first = Sample(0, 1.0, 2.0, 0)
    buffer.append(first)
    assert buffer.drain() == [first] and len(buffer) == 0
    buffer.append_columns(columns([2, 3]))
    buffer.append(first)
    assert buffer.drain() == [Sample(2, 0.0, 100.0, 0), Sample(3, 1.0, 100.0, 0), first]
    assert buffer.drain() == [] and buffer.total == 4


def test_a_subclass_that_sees_each_appended_sample_still_sees_each_one() -> None:
    """A buffer overriding only append() (like the service's clocked buffer) gets columns sample by sample."""

    class Watching(SampleBuffer):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[Sample] = []

        def append(self, sample: Sample) -> None:
            super().append(sample)
            self.seen.append(sample)

    class WatchingColumnsToo(Watching):
        def append_columns(self, columns: SampleColumns) -> None:
            super().append_columns(columns)

    watching = Watching()
    watching.append_columns(columns([1, 2]))
    assert watching.seen == [Sample(1, 0.0, 100.0, 0), Sample(2, 1.0, 100.0, 0)]
    assert watching.total == 2 and watching.drain_columns().tag.tolist() == [1, 2]
    both = WatchingColumnsToo()
    both.append_columns(columns([1, 2]))
    assert both.seen == [] and both.total == 2
