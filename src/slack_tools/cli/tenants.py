"""``slack-tools tenant …``: create tenants, check their Slack setup, manage their API keys."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.table import Table

from slack_tools.cli.common import Author, err, open_runtime, out, read_stdin
from slack_tools.configs import ConfigManager, DocumentKey
from slack_tools.configs.schema import AppConfig
from slack_tools.configs.security import new_api_key
from slack_tools.errors import SlackToolsError
from slack_tools.slack.client import SlackCallError, SlackClient
from slack_tools.storage.tenants import TenantStore, check_tenant_id

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
    author: Author = None,
) -> None:
    """Create a tenant, check that its bot can post to its channel, and print its API key once."""
    try:
        check_tenant_id(tenant_id)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if not channel:
        # A shared default channel would mix several tenants' alerts: each names its own.
        raise typer.BadParameter("give the tenant's channel with --channel '#name'")
    runtime = open_runtime()
    config = runtime.config
    store = TenantStore(runtime.database.engine)
    if store.get(tenant_id) is not None:
        raise SlackToolsError(f"tenant {tenant_id!r} already exists")
    patch: dict[str, Any] = {
        key: value
        for key, value in (("slack_channel", channel), ("locale", locale), ("timezone", timezone))
        if value is not None
    }
    token = read_stdin().strip() if token_stdin else None
    if token:
        patch["slack_bot_token"] = token
    target = channel
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
        team = asyncio.run(check_slack(config, effective, target))
        out.print(f"Slack: workspace {team}, the bot can post to {target}")
    # The configuration first: it is validated, so a bad --locale leaves nothing behind.
    ConfigManager(runtime).apply(
        DocumentKey.for_scope(tenant_id), patch, author=author, comment="tenant created"
    )
    store.create(tenant_id, name or tenant_id)
    key = new_api_key()
    store.add_key(tenant_id, digest=key.digest, prefix=key.prefix, label="created with tenant")
    out.print(f"tenant {tenant_id} created; its messages go to {target}")
    out.print("API key (shown once; store it now):", markup=False)
    out.print(key.key, markup=False, highlight=False)
    out.print(
        "Alertmanager: webhook_configs: [{url: <service>/api/v1/alerts/alertmanager, "
        "http_config: {authorization: {credentials: <key>}}}]",
        markup=False,
    )


@tenant_app.command("list")
def tenant_list() -> None:
    """List tenants, their status and their live keys."""
    runtime = open_runtime()
    store = TenantStore(runtime.database.engine)
    table = Table()
    for column in ("tenant", "name", "status", "keys", "created (UTC)"):
        table.add_column(column)
    for tenant in store.all():
        live = [k for k in store.keys(tenant.id) if k.revoked_at is None]
        table.add_row(
            tenant.id,
            tenant.name,
            tenant.status.value,
            ", ".join(k.prefix + "…" for k in live) or "-",
            tenant.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)


@tenant_app.command("add-key")
def tenant_add_key(
    tenant_id: Annotated[str, typer.Argument(help="The tenant.")],
    label: Annotated[str, typer.Option(help="What the key is for.")] = "",
) -> None:
    """Create another API key for a tenant (for rotation); printed once."""
    runtime = open_runtime()
    key = new_api_key()
    record = TenantStore(runtime.database.engine).add_key(
        tenant_id, digest=key.digest, prefix=key.prefix, label=label
    )
    out.print(f"key {record.id} ({record.prefix}…) for tenant {tenant_id}; shown once:")
    out.print(key.key, markup=False, highlight=False)


@tenant_app.command("revoke-key")
def tenant_revoke_key(
    tenant_id: Annotated[str, typer.Argument(help="The tenant.")],
    key_id: Annotated[int, typer.Argument(help="The key's number (tenant list shows prefixes).")],
) -> None:
    """Revoke a key; services stop accepting it within ingest.key_cache_seconds."""
    runtime = open_runtime()
    TenantStore(runtime.database.engine).revoke_key(tenant_id, key_id)
    err.print(f"key {key_id} of tenant {tenant_id} revoked")
