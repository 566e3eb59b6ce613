"""``slack-tools tenant …``: create, show, change, disable and delete tenants; their API keys.

Every command goes through :class:`TenantManager`, as the admin API does.
"""

from __future__ import annotations

import asyncio
import csv
import sys
from datetime import UTC, date, datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.engine import make_url

from slack_tools.cli.common import (
    Author,
    Comment,
    Expect,
    err,
    open_runtime,
    out,
    parse_value,
    print_write,
    read_stdin,
    yaml_dump,
)
from slack_tools.configs import ConfigRuntime
from slack_tools.configs.schema import AppConfig, IsolationMode
from slack_tools.configs.tenant_manager import IssuedKey, TenantManager, checked_database_url
from slack_tools.errors import ConfigError, SlackToolsError, StorageError
from slack_tools.slack.client import SlackCallError, SlackClient
from slack_tools.storage.tenant_databases import safe_reference
from slack_tools.storage.tenants import ApiKeyRecord, TenantRecord, check_tenant_id
from slack_tools.storage.usage import METRICS, totals

tenant_app = typer.Typer(help="Tenants and their API keys.", no_args_is_help=True)


class SlackSetupError(SlackToolsError):
    """The token or the channel will not let the bot post; the message says what to fix."""


async def check_slack(config: AppConfig, token: str, channel: str) -> str:
    """Check the token (auth.test) and that the bot can post to ``channel``; returns the team."""
    client = SlackClient(config.slack.base_url, timeout=config.slack.timeout_seconds)
    try:
        try:
            identity = await client.auth_test(token)
        except SlackCallError as exc:
            raise SlackSetupError(
                f"the Slack token does not work ({exc.reason}): check it is a bot token "
                "(xoxb-…) of an installed app"
            ) from None
        try:
            found = await client.find_channel(token, channel)
        except SlackCallError as exc:
            hint = " (add the channels:read scope)" if exc.reason == "missing_scope" else ""
            raise SlackSetupError(f"cannot list the channels ({exc.reason}){hint}") from None
        if found is None:
            raise SlackSetupError(
                f"no channel {channel} in workspace {identity.get('team', '?')}: create it or "
                "fix the name (private channels need the groups:read scope to be seen)"
            )
        if found.is_archived:
            raise SlackSetupError(f"{channel} is archived: unarchive it or pick another channel")
        if not found.is_member:
            raise SlackSetupError(f"the bot is not in {channel}: run /invite @<your app> there")
        return str(identity.get("team", ""))
    finally:
        await client.close()


TenantId = Annotated[str, typer.Argument(help="The tenant's id.")]


def _checked_id(tenant_id: str) -> str:
    try:
        return check_tenant_id(tenant_id)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _manager(tenant_id: str, runtime: ConfigRuntime | None = None) -> TenantManager:
    return TenantManager(_checked_id(tenant_id), runtime or open_runtime())


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "-"


def _print_key(issued: IssuedKey, tenant_id: str) -> None:
    out.print(
        f"key {issued.record.id} ({issued.record.prefix}…) of tenant {tenant_id}; "
        "shown once, store it now:",
        markup=False,
    )
    out.print(issued.key, markup=False, highlight=False)


@tenant_app.command("create")
def tenant_create(
    tenant_id: Annotated[str, typer.Argument(help="Lowercase id: letters, digits, _ . -")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the id).")] = None,
    channel: Annotated[
        str, typer.Option(help="The tenant's default channel, e.g. #acme-alerts (required).")
    ] = "",
    locale: Annotated[str | None, typer.Option(help="fr_FR, en_US, de_DE, es_ES or it_IT.")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA time zone, e.g. Europe/Paris.")] = None,
    token_stdin: Annotated[
        bool, typer.Option("--token-stdin", help="Read the tenant's own bot token from stdin.")
    ] = False,
    skip_slack_check: Annotated[
        bool, typer.Option("--skip-slack-check", help="Create without checking Slack.")
    ] = False,
    isolation: Annotated[
        IsolationMode | None,
        typer.Option(
            help="How its data is kept apart (default: tenants.defaults.isolation); strict: "
            "in a database of its own, chosen now for good.",
            case_sensitive=False,
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Strict only: the tenant's own database (default: "
            "tenants.strict_database_url), e.g. postgresql://db.internal/acme; never a "
            "password (database.password, PGPASSWORD or ~/.pgpass give it).",
        ),
    ] = None,
    author: Author = None,
) -> None:
    """Create a tenant, check that its bot can post to its channel, and print its API key once."""
    _checked_id(tenant_id)
    if not channel:
        # A shared default channel would mix several tenants' alerts: each names its own.
        raise typer.BadParameter("give the tenant's channel with --channel '#name'")
    runtime = open_runtime()
    config = runtime.config
    mode = IsolationMode(isolation or config.tenants.defaults.isolation)
    try:
        checked_database_url(mode.value, database_url)
    except StorageError as exc:
        raise typer.BadParameter(f"--database-url: {exc}") from None
    except ConfigError as exc:
        raise typer.BadParameter(f"--database-url: {exc}: add --isolation strict") from None
    if TenantManager(tenant_id, runtime).exists():
        raise SlackToolsError(f"tenant {tenant_id!r} already exists")
    patch: dict[str, Any] = {
        key: value
        for key, value in (("slack_channel", channel), ("locale", locale), ("timezone", timezone))
        if value is not None
    }
    patch["isolation"] = mode.value
    token = read_stdin().strip() if token_stdin else None
    if token:
        patch["slack_bot_token"] = token
    if config.slack.mock:
        out.print("dev: messages go to the built-in Slack fake (GET /dev/slack/ on the service)")
    elif not skip_slack_check:
        effective = token or (
            config.slack.bot_token.get_secret_value() if config.slack.bot_token else None
        )
        if effective is None:
            raise SlackSetupError(
                "no Slack token: give the tenant one (--token-stdin) or set slack.bot_token"
            )
        team = asyncio.run(check_slack(config, effective, channel))
        out.print(f"Slack: workspace {team}, the bot can post to {channel}")
    manager, issued = TenantManager.create(
        tenant_id,
        name=name,
        config=patch,
        author=author,
        runtime=runtime,
        database_url=database_url,
    )
    out.print(f"tenant {tenant_id} created; its messages go to {channel}", markup=False)
    own = manager.info().database
    if own is not None:
        out.print(
            f"strict isolation: its data is in its own database, {safe_reference(own)}",
            markup=False,
        )
    _print_key(issued, tenant_id)
    out.print(
        "Alertmanager: webhook_configs: [{url: <service>/api/v1/alerts/alertmanager, "
        "http_config: {authorization: {credentials: <key>}}}]",
        markup=False,
    )


def _isolation(runtime: ConfigRuntime, tenant: TenantRecord) -> str:
    """The tenant's isolation mode: strict when it has its own database, else its setting."""
    if tenant.is_strict:
        return IsolationMode.STRICT.value
    try:
        return runtime.effective(tenant.id).tenant.isolation.value
    except SlackToolsError:  # a configuration that no longer validates: the list still shows
        return "?"


def _where(tenant: TenantRecord) -> str:
    return "shared" if tenant.database is None else safe_reference(tenant.database)


@tenant_app.command("list")
def tenant_list() -> None:
    """List tenants, their status, isolation (strict: their own database) and live keys."""
    runtime = open_runtime()
    table = Table()
    for column in ("tenant", "name", "status", "isolation", "database", "keys", "created (UTC)"):
        table.add_column(column, overflow="fold")
    for tenant in TenantManager.all(runtime):
        live = [k for k in TenantManager(tenant.id, runtime).api_keys() if k.revoked_at is None]
        table.add_row(
            tenant.id,
            tenant.name,
            tenant.status.value,
            _isolation(runtime, tenant),
            _where(tenant),
            ", ".join(k.prefix + "…" for k in live) or "-",
            _when(tenant.created_at),
        )
    out.print(table)


@tenant_app.command("show")
def tenant_show(tenant_id: TenantId) -> None:
    """Print a tenant: its status, its keys and its effective configuration (secrets masked)."""
    manager = _manager(tenant_id)
    info = manager.info()
    out.print(f"# tenant {info.id}: {info.name}, {info.status.value}", markup=False)
    out.print(f"# created {_when(info.created_at)} UTC", markup=False)
    isolation = _isolation(manager.runtime, info)
    where = (
        "the shared database"
        if info.database is None
        else f"its own, {safe_reference(info.database)}"
    )
    out.print(f"# isolation {isolation}; data in {where}", markup=False)
    out.print(f"# configuration version {manager.config_version}", markup=False)
    out.print(yaml_dump(manager.show_config()), end="", markup=False, highlight=False)
    _print_keys(manager.api_keys())


def _print_keys(keys: list[ApiKeyRecord]) -> None:
    table = Table(title="API keys")
    for column in ("id", "prefix", "label", "created (UTC)", "last used (UTC)", "revoked (UTC)"):
        table.add_column(column)
    for key in keys:
        table.add_row(
            str(key.id),
            key.prefix + "…",
            key.label or "-",
            _when(key.created_at),
            _when(key.last_used_at),
            _when(key.revoked_at),
        )
    out.print(table)


@tenant_app.command("update")
def tenant_update(
    tenant_id: TenantId,
    settings: Annotated[
        list[str] | None,
        typer.Argument(
            help="key=value pairs of the tenant's configuration (JSON values; null removes)."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="New display name.")] = None,
    author: Author = None,
    comment: Comment = "",
    expect_version: Expect = None,
) -> None:
    """Change a tenant's name or configuration (one validated new version for all the pairs)."""
    manager = _manager(tenant_id)
    manager.info()
    patch: dict[str, Any] = {}
    for setting in settings or []:
        key, found, value = setting.partition("=")
        if not found or not key:
            raise typer.BadParameter(f"{setting!r}: expected key=value, e.g. alert_threshold=all")
        target = patch
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = parse_value(value)
    if not patch and name is None:
        raise typer.BadParameter("nothing to change: give key=value pairs or --name")
    if patch:
        previous = manager.config_version
        version = manager.update_config(
            patch, author=author, comment=comment, expected_version=expect_version
        )
        print_write(version.version, f"tenant {tenant_id}", previous)
    if name is not None:
        manager.rename(name)
        out.print(f"tenant {tenant_id} is now named {name!r}", markup=False)


@tenant_app.command("disable")
def tenant_disable(tenant_id: TenantId) -> None:
    """Refuse the tenant's alerts from now on; what was accepted is still delivered."""
    _manager(tenant_id).disable()
    err.print(f"tenant {tenant_id} disabled: its keys are refused (403) from now on")


@tenant_app.command("enable")
def tenant_enable(tenant_id: TenantId) -> None:
    """Accept the tenant's alerts again."""
    _manager(tenant_id).enable()
    err.print(f"tenant {tenant_id} enabled")


@tenant_app.command("delete")
def tenant_delete(
    tenant_id: TenantId,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: everything stored for it goes too.")
    ] = False,
) -> None:
    """Delete a tenant with its keys, configuration history, alerts and pending messages.

    A strictly isolated tenant's own database is emptied; a SQLite file is removed.
    """
    manager = _manager(tenant_id)
    own = manager.info().database
    if not yes:
        also = " and empties its own database" if own is not None else ""
        raise typer.BadParameter(
            f"deleting {tenant_id} removes its keys, configuration history, alert groups and "
            f"pending messages for good{also}: add --yes (or `tenant disable` to keep them)"
        )
    removed = manager.delete()
    counts = ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in removed.items())
    err.print(f"tenant {tenant_id} deleted ({counts})", markup=False)
    if own is None:
        return
    if make_url(own).get_backend_name() == "sqlite":
        err.print(
            f"its own database {safe_reference(own)} was emptied and its file removed", markup=False
        )
    else:
        err.print(
            f"its own database {safe_reference(own)} was emptied; drop it on its server when it is "
            "no longer wanted (DROP DATABASE)",
            markup=False,
        )


@tenant_app.command("keys")
def tenant_keys(tenant_id: TenantId) -> None:
    """List a tenant's API keys: prefix, label, created, last used, revoked."""
    _print_keys(_manager(tenant_id).api_keys())


@tenant_app.command("add-key")
def tenant_add_key(
    tenant_id: TenantId,
    label: Annotated[str, typer.Option(help="What the key is for.")] = "",
) -> None:
    """Create another API key for a tenant (for rotation); printed once."""
    _print_key(_manager(tenant_id).create_key(label), tenant_id)


@tenant_app.command("revoke-key")
def tenant_revoke_key(
    tenant_id: TenantId,
    key_id: Annotated[int, typer.Argument(help="The key's id (tenant keys shows them).")],
) -> None:
    """Revoke a key; services stop accepting it within ingest.key_cache_seconds."""
    _manager(tenant_id).revoke_key(key_id)
    err.print(f"key {key_id} of tenant {tenant_id} revoked")


def _date_option(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{name}: expected a date such as 2026-11-01, got {value!r}"
        ) from None


@tenant_app.command("usage")
def tenant_usage(
    tenant_id: TenantId,
    first: Annotated[
        str | None, typer.Option("--from", help="First UTC day (default: the 1st of this month).")
    ] = None,
    last: Annotated[str | None, typer.Option("--to", help="Last UTC day (default: today).")] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on standard output.")] = False,
) -> None:
    """Print a tenant's usage per UTC day: alerts, messages sent and held, dead letters, calls."""
    today = datetime.now(UTC).date()
    start = _date_option(first, "--from") or today.replace(day=1)
    end = _date_option(last, "--to") or today
    try:
        days = _manager(tenant_id).usage(start, end)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["day", *METRICS])
        for day in days:
            writer.writerow([day.day.isoformat(), *day.counts().values()])
        return
    table = Table(title=f"usage of {tenant_id}, {start} to {end} (UTC days)")
    for column in ("day", *METRICS):
        table.add_column(column.replace("_", " "), justify="right" if column != "day" else "left")
    for day in days:
        table.add_row(day.day.isoformat(), *(str(v) for v in day.counts().values()))
    summed = totals(days)
    table.add_row("total", *(str(v) for v in summed.values()), style="bold")
    out.print(table)
    priced = _manager(tenant_id).bill(summed)
    if priced is None:
        return
    amounts = Table(title=f"plan {priced.plan}, {priced.currency}")
    for column in ("usage", "count", "unit price", "amount"):
        amounts.add_column(column, justify="left" if column == "usage" else "right")
    for line in priced.lines:
        amounts.add_row(
            line.metric.replace("_", " "), str(line.count), str(line.unit_price), line.formatted
        )
    amounts.add_row("total", "", "", priced.total_formatted, style="bold")
    out.print(amounts)
