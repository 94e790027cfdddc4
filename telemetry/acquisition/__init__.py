"""OPC UA acquisition (supervised clients feeding the TagTable) and actuation (batched writes).

Typical use by the service::

    table = TagTable(names)
    samples = SampleBuffer()
    async with EndpointSupervisor(spec, table, samples, on_event=record_event) as sup:
        actuator = Actuator(sup, outputs)
        ...  # each control period: table.usable(...), controllers, await actuator.write(...)
"""

from telemetry.acquisition.actuation import Actuator, FixedClient, WriteResult
from telemetry.acquisition.backoff import Backoff
from telemetry.acquisition.client import AcquisitionStats, EndpointSession, default_client_factory
from telemetry.acquisition.errors import AcquisitionError, EndpointRefused, EndpointUnavailable
from telemetry.acquisition.events import (
    AcquisitionEvent,
    EndpointConnected,
    EndpointLost,
    EndpointRecovered,
    TagsRejected,
)
from telemetry.acquisition.limits import limit_outputs
from telemetry.acquisition.samples import SampleBuffer
from telemetry.acquisition.security import ServerTrustList
from telemetry.acquisition.spec import EndpointSpec, OutputSpec, TagSpec, stale_after_s
from telemetry.acquisition.supervisor import EndpointSupervisor

__all__ = [
    "AcquisitionError",
    "AcquisitionEvent",
    "AcquisitionStats",
    "Actuator",
    "Backoff",
    "EndpointConnected",
    "EndpointLost",
    "EndpointRecovered",
    "EndpointRefused",
    "EndpointSession",
    "EndpointSpec",
    "EndpointSupervisor",
    "EndpointUnavailable",
    "FixedClient",
    "OutputSpec",
    "SampleBuffer",
    "ServerTrustList",
    "TagSpec",
    "TagsRejected",
    "WriteResult",
    "default_client_factory",
    "limit_outputs",
    "stale_after_s",
]
