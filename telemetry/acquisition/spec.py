"""Plain descriptions of what to acquire from where: endpoints, tags and actuator outputs.

The service's pydantic configuration is mapped onto these frozen dataclasses by the caller,
so these carry no dependency on the config layer. Secrets (passwords) arrive
already resolved from the environment or a file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

SecurityPolicyName = Literal["None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"]
SecurityModeName = Literal["None", "Sign", "SignAndEncrypt"]
AcquisitionMode = Literal["subscribe", "poll"]
DEFAULT_NAMESPACE_URI = "urn:fermentry:simulator"


@dataclass(frozen=True)
class TagSpec:
    """One OPC UA variable feeding one row of the :class:`~telemetry.tags.TagTable`.

    Parameters
    ----------
    tag_id : int
        Index of the tag in the TagTable.
    node_id : str, optional
        NodeId string: ``ns=2;s=R1.do_pct`` or ``nsu=urn:fermentry:simulator;s=R1.do_pct``
        (the namespace URI is resolved against the server's namespace array at connect).
    browse_path : str, optional
        Path below ``Objects`` such as ``R1/Sensors/do_pct``; a component may carry a
        namespace index (``3:Name``), else the endpoint's ``namespace_uri`` applies.
        Exactly one of ``node_id`` and ``browse_path`` is given.
    sampling_interval_ms : float, optional
        Server-side sampling interval; default: the endpoint's publishing interval.
    deadband_abs, deadband_pct : float, optional
        Data-change filter: report only changes larger than this (engineering units, or
        percent of EURange). At most one. A value inside the deadband stays *fresh*: the
        subscription's keep-alive proves it is still current (see ``client.py``).
    queue_size : int, optional
        Server-side monitored-item queue. Default: enough for every sample of two
        publishing intervals, so a late publish does not drop values.
    discard_oldest : bool
        When a queue overflows anyway, drop the oldest (True, control wants the newest)
        or the newest value. Overflows are counted either way.
    """

    tag_id: int
    node_id: str | None = None
    browse_path: str | None = None
    sampling_interval_ms: float | None = None
    deadband_abs: float | None = None
    deadband_pct: float | None = None
    queue_size: int | None = None
    discard_oldest: bool = True

    def __post_init__(self) -> None:
        if (self.node_id is None) == (self.browse_path is None):
            raise ValueError(f"tag {self.tag_id}: give exactly one of node_id and browse_path")
        if self.deadband_abs is not None and self.deadband_pct is not None:
            raise ValueError(f"tag {self.tag_id}: give at most one of deadband_abs and deadband_pct")
        if self.tag_id < 0:
            raise ValueError(f"tag_id must be >= 0, got {self.tag_id}")
        if self.queue_size is not None and self.queue_size < 1:
            raise ValueError(f"tag {self.tag_id}: queue_size must be >= 1")

    @property
    def address(self) -> str:
        """The node id or browse path, for messages."""
        return self.node_id if self.node_id is not None else f"Objects/{self.browse_path}"

    def effective_sampling_interval_ms(self, publishing_interval_ms: float) -> float:
        return publishing_interval_ms if self.sampling_interval_ms is None else self.sampling_interval_ms

    def effective_queue_size(self, publishing_interval_ms: float) -> int:
        if self.queue_size is not None:
            return self.queue_size
        sampling = self.effective_sampling_interval_ms(publishing_interval_ms)
        # two publishing intervals' worth of samples: a publish that is one interval late loses nothing
        return max(2, math.ceil(2 * publishing_interval_ms / max(sampling, 1.0)) + 1)


@dataclass(frozen=True)
class EndpointSpec:
    """One OPC UA server (one fermenter controller, or one simulator holding many).

    Parameters
    ----------
    name : str
        Short name used in events and logs.
    url : str
        ``opc.tcp://host:port/path``.
    tags : tuple of TagSpec
        What to acquire; tag ids are unique across all endpoints of a service.
    mode : {"subscribe", "poll"}
        Subscriptions (default), or batched reads every publishing interval as a fallback
        for servers with poor subscription support.
    publishing_interval_ms : float
        Subscription publishing interval, or the poll period. Tags whose data stops are
        stale after 3 of these (see :func:`stale_after_s`).
    security_policy, security_mode
        ``"None"``/``"None"``, or a policy with ``"Sign"`` / ``"SignAndEncrypt"``; a
        secure policy needs ``client_cert`` and ``client_key``.
    trusted_server_certs : tuple of Path
        Server certificates (PEM/DER files or folders of them) the client accepts, or CA
        certificates that issued them. With a secure policy an empty list refuses every
        server: trust is never implicit.
    username, password : str, optional
        User-name identity token; ``password`` already resolved by the caller.
    application_uri : str
        Our ApplicationUri; must match the URI in ``client_cert``'s SubjectAltName.
    namespace_uri : str
        Namespace of browse-path components written without an index.
    connect_timeout_s : float
        Bound on one whole connect (socket, channel, session, resolve, subscribe): a hung
        connect is abandoned and the client recreated.
    request_timeout_s : float
        Bound on each OPC UA request.
    keepalive_timeout_s : float, optional
        Declare the endpoint lost when no publish response (data or keep-alive) came for
        this long. Default: ``max(1, 5 * publishing interval)``.
    reconnect_initial_s, reconnect_max_s : float
        Exponential back-off between reconnect attempts (with jitter), capped.
    read_chunk_size : int
        Most nodes per Read/CreateMonitoredItems request.
    """

    name: str
    url: str
    tags: tuple[TagSpec, ...] = ()
    mode: AcquisitionMode = "subscribe"
    publishing_interval_ms: float = 1000.0
    security_policy: SecurityPolicyName = "None"
    security_mode: SecurityModeName = "None"
    client_cert: Path | None = None
    client_key: Path | None = None
    trusted_server_certs: tuple[Path, ...] = ()
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    application_uri: str = "urn:fermentry:service"
    namespace_uri: str = DEFAULT_NAMESPACE_URI
    connect_timeout_s: float = 10.0
    request_timeout_s: float = 4.0
    keepalive_timeout_s: float | None = None
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    read_chunk_size: int = 500

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", tuple(self.tags))
        object.__setattr__(self, "trusted_server_certs", tuple(Path(p) for p in self.trusted_server_certs))
        ids = [t.tag_id for t in self.tags]
        if len(set(ids)) != len(ids):
            raise ValueError(f"endpoint {self.name}: duplicate tag ids")
        if self.mode not in ("subscribe", "poll"):
            raise ValueError(f"endpoint {self.name}: mode must be 'subscribe' or 'poll', got {self.mode!r}")
        if not self.publishing_interval_ms > 0:
            raise ValueError(f"endpoint {self.name}: publishing_interval_ms must be > 0")
        secure = self.security_policy != "None"
        if secure != (self.security_mode != "None"):
            raise ValueError(
                f"endpoint {self.name}: security_policy {self.security_policy!r} and security_mode "
                f"{self.security_mode!r} must both be 'None' or both be set"
            )
        if secure and (self.client_cert is None or self.client_key is None):
            raise ValueError(f"endpoint {self.name}: security policy {self.security_policy} needs client_cert and client_key")
        if (self.username is None) != (self.password is None):
            raise ValueError(f"endpoint {self.name}: give both username and password, or neither")
        if self.read_chunk_size < 1:
            raise ValueError(f"endpoint {self.name}: read_chunk_size must be >= 1")

    @property
    def publishing_interval_s(self) -> float:
        return self.publishing_interval_ms / 1000.0

    @property
    def effective_keepalive_timeout_s(self) -> float:
        if self.keepalive_timeout_s is not None:
            return self.keepalive_timeout_s
        return max(1.0, 5 * self.publishing_interval_s)


def stale_after_s(endpoints: Sequence[EndpointSpec], n_tags: int, default_s: float = math.inf) -> npt.NDArray[np.float64]:
    """Per-tag staleness limit for :meth:`TagTable.usable`: 3 publishing intervals of its endpoint.

    Returns
    -------
    ndarray, shape (n_tags,)
        Seconds; ``default_s`` for tags no endpoint acquires.
    """
    limit = np.full(n_tags, default_s, dtype=np.float64)
    for ep in endpoints:
        for tag in ep.tags:
            limit[tag.tag_id] = 3 * ep.publishing_interval_s
    return limit


@dataclass(frozen=True)
class OutputSpec:
    """One writable OPC UA variable (actuator demand or setpoint) and its last line of defence.

    Parameters
    ----------
    key : str
        The caller's name of the output, e.g. ``R1.feed_rate_l_per_h``.
    node_id : str
        NodeId string (``ns=`` or ``nsu=`` form).
    lo, hi : float
        Values are clamped into ``[lo, hi]`` before writing, whatever the controller asks.
    max_rate_per_s : float, optional
        Largest change per second of *process* time (units/s); ``None`` for no rate limit.
    variant_type : str
        OPC UA built-in type of the variable, e.g. ``"Double"``, ``"Float"``, ``"Int32"``, ``"Boolean"``.
    """

    key: str
    node_id: str
    lo: float = -math.inf
    hi: float = math.inf
    max_rate_per_s: float | None = None
    variant_type: str = "Double"

    def __post_init__(self) -> None:
        if not self.lo <= self.hi:
            raise ValueError(f"output {self.key}: need lo <= hi, got {self.lo} > {self.hi}")
        if self.max_rate_per_s is not None and not self.max_rate_per_s >= 0:
            raise ValueError(f"output {self.key}: max_rate_per_s must be >= 0")
