"""A restarted service resumes its feeds where they were, within the same batch only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from simulators.opcua import ManualClock, SimulatorServer
from telemetry.demo import DEFAULT_CONFIG
from telemetry.service.feed_state import state_key
from telemetry.service.runner import Service
from telemetry.store import Store
from tests.service.conftest import SPEED, STEP_S, ScanWatch, drive


def _config(url: str, store: Path) -> Any:
    """The demo config (as conftest's ``make_config``) with the glucose feed starting at once
    (the demo's OUR-drop trigger needs hours of batch: exactly the case restoring is for)."""
    import tomllib

    from telemetry.config import validate_config

    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    for ep in data["endpoints"].values():
        ep["url"] = url
        ep["publishing_interval_ms"] = 50.0
    data["reactor_defaults"]["sampling_interval_ms"] = 0.0
    data["store"]["path"] = str(store)
    (feed,) = [f for f in data["feeds"] if f["name"] == "glucose"]
    feed["start"] = {"kind": "immediately"}
    feed.update(x0_g_per_l=8.0, v0_l=5.0)  # OD600 is an at-line sample: none in the first minutes
    return validate_config(data, source="test.toml", base_dir=DEFAULT_CONFIG.parent)


async def _run(cfg: Any, clock: ManualClock, steps: int) -> Service:
    service = Service(cfg)
    watch = ScanWatch(service)
    await service.start()
    try:
        for sup in service.supervisors.values():
            await sup.wait_connected(timeout_s=15)
        await drive(clock, watch, steps=steps)
    finally:
        await service.stop()
    return service


def _feed_events(store: Store, kind: str) -> list[Any]:
    return [p.parsed() for p in store.query("event", tags={"kind": kind})]


async def test_a_restarted_service_resumes_the_running_feed(sim: SimulatorServer, sim_clock: ManualClock,
                                                            tmp_path: Path) -> None:
    cfg = _config(sim.endpoints[0], tmp_path / "store")
    first = await _run(cfg, sim_clock, steps=6)
    bank = first.feed_state.bank  # type: ignore[union-attr]
    assert bank.state.started.all()
    t0, total = bank.state.t0_s.copy(), bank.state.totaliser.total_l.copy()
    assert (total > 0).all()

    for _ in range(12):  # the service is away for 12 control periods; the pumps hold their rate
        await sim_clock.advance(STEP_S)
    second = await _run(cfg, sim_clock, steps=1)
    bank2 = second.feed_state.bank  # type: ignore[union-attr]
    np.testing.assert_array_equal(bank2.state.t0_s, t0)  # the same feed, not a new start
    assert (bank2.state.totaliser.total_l > total).all()  # counting on from what was fed
    # ... and from what the pumps fed meanwhile: the totaliser agrees with the plant's own, which
    # has yet to pump the interval the scan just set the rate for (the totaliser counts it ahead)
    rate = bank2.state.last.rate_l_per_h["feed_rate_l_per_h"]  # type: ignore[union-attr]
    pumped = sim.plants[0].read().values["feed_total_l"]
    np.testing.assert_allclose(bank2.state.totaliser.total_l, pumped + rate * STEP_S * SPEED / 3600.0, rtol=0.01)
    assert (bank2.state.last.rate_l_per_h["feed_rate_l_per_h"] > 0).all()  # type: ignore[union-attr]
    store = Store(cfg.store.path + "/fermentry.sqlite3")
    restored = _feed_events(store, "feed_restored")
    assert sorted(e.tags["reactor"] for e in restored) == ["R1", "R2", "R3"]
    assert all(str(e.fields["message"]).startswith("feed glucose: exponential feed resumed: started") for e in restored)
    assert {e.fields["batch"] for e in restored if e.tags["reactor"] == "R1"} == {second.batch_of["R1"]}
    assert len(_feed_events(store, "feed_started")) == 3  # only the first run started the feeds
    store.close()


async def test_state_of_another_batch_is_not_restored(sim: SimulatorServer, sim_clock: ManualClock,
                                                      tmp_path: Path) -> None:
    cfg = _config(sim.endpoints[0], tmp_path / "store")
    first = await _run(cfg, sim_clock, steps=3)
    old_t0 = first.feed_state.bank.state.t0_s.copy()  # type: ignore[union-attr]
    with Store(first.store_path) as store:  # R1's saved state becomes an earlier batch's
        saved = json.loads(store.get_state(state_key("R1")) or "{}")
        assert saved["batch"] == first.batch_of["R1"]
        store.put_state(state_key("R1"), json.dumps({**saved, "batch": "EARLIER-BATCH"}))

    second = await _run(cfg, sim_clock, steps=1)
    state = second.feed_state.bank.state  # type: ignore[union-attr]
    assert state.t0_s[0] > old_t0[0]  # R1 started afresh
    np.testing.assert_array_equal(state.t0_s[1:], old_t0[1:])  # R2, R3: same batch, resumed
    with Store(first.store_path) as store:
        assert sorted(e.tags["reactor"] for e in _feed_events(store, "feed_restored")) == ["R2", "R3"]
        assert json.loads(store.get_state(state_key("R1")) or "{}")["batch"] == second.batch_of["R1"]


async def test_a_new_batch_in_a_running_vessel_rearms_its_feeds(sim: SimulatorServer, sim_clock: ManualClock,
                                                                tmp_path: Path) -> None:
    from asyncua import ua

    cfg = _config(sim.endpoints[0], tmp_path / "store")
    service = Service(cfg)
    service.batch_refresh_s = 0.0  # read the batch ids before every scan
    watch = ScanWatch(service)
    await service.start()
    try:
        for sup in service.supervisors.values():
            await sup.wait_connected(timeout_s=15)
        await drive(sim_clock, watch, steps=4)
        bank = service.feed_state.bank  # type: ignore[union-attr]
        assert bank.state.started.all() and (bank.state.totaliser.total_l > 0).all()
        # The plant's batch manager starts a new batch in R1 (the simulator only publishes a
        # batch id when it changes, so a write on the server side stands).
        server = sim._endpoints[0].server  # type: ignore[attr-defined]
        await server.write_attribute_value(ua.NodeId.from_string("ns=2;s=R1.batch_id"),
                                           ua.DataValue(ua.Variant("B-NEXT", ua.VariantType.String)))
        await drive(sim_clock, watch, steps=1)
        assert service.batch_of["R1"] == "B-NEXT"
        r1 = bank._reactor == 0  # noqa: SLF001 - rows of reactor R1
        # immediately-started feeds start again at once, from a zero totaliser
        assert bank.state.t0_s[r1].min() > bank.state.t0_s[~r1].max()
        assert bank.state.totaliser.total_l[r1].max() < bank.state.totaliser.total_l[~r1].min()
    finally:
        await service.stop()
    store = Store(cfg.store.path + "/fermentry.sqlite3")
    resets = [p.parsed() for p in store.query("event", tags={"kind": "feed_reset"})]
    assert [e.tags["reactor"] for e in resets] == ["R1"]
    assert any("new batch B-NEXT" in str(p.parsed().fields["message"])
               for p in store.query("event", tags={"reactor": "R1", "kind": "batch"}))
    store.close()
