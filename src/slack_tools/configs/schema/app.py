"""The application configuration: one model per section of the YAML tree, and ``AppConfig``.

These are the keys of the packaged ``<env>.yaml`` files, the operator's files,
the environment variables and the global overrides document; ``AppConfig`` is the
whole resolved tree of one process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, PlainSerializer, SecretStr

from slack_tools.configs.schema.documents import TenantsConfig
from slack_tools.configs.schema.governance import GovernanceConfig
from slack_tools.configs.schema.types import (
    SUPPORTED_LOCALES,
    ChannelName,
    EnvName,
    FrozenDict,
    LocaleName,
    Port,
    PositiveFloat,
    PositiveInt,
    Ratio,
    Section,
    TimeZoneName,
    runtime,
)
from slack_tools.configs.security.rbac import PERMISSIONS, unknown_permissions


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
        None,
        description="URL at which users reach the service (not used yet: for links to it).",
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
    tracing_enabled: bool = Field(
        False, description="Emit trace spans (not used yet: tracing comes with observability)."
    )
    profiling: bool = Field(False, description="Expose profiling hooks (dev only).")


class TemplateLimitsConfig(Section):
    """What one tenant template may cost; a template over any limit is not used for that message."""

    max_source_bytes: PositiveInt = Field(
        64 * 1024,
        description=(
            "Largest tenant template source (UTF-8 bytes); a larger one is refused and the "
            "default template renders the message."
        ),
    )
    max_output_bytes: PositiveInt = Field(
        256 * 1024,
        description=(
            "Largest output of one tenant template render (UTF-8 bytes; a value the template "
            "builds may hold as many characters); over it the render stops and the default "
            "template is used."
        ),
    )
    work_budget: PositiveInt = Field(
        100_000,
        description=(
            "Work one tenant template render may do, in units of about one loop iteration "
            "(a lookup, call or filter costs a few, a macro call 100, a formatted date 40, "
            "64 characters handled 1; 100000 is some tens of milliseconds); over it the render "
            "stops and the default template is used."
        ),
    )


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
    catalogs_directory: str | None = Field(
        None,
        description=(
            "Directory of translation catalogs (<locale>/LC_MESSAGES/messages.po) used instead "
            "of the packaged ones; start from a copy of the packaged folder."
        ),
    )
    templates_directory: str | None = Field(
        None,
        description=(
            "Directory of message templates (*.j2) tried before the packaged ones; a name "
            "missing here comes from the package."
        ),
    )
    template_limits: TemplateLimitsConfig = TemplateLimitsConfig()


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


def _known_permissions(table: Mapping[str, tuple[str, ...]]) -> FrozenDict:
    for role, names in table.items():
        unknown = unknown_permissions(names)
        if unknown:
            raise ValueError(
                f"role {role!r}: unknown permission(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(PERMISSIONS)} or '*'"
            )
    return FrozenDict(table)


def _long_enough(secret: SecretStr | None) -> SecretStr | None:
    # RFC 7518 §3.2: an HS256 key must be at least as long as the hash (32 bytes).
    if secret is not None and len(secret.get_secret_value().encode()) < MIN_HMAC_SECRET_BYTES:
        raise ValueError(f"at least {MIN_HMAC_SECRET_BYTES} bytes (RFC 7518, section 3.2)")
    return secret


MIN_HMAC_SECRET_BYTES = 32
RoleTable = Annotated[
    Mapping[str, tuple[str, ...]],
    AfterValidator(_known_permissions),
    PlainSerializer(lambda table: {role: list(names) for role, names in table.items()}),
]


class JwtClaimsConfig(Section):
    subject: str = Field("sub", description="Claim naming the caller (dotted for nested claims).")
    roles: str = Field(
        "roles",
        description=(
            "Claim listing the caller's roles: a list or a space-separated string "
            "(e.g. realm_access.roles for Keycloak)."
        ),
    )
    tenants: str = Field(
        "tenants",
        description="Claim listing the tenants the caller may act for; '*' means every tenant.",
    )


class JwtConfig(Section):
    secret: Annotated[SecretStr | None, AfterValidator(_long_enough)] = Field(
        None,
        description=(
            "HS256 shared secret that signs and verifies admin tokens (dev). Unset in dev "
            "with no JWKS: a secret is generated once into <data_dir>/jwt-dev-secret."
        ),
    )
    allow_hs256: bool = Field(
        False,
        description="Accept HS256 (a shared secret) outside dev; staging and production refuse it.",
    )
    algorithms: tuple[str, ...] = Field(
        ("RS256", "ES256", "HS256"),
        description=(
            "Algorithms accepted at all; each key further limits them to its own type, "
            "whatever a token's header says."
        ),
    )
    jwks_file: str | None = Field(
        None, description="JWKS file of the public keys that verify admin tokens."
    )
    jwks_url: str | None = Field(
        None, description="JWKS URL of an identity provider (fetched, cached, refreshed)."
    )
    jwks_cache_seconds: PositiveFloat = Field(
        300.0, description="How long keys fetched from jwks_url are kept before fetching again."
    )
    private_key_file: str | None = Field(
        None,
        description="PEM private key (RSA or EC P-256) that 'slack-tools token issue' signs with.",
    )
    key_id: str | None = Field(
        None, description="kid written into issued tokens (the key's id in the JWKS)."
    )
    issuer: str = Field("slack-tools", description="Expected (and issued) iss claim.")
    audience: str = Field("slack-tools-admin", description="Expected (and issued) aud claim.")
    leeway_seconds: Annotated[float, Field(ge=0, le=300)] = Field(
        30.0, description="Clock skew allowed on exp, nbf and iat."
    )
    claims: JwtClaimsConfig = JwtClaimsConfig()


class SecurityConfig(Section):
    admin_api: bool = Field(
        False,
        description=(
            "Serve the admin routes (/admin/*, /api/v1/tenants), each call with a JWT "
            "(security.jwt); off, they answer 403. dev.yaml turns it on."
        ),
    )
    jwt: JwtConfig = JwtConfig()
    roles: RoleTable = Field(
        default_factory=FrozenDict,
        description=(
            "Roles added to or replacing the built-in ones (viewer, operator, tenant_admin, "
            "admin): role → permissions ('*' for all). See docs/security.md."
        ),
    )
    encryption: EncryptionConfig = EncryptionConfig()


class CacheConfig(Section):
    l1_max_entries: PositiveInt = Field(
        10_000, description="Entries kept in process memory, per namespace of the cache."
    )
    l1_max_bytes: PositiveInt = Field(
        64 * 1024 * 1024, description="Bytes kept in process memory, per namespace of the cache."
    )
    l1_policy: Literal["lru", "lfu", "ttl"] = Field(
        "lru",
        description=(
            "What process memory drops first when full: least recently used, least "
            "frequently used, or the soonest to expire."
        ),
    )
    default_ttl_seconds: PositiveFloat = Field(
        300.0,
        description="Lifetime of a cached value when the caller gives none.",
        json_schema_extra=runtime(),
    )
    min_ttl_seconds: PositiveFloat = Field(
        30.0, description="Shortest lifetime smart TTL gives a value that keeps changing."
    )
    max_ttl_seconds: PositiveFloat = Field(
        3600.0, description="Longest lifetime smart TTL gives a value that never changes."
    )
    ttl_jitter: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Share of a lifetime taken off at random, so hot keys expire apart.",
    )
    stale_seconds: float = Field(
        30.0,
        ge=0,
        description=(
            "After its lifetime a value is still served this long while one caller "
            "reloads it (stale-while-revalidate)."
        ),
    )
    l1_stale_seconds: PositiveFloat = Field(
        5.0,
        description=(
            "Longest time process memory keeps a value while the Redis invalidation "
            "channel is down: bounds how stale another instance's change can be seen."
        ),
    )
    compress_min_bytes: PositiveInt = Field(
        1024, description="Values sent to Redis or disk are compressed (zstd) from this size."
    )
    persistent: bool = Field(
        True,
        description="Keep a disk tier (SQLite file cache.sqlite3 in the data directory).",
    )
    persistent_max_entries: PositiveInt = Field(
        100_000, description="Entries kept in the disk tier; the oldest writes go first."
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
    retention_interval_minutes: PositiveFloat = Field(
        60.0,
        description=(
            "How often the retention job deletes alert data older than each tenant's "
            "retention_days."
        ),
    )
    retention_batch: PositiveInt = Field(
        1000, description="Alert groups deleted per transaction by the retention job."
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
    governance: GovernanceConfig = GovernanceConfig()
    ingest: IngestConfig = IngestConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    reload: ReloadConfig = ReloadConfig()
