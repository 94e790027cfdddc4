"""Browse and read the simulator's address space with an independent asyncua client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from asyncua import Client, ua

from simulators.opcua import FOLDER_OF_KIND, NAMESPACE_URI, ManualClock, SimulatorServer
from simulators.opcua.units import eu_information, unece_unit_id
from tests.simulators.conftest import make_ecoli

pytestmark = pytest.mark.asyncio(loop_scope="module")

N_REACTORS = 2
PLANT = make_ecoli(N_REACTORS)  # read-only tests share one server
SIGNALS = {s.name: s for s in PLANT.signals}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def ro_client() -> AsyncIterator[Client]:
    async with SimulatorServer(PLANT, port=0, clock=ManualClock()) as srv:
        async with Client(srv.endpoints[0], timeout=5) as c:
            yield c


async def test_namespace_is_registered_at_index_2(ro_client: Client) -> None:
    assert (await ro_client.get_namespace_array())[2] == NAMESPACE_URI


async def test_browse_finds_every_reactor_and_signal(ro_client: Client) -> None:
    found: dict[str, dict[str, set[str]]] = {}
    for reactor in await ro_client.nodes.objects.get_children():
        name = (await reactor.read_browse_name()).Name
        if not name.startswith("R"):
            continue
        found[name] = {}
        for folder in FOLDER_OF_KIND.values():
            node = await reactor.get_child(f"2:{folder}")
            found[name][folder] = {(await v.read_browse_name()).Name for v in await node.get_children()}
    assert sorted(found) == [f"R{k}" for k in range(1, N_REACTORS + 1)]
    for folders in found.values():
        for kind, folder in FOLDER_OF_KIND.items():
            assert folders[folder] == {s.name for s in PLANT.signals if s.kind == kind}


@pytest.mark.parametrize("reactor", ["R1", "R2"])
@pytest.mark.parametrize("signal", ["do_pct", "temperature_c", "feed_rate_l_per_h", "do_sp_pct"])
async def test_browse_path_and_string_nodeid_name_the_same_node(ro_client: Client, reactor: str, signal: str) -> None:
    folder = FOLDER_OF_KIND[SIGNALS[signal].kind]
    by_path = await ro_client.nodes.objects.get_child([f"2:{reactor}", f"2:{folder}", f"2:{signal}"])
    assert by_path.nodeid == ua.NodeId(f"{reactor}.{signal}", 2)
    assert by_path.nodeid.to_string() == f"ns=2;s={reactor}.{signal}"


@pytest.mark.parametrize("signal", sorted(SIGNALS))
async def test_every_signal_is_an_analog_item_with_range_and_units(ro_client: Client, signal: str) -> None:
    spec = SIGNALS[signal]
    node = ro_client.get_node(f"ns=2;s=R1.{signal}")
    assert (await node.read_type_definition()) == ua.NodeId(ua.ObjectIds.AnalogItemType)
    assert await node.read_data_type() == ua.NodeId(ua.ObjectIds.Double)
    eu_range = await (await node.get_child("0:EURange")).read_value()
    assert (eu_range.Low, eu_range.High) == (spec.lo, spec.hi)
    units = await (await node.get_child("0:EngineeringUnits")).read_value()
    assert units == eu_information(spec.unit)
    access = await node.get_access_level()
    assert (ua.AccessLevel.CurrentWrite in access) == (spec.kind != "measurement")


@pytest.mark.parametrize(("signal", "code"), [("do_pct", "P1"), ("temperature_c", "CEL"), ("volume_l", "LTR"),
                                              ("feed_rate_l_per_h", "E32"), ("agitation_rpm", "RPM")])
async def test_engineering_units_carry_unece_codes(ro_client: Client, signal: str, code: str) -> None:
    node = ro_client.get_node(f"ns=2;s=R2.{signal}.EngineeringUnits")
    units = await node.read_value()
    assert units.UnitId == unece_unit_id(code)
    assert units.NamespaceUri == "http://www.opcfoundation.org/UA/units/un/cefact"


async def test_measurements_are_good_and_within_their_range(ro_client: Client) -> None:
    for name in ("do_pct", "ph", "temperature_c", "volume_l", "pressure_bar"):
        dv = await ro_client.get_node(f"ns=2;s=R1.{name}").read_data_value()
        assert dv.StatusCode.is_good(), name
        assert SIGNALS[name].lo <= dv.Value.Value <= SIGNALS[name].hi, name
        assert dv.SourceTimestamp is not None


async def test_at_line_analyte_waits_for_its_first_sample(ro_client: Client) -> None:
    dv = await ro_client.get_node("ns=2;s=R1.titer_g_per_l").read_data_value(raise_on_bad_status=False)
    assert dv.StatusCode.value == ua.StatusCodes.BadWaitingForInitialData


@pytest.mark.parametrize("reactor", [0, 1])
async def test_batch_information_matches_the_plant(ro_client: Client, reactor: int) -> None:
    name = f"R{reactor + 1}"
    assert await ro_client.get_node(f"ns=2;s={name}.batch_id").read_value() == PLANT.batch_ids[reactor]
    assert await ro_client.get_node(f"ns=2;s={name}.phase").read_value() == PLANT.phases[reactor]
    assert await ro_client.get_node(f"ns=2;s={name}.process_time_s").read_value() == PLANT.time_s


async def test_simulation_clock_nodes(ro_client: Client) -> None:
    assert await ro_client.get_node("ns=2;s=Simulation.process_time_s").read_value() == PLANT.time_s
    assert await ro_client.get_node("ns=2;s=Simulation.speed").read_value() == 1.0


async def test_mixed_plants_are_numbered_in_order_with_their_own_signals() -> None:
    pytest.importorskip("simulators.process.cho", reason="CHO model not landed yet")
    from simulators.process import make_plant

    plants = [make_plant("ecoli", 1, seed=3), make_plant("cho", 1, seed=3)]
    async with SimulatorServer(plants, port=0, clock=ManualClock()) as srv:
        async with Client(srv.endpoints[0], timeout=5) as c:
            assert await c.get_node("ns=2;s=R1.organism").read_value() == "ecoli"
            assert await c.get_node("ns=2;s=R2.organism").read_value() == "cho"
            sensors = await c.nodes.objects.get_child(["2:R2", "2:Sensors"])
            cho_names = {(await n.read_browse_name()).Name for n in await sensors.get_children()}
            assert cho_names == {s.name for s in plants[1].signals if s.kind == "measurement"}
            assert "vcd_e6_cells_per_ml" in cho_names and "od600" not in cho_names
            assert await c.get_node("ns=2;s=R2.batch_id").read_value() == plants[1].batch_ids[0]
