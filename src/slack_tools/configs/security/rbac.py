"""Roles and permissions: the permission catalogue, role defaults, and ``require_permission``.

The caller is :func:`~slack_tools.configs.security.actors.current_actor` (the admin
API sets it from a verified token, the CLI to the local administrator). A role
grants a set of permissions; an actor's tenants limit every check made about a
tenant. No actor is no permission: an unauthenticated call is refused, never
waved through.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast

from slack_tools.configs.security.actors import Actor, current_actor
from slack_tools.errors import PermissionDenied

# Every permission there is, with what it allows. A role names permissions from here
# (or ``*`` for all); a decorator naming anything else fails at import time.
PERMISSIONS: Mapping[str, str] = {
    "config.read": "Read configuration: effective, per tenant, status, history.",
    "config.write": "Change configuration: set, apply, rollback (a tenant's or global).",
    "config.reload": "Reload the configuration files and stored overrides now.",
    "tenants.read": "List and show tenants.",
    "tenants.write": "Create, rename, disable, enable and delete tenants.",
    "keys.write": "Create and revoke a tenant's API keys.",
    "keys.rotate": "Rotate the master encryption keys and tenant data keys.",
    "secrets.read": "Decrypt and show secret configuration values.",
    "alerts.read": "Read dead letters, routes and delivery state.",
    "alerts.replay": "Replay dead letters; send test alerts.",
    "usage.read": "Read a tenant's usage counts and amounts.",
    "audit.read": "Read and verify the audit trail.",
    "gdpr.read": "Read the register of processing activities.",
    "gdpr.export": "Export everything held about a person.",
    "gdpr.erase": "Erase or anonymise everything held about a person.",
    "tokens.issue": "Issue admin API tokens.",
    "db.migrate": "Apply database migrations.",
}
ALL = "*"

# The roles a fresh installation knows; ``security.roles`` replaces or adds to them.
DEFAULT_ROLES: Mapping[str, tuple[str, ...]] = {
    "viewer": ("config.read", "tenants.read", "alerts.read", "usage.read"),
    "operator": (
        "config.read",
        "config.reload",
        "tenants.read",
        "alerts.read",
        "alerts.replay",
        "usage.read",
    ),
    # Limited by the token's tenants like every role; named for what it is for.
    "tenant_admin": (
        "config.read",
        "config.write",
        "tenants.read",
        "tenants.write",
        "keys.write",
        "alerts.read",
        "alerts.replay",
        "usage.read",
    ),
    "admin": (ALL,),
}


def unknown_permissions(names: Iterable[str]) -> list[str]:
    """The names that are neither a catalogue permission nor ``*``, in order."""
    return [n for n in names if n != ALL and n not in PERMISSIONS]


def permissions_of(
    roles: Iterable[str], table: Mapping[str, Collection[str]] | None = None
) -> frozenset[str]:
    """The permissions granted by ``roles`` under ``table`` (default: the built-in roles).

    Unknown roles grant nothing; ``*`` expands to the whole catalogue.
    """
    table = DEFAULT_ROLES if table is None else table
    granted: set[str] = set()
    for role in roles:
        granted.update(table.get(role, ()))
    if ALL in granted:
        return frozenset(PERMISSIONS)
    return frozenset(granted)


def granted(actor: Actor) -> frozenset[str]:
    """What ``actor`` may do: its resolved permissions, else its roles under the defaults."""
    if actor.permissions is not None:
        return actor.permissions
    return permissions_of(actor.roles)


def _known(permission: str) -> str:
    if permission not in PERMISSIONS:
        raise ValueError(
            f"Unknown permission {permission!r}; the catalogue has: {', '.join(PERMISSIONS)}."
        )
    return permission


def authorize(
    permission: str, tenant_id: str | None = None, *, actor: Actor | None = None
) -> Actor:
    """The acting actor, once it holds ``permission`` (for ``tenant_id`` when given).

    Raises:
        PermissionDenied: nobody is acting, the permission is missing, or the tenant is
            not one of the actor's.
    """
    _known(permission)
    actor = actor if actor is not None else current_actor()
    if actor is None:
        raise PermissionDenied(f"{permission} needs an authenticated caller; nobody is acting.")
    if permission not in granted(actor):
        raise PermissionDenied(f"{actor.id!r} lacks the permission {permission}.")
    if tenant_id is not None and not actor.may_act_for(tenant_id):
        raise PermissionDenied(f"{actor.id!r} may not act for tenant {tenant_id!r}.")
    return actor


def authorize_all_tenants(permission: str, *, actor: Actor | None = None) -> Actor:
    """Like :func:`authorize` for an operation over every tenant at once."""
    actor = authorize(permission, actor=actor)
    if not actor.all_tenants:
        raise PermissionDenied(
            f"{actor.id!r} may act only for some tenants; name one ({permission})."
        )
    return actor


@dataclass(frozen=True, slots=True)
class Requirement:
    """What a decorated callable needs: a permission, and whether its tenant is checked."""

    permission: str
    tenant: bool = False
    tenant_arg: str = "tenant_id"


REQUIREMENT_ATTRIBUTE = "__slack_tools_permission__"
P = ParamSpec("P")
R = TypeVar("R")


def requirement_of(function: Callable[..., Any]) -> Requirement | None:
    """The :class:`Requirement` that ``require_permission`` put on ``function``, if any."""
    found = getattr(function, REQUIREMENT_ATTRIBUTE, None)
    return found if isinstance(found, Requirement) else None


def require_permission(
    permission: str, *, tenant: bool = False, tenant_arg: str = "tenant_id"
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Refuse calls by an actor without ``permission``; with ``tenant=True``, also unless
    the call's ``tenant_id`` argument is one of the actor's tenants.

    Works on plain functions and coroutine functions alike, and on FastAPI endpoints:
    the wrapper keeps the signature (``functools.wraps``), so FastAPI still sees the
    parameters it injects.
    """
    _known(permission)
    need = Requirement(permission, tenant, tenant_arg)

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(function)
        if tenant and tenant_arg not in signature.parameters:
            raise TypeError(
                f"{function.__qualname__} has no {tenant_arg!r} parameter to check "
                f"the tenant of {permission}."
            )

        def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            tenant_id = None
            if tenant:
                bound = signature.bind_partial(*args, **kwargs)
                bound.apply_defaults()
                value = bound.arguments.get(tenant_arg)
                if not isinstance(value, str) or not value:
                    raise PermissionDenied(f"{permission} needs a tenant; none was given.")
                tenant_id = value
            authorize(permission, tenant_id)

        if inspect.iscoroutinefunction(function):
            coroutine = cast("Callable[..., Any]", function)

            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                check(args, kwargs)
                return await coroutine(*args, **kwargs)

            wrapper = cast("Callable[P, R]", run_async)
        else:

            @functools.wraps(function)
            def run(*args: P.args, **kwargs: P.kwargs) -> R:
                check(args, kwargs)
                return function(*args, **kwargs)

            wrapper = run
        setattr(wrapper, REQUIREMENT_ATTRIBUTE, need)
        return wrapper

    return decorate
