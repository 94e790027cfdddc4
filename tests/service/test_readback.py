"""Read-back through the subscription: confirm writes, alarm only on a lasting mismatch."""

import numpy as np

from telemetry.service.readback import ReadbackCheck
from telemetry.tags import STATUS_GOOD, TagTable


def _setup() -> tuple[TagTable, ReadbackCheck]:
    table = TagTable(["R1.agitation_rpm", "R1.air_flow_slpm"])
    for tag in range(2):
        table.update(tag, 300.0, source_time_s=0.0, status=STATUS_GOOD, received_s=0.0)
    return table, ReadbackCheck(table, grace_s=np.full(2, 1.0))


def test_confirmed_write_raises_nothing() -> None:
    table, check = _setup()
    check.expect(0, 450.0, now_s=10.0)
    assert check.check(10.2) == ([], [])  # nothing acquired since the write yet
    table.update(0, 450.0, source_time_s=10.1, status=STATUS_GOOD, received_s=10.3)
    assert check.check(10.4) == ([], [])
    assert check.check(20.0) == ([], [])  # confirmed: no longer pending


def test_in_flight_old_value_is_not_a_mismatch_but_a_lasting_one_is() -> None:
    table, check = _setup()
    check.expect(0, 450.0, now_s=10.0)
    table.touch(np.array([0]), 10.1)  # a publish in flight still shows 300
    assert check.check(10.5) == ([], [])  # within the grace period
    new, cleared = check.check(11.5)
    assert new == [(0, 450.0, 300.0)] and cleared == []
    assert check.check(12.0) == ([], [])  # alarmed once, not per scan
    check.expect(0, 460.0, now_s=13.0)
    table.update(0, 460.0, source_time_s=13.0, status=STATUS_GOOD, received_s=13.1)
    assert check.check(13.2) == ([], [0])  # the server takes writes again: cleared


def test_float_rounding_on_the_server_is_tolerated() -> None:
    table, check = _setup()
    written = 0.123456789
    check.expect(1, written, now_s=1.0)
    table.update(1, float(np.float32(written)), source_time_s=1.0, status=STATUS_GOOD, received_s=1.1)
    assert check.check(5.0) == ([], [])
