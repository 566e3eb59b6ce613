"""Pydantic models of the whole configuration tree, and of the runtime documents.

The resolved configuration is immutable: every model is frozen, lists are tuples
and mappings are read-only views, so a reader holding a reference can never see
it change under its feet. A reload builds a new tree and swaps the reference.

Field metadata (``json_schema_extra``) carries what the other modules need to
know about a key without a second registry that could drift:

- ``runtime``: the key may be changed at run time in the global overrides document;
- ``merge``: ``"replace"`` or ``"deep"`` (see :func:`merge_rule`);
- ``env``: the extra environment variable(s) of the specification that set it.

The modules: ``types`` (value types, their checks, ``FrozenDict``, ``Section``),
``app`` (the application sections and ``AppConfig``), ``documents`` (tenant
defaults, ``Route``, ``TenantConfig``, ``UserConfig``), ``governance`` (the
policies tenant changes are checked against) and ``introspect``
(``FieldSpec``, the field tables, ``describe_type``, ``merge_rule``). Import from
this package, not from them.
"""

from __future__ import annotations

from slack_tools.configs.schema.app import (
    AppConfig,
    BreakerConfig,
    CacheConfig,
    DatabaseConfig,
    DeliveryConfig,
    EncryptionConfig,
    IngestConfig,
    LocalizationConfig,
    MonitoringConfig,
    RedisConfig,
    ReloadConfig,
    ResilienceConfig,
    SecurityConfig,
    ServerConfig,
    SlackConfig,
    TemplateLimitsConfig,
)
from slack_tools.configs.schema.documents import (
    PlanPrices,
    Route,
    TenantConfig,
    TenantDefaults,
    TenantsConfig,
    UserConfig,
)
from slack_tools.configs.schema.governance import ANY_PLAN, GovernanceConfig, MentionPolicy
from slack_tools.configs.schema.introspect import (
    APP_FIELDS,
    TENANT_FIELDS,
    USER_FIELDS,
    FieldSpec,
    describe_type,
    field_specs,
    iter_fields,
    merge_rule,
    secret_paths,
)
from slack_tools.configs.schema.types import (
    SUPPORTED_LOCALES,
    THRESHOLD_ALIASES,
    ChannelName,
    EnvName,
    FrozenDict,
    IsolationMode,
    LocaleName,
    Matcher,
    Path,
    Pattern,
    PlanQuotaLimits,
    Port,
    PositiveFloat,
    PositiveInt,
    QuotaLimits,
    Ratio,
    Section,
    Severity,
    TemplateSources,
    Threshold,
    TimeZoneName,
    runtime,
)

__all__ = [
    "ANY_PLAN",
    "APP_FIELDS",
    "SUPPORTED_LOCALES",
    "TENANT_FIELDS",
    "THRESHOLD_ALIASES",
    "USER_FIELDS",
    "AppConfig",
    "BreakerConfig",
    "CacheConfig",
    "ChannelName",
    "DatabaseConfig",
    "DeliveryConfig",
    "EncryptionConfig",
    "EnvName",
    "FieldSpec",
    "FrozenDict",
    "GovernanceConfig",
    "IngestConfig",
    "IsolationMode",
    "LocaleName",
    "LocalizationConfig",
    "Matcher",
    "MentionPolicy",
    "MonitoringConfig",
    "Path",
    "Pattern",
    "PlanPrices",
    "PlanQuotaLimits",
    "Port",
    "PositiveFloat",
    "PositiveInt",
    "QuotaLimits",
    "Ratio",
    "RedisConfig",
    "ReloadConfig",
    "ResilienceConfig",
    "Route",
    "Section",
    "SecurityConfig",
    "ServerConfig",
    "Severity",
    "SlackConfig",
    "TemplateLimitsConfig",
    "TemplateSources",
    "TenantConfig",
    "TenantDefaults",
    "TenantsConfig",
    "Threshold",
    "TimeZoneName",
    "UserConfig",
    "describe_type",
    "field_specs",
    "iter_fields",
    "merge_rule",
    "runtime",
    "secret_paths",
]
