"""``slack-tools gdpr …``: the register of processing activities, export and erasure."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from slack_tools.cli.common import open_runtime, out
from slack_tools.configs.security import gdpr

gdpr_app = typer.Typer(help="Personal data: register, export, erase.", no_args_is_help=True)

TenantOption = Annotated[
    str | None, typer.Option("--tenant", "-t", help="Only within this tenant.")
]


def _import_processing() -> None:
    """Import the modules that declare processing activities, so the register is whole."""
    import slack_tools.service.app  # noqa: F401, PLC0415 - declarations run at import


@gdpr_app.command("register")
def gdpr_register(
    as_json: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
) -> None:
    """The processing activities declared with @gdpr_compliant (GDPR article 30)."""
    _import_processing()
    activities = gdpr.register()
    if as_json:
        out.print(json.dumps([a.as_dict() for a in activities], indent=2), markup=False)
        return
    table = Table()
    for column in ("activity", "purpose", "categories", "personal arguments"):
        table.add_column(column)
    for activity in activities:
        table.add_row(
            activity.name,
            activity.purpose,
            ", ".join(activity.categories),
            ", ".join(activity.personal_args),
        )
    out.print(table)
    out.print(f"{len(activities)} processing activit{'y' if len(activities) == 1 else 'ies'}")


@gdpr_app.command("export")
def gdpr_export(
    user: Annotated[str, typer.Argument(help="The person's user id.")],
    tenant: TenantOption = None,
) -> None:
    """Everything held about USER, as JSON on standard output."""
    data = gdpr.export_user(open_runtime(), user, tenant)
    out.print(json.dumps(data, indent=2, ensure_ascii=False, default=str), markup=False)


@gdpr_app.command("erase")
def gdpr_erase(
    user: Annotated[str, typer.Argument(help="The person's user id.")],
    tenant: TenantOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
) -> None:
    """Delete what is held about USER; the audit trail keeps only their pseudonym."""
    if not yes:
        raise typer.BadParameter("erasure cannot be undone: add --yes to confirm")
    erasure = gdpr.erase_user(open_runtime(), user, tenant)
    removed = ", ".join(f"{kind}: {count}" for kind, count in erasure.removed.items())
    out.print(f"erased {user} ({removed}); the audit trail now shows {erasure.pseudonym}")
