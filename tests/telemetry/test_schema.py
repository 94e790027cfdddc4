"""The time-series schema: series identity, quality with every value, timestamps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from telemetry.lineproto import parse_line
from telemetry.schema import QUALITY_BAD, encode_event, encode_loops, encode_samples, process_time_to_ns

EPOCH_NS = 1_750_000_000 * 10**9


def test_samples_carry_quality_and_source_time() -> None:
    batch = encode_samples(
        epoch_ns=EPOCH_NS,
        reactors=["R1", "R2"],
        batches=["B-7", "B-8"],
        units={"do_pct": "%", "glucose_g_per_l": "g/L"},
        values={"do_pct": np.array([40.0, 38.5]), "glucose_g_per_l": np.array([math.nan, 12.0])},
        good={"do_pct": np.array([True, True]), "glucose_g_per_l": np.array([False, True])},
        sample_time_s={"do_pct": np.array([60.0, 60.0]), "glucose_g_per_l": np.array([0.0, 30.5])},
    )
    parsed = [parse_line(line) for line in batch.lines]
    assert [(p.tags["reactor"], p.tags["signal"], p.fields, p.time_ns) for p in parsed] == [
        ("R1", "do_pct", {"value": 40.0, "good": True, "quality": 0}, EPOCH_NS + 60 * 10**9),
        ("R2", "do_pct", {"value": 38.5, "good": True, "quality": 0}, EPOCH_NS + 60 * 10**9),
        ("R1", "glucose_g_per_l", {"good": False, "quality": QUALITY_BAD}, EPOCH_NS),
        ("R2", "glucose_g_per_l", {"value": 12.0, "good": True, "quality": 0}, EPOCH_NS + 30_500_000_000),
    ]
    assert parsed[3].tags == {"reactor": "R2", "batch": "B-8", "signal": "glucose_g_per_l", "unit": "g/L"}
    assert batch.dropped_fields == 1 and batch.dropped_lines == 0


def test_samples_reject_wrong_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        encode_samples(
            epoch_ns=0, reactors=["R1", "R2"], batches=["a", "b"], units={},
            values={"ph": np.zeros(3)}, good={"ph": np.ones(3, bool)}, sample_time_s={"ph": np.zeros(3)},
        )


def test_loops_and_events() -> None:
    loops = encode_loops(
        scan_time_ns=5,
        reactors=["R1", "R1"],
        batches=["B", "B"],
        loops=["do", "ph"],
        terms={"sp": [40.0, 7.0], "pv": [39.0, 6.9], "mv": [500.0, math.nan]},
        mode=["auto", "manual"],
        saturated=[False, True],
        pv_ok=[True, True],
    )
    second = parse_line(loops.lines[1])
    assert second.tags == {"reactor": "R1", "batch": "B", "loop": "ph"}
    assert second.fields == {"sp": 7.0, "pv": 6.9, "mode": "manual", "saturated": True, "pv_ok": True}
    event = parse_line(encode_event(time_ns=9, reactor="R1", kind="phase", severity="info", message="fed-batch, go"))
    assert event.fields == {"message": "fed-batch, go", "batch": "", "count": 1} and event.time_ns == 9


def test_process_time_to_ns_rounds_and_refuses_nan() -> None:
    assert process_time_to_ns(10, [0.1, 1e-9]).tolist() == [100_000_010, 11]
    with pytest.raises(ValueError):
        process_time_to_ns(0, [math.nan])
