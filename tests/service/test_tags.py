"""The tag table keeps bad values away from controllers."""

import math

import numpy as np
import pytest

from telemetry.tags import STATUS_BAD_TYPE_MISMATCH, STATUS_GOOD, TagTable

BAD_SENSOR_FAILURE = 0x808C0000
UNCERTAIN = 0x40000000


@pytest.fixture
def table() -> TagTable:
    return TagTable(["R1.do_pct", "R1.ph", "R1.temperature_c"])


def test_good_fresh_values_are_usable(table: TagTable) -> None:
    for tag, v in enumerate((30.0, 7.0, 37.0)):
        table.update(tag, v, source_time_s=1000.0, status=STATUS_GOOD, received_s=10.0)
    assert table.usable(now_s=10.5, stale_after_s=1.0).tolist() == [True, True, True]
    assert table.stale(now_s=10.5, stale_after_s=1.0).tolist() == [False, False, False]


@pytest.mark.parametrize(
    ("value", "status"),
    [
        (float("nan"), STATUS_GOOD),
        (float("inf"), STATUS_GOOD),
        ("7.0", STATUS_GOOD),
        (None, STATUS_GOOD),
        ([1.0, 2.0], STATUS_GOOD),
        (30.0, BAD_SENSOR_FAILURE),
        (30.0, UNCERTAIN),
    ],
)
def test_bad_values_are_not_usable(table: TagTable, value: object, status: int) -> None:
    sample = table.update(0, value, source_time_s=1.0, status=status, received_s=1.0)
    assert not table.usable(now_s=1.0, stale_after_s=5.0)[0]
    if not isinstance(value, float) or not math.isfinite(value):
        assert math.isnan(sample.value)
        assert sample.status & 0x80000000


def test_wrong_type_gets_bad_type_mismatch_status(table: TagTable) -> None:
    sample = table.update(1, "seven", source_time_s=1.0, status=STATUS_GOOD, received_s=1.0)
    assert sample.status == STATUS_BAD_TYPE_MISMATCH


def test_values_go_stale_and_disconnected_tags_at_once(table: TagTable) -> None:
    for tag in range(3):
        table.update(tag, 1.0, source_time_s=0.0, status=STATUS_GOOD, received_s=0.0)
    assert table.stale(now_s=3.1, stale_after_s=3.0).all()
    table.update(0, 1.0, source_time_s=3.0, status=STATUS_GOOD, received_s=3.0)
    table.mark_disconnected(np.array([0]))
    assert not table.usable(now_s=3.0, stale_after_s=3.0)[0]
    table.update(0, 2.0, source_time_s=4.0, status=STATUS_GOOD, received_s=4.0)
    assert table.usable(now_s=4.0, stale_after_s=3.0)[0]


def test_never_updated_tags_are_unusable(table: TagTable) -> None:
    assert not table.usable(now_s=0.0, stale_after_s=1e9).any()


def test_duplicate_names_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        TagTable(["a", "a"])
