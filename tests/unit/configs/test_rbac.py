"""Roles and permissions: the built-in roles and require_permission on functions and endpoints."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from slack_tools.configs.security.actors import (
    SYSTEM,
    Actor,
    acting_as,
    current_actor,
    local_admin,
)
from slack_tools.configs.security.rbac import (
    DEFAULT_ROLES,
    PERMISSIONS,
    Requirement,
    authorize,
    authorize_all_tenants,
    permissions_of,
    require_permission,
    requirement_of,
)
from slack_tools.errors import AuthError, PermissionDenied


def token_actor(*roles: str, tenants: tuple[str, ...] = ("acme",)) -> Actor:
    return Actor("someone", roles=frozenset(roles), tenants=frozenset(tenants))


@require_permission("config.read")
def get_config(tenant_id: str) -> str:
    return f"config of {tenant_id}"


@require_permission("config.write", tenant=True)
def update_config(tenant_id: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"tenant": tenant_id, **config}


@require_permission("config.write", tenant=True)
async def update_config_later(tenant_id: str, config: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"tenant": tenant_id, **config}


# --- the role table ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "granted", "refused"),
    [
        ("viewer", {"config.read"}, {"config.write", "alerts.replay", "tokens.issue"}),
        ("operator", {"config.read", "alerts.replay"}, {"config.write", "gdpr.erase"}),
        ("tenant_admin", {"config.read", "config.write", "keys.write"}, {"keys.rotate"}),
        ("admin", set(PERMISSIONS), set()),
        ("nobody-knows-me", set(), {"config.read"}),
    ],
)
def test_built_in_roles(role: str, granted: set[str], refused: set[str]) -> None:
    """The specification's roles grant at least what it lists, and no more than they should."""
    permissions = permissions_of([role])
    assert granted <= permissions
    assert not refused & permissions


def test_every_role_names_catalogue_permissions() -> None:
    """The defaults only use permissions of the one catalogue (or '*')."""
    for names in DEFAULT_ROLES.values():
        assert set(names) <= {*PERMISSIONS, "*"}


def test_the_audit_and_gdpr_permissions_exist() -> None:
    """Other modules rely on these names being in the catalogue."""
    assert {"audit.read", "gdpr.export", "gdpr.erase", "tokens.issue", "keys.rotate"} <= set(
        PERMISSIONS
    )


# --- plain functions --------------------------------------------------------------------------


def test_a_permitted_caller_runs_the_function() -> None:
    """A viewer reads; a tenant admin writes its own tenant, positionally or by keyword."""
    with acting_as(token_actor("viewer")):
        assert get_config("acme") == "config of acme"
    with acting_as(token_actor("tenant_admin")):
        assert update_config("acme", {"locale": "fr_FR"}) == {"tenant": "acme", "locale": "fr_FR"}
        assert update_config(config={}, tenant_id="acme") == {"tenant": "acme"}


def test_without_an_actor_every_call_is_refused() -> None:
    """Nobody acting is never taken for somebody allowed."""
    assert current_actor() is None
    with pytest.raises(PermissionDenied, match="nobody is acting"):
        get_config("acme")


def test_a_missing_permission_is_refused() -> None:
    """A viewer cannot write, and the function body does not run."""
    ran: list[str] = []

    @require_permission("config.write")
    def write() -> None:
        ran.append("ran")

    with acting_as(token_actor("viewer")), pytest.raises(PermissionDenied, match=r"config\.write"):
        write()
    assert ran == []


@pytest.mark.parametrize("tenant_id", ["globex", "acme2", "ACME", ""])
def test_another_tenant_is_refused(tenant_id: str) -> None:
    """With tenant=True the call's tenant_id must be exactly one of the actor's tenants."""
    with acting_as(token_actor("tenant_admin")), pytest.raises(PermissionDenied):
        update_config(tenant_id, {})


def test_platform_actors_act_for_any_tenant() -> None:
    """The local administrator and the service itself may act for every tenant."""
    for actor in (local_admin("ops"), SYSTEM):
        with acting_as(actor):
            assert update_config("globex", {}) == {"tenant": "globex"}


def test_coroutine_functions_are_checked_when_awaited() -> None:
    """The async form keeps being a coroutine function and checks the same way."""
    assert inspect.iscoroutinefunction(update_config_later)

    async def scenario() -> None:
        with acting_as(token_actor("tenant_admin")):
            assert await update_config_later("acme", {}) == {"tenant": "acme"}
            with pytest.raises(PermissionDenied):
                await update_config_later("globex", {})

    asyncio.run(scenario())


def test_the_decorator_keeps_the_function_visible() -> None:
    """Name, docstring and signature survive; the requirement can be read back."""
    assert update_config.__name__ == "update_config"
    assert list(inspect.signature(update_config).parameters) == ["tenant_id", "config"]
    assert requirement_of(update_config) == Requirement("config.write", tenant=True)
    assert requirement_of(lambda: None) is None


def test_mistakes_fail_when_the_module_loads() -> None:
    """An unknown permission, or tenant=True without a tenant_id parameter, fail at once."""
    with pytest.raises(ValueError, match="Unknown permission"):
        require_permission("config.wirte")
    with pytest.raises(TypeError, match="tenant_id"):

        @require_permission("config.write", tenant=True)
        def no_tenant(config: dict[str, Any]) -> None: ...


def test_permission_denied_is_an_auth_error() -> None:
    """Callers catching AuthError catch refusals too."""
    assert issubclass(PermissionDenied, AuthError)


def test_configured_permissions_win_over_the_built_in_roles() -> None:
    """An actor resolved under security.roles keeps those permissions, not the defaults."""
    narrowed = Actor(
        "x", roles=frozenset({"admin"}), all_tenants=True, permissions=frozenset({"usage.read"})
    )
    with acting_as(narrowed):
        assert authorize("usage.read") is narrowed
        with pytest.raises(PermissionDenied):
            authorize("config.read")


def test_operations_over_every_tenant_need_an_unlimited_actor() -> None:
    """authorize_all_tenants refuses an actor limited to some tenants."""
    with acting_as(token_actor("operator")), pytest.raises(PermissionDenied, match="name one"):
        authorize_all_tenants("alerts.read")
    with acting_as(local_admin("ops")):
        authorize_all_tenants("alerts.read")


# --- FastAPI endpoints ------------------------------------------------------------------------


def endpoint_app() -> FastAPI:
    """An app whose async dependency sets the actor named by the X-Roles header."""
    app = FastAPI()

    async def caller(request: Request) -> AsyncIterator[Actor]:
        roles = frozenset(request.headers.get("x-roles", "").split())
        with acting_as(Actor("web", roles=roles, tenants=frozenset({"acme"}))) as actor:
            yield actor

    async def denied(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    app.add_exception_handler(PermissionDenied, denied)

    @app.get("/tenants/{tenant_id}/config", dependencies=[Depends(caller)])
    @require_permission("config.read", tenant=True)
    async def read(tenant_id: str, verbose: bool = False) -> dict[str, Any]:
        seen = await asyncio.to_thread(current_actor)
        return {"tenant": tenant_id, "verbose": verbose, "thread_actor": seen and seen.id}

    @app.put("/tenants/{tenant_id}/config", dependencies=[Depends(caller)])
    @require_permission("config.write", tenant=True)
    def write(tenant_id: str, body: dict[str, Any]) -> dict[str, Any]:
        actor = current_actor()
        return {"tenant": tenant_id, "body": body, "actor": actor and actor.id}

    return app


async def call(method: str, path: str, roles: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=endpoint_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, headers={"X-Roles": roles}, **kwargs)


async def test_decorated_endpoints_keep_their_parameters() -> None:
    """FastAPI still injects path, query and body parameters through the decorator."""
    read = await call("GET", "/tenants/acme/config?verbose=true", "viewer")
    assert read.status_code == 200, read.text
    assert read.json() == {"tenant": "acme", "verbose": True, "thread_actor": "web"}
    write = await call("PUT", "/tenants/acme/config", "tenant_admin", json={"locale": "de_DE"})
    assert write.status_code == 200, write.text
    assert write.json() == {"tenant": "acme", "body": {"locale": "de_DE"}, "actor": "web"}


async def test_decorated_endpoints_refuse_with_403() -> None:
    """The missing permission and another tenant are refused through the exception handler."""
    assert (await call("PUT", "/tenants/acme/config", "viewer", json={})).status_code == 403
    assert (await call("GET", "/tenants/globex/config", "viewer")).status_code == 403
    missing = await call("PUT", "/tenants/acme/config", "tenant_admin")
    assert missing.status_code == 422  # validation still runs: the body is required
