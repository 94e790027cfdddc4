"""The simulator's OPC UA address space: one object per reactor, one AnalogItem per signal.

Layout (browse names in namespace ``urn:fermentry:simulator``, index 2)::

    Objects/
      Simulation/            process_time_s, speed, start_time
      R1/                    batch_id, phase, process_time_s, organism
        Sensors/             <measurement>   e.g. R1/Sensors/do_pct    ns=2;s=R1.do_pct
        Actuators/           <actuator>      e.g. R1/Actuators/feed_rate_l_per_h
        Setpoints/           <setpoint>      e.g. R1/Setpoints/do_sp_pct
      R2/ ...

The grouping borrows the LADS idea of functional units (sensors, actuators, setpoints
of one vessel), but browse paths stay flat and stable because the service maps tags by
them. Every signal is an ``AnalogItemType`` variable with ``EURange`` and
``EngineeringUnits``; actuators and setpoints are writable, measurements read-only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from asyncua import Server, ua

from simulators.plant import Plant, Readings, Signal
from simulators.opcua.units import eu_information

NAMESPACE_URI = "urn:fermentry:simulator"
NS = 2  # registered first, so the index is stable and users may hard-code ns=2
FOLDER_OF_KIND = {"measurement": "Sensors", "actuator": "Actuators", "setpoint": "Setpoints"}


def signal_nodeid(reactor: str, signal: str) -> ua.NodeId:
    """``ns=2;s=<reactor>.<signal>``, e.g. ``ns=2;s=R1.do_pct``."""
    return ua.NodeId(f"{reactor}.{signal}", NS)


@dataclass
class ReactorRef:
    """One served reactor: its public name and where it lives in which plant."""

    name: str
    plant: Plant
    index: int  # row in the plant's (n_reactors,) arrays


@dataclass
class TagBinding:
    """Links one OPC UA variable to one signal of one reactor."""

    nodeid: ua.NodeId
    reactor: ReactorRef
    signal: Signal
    ever_good: bool = False  # distinguishes "no data yet" from "sensor failed"

    @property
    def writable(self) -> bool:
        return self.signal.kind != "measurement"


@dataclass
class ReactorNodes:
    """NodeIds of a reactor's batch info variables and its signal bindings."""

    reactor: ReactorRef
    batch_id: ua.NodeId
    phase: ua.NodeId
    process_time_s: ua.NodeId
    signals: list[TagBinding] = field(default_factory=list)


@dataclass
class AddressSpace:
    """Everything the publisher and the write guard need to know about the nodes."""

    reactors: list[ReactorNodes]
    sim_process_time_s: ua.NodeId
    sim_speed: ua.NodeId
    bindings: dict[ua.NodeId, TagBinding]


def _object(nodeid: ua.NodeId, parent: ua.NodeId, name: str, description: str,
            ref: int = ua.ObjectIds.Organizes, typedef: int = ua.ObjectIds.BaseObjectType) -> ua.AddNodesItem:
    item = ua.AddNodesItem()
    item.RequestedNewNodeId = nodeid
    item.BrowseName = ua.QualifiedName(name, NS)
    item.NodeClass = ua.NodeClass.Object
    item.ParentNodeId = parent
    item.ReferenceTypeId = ua.NodeId(ref)
    item.TypeDefinition = ua.NodeId(typedef)
    attrs = ua.ObjectAttributes()
    attrs.DisplayName = ua.LocalizedText(name)
    attrs.Description = ua.LocalizedText(description)
    attrs.EventNotifier = 0
    item.NodeAttributes = attrs
    return item


def _variable(nodeid: ua.NodeId, parent: ua.NodeId, name: str, description: str, value: ua.Variant,
              datatype: int, *, writable: bool = False, typedef: int = ua.ObjectIds.BaseDataVariableType,
              ns: int = NS, is_property: bool = False) -> ua.AddNodesItem:
    item = ua.AddNodesItem()
    item.RequestedNewNodeId = nodeid
    item.BrowseName = ua.QualifiedName(name, ns)
    item.NodeClass = ua.NodeClass.Variable
    item.ParentNodeId = parent
    item.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HasProperty if is_property else ua.ObjectIds.HasComponent)
    item.TypeDefinition = ua.NodeId(ua.ObjectIds.PropertyType if is_property else typedef)
    attrs = ua.VariableAttributes()
    attrs.DisplayName = ua.LocalizedText(name)
    attrs.Description = ua.LocalizedText(description)
    attrs.DataType = ua.NodeId(datatype)
    attrs.Value = value
    attrs.ValueRank = ua.ValueRank.Scalar
    attrs.ArrayDimensions = None
    attrs.WriteMask = 0
    attrs.UserWriteMask = 0
    attrs.Historizing = False
    access = ua.AccessLevel.CurrentRead.mask | (ua.AccessLevel.CurrentWrite.mask if writable else 0)
    attrs.AccessLevel = access
    attrs.UserAccessLevel = access
    attrs.MinimumSamplingInterval = 0.0
    item.NodeAttributes = attrs
    return item


def _analog_item(nodeid: ua.NodeId, parent: ua.NodeId, signal: Signal) -> list[ua.AddNodesItem]:
    writable = signal.kind != "measurement"
    items = [
        _variable(nodeid, parent, signal.name, f"{signal.description} [{signal.unit}]",
                  ua.Variant(math.nan, ua.VariantType.Double), ua.ObjectIds.Double,
                  writable=writable, typedef=ua.ObjectIds.AnalogItemType)
    ]
    sid = nodeid.Identifier
    # EURange and EngineeringUnits are standard properties: browse names live in ns=0
    items.append(_variable(ua.NodeId(f"{sid}.EURange", NS), nodeid, "EURange", "engineering range",
                           ua.Variant(ua.Range(Low=float(signal.lo), High=float(signal.hi))),
                           ua.ObjectIds.Range, ns=0, is_property=True))
    items.append(_variable(ua.NodeId(f"{sid}.EngineeringUnits", NS), nodeid, "EngineeringUnits",
                           "engineering units", ua.Variant(eu_information(signal.unit)),
                           ua.ObjectIds.EUInformation, ns=0, is_property=True))
    return items


async def build_address_space(server: Server, reactors: Sequence[ReactorRef]) -> AddressSpace:
    """Add the Simulation object and one object per reactor to an initialised server.

    All nodes go in one AddNodes call: per-node calls cost a round of asyncua's
    bookkeeping each and dominate start-up with many reactors.
    """
    objects = ua.NodeId(ua.ObjectIds.ObjectsFolder)
    items: list[ua.AddNodesItem] = []
    sim = ua.NodeId("Simulation", NS)
    sim_time = ua.NodeId("Simulation.process_time_s", NS)
    sim_speed = ua.NodeId("Simulation.speed", NS)
    items.append(_object(sim, objects, "Simulation", "simulation clock"))
    items.append(_variable(sim_time, sim, "process_time_s", "process time since inoculation [s]",
                           ua.Variant(0.0, ua.VariantType.Double), ua.ObjectIds.Double))
    items.append(_variable(sim_speed, sim, "speed", "process seconds per wall second",
                           ua.Variant(1.0, ua.VariantType.Double), ua.ObjectIds.Double))
    items.append(_variable(ua.NodeId("Simulation.start_time", NS), sim, "start_time",
                           "wall time of inoculation (process time 0); source timestamps count from it",
                           ua.Variant(None, ua.VariantType.DateTime), ua.ObjectIds.DateTime))

    spaces: list[ReactorNodes] = []
    bindings: dict[ua.NodeId, TagBinding] = {}
    for ref in reactors:
        rid = ua.NodeId(ref.name, NS)
        items.append(_object(rid, objects, ref.name, f"{ref.plant.organism} bioreactor {ref.name}"))
        nodes = ReactorNodes(ref, ua.NodeId(f"{ref.name}.batch_id", NS), ua.NodeId(f"{ref.name}.phase", NS),
                             ua.NodeId(f"{ref.name}.process_time_s", NS))
        items.append(_variable(nodes.batch_id, rid, "batch_id", "batch identifier",
                               ua.Variant("", ua.VariantType.String), ua.ObjectIds.String))
        items.append(_variable(nodes.phase, rid, "phase", "process phase",
                               ua.Variant("", ua.VariantType.String), ua.ObjectIds.String))
        items.append(_variable(nodes.process_time_s, rid, "process_time_s", "process time [s]",
                               ua.Variant(0.0, ua.VariantType.Double), ua.ObjectIds.Double))
        items.append(_variable(ua.NodeId(f"{ref.name}.organism", NS), rid, "organism", "organism",
                               ua.Variant(ref.plant.organism, ua.VariantType.String), ua.ObjectIds.String))
        for kind, folder in FOLDER_OF_KIND.items():
            fid = ua.NodeId(f"{ref.name}.{folder}", NS)
            items.append(_object(fid, rid, folder, f"{folder.lower()} of {ref.name}",
                                 ref=ua.ObjectIds.HasComponent, typedef=ua.ObjectIds.FolderType))
            for signal in ref.plant.signals:
                if signal.kind != kind:
                    continue
                nid = signal_nodeid(ref.name, signal.name)
                items.extend(_analog_item(nid, fid, signal))
                binding = TagBinding(nid, ref, signal)
                nodes.signals.append(binding)
                bindings[nid] = binding
        spaces.append(nodes)

    results = await server.get_objects_node().session.add_nodes(items)
    for item, result in zip(items, results, strict=True):
        if not result.StatusCode.is_good():
            raise RuntimeError(f"adding {item.RequestedNewNodeId.to_string()} failed: {result.StatusCode}")
    return AddressSpace(spaces, sim_time, sim_speed, bindings)


async def publish(server: Server, space: AddressSpace, readings_by_plant: dict[int, Readings],
                  start_time: datetime, speed: float) -> None:
    """Write one snapshot into the address space (which notifies subscriptions).

    ``readings_by_plant`` maps ``id(plant)`` to that plant's :meth:`Plant.read`. Source
    timestamps are ``start_time + sample time``: the moment the sensor took the value in
    process time (late for at-line analytes); the server timestamp is wall time.
    """
    now = datetime.now(start_time.tzinfo)
    any_time_s = 0.0
    for nodes in space.reactors:
        ref = nodes.reactor
        readings = readings_by_plant[id(ref.plant)]
        any_time_s = readings.time_s
        stamp = start_time + timedelta(seconds=readings.time_s)
        for binding in nodes.signals:
            name = binding.signal.name
            values = readings.values.get(name)
            if values is None:  # a plant may not echo demands back; the last write stands
                continue
            value = float(values[ref.index])
            good_arr = readings.good.get(name)
            good = bool(good_arr[ref.index]) if good_arr is not None else math.isfinite(value)
            good = good and math.isfinite(value)
            sample_t = readings.sample_time_s.get(name)
            t = float(sample_t[ref.index]) if sample_t is not None else readings.time_s
            if good:
                binding.ever_good = True
                status = ua.StatusCode(ua.StatusCodes.Good)
            elif binding.ever_good:
                status = ua.StatusCode(ua.StatusCodes.BadSensorFailure)
            else:
                status = ua.StatusCode(ua.StatusCodes.BadWaitingForInitialData)
            source = start_time + timedelta(seconds=t) if math.isfinite(t) else stamp
            await server.write_attribute_value(binding.nodeid, ua.DataValue(
                ua.Variant(value if good else None, ua.VariantType.Double if good else ua.VariantType.Null),
                StatusCode=status, SourceTimestamp=source, ServerTimestamp=now))
        batch_ids, phases = ref.plant.batch_ids, ref.plant.phases
        for nid, variant in (
            (nodes.batch_id, ua.Variant(str(batch_ids[ref.index]), ua.VariantType.String)),
            (nodes.phase, ua.Variant(str(phases[ref.index]), ua.VariantType.String)),
            (nodes.process_time_s, ua.Variant(float(readings.time_s), ua.VariantType.Double)),
        ):
            await server.write_attribute_value(nid, ua.DataValue(variant, SourceTimestamp=stamp, ServerTimestamp=now))
    stamp = start_time + timedelta(seconds=any_time_s)
    await server.write_attribute_value(space.sim_process_time_s, ua.DataValue(
        ua.Variant(float(any_time_s), ua.VariantType.Double), SourceTimestamp=stamp, ServerTimestamp=now))
    await server.write_attribute_value(space.sim_speed, ua.DataValue(
        ua.Variant(float(speed), ua.VariantType.Double), SourceTimestamp=stamp, ServerTimestamp=now))
