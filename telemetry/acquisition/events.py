"""What acquisition tells the service: state changes of an endpoint, as frozen dataclasses.

The supervisor calls the service's ``on_event`` callback with these, once per change of
state (not once per reconnect attempt), so the service can record and alert on them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EndpointConnected:
    """First successful connection: ``n_tags`` tags resolved and subscribed (or polled)."""

    endpoint: str
    n_tags: int
    mode: str


@dataclass(frozen=True)
class EndpointLost:
    """The endpoint went away (or could not be reached at start); its tags are disconnected."""

    endpoint: str
    reason: str


@dataclass(frozen=True)
class EndpointRecovered:
    """Connected again after a loss; ``downtime_s`` on the service's monotonic clock."""

    endpoint: str
    downtime_s: float
    attempts: int


@dataclass(frozen=True)
class TagsRejected:
    """The server refused some tags (unknown node, bad browse path): they stay Bad."""

    endpoint: str
    tag_ids: tuple[int, ...]
    reason: str


AcquisitionEvent = EndpointConnected | EndpointLost | EndpointRecovered | TagsRejected
