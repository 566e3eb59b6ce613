"""Tenants and users: the defaults a new tenant starts from, and the runtime documents.

``tenants.defaults`` (:class:`TenantsConfig`, a section of the application
configuration) holds the threshold, plan, isolation and quotas a tenant has until
its own document sets them. A tenant's document (:class:`TenantConfig`, with its
:class:`Route` list) and a user's (:class:`UserConfig`) are stored, versioned, in
the database, each level on top of the one below: Global → Tenant → User.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, PlainSerializer, SecretStr

from slack_tools.configs.schema.types import (
    ChannelName,
    CurrencyCode,
    FrozenDict,
    IsolationMode,
    LocaleName,
    Matcher,
    PositiveInt,
    QuotaLimits,
    Section,
    Severity,
    TemplateSources,
    Threshold,
    TimeZoneName,
    UnitPrices,
    runtime,
)


class TenantDefaults(Section):
    alert_threshold: Threshold = Field(
        "all", description="Lowest severity delivered by default.", json_schema_extra=runtime()
    )
    plan: str = Field("standard", description="Plan of a new tenant.", json_schema_extra=runtime())
    isolation: IsolationMode = Field(
        IsolationMode.LOGICAL,
        description=(
            "Isolation mode of a new tenant (strict: chosen at creation, where its own "
            "database is made; a tenant cannot move in or out of it later)."
        ),
    )
    quotas: Annotated[QuotaLimits, Field(json_schema_extra=runtime(merge="deep"))] = Field(
        default_factory=lambda: FrozenDict(
            {"alerts_per_minute": 6000, "messages_per_hour": 3600, "admin_calls_per_minute": 600}
        ),
        description="Limit per resource and period (name → count).",
    )
    retention_days: PositiveInt = Field(
        30,
        description=(
            "Alert groups and their delivered or dead notifications older than this are "
            "deleted; pending and held notifications never are."
        ),
        json_schema_extra=runtime(),
    )


class PlanPrices(Section):
    """What a plan costs: usage reports show amounts for the tenants on it."""

    currency: CurrencyCode = Field(description="ISO 4217 code the plan is billed in, e.g. EUR.")
    unit_prices: UnitPrices = Field(
        default_factory=FrozenDict,
        description=(
            "Price of one unit of a usage count (alerts_received, messages_sent, "
            "messages_held, dead_letters, api_calls), e.g. messages_sent: 0.002."
        ),
    )


class TenantsConfig(Section):
    defaults: TenantDefaults = TenantDefaults()
    strict_database_url: str = Field(
        "sqlite:///tenants/{tenant}.db",
        description=(
            "Database of a new strictly isolated tenant, {tenant} replaced by its id: a "
            "relative SQLite path is under data_dir; a PostgreSQL database is created if "
            "missing (needs CREATEDB). Never a password: database.password is used."
        ),
    )
    prices: Annotated[
        Mapping[str, PlanPrices],
        AfterValidator(FrozenDict),
        PlainSerializer(lambda plans: {name: plan.model_dump() for name, plan in plans.items()}),
    ] = Field(
        default_factory=FrozenDict,
        description=(
            "Optional price table: plan name → {currency: EUR, unit_prices: {messages_sent: "
            "0.002, …}}; usage reports show amounts for tenants on a priced plan."
        ),
    )


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
    # A default of its own too, so a TenantConfig built in code (tests, tools) needs none.
    retention_days: PositiveInt = Field(
        30,
        description="Days the tenant's alert data is kept (undelivered notifications always are).",
    )


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
