"""The permission each CLI command needs: one table, checked before the command runs.

The CLI acts as the local administrator, who holds every permission, so today the
check passes for anyone at the terminal; the table keeps every command that changes
state covered (a test walks the command tree against it) and refuses a caller that
is not an administrator, should one ever drive the commands in-process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import typer

from slack_tools.configs.security.rbac import PERMISSIONS, authorize

# Commands that read or change nothing a permission guards: the version, the service
# itself (its routes authorise each call), local files and developer tools.
PUBLIC = "public"

COMMAND_PERMISSIONS: Mapping[str, str] = {
    "version": PUBLIC,
    "serve": PUBLIC,
    "demo": "tenants.write",  # creates demo tenants and their keys
    "config validate": "config.read",
    "config show": "config.read",
    "config explain": "config.read",
    "config set": "config.write",
    "config apply": "config.write",
    "config history": "config.read",
    "config diff": "config.read",
    "config rollback": "config.write",
    "config encrypt": "config.write",
    "config decrypt": "secrets.read",
    "config reference": PUBLIC,  # the schema's documentation
    "tenant create": "tenants.write",
    "tenant list": "tenants.read",
    "tenant show": "tenants.read",
    "tenant update": "tenants.write",
    "tenant disable": "tenants.write",
    "tenant enable": "tenants.write",
    "tenant delete": "tenants.write",
    "tenant keys": "tenants.read",
    "tenant add-key": "keys.write",
    "tenant revoke-key": "keys.write",
    "tenant usage": "usage.read",
    "deadletters list": "alerts.read",
    "deadletters replay": "alerts.replay",
    "routes test": "alerts.read",
    "keys generate": PUBLIC,  # prints new random key material, stores nothing
    "keys rotate": "keys.rotate",
    "db upgrade": "db.migrate",
    "db status": "config.read",
    "i18n check": PUBLIC,
    "i18n preview": PUBLIC,
    "i18n extract": PUBLIC,  # rewrites the source tree's catalog template
    "i18n update": PUBLIC,  # rewrites the source tree's catalogs
    "token issue": "tokens.issue",
    "token jwks": PUBLIC,  # the public half of the signing key
    "audit list": "audit.read",
    "audit verify": "audit.read",
    "gdpr register": "gdpr.read",
    "gdpr export": "gdpr.export",
    "gdpr erase": "gdpr.erase",
}
_GUARDED = "__slack_tools_guarded__"


def permission_for(path: str) -> str | None:
    """The permission ``path`` (``"tenant create"``) needs, ``PUBLIC``, or None if unlisted."""
    return COMMAND_PERMISSIONS.get(path)


def check_command(path: str) -> None:
    """Refuse ``path`` unless the current actor holds its permission.

    A command missing from the table needs every permission: only an administrator
    runs it until the table says otherwise.

    Raises:
        PermissionDenied: the actor lacks the permission, or nobody is acting.
    """
    needed = permission_for(path)
    if needed == PUBLIC:
        return
    for permission in [needed] if needed is not None else list(PERMISSIONS):
        authorize(permission)


def _command_name(info: typer.models.CommandInfo) -> str:
    # Typer's own rule for a command registered without a name.
    assert info.callback is not None
    return info.name or info.callback.__name__.lower().replace("_", "-")


def commands_of(
    app: typer.Typer, prefix: str = ""
) -> Iterator[tuple[str, typer.models.CommandInfo]]:
    """Every leaf command of ``app`` with its path (``"config set"``)."""
    for info in app.registered_commands:
        if info.callback is not None:
            yield f"{prefix}{_command_name(info)}", info
    for group in app.registered_groups:
        if group.typer_instance is not None and group.name:
            yield from commands_of(group.typer_instance, f"{prefix}{group.name} ")


def guard_commands(app: typer.Typer) -> None:
    """Make every command of ``app`` check its permission before it runs (once each)."""
    for path, info in commands_of(app):
        callback = info.callback
        if callback is None or getattr(callback, _GUARDED, False):
            continue
        info.callback = _guarded(path, callback)


def _guarded(path: str, callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        check_command(path)
        return callback(*args, **kwargs)

    setattr(run, _GUARDED, True)
    return run
