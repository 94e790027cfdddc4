"""The configuration file's shape: one pydantic model per TOML section.

Every model is strict (TOML already has types: ``"5"`` is not a number, ``true`` is not 1.0)
and forbids unknown keys, so a typo is an error with a suggestion rather than a silent default.
Checks that involve one section live on its model; checks across sections (a loop's ``pv``
names a tag of every reactor it runs on, cascades have no cycles, ...) live in
:mod:`telemetry.config.resolve` and run from :meth:`ServiceConfig._resolve`.

Durations are numbers in the unit the field name ends with (``_s``, ``_ms``, ``_h``).
"""

from __future__ import annotations

import functools
import typing
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainValidator,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_core.core_schema import ErrorType

from telemetry.config.fieldtypes import (
    BrowsePath,
    ConfigPath,
    EnvName,
    Name,
    NodeId,
    NonNegativeHours,
    NonNegativeMillis,
    NonNegativeSeconds,
    PositiveMillis,
    PositiveSeconds,
    SignalName,
    TagTemplate,
)
from telemetry.config.signals import SignalKind

#: Keys that would put a secret into the file; the error names the ``*_env``/``*_file`` keys to use.
SECRET_KEYS = frozenset({"password", "passwd", "token", "secret", "api_key", "apikey", "api_token",
                         "auth_token", "private_key_password", "key_password", "credentials"})


class Section(BaseModel):
    """Base for every section: strict types, unknown keys refused, immutable after load.

    Checks across the fields of one section go in :meth:`_cross_field`. They run even when
    some fields failed (on the fields that did not), so one report lists both kinds of error.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    def _cross_field(self, issues: _Issues) -> None:
        """Add problems that involve several fields of this section."""

    @model_validator(mode="wrap")
    @classmethod
    def _validate_all(cls, data: Any, handler: ModelWrapValidatorHandler[Any], info: ValidationInfo) -> Any:
        try:
            model = handler(data)
        except ValidationError as exc:
            if cls._cross_field is Section._cross_field or not isinstance(data, dict):
                raise
            extra = _cross_field_of_partial(cls, data, exc, info.context)
            if not extra:
                raise
            raise ValidationError.from_exception_data(cls.__name__, [*_details(exc), *extra]) from None
        if isinstance(model, Section):
            issues = _Issues(cls.__name__)
            model._cross_field(issues)
            issues.raise_if_any()
        return model


_BUILTIN_ERROR_TYPES = frozenset(typing.get_args(ErrorType))


def _details(exc: ValidationError) -> list[InitErrorDetails]:
    """The errors of ``exc`` in a form ``ValidationError.from_exception_data`` takes back."""
    out: list[InitErrorDetails] = []
    for err in exc.errors():
        if err["type"] in _BUILTIN_ERROR_TYPES:
            detail = InitErrorDetails(type=err["type"], loc=err["loc"], input=err["input"])
            if "ctx" in err:
                detail["ctx"] = err["ctx"]
        else:
            detail = InitErrorDetails(type=PydanticCustomError(err["type"], err["msg"]), loc=err["loc"],
                                      input=err["input"])
        out.append(detail)
    return out


@functools.cache
def _field_adapter(cls: type[BaseModel], name: str) -> TypeAdapter[Any]:
    info = cls.model_fields[name]
    annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    return TypeAdapter(annotation, config=ConfigDict(strict=True))


def _cross_field_of_partial(cls: type[Section], data: dict[str, Any], exc: ValidationError,
                            context: Any) -> list[InitErrorDetails]:
    """Run ``cls._cross_field`` on the fields of ``data`` that are valid, the failed ones as None."""
    failed = {err["loc"][0] for err in exc.errors() if err["loc"]}
    good: dict[str, Any] = {}
    for name, value in data.items():
        if name in cls.model_fields and name not in failed:
            try:
                good[name] = _field_adapter(cls, name).validate_python(value, context=context)
            except ValidationError:
                failed.add(name)
    stand_in = cls.model_construct(**good, **{name: None for name in failed if name in cls.model_fields})
    issues = _Issues(cls.__name__)
    try:
        stand_in._cross_field(issues)
    except (AttributeError, TypeError):
        return []  # a check needed a failed field; its own error is already reported
    return [item for item in issues.items if item["loc"] and item["loc"][0] not in failed]


class _Issues:
    """Collects several located errors from one model check, raised together."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.items: list[InitErrorDetails] = []

    def add(self, loc: tuple[str | int, ...], message: str, value: Any, **ctx: Any) -> None:
        self.items.append(InitErrorDetails(
            type=PydanticCustomError("config", message, ctx or None), loc=loc, input=value))

    def raise_if_any(self) -> None:
        if self.items:
            raise ValidationError.from_exception_data(self.title, self.items)


def _order(issues: _Issues, lo_name: str, lo: float | None, hi_name: str, hi: float | None) -> None:
    if lo is not None and hi is not None and not lo < hi:
        issues.add((lo_name,), f"{lo_name} must be < {hi_name} ({{hi}})", lo, hi=hi)


def _exclusive(issues: _Issues, model: BaseModel, *names: str) -> None:
    given = [n for n in names if getattr(model, n) is not None]
    if len(given) > 1:
        issues.add((given[1],), f"set only one of {', '.join(names)}", getattr(model, given[1]))


# ---------------------------------------------------------------------------------------------
# [service], [store], [influxdb]


class ServiceSection(Section):
    """``[service]``: the control cadence and whether outputs are written at all."""

    control_period_s: PositiveSeconds = 5.0
    """Control period in process seconds (the source's clock), on a fixed grid."""
    write_mode: Literal["write", "shadow"] = "shadow"
    """``shadow`` computes and records outputs but never writes them: the safe default."""
    stale_after_publishing_intervals: Annotated[int, Field(ge=1, le=100)] = 3
    """A tag is stale (loops hold) when no data arrived for this many publishing intervals."""
    shutdown_timeout_s: PositiveSeconds = 10.0


class StoreSection(Section):
    """``[store]``: the durable local store (embedded historian and outbox)."""

    path: ConfigPath = "fermentry-data"
    retention_days: Annotated[float, Field(gt=0)] | None = 30.0
    """How long points stay in the local store; unset keeps them forever."""


class InfluxSection(Section):
    """``[influxdb]``: the optional InfluxDB sink (2.x/3.x via the v2 API, 1.x via the v1 API)."""

    url: Annotated[str, Field(pattern=r"^https?://[^/@\s]+(/\S*)?$")]
    org: str | None = None
    bucket: Annotated[str, Field(min_length=1)] = "fermentry"
    """For 1.x servers ``database/retention-policy`` (or just ``database``), as InfluxDB 1.8's
    compatibility API reads it."""
    token_env: EnvName | None = None
    token_file: ConfigPath | None = None
    api: Literal["auto", "v1", "v2"] = "auto"
    """``auto`` asks ``/ping`` at run time (``X-Influxdb-Version``) and picks the API."""
    batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 5000
    flush_interval_s: PositiveSeconds = 1.0
    timeout_s: PositiveSeconds = 10.0
    max_backoff_s: PositiveSeconds = 60.0

    @property
    def database(self) -> str:
        return self.bucket.split("/", 1)[0]

    @property
    def retention_policy(self) -> str | None:
        parts = self.bucket.split("/", 1)
        return parts[1] if len(parts) == 2 and parts[1] else None

    def _cross_field(self, issues: _Issues) -> None:
        _exclusive(issues, self, "token_env", "token_file")
        if self.bucket.count("/") > 1 or self.bucket.startswith("/"):
            issues.add(("bucket",), "allowed: 'bucket', or 'database/retention-policy' for 1.x servers",
                       self.bucket)
        if self.api == "v2" and self.org is None:
            issues.add(("org",), "required with api = 'v2' (InfluxDB 2.x/3.x need an organization)", None)


# ---------------------------------------------------------------------------------------------
# [endpoints.<name>]

SecurityPolicy = Literal["None", "Basic128Rsa15", "Basic256", "Basic256Sha256",
                         "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"]


class Endpoint(Section):
    """``[endpoints.<name>]``: one OPC UA server; the service runs one supervised client per endpoint."""

    url: Annotated[str, Field(pattern=r"^opc\.tcp://[^/@\s]+(/\S*)?$")]
    """``opc.tcp://host:port/path``; credentials never go in the URL."""
    security_policy: SecurityPolicy = "None"
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: ConfigPath | None = None
    """Client certificate (DER or PEM); required with a security policy."""
    private_key: ConfigPath | None = None
    server_certificate: ConfigPath | None = None
    """Pin the server certificate; otherwise ``trusted_certificates_dir`` decides."""
    trusted_certificates_dir: ConfigPath | None = None
    application_uri: str | None = None
    user: str | None = None
    password_env: EnvName | None = None
    password_file: ConfigPath | None = None
    acquisition: Literal["subscription", "polling"] = "subscription"
    """``polling`` uses batched reads for servers with poor subscription support."""
    publishing_interval_ms: PositiveMillis = 1000.0
    connect_timeout_s: PositiveSeconds = 5.0
    session_timeout_s: PositiveSeconds = 60.0
    reconnect_min_s: PositiveSeconds = 1.0
    reconnect_max_s: PositiveSeconds = 30.0

    def _cross_field(self, issues: _Issues) -> None:
        if (self.security_policy == "None") != (self.security_mode == "None"):
            issues.add(("security_mode",),
                       "security_policy 'None' goes with security_mode 'None' and any other policy with "
                       "'Sign' or 'SignAndEncrypt'", self.security_mode)
        if self.security_policy != "None":
            for key in ("certificate", "private_key"):
                if getattr(self, key) is None:
                    issues.add((key,), f"required with security_policy '{self.security_policy}'", None)
        _exclusive(issues, self, "password_env", "password_file")
        if self.user is None and (self.password_env or self.password_file):
            issues.add(("user",), "required when a password is configured", None)
        if self.reconnect_min_s > self.reconnect_max_s:
            issues.add(("reconnect_min_s",), "must be <= reconnect_max_s ({hi})", self.reconnect_min_s,
                       hi=self.reconnect_max_s)


# ---------------------------------------------------------------------------------------------
# [reactor_defaults], [reactors.<name>] and their tags


class TagSpec(Section):
    """``[reactors.<name>.tags.<signal>]``: how one signal is found and subscribed.

    Every field is optional: the reactor's template provides the address, the signal
    catalog the kind and unit.
    """

    node: NodeId | None = None
    browse_path: BrowsePath | None = None
    sampling_interval_ms: NonNegativeMillis | None = None
    """0 asks the server for its fastest rate."""
    deadband_abs: Annotated[float, Field(ge=0)] | None = None
    """Absolute deadband in the signal's unit."""
    deadband_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    """Percent of the server's EURange."""
    queue_size: Annotated[int, Field(ge=1, le=100_000)] | None = None
    kind: SignalKind | None = None
    unit: str | None = None
    lo: float | None = None
    """Lowest value the service may write (actuators, setpoints)."""
    hi: float | None = None

    def _cross_field(self, issues: _Issues) -> None:
        _exclusive(issues, self, "node", "browse_path")
        _exclusive(issues, self, "deadband_abs", "deadband_pct")
        _order(issues, "lo", self.lo, "hi", self.hi)


class ReactorSpec(Section):
    """``[reactors.<name>]`` (and ``[reactor_defaults]``, which every reactor inherits).

    Tags come from ``signals`` (addressed by the template) plus ``tags`` (per-signal
    overrides, or signals outside the template). A reactor's ``signals`` replaces the
    defaults' list; ``tags`` are merged field by field.
    """

    endpoint: Name | None = None
    node_template: TagTemplate | None = None
    """E.g. ``nsu=urn:fermentry:simulator;s={reactor}.{signal}``; placeholders: ``reactor``,
    ``signal`` and the keys of ``template_vars``."""
    browse_template: TagTemplate | None = None
    """E.g. ``Objects/2:{reactor}/2:Sensors/2:{signal}``."""
    template_vars: dict[Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$")], str] | None = None
    signals: list[SignalName] | None = None
    sampling_interval_ms: NonNegativeMillis | None = None
    queue_size: Annotated[int, Field(ge=1, le=100_000)] | None = None
    tags: dict[SignalName, TagSpec] | None = None
    batch_id: Annotated[str, Field(min_length=1)] | None = None
    """Batch id recorded with every point when the plant does not publish one."""
    batch_node: Annotated[str, Field(min_length=1)] | None = None
    """NodeId of a String variable holding the current batch id, e.g.
    ``nsu=urn:fermentry:simulator;s={reactor}.batch_id``; read at connect and every minute."""

    def _cross_field(self, issues: _Issues) -> None:
        _exclusive(issues, self, "node_template", "browse_template")


class Tag(Section):
    """A resolved tag: one signal of one reactor, with its address and subscription settings."""

    reactor: str
    signal: str
    endpoint: str
    node_id: str | None
    browse_path: str | None
    kind: SignalKind
    unit: str
    sampling_interval_ms: float | None
    """None: the endpoint's publishing interval."""
    deadband_type: Literal["none", "absolute", "percent"]
    deadband_value: float
    queue_size: int | None
    """None: the acquisition sizes the queue for one publishing interval."""
    lo: float | None
    hi: float | None


class Reactor(Section):
    """A resolved reactor: its endpoint and every tag by signal name."""

    name: str
    endpoint: str
    tags: dict[str, Tag]


# ---------------------------------------------------------------------------------------------
# [[loops]]


def _setpoint_source(value: object) -> float | str:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise PydanticCustomError("setpoint", "allowed: a number, or the name of a setpoint tag such as 'do_sp_pct'")
    if isinstance(value, str):
        if not value or not value[0].islower() or not value.replace("_", "a").isalnum():
            raise PydanticCustomError("setpoint", "allowed: a number, or a tag name such as 'do_sp_pct'")
        return value
    return float(value)


SetpointSource = Annotated[float | str, PlainValidator(_setpoint_source)]


class Stage(Section):
    """One actuator of a split range or a sequence.

    Over the controller-output band ``[out_lo, out_hi]`` (%) the actuator moves linearly from
    ``mv_at_lo`` to ``mv_at_hi`` (in its own unit) and holds the end values outside the band.
    A decreasing map (``mv_at_lo > mv_at_hi``) is how acid opens as the output falls below 50 %.
    """

    mv: SignalName
    out_lo: float
    out_hi: float
    mv_at_lo: float
    mv_at_hi: float

    def _cross_field(self, issues: _Issues) -> None:
        _order(issues, "out_lo", self.out_lo, "out_hi", self.out_hi)
        if self.mv_at_lo == self.mv_at_hi:
            issues.add(("mv_at_hi",), "must differ from mv_at_lo (the stage would never move)", self.mv_at_hi)


#: Loop fields that ``overrides.<reactor>`` may not change: they define the loop set itself.
LOOP_FIXED_FIELDS = frozenset({"name", "reactors", "overrides", "kind"})


class Loop(Section):
    """``[[loops]]``: a PID loop defined once and run on every reactor in ``reactors``.

    Standard (ISA) form: ``out = kp * (e_p + 1/ti_s * integral(e) + td_s * de_d/dt)`` with
    ``e_p = b*sp - pv`` and ``e_d = c*sp - pv``; ``kp`` is in output units per pv unit and is
    positive: the direction comes from ``action`` (``reverse``: output rises when pv falls
    below sp, as DO -> agitation).
    """

    name: Name
    reactors: list[Name] | None = None
    """Reactors this loop runs on; unset: every reactor."""
    pv: SignalName
    sp: SetpointSource | None = None
    """A constant in pv units, or a setpoint tag read every period (e.g. ``do_sp_pct``)."""
    mv: SignalName | None = None
    cascade_to: Name | None = None
    """Inner loop whose setpoint this loop's output is (then this loop has no ``mv``)."""
    sp_from: Name | None = None
    """Outer loop providing this loop's setpoint (the same wiring seen from the inner side)."""
    split_range: list[Stage] | None = None
    sequence: list[Stage] | None = None
    kp: Annotated[float, Field(gt=0)]
    ti_s: NonNegativeSeconds | None = None
    """Integral time; unset or 0: no integral action."""
    td_s: NonNegativeSeconds = 0.0
    td_filter: Annotated[float, Field(ge=1, le=100)] = 10.0
    """Derivative filter ratio N: the derivative filter time constant is ``td_s / N``."""
    b: Annotated[float, Field(ge=0, le=1)] = 1.0
    c: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Setpoint weight in the derivative; 0 (default) is derivative on measurement."""
    out_lo: float | None = None
    """Output limits; unset: the mv tag's lo/hi, the inner loop's sp limits, or 0..100 % for a
    split range or sequence. Limits also stop integral windup."""
    out_hi: float | None = None
    out_rate_per_s: Annotated[float, Field(gt=0)] | None = None
    sp_lo: float | None = None
    sp_hi: float | None = None
    sp_rate_per_s: Annotated[float, Field(gt=0)] | None = None
    action: Literal["reverse", "direct"] = "reverse"
    deadband: Annotated[float, Field(ge=0)] = 0.0
    """Error band (pv units) inside which the error counts as zero."""
    mode: Literal["auto", "manual", "cascade"] = "auto"
    """Mode at start-up; ``cascade`` needs an outer loop."""
    on_bad_pv: Literal["hold", "safe"] = "hold"
    safe_output: float | None = None
    tracking_time_s: PositiveSeconds | None = None
    """Anti-windup back-calculation time; unset: the controllers' default (from ti_s, td_s)."""
    overrides: dict[Name, dict[str, Any]] = Field(default_factory=dict)
    """Per-reactor values of any field except name/reactors, e.g. ``overrides.R2.kp = 3.0``."""

    @property
    def outputs(self) -> list[str]:
        """Actuator tags this loop writes."""
        if self.mv is not None:
            return [self.mv]
        return [s.mv for s in (self.split_range or self.sequence or [])]

    def _cross_field(self, issues: _Issues) -> None:
        wired = [k for k in ("mv", "split_range", "sequence", "cascade_to") if getattr(self, k) is not None]
        if len(wired) != 1:
            issues.add((wired[1] if wired else "mv",),
                       "a loop drives exactly one of mv, split_range, sequence, cascade_to", None)
        if self.cascade_to is not None and self.cascade_to == self.sp_from:
            issues.add(("cascade_to",), "a loop cannot cascade to its own outer loop", self.cascade_to)
        _order(issues, "out_lo", self.out_lo, "out_hi", self.out_hi)
        _order(issues, "sp_lo", self.sp_lo, "sp_hi", self.sp_hi)
        if isinstance(self.sp, float):
            if self.sp_lo is not None and self.sp < self.sp_lo:
                issues.add(("sp",), "must be >= sp_lo ({lo})", self.sp, lo=self.sp_lo)
            if self.sp_hi is not None and self.sp > self.sp_hi:
                issues.add(("sp",), "must be <= sp_hi ({hi})", self.sp, hi=self.sp_hi)
        if self.on_bad_pv == "safe" and self.safe_output is None:
            issues.add(("safe_output",), "required with on_bad_pv = 'safe'", None)
        if self.safe_output is not None:
            lo, hi = self.out_lo, self.out_hi
            if self.split_range is not None or self.sequence is not None:
                lo, hi = (0.0 if lo is None else lo), (100.0 if hi is None else hi)
            if lo is not None and self.safe_output < lo:
                issues.add(("safe_output",), "must be >= out_lo ({lo})", self.safe_output, lo=lo)
            if hi is not None and self.safe_output > hi:
                issues.add(("safe_output",), "must be <= out_hi ({hi})", self.safe_output, hi=hi)
        if self.split_range is not None and len(self.split_range) != 2:
            issues.add(("split_range",), "a split range has exactly 2 stages", len(self.split_range))
        for key in ("split_range", "sequence"):
            self._check_stages(issues, key)
        for reactor, values in self.overrides.items():
            for key in sorted(set(values) & LOOP_FIXED_FIELDS):
                issues.add(("overrides", reactor, key), "cannot be overridden per reactor", values[key])

    def _check_stages(self, issues: _Issues, key: str) -> None:
        stages: list[Stage] | None = getattr(self, key)
        if not stages:
            if stages is not None:
                issues.add((key,), "needs at least one stage", stages)
            return
        lo = 0.0 if self.out_lo is None else self.out_lo
        hi = 100.0 if self.out_hi is None else self.out_hi
        bands = sorted((s.out_lo, s.out_hi, i) for i, s in enumerate(stages))
        for s_lo, s_hi, i in bands:
            if s_lo < lo or s_hi > hi:
                issues.add((key, i), "the stage band {band} must lie within the loop output {lo}..{hi}",
                           [s_lo, s_hi], band=f"{s_lo}..{s_hi}", lo=lo, hi=hi)
        for (_, a_hi, _), (b_lo, _, j) in zip(bands, bands[1:]):
            if b_lo < a_hi:
                issues.add((key, j, "out_lo"), "stage bands overlap (previous band ends at {end})", b_lo, end=a_hi)
        if key == "sequence":
            if [i for *_, i in bands] != list(range(len(stages))):
                issues.add((key,), "sequence stages must be listed in the order their bands rise", None)
            for (_, a_hi, _), (b_lo, _, j) in zip(bands, bands[1:]):
                if b_lo > a_hi:
                    issues.add((key, j, "out_lo"),
                               "sequence bands must be contiguous (previous band ends at {end})", b_lo, end=a_hi)
        if len({s.mv for s in stages}) != len(stages):
            issues.add((key,), "each stage drives a different mv", [s.mv for s in stages])


# ---------------------------------------------------------------------------------------------
# [[feeds]] and their start triggers


class ImmediateStart(Section):
    """Start feeding as soon as the service runs."""

    kind: Literal["immediately"]


class TimeStart(Section):
    """Start at a process time (hours since inoculation)."""

    kind: Literal["time"]
    at_h: NonNegativeHours


class DoSpikeStart(Section):
    """Start at the DO spike that marks glucose depletion at the end of the batch phase.

    Fires when DO has risen by ``rise_pct`` (percentage points) within ``window_s`` and is above
    ``threshold_pct``, not before ``not_before_h`` (early-batch DO swings are not depletion).
    """

    kind: Literal["do_spike"]
    rise_pct: Annotated[float, Field(gt=0, le=100)] = 15.0
    window_s: PositiveSeconds = 300.0
    threshold_pct: Annotated[float, Field(ge=0, le=100)] = 40.0
    not_before_h: NonNegativeHours = 0.0


class GlucoseBelowStart(Section):
    """Start when the at-line glucose falls below a value."""

    kind: Literal["glucose_below"]
    glucose_g_per_l: Annotated[float, Field(gt=0)]
    not_before_h: NonNegativeHours = 0.0


class OurDropStart(Section):
    """Start when OUR collapses at substrate depletion: below ``drop_fraction`` of its peak.

    Preferred over ``do_spike`` when DO is under tight control: the DO loop absorbs the
    spike (the stirrer slows), while the off-gas OUR shows the depletion directly.
    """

    kind: Literal["our_drop"]
    drop_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.6
    min_our_mmol_per_l_h: Annotated[float, Field(ge=0)] = 10.0
    hold_s: NonNegativeSeconds = 0.0
    """OUR must stay below the threshold this long: one noisy reading is not depletion."""
    not_before_h: NonNegativeHours = 0.0


StartTrigger = Annotated[ImmediateStart | TimeStart | DoSpikeStart | GlucoseBelowStart | OurDropStart,
                         Field(discriminator="kind")]


class _FeedBase(Section):
    name: Name
    reactors: list[Name] | None = None
    mv: SignalName = "feed_rate_l_per_h"
    start: StartTrigger = ImmediateStart(kind="immediately")
    max_rate_l_per_h: Annotated[float, Field(gt=0)] | None = None
    """Pump limit; the computed rate is clipped to it."""
    max_volume_l: Annotated[float, Field(gt=0)] | None = None
    """Stop feeding when the reactor volume (``volume_l``) reaches this."""
    max_total_l: Annotated[float, Field(gt=0)] | None = None
    """Stop after this much feed in total (the feed totaliser)."""
    overrides: dict[Name, dict[str, Any]] = Field(default_factory=dict)

    def _cross_field(self, issues: _Issues) -> None:
        self._fixed_fields(issues)

    def _fixed_fields(self, issues: _Issues) -> None:
        for reactor, values in self.overrides.items():
            for key in sorted(set(values) & LOOP_FIXED_FIELDS):
                issues.add(("overrides", reactor, key), "cannot be overridden per reactor", values[key])


class ExponentialFeed(_FeedBase):
    """Fed-batch feed for a constant specific growth rate:
    ``F(t) = (mu_set/Y_xs + m_s) * X0 * V0 * exp(mu_set * (t - t0)) / S_f`` in L/h.
    """

    kind: Literal["exponential"]
    mu_set_per_h: Annotated[float, Field(gt=0, le=2)]
    y_xs_g_per_g: Annotated[float, Field(gt=0, le=1)]
    m_s_g_per_g_h: Annotated[float, Field(ge=0, le=1)] = 0.0
    s_f_g_per_l: Annotated[float, Field(gt=0, le=1000)]
    x0_g_per_l: Annotated[float, Field(gt=0)] | None = None
    """Biomass at feed start; unset: ``biomass_tag`` x ``biomass_g_per_l_per_unit`` at the start."""
    biomass_tag: SignalName = "od600"
    biomass_g_per_l_per_unit: Annotated[float, Field(gt=0)] = 0.4
    """Dry cell weight per unit of ``biomass_tag`` (about 0.4 g/L per OD600 unit for E. coli)."""
    v0_l: Annotated[float, Field(gt=0)] | None = None
    """Volume at feed start; unset: the ``volume_l`` tag at the start."""


class LinearFeed(_FeedBase):
    """``F(t) = rate0_l_per_h + slope_l_per_h2 * (t - t0)``, for ``duration_h`` if set."""

    kind: Literal["linear"]
    rate0_l_per_h: Annotated[float, Field(ge=0)]
    slope_l_per_h2: float = 0.0
    duration_h: Annotated[float, Field(gt=0)] | None = None


class PiecewiseFeed(_FeedBase):
    """A rate profile over hours since the feed start; the last rate holds afterwards."""

    kind: Literal["piecewise"]
    times_h: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=1)]
    rates_l_per_h: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=1)]
    interpolation: Literal["linear", "step"] = "linear"

    def _cross_field(self, issues: _Issues) -> None:
        super()._cross_field(issues)
        if len(self.times_h) != len(self.rates_l_per_h):
            issues.add(("rates_l_per_h",), "must have as many entries as times_h ({n})", len(self.rates_l_per_h),
                       n=len(self.times_h))
        for i, (a, b) in enumerate(zip(self.times_h, self.times_h[1:])):
            if not b > a:
                issues.add(("times_h", i + 1), "times must increase strictly", b)


class _PulseFeed(_FeedBase):
    pulse_rate_l_per_h: Annotated[float, Field(gt=0)]
    pulse_s: PositiveSeconds
    hold_off_s: NonNegativeSeconds = 0.0
    """Minimum time between pulses, so one spike does not trigger several."""


class DoStatFeed(_PulseFeed):
    """DO-stat: a feed pulse whenever DO rises above ``do_high_pct`` (substrate ran out)."""

    kind: Literal["do_stat"]
    do_high_pct: Annotated[float, Field(gt=0, lt=100)]


class PhStatFeed(_PulseFeed):
    """pH-stat: a feed pulse whenever pH rises above ``ph_high`` (substrate ran out)."""

    kind: Literal["ph_stat"]
    ph_high: Annotated[float, Field(gt=0, lt=14)]


Feed = Annotated[ExponentialFeed | LinearFeed | PiecewiseFeed | DoStatFeed | PhStatFeed,
                 Field(discriminator="kind")]


# ---------------------------------------------------------------------------------------------
# the whole file


class ServiceConfig(Section):
    """A whole configuration file.

    Build it with :func:`telemetry.config.load_config` (which reports every problem at once);
    validating it directly also runs the cross-section checks but stops at the first section
    that fails. After validation the resolved view is available: :attr:`resolved_reactors`,
    :attr:`tags`, :meth:`loops_for` and :meth:`feeds_for`.
    """

    service: ServiceSection = ServiceSection()
    store: StoreSection = StoreSection()
    influxdb: InfluxSection | None = None
    endpoints: dict[Name, Endpoint] = Field(default_factory=dict)
    reactor_defaults: ReactorSpec = ReactorSpec()
    reactors: dict[Name, ReactorSpec] = Field(default_factory=dict)
    loops: list[Loop] = Field(default_factory=list)
    feeds: list[Feed] = Field(default_factory=list)

    _resolved: Any = PrivateAttr(default=None)
    _source: str = PrivateAttr(default="<config>")

    @property
    def source(self) -> str:
        """Where this configuration came from (a file path), for messages."""
        return self._source

    @model_validator(mode="after")
    def _resolve(self) -> ServiceConfig:
        from telemetry.config.resolve import resolve  # resolve imports this module

        resolved, issues = resolve(self)
        if issues:
            raise ValidationError.from_exception_data("ServiceConfig", [i.as_error_details() for i in issues])
        self._resolved = resolved
        return self

    @property
    def resolved_reactors(self) -> dict[str, Reactor]:
        """Every reactor with its defaults, templates and overrides applied."""
        return self._resolved.reactors

    @property
    def tags(self) -> list[Tag]:
        """All tags of all reactors, reactor by reactor in file order."""
        return [t for r in self._resolved.reactors.values() for t in r.tags.values()]

    def loops_for(self, reactor: str) -> list[Loop]:
        """The loops of one reactor, with its overrides and the default output limits applied."""
        return list(self._resolved.loops.get(reactor, []))

    def feeds_for(self, reactor: str) -> list[Feed]:
        """The feed strategies of one reactor, with its overrides applied."""
        return list(self._resolved.feeds.get(reactor, []))

    def summary(self) -> str:
        """One line: how many endpoints, reactors, tags, loops and feeds."""
        n_loops = sum(len(v) for v in self._resolved.loops.values())
        n_feeds = sum(len(v) for v in self._resolved.feeds.values())
        sink = "none (local store only)" if self.influxdb is None else f"{self.influxdb.url} (api {self.influxdb.api})"
        return (f"{len(self.endpoints)} endpoints, {len(self.reactors)} reactors, {len(self.tags)} tags, "
                f"{n_loops} loops, {n_feeds} feeds (per reactor instances); write_mode {self.service.write_mode}; "
                f"influxdb: {sink}")
