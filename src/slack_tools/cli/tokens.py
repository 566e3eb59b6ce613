"""``slack-tools token``: issue admin API tokens, show the public key that verifies them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from slack_tools.cli.common import open_runtime, out
from slack_tools.configs.security.actors import current_actor, local_admin
from slack_tools.configs.security.audit import AuditLog
from slack_tools.configs.security.rbac import ALL, DEFAULT_ROLES
from slack_tools.configs.security.tokens import issue_token, public_jwks

token_app = typer.Typer(help="Admin API tokens (JWT): issue them, publish their key.")

_DURATION = re.compile(r"(\d+)\s*([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
# A token cannot be revoked before it expires: a year is as long as one may live.
MAX_TTL = timedelta(days=366)


def parse_ttl(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h``, ``7d`` or plain seconds, as a positive duration."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise typer.BadParameter(f"{text!r}: give a duration such as 15m, 1h or 7d.")
    ttl = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if ttl > MAX_TTL:
        raise typer.BadParameter(
            f"{text!r}: at most {MAX_TTL.days} days (tokens cannot be revoked)."
        )
    return ttl


@token_app.command("issue")
def token_issue(
    role: Annotated[list[str], typer.Option("--role", "-r", help="A role; repeat for several.")],
    tenant: Annotated[
        list[str] | None, typer.Option("--tenant", "-t", help="A tenant it acts for; repeat.")
    ] = None,
    all_tenants: Annotated[
        bool, typer.Option("--all-tenants", help="Act for every tenant (platform operators).")
    ] = False,
    ttl: Annotated[str, typer.Option(help="Lifetime: 15m, 1h, 7d…")] = "1h",
    subject: Annotated[
        str | None, typer.Option(help="Who the token is for (default: you).")
    ] = None,
) -> None:
    """Print a signed admin token (the dev secret or security.jwt.private_key_file)."""
    lifetime = parse_ttl(ttl)
    tenants = list(dict.fromkeys(tenant or []))
    if all_tenants == bool(tenants):
        raise typer.BadParameter("Give --tenant (repeatable) or --all-tenants, not both.")
    runtime = open_runtime()
    config = runtime.config
    known = {**DEFAULT_ROLES, **config.security.roles}
    unknown = sorted(set(role) - set(known))
    if unknown:
        raise typer.BadParameter(
            f"unknown role(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
            param_hint="--role",
        )
    actor = current_actor() or local_admin()
    who = subject or actor.id
    scope = [ALL] if all_tenants else tenants
    issued_at = datetime.now(UTC)
    token = issue_token(role, scope, lifetime, who, config=config, now=issued_at)
    AuditLog.of(runtime).record(
        "token.issue",
        target=f"token:{who}",
        subject=who,
        diff={
            "roles": sorted(role),
            "tenants": scope,
            "expires_at": (issued_at + lifetime).isoformat(),
        },
        actor=actor,
    )
    out.print(token, markup=False, soft_wrap=True)


@token_app.command("jwks")
def token_jwks() -> None:
    """Print the JWKS of security.jwt.private_key_file's public key (for jwks_file)."""
    runtime = open_runtime()
    out.print(json.dumps(public_jwks(runtime.config), indent=2), markup=False)
