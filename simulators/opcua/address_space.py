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

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
from asyncua import Server, ua
from asyncua.server.address_space import AttributeValue
from asyncua.server.internal_subscription import InternalSubscription
from asyncua.server.monitored_item_service import MonitoredItemService

from simulators.plant import Plant, Readings, Signal
from simulators.opcua.units import eu_information

NAMESPACE_URI = "urn:fermentry:simulator"
NS = 2  # registered first, so the index is stable and users may hard-code ns=2
FOLDER_OF_KIND = {"measurement": "Sensors", "actuator": "Actuators", "setpoint": "Setpoints"}

_log = logging.getLogger(__name__)


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
    publisher: _Publisher | None = None  # built by the first publish()


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


@dataclass
class _Column:
    """One signal of one plant across the reactors an endpoint serves, and what it last published.

    ``status`` is -1 until the first publish, so the first snapshot writes every node.
    """

    plant: Plant
    name: str
    rows: npt.NDArray[np.intp]  # plant row of each binding
    bindings: list[TagBinding]
    attvals: list[AttributeValue]  # the nodes' Value attributes, written directly
    value: npt.NDArray[np.float64]  # last published value, NaN when Bad
    status: npt.NDArray[np.int64]
    ever_good: npt.NDArray[np.bool_]  # distinguishes "no data yet" from "sensor failed"


@dataclass
class _BatchInfo:
    nodes: ReactorNodes
    batch_id: AttributeValue
    phase: AttributeValue
    process_time_s: AttributeValue
    last_batch_id: str | None = None
    last_phase: str | None = None


@dataclass
class _Publisher:
    """Per-endpoint publishing state: columns of signals and the batch info nodes."""

    columns: list[_Column]
    batch_info: list[_BatchInfo]
    sim_process_time_s: AttributeValue
    sim_speed: AttributeValue
    slot_of: dict[ua.NodeId, tuple[_Column, int]]  # where each signal node's state lives
    last_speed: float | None = None


_GOOD = ua.StatusCodes.Good
_BAD_SENSOR_FAILURE = ua.StatusCodes.BadSensorFailure
_BAD_WAITING = ua.StatusCodes.BadWaitingForInitialData
# shared, never mutated (asyncua keeps references to published DataValues, see server.py)
_STATUS = {code: ua.StatusCode(code) for code in (_GOOD, _BAD_SENSOR_FAILURE, _BAD_WAITING)}
_NULL = ua.Variant(None, ua.VariantType.Null)
_DOUBLE, _STRING = ua.VariantType.Double, ua.VariantType.String
_new, _set = object.__new__, object.__setattr__


def _double(value: float) -> ua.Variant:
    """``ua.Variant(value, VariantType.Double)`` for a Python float, at half the cost: every
    field set directly, without ``__post_init__``'s type guessing and shape checks (a tick
    builds one per changed signal)."""
    var = _new(ua.Variant)
    _set(var, "Value", value)
    _set(var, "VariantType", _DOUBLE)
    _set(var, "Dimensions", None)
    _set(var, "is_array", False)
    return var


def _value_attribute(server: Server, nodeid: ua.NodeId) -> AttributeValue:
    return server.iserver.aspace._nodes[nodeid].attributes[ua.AttributeIds.Value]


def _make_publisher(server: Server, space: AddressSpace) -> _Publisher:
    by_column: dict[tuple[int, str], list[TagBinding]] = {}
    for nodes in space.reactors:
        for binding in nodes.signals:
            by_column.setdefault((id(nodes.reactor.plant), binding.signal.name), []).append(binding)
    columns = []
    for bindings in by_column.values():
        n = len(bindings)
        columns.append(_Column(
            bindings[0].reactor.plant, bindings[0].signal.name,
            np.array([b.reactor.index for b in bindings], dtype=np.intp), bindings,
            [_value_attribute(server, b.nodeid) for b in bindings],
            np.full(n, math.nan), np.full(n, -1, dtype=np.int64),
            np.array([b.ever_good for b in bindings], dtype=bool)))
    batch_info = [_BatchInfo(nodes, _value_attribute(server, nodes.batch_id), _value_attribute(server, nodes.phase),
                             _value_attribute(server, nodes.process_time_s)) for nodes in space.reactors]
    slot_of = {b.nodeid: (col, i) for col in columns for i, b in enumerate(col.bindings)}
    return _Publisher(columns, batch_info, _value_attribute(server, space.sim_process_time_s),
                      _value_attribute(server, space.sim_speed), slot_of)


_DISABLED = ua.MonitoringMode.Disabled


def _status_value_changed(old: ua.DataValue | None, new: ua.DataValue) -> bool:
    """asyncua's ``MonitoredItemService._is_data_changed`` for the StatusValue trigger (the
    default, and what an item without a filter uses), inline: status or value differ."""
    if old is None:
        return True
    if old.StatusCode != new.StatusCode:
        return True
    ov, nv = old.Value, new.Value  # always Variants: DataValue wraps anything else
    return ov is not nv and (ov.VariantType is not nv.VariantType or ov.Value != nv.Value)


def notify_datachange(service: MonitoredItemService, handle: int, value: ua.DataValue) -> bool:
    """asyncua's ``datachange_callback`` for a new node value, without its per-call costs that
    dominate a tick with a subscriber: a deep copy of every DataValue into the item (nothing
    here mutates a DataValue after writing it: publish() and the write paths build a new one
    per write, and asyncua stores the written object itself as the node's value), a
    throw-away default notification and two coroutine frames per value. The decision to
    notify is asyncua's own, unchanged. Synchronous; True when the item's queue went from
    empty to one entry and the subscription publishes at once (interval 0): the caller then
    awaits ``service.isub._trigger_publish()``, as asyncua does."""
    mid = service._monitored_datachange[handle]
    mdata = service._monitored_items[mid]
    if mdata.mode == _DISABLED:
        return False
    mvalue = mdata.mvalue
    old = mvalue.current_dvalue
    mvalue.old_dvalue, mvalue.current_dvalue = old, value
    flt = mdata.filter
    if flt:
        if not (service._is_data_changed(mvalue, flt.Trigger) and service._is_deadband_exceeded(mvalue, flt)):
            return False
    elif not _status_value_changed(old, value):
        return False
    # InternalSubscription.enqueue_datachange_event
    event = ua.MonitoredItemNotification(ClientHandle=mdata.client_handle, Value=value)
    isub = service.isub
    queue = isub._triggered_datachanges
    items = queue.get(mid)
    if items is None:
        queue[mid] = [event]
        return isub._task is None and isub.data.RevisedPublishingInterval <= 0.0
    size = mdata.queue_size
    if size != 0 and len(items) >= size:
        items.pop(0)
    items.append(event)
    return False


async def _lean_callback(self: MonitoredItemService, handle: int, value: ua.DataValue,
                         error: ua.StatusCode | None = None) -> None:
    """``MonitoredItemService.datachange_callback`` as the simulator server installs it."""
    if error:
        await _asyncua_datachange_callback(self, handle, value, error)
    elif notify_datachange(self, handle, value):
        await self.isub._trigger_publish()


_asyncua_datachange_callback = MonitoredItemService.datachange_callback


def install_lean_datachange() -> None:
    """Idempotent, process-wide, server side only: monitored items notify through
    :func:`notify_datachange`."""
    MonitoredItemService.datachange_callback = _lean_callback  # type: ignore[method-assign]


def _notify_sync(attval: AttributeValue, dv: ua.DataValue) -> list[tuple[int, object]] | None:
    """Notify the node's monitored items that use the lean callback, synchronously; the
    callbacks that still need awaiting (another callback, or a publish to trigger now) are
    returned as ``(handle, callback or isub)``, None when there are none."""
    rest = None
    for handle, callback in list(attval.datachange_callbacks.items()):
        if getattr(callback, "__func__", None) is _lean_callback:
            service = callback.__self__  # type: ignore[attr-defined]
            try:
                if not notify_datachange(service, handle, dv):
                    continue
            except Exception:  # as asyncua does: one broken subscription must not stop the clock
                _log.exception("datachange callback %s failed", handle)
                continue
            callback = service.isub
        if rest is None:
            rest = []
        rest.append((handle, callback))
    return rest


async def _notify_rest(rest: list[tuple[int, object]], dv: ua.DataValue) -> None:
    for handle, callback in rest:
        try:
            if isinstance(callback, InternalSubscription):
                await callback._trigger_publish()
            else:
                await callback(handle, dv)  # type: ignore[operator]
        except Exception:  # as asyncua does: one broken subscription must not stop the clock
            _log.exception("datachange callback %s failed", handle)


async def store_value(attval: AttributeValue, dv: ua.DataValue) -> None:
    """What ``AddressSpace.write_attribute_value`` does for our nodes, minus its lookups and
    type checks: our values always have the node's type (Double, String) or are Bad and Null,
    and our nodes have no value setter (callers that cannot know check ``value_setter``).
    Monitored items are notified synchronously (:func:`notify_datachange`) where the lean
    callback is installed; a coroutine is awaited only for other callbacks, or where a
    subscription publishes at once."""
    attval.value = dv
    attval.value_callback = None
    if attval.datachange_callbacks:
        rest = _notify_sync(attval, dv)
        if rest is not None:
            await _notify_rest(rest, dv)


async def publish(server: Server, space: AddressSpace, readings_by_plant: dict[int, Readings],
                  start_time: datetime, speed: float) -> None:
    """Write one snapshot into the address space (which notifies subscriptions).

    ``readings_by_plant`` maps ``id(plant)`` to that plant's :meth:`Plant.read`. Source
    timestamps are ``start_time + sample time``: the moment the sensor took the value in
    process time (late for at-line analytes); the server timestamp is wall time.

    Only signals whose value or status changed are written: asyncua would not notify the
    others anyway (DataChangeTrigger StatusValue), writing them cost most of a tick, and a
    subscriber learns they are current from every publish response or keep-alive. Their
    nodes keep the timestamps of their last change, as Part 4 7.7.3 suggests for
    SourceTimestamp. A status change (a sensor failing or recovering) is always written.
    """
    if space.publisher is None:
        space.publisher = _make_publisher(server, space)
    state = space.publisher
    now = datetime.now(start_time.tzinfo)
    stamps: dict[float, datetime] = {}

    def source(t: float) -> datetime:
        stamp = stamps.get(t)
        if stamp is None:
            stamp = stamps[t] = start_time + timedelta(seconds=t)
        return stamp

    for col in state.columns:
        readings = readings_by_plant[id(col.plant)]
        values = readings.values.get(col.name)
        if values is None:  # a plant may not echo demands back; the last write stands
            continue
        v = np.asarray(values, dtype=np.float64)[col.rows]
        good = np.isfinite(v)
        good_arr = readings.good.get(col.name)
        if good_arr is not None:
            good &= good_arr[col.rows]
        col.ever_good |= good
        status = np.where(good, _GOOD, np.where(col.ever_good, _BAD_SENSOR_FAILURE, _BAD_WAITING))
        changed = np.flatnonzero((status != col.status) | (good & (v != col.value)))
        if changed.size == 0:
            continue
        sample_t = readings.sample_time_s.get(col.name)
        t_list = (np.asarray(sample_t, dtype=np.float64)[col.rows] if sample_t is not None
                  else np.full(len(col.rows), readings.time_s)).tolist()
        v_list, status_list, good_list = v.tolist(), status.tolist(), good.tolist()
        attvals, bindings = col.attvals, col.bindings
        for i in changed.tolist():
            t = t_list[i]
            ok = good_list[i]
            if ok:
                bindings[i].ever_good = True
            dv = ua.DataValue(_double(v_list[i]) if ok else _NULL, StatusCode=_STATUS[status_list[i]],
                              SourceTimestamp=source(t if math.isfinite(t) else readings.time_s), ServerTimestamp=now)
            attval = attvals[i]  # store_value, without a coroutine per value
            attval.value = dv
            attval.value_callback = None
            if attval.datachange_callbacks:
                rest = _notify_sync(attval, dv)
                if rest is not None:
                    await _notify_rest(rest, dv)
        col.value[changed] = np.where(good[changed], v[changed], math.nan)
        col.status[changed] = status[changed]

    any_time_s = 0.0
    # a plant builds its batch_ids and phases lists on each access: once per plant, not per reactor
    labels: dict[int, tuple[list[str], list[str]]] = {}
    for info in state.batch_info:
        ref = info.nodes.reactor
        any_time_s = readings_by_plant[id(ref.plant)].time_s
        stamp = source(any_time_s)
        plant_labels = labels.get(id(ref.plant))
        if plant_labels is None:
            plant_labels = labels[id(ref.plant)] = (ref.plant.batch_ids, ref.plant.phases)
        batch_id, phase = str(plant_labels[0][ref.index]), str(plant_labels[1][ref.index])
        if batch_id != info.last_batch_id:
            info.last_batch_id = batch_id
            await store_value(info.batch_id, ua.DataValue(ua.Variant(batch_id, _STRING),
                                                          SourceTimestamp=stamp, ServerTimestamp=now))
        if phase != info.last_phase:
            info.last_phase = phase
            await store_value(info.phase, ua.DataValue(ua.Variant(phase, _STRING), SourceTimestamp=stamp,
                                                       ServerTimestamp=now))
        await store_value(info.process_time_s, ua.DataValue(ua.Variant(float(any_time_s), _DOUBLE),
                                                            SourceTimestamp=stamp, ServerTimestamp=now))
    stamp = source(any_time_s)
    await store_value(state.sim_process_time_s, ua.DataValue(
        ua.Variant(float(any_time_s), _DOUBLE), SourceTimestamp=stamp, ServerTimestamp=now))
    if speed != state.last_speed:
        state.last_speed = speed
        await store_value(state.sim_speed, ua.DataValue(
            ua.Variant(float(speed), _DOUBLE), SourceTimestamp=stamp, ServerTimestamp=now))


def invalidate(space: AddressSpace, binding: TagBinding) -> None:
    """Forget what was published for ``binding``: a client wrote its node, so the next
    publish writes the plant's value again even if the plant did not change it."""
    if space.publisher is not None:
        col, i = space.publisher.slot_of[binding.nodeid]
        col.status[i] = -1
