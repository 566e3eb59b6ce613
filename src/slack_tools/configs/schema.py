"""Pydantic models of the whole configuration tree, and of the runtime documents.

The resolved configuration is immutable: every model is frozen, lists are tuples
and mappings are read-only views, so a reader holding a reference can never see
it change under its feet. A reload builds a new tree and swaps the reference.

Field metadata (``json_schema_extra``) carries what the other modules need to
know about a key without a second registry that could drift:

- ``runtime``: the key may be changed at run time in the global overrides document;
- ``merge``: ``"replace"`` or ``"deep"`` (see :func:`merge_rule`);
- ``env``: the extra environment variable(s) of the specification that set it.
"""

from __future__ import annotations

import re
import types
import zoneinfo
from collections.abc import Iterable, Iterator, Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
)
from pydantic.fields import FieldInfo

from slack_tools.configs.matchers import parse_matcher

Path = tuple[str | int, ...]

SUPPORTED_LOCALES: tuple[str, ...] = ("fr_FR", "en_US", "de_DE", "es_ES", "it_IT")


class EnvName(StrEnum):
    """The three environments of the specification."""

    DEV = "dev"
    STAGING = "staging"
    PRODUCTION = "production"


class Severity(StrEnum):
    """Alert severities, lowest first; comparisons follow that order."""

    NONE = "none"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_ORDER.index(self)


_SEVERITY_ORDER = tuple(Severity)

THRESHOLD_ALIASES: Mapping[str, Severity] = types.MappingProxyType(
    {
        "all": Severity.NONE,
        "warning_and_above": Severity.WARNING,
        "critical_only": Severity.CRITICAL,
    }
)


class IsolationMode(StrEnum):
    """How a tenant's data is separated from the others' (see the tenants guide)."""

    LOGICAL = "logical"
    PARTIAL = "partial"
    STRICT = "strict"


class FrozenDict(Mapping[str, Any]):
    """A read-only mapping that copies and pickles (``MappingProxyType`` does neither)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(data or {})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._data.items(), key=lambda item: item[0])))

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self

    def __reduce__(self) -> tuple[type[FrozenDict], tuple[dict[str, Any]]]:
        return (FrozenDict, (self._data,))


def _freeze_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return FrozenDict(value)


def _check_locale(value: str) -> str:
    if value not in SUPPORTED_LOCALES:
        raise ValueError(f"expected one of {', '.join(SUPPORTED_LOCALES)}")
    return value


def _check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an IANA time zone name such as Europe/Paris") from None
    return value


def _check_threshold(value: str) -> str:
    if value in THRESHOLD_ALIASES or value in Severity.__members__.values():
        return value
    choices = [*THRESHOLD_ALIASES, *(s.value for s in Severity)]
    raise ValueError(f"expected one of {', '.join(choices)}")


_CHANNEL = re.compile(r"^(#[a-z0-9][a-z0-9._-]{0,79}|[CGD][A-Z0-9]{6,})$")


def _check_channel(value: str) -> str:
    if not _CHANNEL.match(value):
        raise ValueError(
            "expected a channel name like #alerts (lowercase) or a channel ID like C0123ABCD"
        )
    return value


def _check_matcher(value: str) -> str:
    parse_matcher(value)  # raises ValueError saying what was expected
    return value


Port = Annotated[int, Field(ge=1, le=65535)]
PositiveInt = Annotated[int, Field(ge=1)]
LocaleName = Annotated[str, AfterValidator(_check_locale)]
TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]
Threshold = Annotated[str, AfterValidator(_check_threshold)]
ChannelName = Annotated[str, AfterValidator(_check_channel)]
Matcher = Annotated[str, AfterValidator(_check_matcher)]
QuotaLimits = Annotated[
    Mapping[str, PositiveInt],
    AfterValidator(_freeze_mapping),
    PlainSerializer(dict, return_type=dict),
]
TemplateSources = Annotated[
    Mapping[str, str],
    AfterValidator(_freeze_mapping),
    PlainSerializer(dict, return_type=dict),
]
PositiveFloat = Annotated[float, Field(gt=0)]
Ratio = Annotated[float, Field(gt=0, le=1)]


def runtime(**extra: Any) -> dict[str, Any]:
    """Field metadata marking a key as changeable in the global overrides document."""
    return {"runtime": True, **extra}


class Section(BaseModel):
    """Base of every configuration model: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class ServerConfig(Section):
    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: Port = Field(8080, description="TCP port of the HTTP server.")
    workers: PositiveInt = Field(
        1,
        description=(
            "Processes serving HTTP and dispatching, each an instance sharing the database. "
            "Worth it on PostgreSQL; on SQLite writers queue for one lock and it does not "
            "help (bench/ingest.py). Keep 1 with slack.mock: the fake is per process."
        ),
    )
    public_url: str | None = Field(
        None, description="URL at which users reach the service (links in messages, dev page)."
    )
    max_body_bytes: PositiveInt = Field(
        8 * 1024 * 1024,
        description="Largest accepted request body; fits a whole Alertmanager group.",
    )
    graceful_shutdown_seconds: PositiveFloat = Field(
        20.0, description="On SIGTERM, time allowed for in-flight sends before exit."
    )
    access_log: bool = Field(False, description="Log every HTTP request (noisy; for debugging).")


class SlackConfig(Section):
    bot_token: SecretStr | None = Field(
        None,
        description="Global bot token (xoxb-…), used by tenants that have none of their own.",
        json_schema_extra={"env": ["SLACK_BOT_TOKEN"]},
    )
    signing_secret: SecretStr | None = Field(
        None,
        description="Signing secret of the Slack app (verifies interactive callbacks).",
        json_schema_extra={"env": ["SLACK_SIGNING_SECRET"]},
    )
    base_url: str = Field(
        "https://slack.com/api/", description="Slack Web API base URL (ends with /)."
    )
    default_channel: ChannelName = Field(
        "#alerts",
        description="Channel used when neither a route nor the tenant names one.",
        json_schema_extra=runtime(),
    )
    timeout_seconds: PositiveFloat = Field(10.0, description="Timeout of one Slack API call.")
    mock: bool = Field(
        False, description="Serve and use the built-in Slack fake instead of Slack (dev only)."
    )


class RedisConfig(Section):
    url: str | None = Field(
        None,
        description="redis:// URL; Redis is off when unset.",
        json_schema_extra={"env": ["REDIS_HOST", "REDIS_PORT"]},
    )
    password: SecretStr | None = Field(None, description="Password, kept out of the URL.")
    key_prefix: str = Field("slack-tools:", description="Prefix of every key this service writes.")
    socket_timeout_seconds: PositiveFloat = Field(0.5, description="Timeout of one Redis call.")


class DatabaseConfig(Section):
    url: str | None = Field(
        None,
        description=(
            "SQLAlchemy URL (sqlite:///…, postgresql+psycopg://…). "
            "Unset: a SQLite file in the data directory."
        ),
        json_schema_extra={"env": ["DATABASE_URL"]},
    )
    password: SecretStr | None = Field(
        None, description="Password, kept out of the URL (added to it when connecting)."
    )
    pool_size: PositiveInt = Field(10, description="Connections kept open (PostgreSQL).")
    sqlite_synchronous: Literal["NORMAL", "FULL"] = Field(
        "NORMAL",
        description="NORMAL survives a crash of the process; FULL also survives power loss.",
    )
    auto_migrate: bool = Field(
        False,
        description="Apply pending schema migrations at start-up instead of refusing to start.",
    )
    echo: bool = Field(False, description="Log every SQL statement (debugging).")


class MonitoringConfig(Section):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Lowest level written to the log.", json_schema_extra=runtime()
    )
    log_format: Literal["json", "console"] = Field(
        "json", description="json for machines, console for people."
    )
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics at /metrics.")
    tracing_enabled: bool = Field(False, description="Emit OpenTelemetry-style trace spans.")
    profiling: bool = Field(False, description="Expose profiling hooks (dev only).")


class LocalizationConfig(Section):
    default_locale: LocaleName = Field(
        "fr_FR",
        description="Locale when neither route, tenant nor user chose one.",
        json_schema_extra=runtime(),
    )
    fallback_locale: LocaleName = Field(
        "en_US", description="Locale used for a message missing from the chosen catalog."
    )
    supported_locales: tuple[LocaleName, ...] = Field(
        SUPPORTED_LOCALES, description="Locales offered to tenants and users."
    )
    default_timezone: TimeZoneName = Field(
        "UTC", description="IANA time zone when the tenant has none.", json_schema_extra=runtime()
    )
    hot_reload: bool = Field(False, description="Reload catalogs and templates when they change.")


class EncryptionConfig(Section):
    required: bool = Field(
        False,
        description=(
            "Refuse to store a runtime document's secret unless a master key can encrypt it "
            "(files are checked by the environment's rules either way)."
        ),
    )
    key_file: str | None = Field(
        None,
        description=(
            "File of master keys, one 'id:base64' per line, the first active "
            "(alternative to SLACK_TOOLS_MASTER_KEYS)."
        ),
    )


class SecurityConfig(Section):
    admin_token: SecretStr | None = Field(
        None, description="Bearer token for the admin HTTP routes (until JWT/RBAC)."
    )
    encryption: EncryptionConfig = EncryptionConfig()


class CacheConfig(Section):
    l1_max_entries: PositiveInt = Field(10_000, description="Entries kept in process memory.")
    l1_max_bytes: PositiveInt = Field(64 * 1024 * 1024, description="Bytes kept in process memory.")
    default_ttl_seconds: PositiveFloat = Field(
        300.0, description="Lifetime of a cached value.", json_schema_extra=runtime()
    )


class BreakerConfig(Section):
    window_seconds: PositiveFloat = Field(60.0, description="Sliding window of recorded calls.")
    failure_rate_threshold: Ratio = Field(
        0.5, description="Share of failed calls in the window that opens the breaker."
    )
    minimum_calls: PositiveInt = Field(
        10, description="Calls needed in the window before the rate counts."
    )
    open_seconds: PositiveFloat = Field(30.0, description="Time open before probing.")
    half_open_probes: PositiveInt = Field(3, description="Trial calls while half-open.")


class ResilienceConfig(Section):
    max_attempts: PositiveInt = Field(
        8,
        description="Delivery attempts before a notification becomes a dead letter.",
        json_schema_extra=runtime(),
    )
    backoff_base_seconds: PositiveFloat = Field(
        1.0,
        description="First retry delay (exponential, full jitter).",
        json_schema_extra=runtime(),
    )
    backoff_max_seconds: PositiveFloat = Field(
        300.0, description="Longest retry delay.", json_schema_extra=runtime()
    )
    breaker: BreakerConfig = BreakerConfig()


class TenantDefaults(Section):
    alert_threshold: Threshold = Field(
        "all", description="Lowest severity delivered by default.", json_schema_extra=runtime()
    )
    plan: str = Field("standard", description="Plan of a new tenant.", json_schema_extra=runtime())
    isolation: IsolationMode = Field(
        IsolationMode.LOGICAL, description="Isolation mode of a new tenant."
    )
    quotas: Annotated[QuotaLimits, Field(json_schema_extra=runtime(merge="deep"))] = Field(
        default_factory=lambda: FrozenDict(
            {"alerts_per_minute": 6000, "messages_per_hour": 3600, "admin_calls_per_minute": 600}
        ),
        description="Limit per resource and period (name → count).",
    )


class TenantsConfig(Section):
    defaults: TenantDefaults = TenantDefaults()


class IngestConfig(Section):
    flood_requests_per_second: PositiveFloat = Field(
        500.0,
        description=(
            "Hard limit of requests per tenant and second; beyond it Alertmanager and Grafana "
            "get 503 and generic senders 429, with Retry-After (they retry)."
        ),
    )
    flood_burst: PositiveFloat = Field(1000.0, description="Requests a tenant may send at once.")
    group_commit_max: PositiveInt = Field(
        256, description="Most requests committed together in one transaction."
    )
    key_cache_seconds: PositiveFloat = Field(
        30.0, description="How long a looked-up API key is trusted before it is read again."
    )


class DeliveryConfig(Section):
    channel_posts_per_second: PositiveFloat = Field(
        1.0, description="Pace of messages per channel (Slack: about one per second)."
    )
    workspace_posts_per_second: PositiveFloat = Field(
        20.0,
        description="Post budget per Slack workspace; Slack does not publish its exact limit.",
    )
    updates_per_minute: PositiveFloat = Field(
        50.0, description="chat.update budget per workspace (Slack Tier 3)."
    )
    digest_after_seconds: PositiveFloat = Field(
        3.0,
        description=(
            "When a channel holds more than its pace can send in this time, its pending "
            "groups are merged into one digest message."
        ),
    )
    thread_replies: bool = Field(
        True, description="Reply in the thread of a message when its group resolves."
    )
    lease_seconds: PositiveFloat = Field(
        30.0, description="A claimed delivery is taken over by another worker after this."
    )
    poll_seconds: PositiveFloat = Field(
        0.2, description="How often the dispatcher looks for work it was not woken for."
    )
    concurrency: PositiveInt = Field(64, description="Sends in flight at once, all tenants.")
    tenant_concurrency: PositiveInt = Field(
        8, description="Sends in flight at once for one tenant (so one cannot starve others)."
    )
    retention_hours: PositiveFloat = Field(
        168.0, description="Delivered notifications of resolved groups are kept this long."
    )


class ReloadConfig(Section):
    watch_files: bool = Field(False, description="Reload when a configuration file changes.")
    debounce_seconds: Annotated[float, Field(ge=0)] = Field(
        0.5, description="Quiet time after a file change before reloading."
    )
    poll_database_seconds: PositiveFloat = Field(
        5.0, description="How often to look for changes made by other instances."
    )


class AppConfig(Section):
    """The whole resolved configuration of one process."""

    environment: EnvName = Field(
        EnvName.DEV,
        description="dev, staging or production.",
        json_schema_extra={"env": ["ENVIRONMENT"]},
    )
    debug: bool = Field(False, description="Debug mode: verbose errors, dev pages.")
    validation: Literal["permissive", "strict"] = Field(
        "strict",
        description="permissive (dev only) reports unknown keys as warnings and ignores them.",
    )
    data_dir: str | None = Field(
        None,
        description="Directory for the SQLite database and local state.",
        json_schema_extra={"env": ["SLACK_TOOLS_DATA_DIR"]},
    )
    server: ServerConfig = ServerConfig()
    slack: SlackConfig = SlackConfig()
    redis: RedisConfig = RedisConfig()
    database: DatabaseConfig = DatabaseConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    localization: LocalizationConfig = LocalizationConfig()
    security: SecurityConfig = SecurityConfig()
    cache: CacheConfig = CacheConfig()
    resilience: ResilienceConfig = ResilienceConfig()
    tenants: TenantsConfig = TenantsConfig()
    ingest: IngestConfig = IngestConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    reload: ReloadConfig = ReloadConfig()


# --- runtime documents (stored, versioned, in the database) -----------------------------


class Route(Section):
    """One routing rule of a tenant: alerts matching every matcher go to ``channel``."""

    matchers: tuple[Matcher, ...] = Field((), description="Label matchers, all must match.")
    channel: ChannelName = Field(description="Channel for the matching alerts.")
    alert_threshold: Threshold | None = Field(None, description="Overrides the tenant's threshold.")
    locale: LocaleName | None = Field(None, description="Language of the messages in this channel.")
    continue_: bool = Field(
        False, alias="continue", description="Keep matching the next routes after this one."
    )

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class TenantConfig(Section):
    """A tenant's effective configuration (DESIGN "Tenant configuration keys")."""

    slack_channel: ChannelName = Field(description="Default channel of the tenant.")
    alert_threshold: Threshold = Field(description="Lowest severity delivered.")
    routes: tuple[Route, ...] = Field((), description="Routing rules, first match wins.")
    locale: LocaleName = Field(description="Language of the tenant's channel messages.")
    timezone: TimeZoneName = Field(description="Time zone of the tenant.")
    slack_bot_token: SecretStr | None = Field(
        None, description="The tenant's own bot token; the global one when unset."
    )
    plan: str = Field(description="Plan, which sets default quotas.")
    quotas: Annotated[QuotaLimits, Field(json_schema_extra={"merge": "deep"})] = Field(
        description="Limit per resource and period."
    )
    templates: Annotated[TemplateSources, Field(json_schema_extra={"merge": "deep"})] = Field(
        default_factory=FrozenDict,
        description="Message templates by name.",
    )
    isolation: IsolationMode = Field(description="Isolation mode.")


class UserConfig(Section):
    """A user's effective preferences, on top of their tenant."""

    locale: LocaleName = Field(description="Language of messages addressed to this user.")
    timezone: TimeZoneName = Field(description="Time zone of this user.")
    muted_severities: tuple[Severity, ...] = Field(
        (), description="Severities not sent to this user."
    )
    slack_user_id: str | None = Field(
        None, pattern=r"^[UW][A-Z0-9]{6,}$", description="Slack member ID for mentions."
    )


# --- schema introspection --------------------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    """Strip Optional and Annotated to reach the type a field holds."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (types.UnionType, Union):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _field_extra(model: type[BaseModel], name: str) -> dict[str, Any]:
    info = model.model_fields[name]
    extra: dict[str, Any] = {}
    for meta in info.metadata:
        if isinstance(meta, type(info)) and isinstance(meta.json_schema_extra, dict):
            extra.update(meta.json_schema_extra)
    if isinstance(info.json_schema_extra, dict):
        extra.update(info.json_schema_extra)
    return extra


class FieldSpec(BaseModel):
    """What the schema says about one key: used by docs, rules, merge and masking."""

    model_config = ConfigDict(frozen=True)

    path: tuple[str, ...]
    type_name: str
    default: Any
    description: str
    is_secret: bool
    is_runtime: bool
    merge: Literal["replace", "deep"]
    env_vars: tuple[str, ...]


_CHECK_LABELS = {
    _check_locale: "locale",
    _check_timezone: "time zone",
    _check_threshold: "threshold",
    _check_channel: "channel",
    _check_matcher: "label matcher",
}


def _check_label(meta: Any) -> str | None:
    func = getattr(meta, "func", None)
    return _CHECK_LABELS.get(func) if callable(func) else None


_BUILTIN_NAMES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}


def _bounds(metadata: Iterable[Any]) -> list[str]:
    return [
        f"{symbol} {getattr(meta, attr)}"
        for meta in metadata
        for attr, symbol in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"))
        if getattr(meta, attr, None) is not None
    ]


def describe_type(annotation: Any, metadata: Sequence[Any] = ()) -> str:
    """A reader's name for the type of a key, as the documentation shows it."""
    origin = get_origin(annotation)
    if origin in (types.UnionType, Union):
        members = [a for a in get_args(annotation) if a is not type(None)]
        name = " or ".join(describe_type(member) for member in members)
        return name + (" or null" if len(members) < len(get_args(annotation)) else "")
    if origin is Annotated:
        base, *inner = get_args(annotation)
        return describe_type(base, [*inner, *metadata])
    label = next((found for meta in metadata if (found := _check_label(meta))), None)
    if label:
        return label
    if annotation is SecretStr:
        return "secret"
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        return "one of " + ", ".join(m.value for m in annotation)
    if origin is tuple:
        return "list of " + describe_type(get_args(annotation)[0])
    if origin is Mapping:
        return "mapping of name to " + describe_type(get_args(annotation)[1])
    if isinstance(annotation, type):
        name = _BUILTIN_NAMES.get(annotation.__name__, annotation.__name__)
        bounds = _bounds(metadata)
        return f"{name} ({', '.join(bounds)})" if bounds else name
    return str(annotation)


def _describe_field(info: FieldInfo) -> str:
    # pydantic moves a field's top-level Annotated metadata into ``info.metadata``.
    return describe_type(info.annotation, info.metadata)


def iter_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[FieldSpec]:
    """Yield every leaf key of ``model`` (sub-models are walked, not yielded)."""
    for name, info in model.model_fields.items():
        key = info.alias or name
        path = (*prefix, key)
        inner = _unwrap(info.annotation)
        extra = _field_extra(model, name)
        if isinstance(inner, type) and issubclass(inner, Section):
            yield from iter_fields(inner, path)
            continue
        is_mapping = get_origin(inner) is not None and get_origin(inner) is Mapping
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        if isinstance(default, Mapping):
            default = dict(default)
        yield FieldSpec(
            path=path,
            type_name=_describe_field(info),
            default=default,
            description=info.description or "",
            is_secret=inner is SecretStr,
            is_runtime=bool(extra.get("runtime")),
            merge=extra.get("merge", "deep" if is_mapping else "replace"),
            env_vars=tuple(extra.get("env", ())),
        )


def field_specs(model: type[BaseModel]) -> Mapping[tuple[str, ...], FieldSpec]:
    """Every leaf key of ``model`` by path."""
    return types.MappingProxyType({spec.path: spec for spec in iter_fields(model)})


APP_FIELDS = field_specs(AppConfig)
TENANT_FIELDS = field_specs(TenantConfig)
USER_FIELDS = field_specs(UserConfig)


def secret_paths(model: type[BaseModel]) -> frozenset[tuple[str, ...]]:
    """Paths of the keys holding secrets in ``model``."""
    return frozenset(spec.path for spec in iter_fields(model) if spec.is_secret)


def merge_rule(fields: Mapping[tuple[str, ...], FieldSpec], path: tuple[str, ...]) -> str:
    """How a higher layer combines with a lower one at ``path``.

    Sections always merge key by key. A leaf mapping merges key by key when marked
    ``deep`` (quotas, templates: a tenant sets one quota without restating the
    others); everything else, lists included, is replaced whole (a tenant's routes
    are one ordered list, and half of two lists is no one's intent).
    """
    spec = fields.get(path)
    if spec is None:
        return "deep"
    return spec.merge
