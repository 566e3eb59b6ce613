"""``slack-tools audit …``: read the audit trail and check that nobody altered it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from slack_tools.cli.common import err, open_runtime, out
from slack_tools.configs.security.audit import GLOBAL_CHAIN, AuditLog

audit_app = typer.Typer(help="The audit trail: list and verify.", no_args_is_help=True)

_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str) -> datetime:
    """An ISO date or time (UTC unless it says), or a duration back from now: 30m, 12h, 7d."""
    if text and text[-1] in _UNITS and text[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{_UNITS[text[-1]]: int(text[:-1])})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"--since {text!r}: give an ISO date or time (2026-11-26, 2026-11-26T08:00) "
            "or a duration (30m, 12h, 7d)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@audit_app.command("list")
def audit_list(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")] = None,
    since: Annotated[
        str | None, typer.Option(help="From this time (ISO) or this long ago (30m, 12h, 7d).")
    ] = None,
    action: Annotated[
        str | None, typer.Option(help="This action, or a family of them (tenant, config…).")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Only what this person did.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Audit entries, newest first (people shown by name unless they were erased)."""
    if tenant == "":
        raise typer.BadParameter("--tenant: give a tenant id (leave it out for every tenant)")
    found = AuditLog.of(open_runtime()).list(
        tenant=tenant,
        since=parse_since(since) if since else None,
        action=action,
        actor=actor,
        limit=limit,
    )
    if as_json:
        for entry in found:
            out.print(json.dumps(entry.as_dict(), ensure_ascii=False), markup=False)
        return
    table = Table()
    for column in ("#", "time (UTC)", "actor", "action", "target", "tenant", "outcome", "diff"):
        table.add_column(column)
    for entry in found:
        table.add_row(
            # Positions are per chain: a strict tenant's own database has chains of its own.
            str(entry.seq) if entry.chain == GLOBAL_CHAIN else f"{entry.chain}:{entry.seq}",
            entry.at.strftime("%Y-%m-%d %H:%M:%S"),
            entry.actor,
            entry.action,
            entry.target,
            entry.tenant,
            entry.outcome + (f" ({entry.error})" if entry.error else ""),
            json.dumps(entry.diff, ensure_ascii=False)[:80],
        )
    out.print(table)


@audit_app.command("verify")
def audit_verify() -> None:
    """Check every entry's hash and link; name the first broken entry (exit 1) if any.

    The shared database's chains and each strictly isolated tenant's own (shown as
    <tenant>:<chain>) are checked.
    """
    result = AuditLog.of(open_runtime()).verify()
    for chain, count in result.checked.items():
        head = result.heads.get(chain, "none")
        out.print(f"chain {chain}: {count} entries checked, head {head}", markup=False)
    if result.breach is not None:
        err.print(f"audit trail broken: {result.breach.format()}", markup=False)
        raise typer.Exit(1)
    out.print("audit trail intact")
