"""The tenant admin API: ``/api/v1/tenants`` (registry, configuration, API keys).

Each route is a thin translation of :class:`TenantManager` (as ``slack-tools
tenant …`` is) into HTTP: errors are problem documents, a configuration change
is a JSON merge patch (RFC 7396) whose ``If-Match`` names the version it was
based on (the ``ETag`` of a read), so of two concurrent updates one wins and the
other gets 412 with nothing applied. Secrets are never returned.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from slack_tools.configs import ConfigValidationError
from slack_tools.configs.quotas import resource_quotas
from slack_tools.configs.schema import IsolationMode
from slack_tools.configs.security.actors import current_actor
from slack_tools.configs.security.rbac import authorize, authorize_all_tenants, require_permission
from slack_tools.configs.tenant_manager import IssuedKey, TenantManager, checked_database_url
from slack_tools.configs.validator import Level
from slack_tools.errors import ConfigError, ConflictError, NotFoundError, StorageError
from slack_tools.service import problems
from slack_tools.service.admin_auth import ServiceDep, authenticate, author_of
from slack_tools.service.bodies import NotAJsonObject, TooLarge, read_json_object
from slack_tools.service.container import Service
from slack_tools.storage import DocumentVersion
from slack_tools.storage.tenant_databases import safe_reference
from slack_tools.storage.tenants import ApiKeyRecord, TenantRecord, TenantStatus
from slack_tools.storage.usage import totals

# Calls about one tenant count against its quota; listing and creating are the platform's.
ADMIN_CALLS = "admin_calls"
router = APIRouter(prefix="/api/v1/tenants", dependencies=[Depends(authenticate)])
T = TypeVar("T")


class Refused(Exception):  # noqa: N818 - an HTTP outcome, answered as a problem document
    def __init__(self, response: JSONResponse) -> None:
        self.response = response


def _refused(exc: NotFoundError | ConflictError | ConfigValidationError) -> Refused:
    if isinstance(exc, NotFoundError):
        return Refused(problems.problem(404, "Not Found", str(exc)))
    if isinstance(exc, ConflictError):
        return Refused(problems.problem(409, "Conflict", str(exc)))
    errors = [
        {"field": ".".join(str(p) for p in issue.path), "message": issue.message}
        for issue in exc.issues
        if issue.level is Level.ERROR
    ]
    return Refused(
        problems.problem(422, "Invalid configuration", "The change was refused.", errors=errors)
    )


async def _call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking manager call off the event loop, its errors as problem documents."""
    try:
        return await asyncio.to_thread(functools.partial(function, *args, **kwargs))
    except (NotFoundError, ConflictError, ConfigValidationError) as exc:
        raise _refused(exc) from None


async def answer_refused(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refused)
    return exc.response


def _manager(service: Service, tenant_id: str) -> TenantManager:
    try:
        return TenantManager(tenant_id, service.runtime)
    except ValueError:
        raise Refused(problems.problem(404, "Not Found", f"No tenant {tenant_id!r}.")) from None


async def _counted(service: Service, tenant_id: str) -> TenantManager:
    """The manager of the tenant a route is about, once its admin call quota allows the call."""
    manager = _manager(service, tenant_id)
    runtime = service.runtime
    effective = runtime.peek_effective(tenant_id)
    if effective is None:
        effective = await _call(runtime.effective, tenant_id)
    for quota in resource_quotas(effective.tenant.quotas, ADMIN_CALLS):
        use = await service.quotas.take(tenant_id, quota)
        if use.allowed:
            continue
        service.metrics.quota_exceeded.labels(tenant=tenant_id, quota=quota.name).inc()
        retry = max(1, math.ceil(use.retry_after))
        raise Refused(
            problems.problem(
                429,
                "Too Many Requests",
                f"Tenant {tenant_id!r} made its {quota.limit} admin calls allowed by "
                f"{quota.name}; retry in {retry} s.",
                headers={"Retry-After": str(retry)},
                quota=quota.name,
            )
        )
    return manager


async def _body(request: Request, service: Service) -> dict[str, Any]:
    limit = service.runtime.config.server.max_body_bytes
    try:
        return await read_json_object(request, limit)
    except TooLarge as exc:
        raise Refused(
            problems.problem(413, "Content Too Large", f"The body is over {exc.limit} bytes.")
        ) from None
    except NotAJsonObject as exc:
        status = 400 if exc.malformed else 422
        raise Refused(problems.problem(status, "Invalid request", exc.detail)) from None


def _etag(version: int) -> str:
    return f'"{version}"'


def _if_match(request: Request) -> int | None:
    """The version named by ``If-Match`` (None when absent)."""
    header = request.headers.get("if-match")
    if header is None:
        return None
    text = header.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise Refused(
            problems.problem(
                400, "Invalid request", 'If-Match must be an ETag of this API, such as "3".'
            )
        )
    return int(text)


def _tenant(record: TenantRecord) -> dict[str, Any]:
    """The registry entry; a strictly isolated tenant's says so, with its own database."""
    answer: dict[str, Any] = {
        "id": record.id,
        "name": record.name,
        "status": record.status.value,
        "created_at": record.created_at.isoformat(),
    }
    if record.database is not None:
        answer["isolation"] = IsolationMode.STRICT.value
        answer["database"] = safe_reference(record.database)
    return answer


def _invalid(field: str, message: str, detail: str | None = None) -> Refused:
    return Refused(
        problems.problem(
            422,
            "Invalid request",
            detail or f"{field}: {message}.",
            errors=[{"field": field, "message": message}],
        )
    )


def _own_database(service: Service, body: dict[str, Any], config: dict[str, Any]) -> str | None:
    """The ``database_url`` of a creation: a strict tenant's own database, password-free."""
    value = body.get("database_url")
    if value is None:  # absent or null: the default, tenants.strict_database_url
        return None
    if not isinstance(value, str) or not value.strip():
        raise _invalid("database_url", "expected a non-empty string (a database URL)")
    isolation = str(config.get("isolation", service.runtime.config.tenants.defaults.isolation))
    try:
        return checked_database_url(isolation, value)
    except StorageError as exc:
        # The messages never repeat the URL, which may hold the password it refuses.
        raise _invalid("database_url", str(exc)) from None
    except ConfigError as exc:
        raise _invalid(
            "database_url",
            str(exc),
            'database_url is for a strictly isolated tenant: add "isolation": "strict" to config.',
        ) from None


def _key(record: ApiKeyRecord) -> dict[str, Any]:
    def when(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": record.id,
        "prefix": record.prefix,
        "label": record.label,
        "created_at": when(record.created_at),
        "last_used_at": when(record.last_used_at),
        "revoked_at": when(record.revoked_at),
    }


def _issued(issued: IssuedKey) -> dict[str, Any]:
    return {**_key(issued.record), "key": issued.key}


def _version(version: DocumentVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "author": version.author,
        "comment": version.comment,
        "action": version.action,
        "based_on": version.based_on,
        "created_at": version.created_at.isoformat(),
    }


def _text(document: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = document.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise Refused(
            problems.problem(
                422,
                "Invalid request",
                f"{name} must be a non-empty string.",
                errors=[{"field": name, "message": "expected a non-empty string"}],
            )
        )
    return value


@router.get("")
@require_permission("tenants.read")
async def list_tenants(service: ServiceDep) -> dict[str, Any]:
    """Every tenant the caller may act for, by id."""
    actor = authorize("tenants.read")
    records = await _call(TenantManager.all, service.runtime)
    return {"tenants": [_tenant(r) for r in records if actor.may_act_for(r.id)]}


@router.post("", status_code=201)
@require_permission("tenants.write")
async def create_tenant(request: Request, service: ServiceDep) -> JSONResponse:
    """Register a tenant: ``{"id", "name"?, "config"?, "database_url"?}``; answers its first
    API key, once.

    ``database_url`` (strict isolation only, ``"config": {"isolation": "strict"}``):
    the tenant's own database instead of ``tenants.strict_database_url``; never with a
    password (``database.password``, PGPASSWORD or ~/.pgpass give it).
    """
    body = await _body(request, service)
    tenant_id = _text(body, "id", required=True)
    assert tenant_id is not None
    name = _text(body, "name")
    config = body.get("config", {})
    if not isinstance(config, dict):
        raise Refused(
            problems.problem(
                422,
                "Invalid request",
                "config must be an object of tenant settings.",
                errors=[{"field": "config", "message": "expected an object"}],
            )
        )
    authorize("tenants.write", tenant_id)
    database_url = _own_database(service, body, config)
    if database_url is not None:
        # Where the service connects, with its database password: not a tenant's choice.
        authorize_all_tenants("tenants.write")
    try:
        TenantManager(tenant_id, service.runtime)
    except ValueError as exc:
        raise Refused(
            problems.problem(
                422, "Invalid request", str(exc), errors=[{"field": "id", "message": str(exc)}]
            )
        ) from None
    try:
        manager, issued = await _call(
            TenantManager.create,
            tenant_id,
            name=name,
            config=config,
            author=author_of(current_actor()),
            runtime=service.runtime,
            database_url=database_url,
        )
    except StorageError as exc:
        if database_url is None:
            raise
        # The tenant's own database could not be made or opened: the URL, or its server.
        raise _invalid("database_url", str(exc)) from None
    record = await _call(manager.info)
    return JSONResponse(
        {
            "tenant": _tenant(record),
            "config_version": manager.config_version,
            "api_key": _issued(issued),
        },
        status_code=201,
        headers={"Location": f"{router.prefix}/{tenant_id}"},
    )


@router.get("/{tenant_id}")
@require_permission("tenants.read", tenant=True)
async def show_tenant(tenant_id: str, service: ServiceDep) -> JSONResponse:
    """The tenant, its effective configuration (secrets masked) and its keys."""
    manager = await _counted(service, tenant_id)
    record = await _call(manager.info)
    config = await _call(manager.show_config)
    keys = await _call(manager.api_keys)
    version = manager.config_version
    return JSONResponse(
        {
            "tenant": _tenant(record),
            "config": config,
            "config_version": version,
            "api_keys": [_key(k) for k in keys],
        },
        headers={"ETag": _etag(version)},
    )


@router.patch("/{tenant_id}")
@require_permission("tenants.write", tenant=True)
async def change_tenant(tenant_id: str, request: Request, service: ServiceDep) -> dict[str, Any]:
    """Rename, disable or enable: ``{"name"?, "status"?: "active" | "disabled"}``."""
    manager = await _counted(service, tenant_id)
    body = await _body(request, service)
    unknown = sorted(set(body) - {"name", "status"})
    if unknown or not body:
        raise Refused(
            problems.problem(
                422,
                "Invalid request",
                "Give name and/or status; the configuration is at /config.",
                errors=[{"field": k, "message": "unknown member"} for k in unknown],
            )
        )
    name = _text(body, "name")
    status = _text(body, "status")
    if status is not None and status not in TenantStatus.__members__.values():
        raise Refused(
            problems.problem(
                422,
                "Invalid request",
                "status must be active or disabled.",
                errors=[{"field": "status", "message": "expected active or disabled"}],
            )
        )
    await _call(manager.info)
    if name is not None:
        await _call(manager.rename, name)
    if status == TenantStatus.DISABLED:
        await _call(manager.disable)
    elif status == TenantStatus.ACTIVE:
        await _call(manager.enable)
    if status is not None:  # here and on every instance, without waiting for key lookups to expire
        service.ingestor.keys.forget_tenant(tenant_id)
    return {"tenant": _tenant(await _call(manager.info))}


@router.delete("/{tenant_id}")
@require_permission("tenants.write", tenant=True)
async def delete_tenant(tenant_id: str, service: ServiceDep) -> dict[str, Any]:
    """Delete the tenant and everything stored for it; answers what was removed."""
    manager = await _counted(service, tenant_id)
    removed = await _call(manager.delete)
    return {"deleted": tenant_id, "removed": removed}


@router.get("/{tenant_id}/config")
@require_permission("config.read", tenant=True)
async def tenant_config(tenant_id: str, service: ServiceDep) -> JSONResponse:
    """The effective configuration (secrets masked); its ``ETag`` is the version."""
    manager = await _counted(service, tenant_id)
    config = await _call(manager.show_config)
    version = manager.config_version
    return JSONResponse({"config": config, "version": version}, headers={"ETag": _etag(version)})


@router.patch("/{tenant_id}/config")
@require_permission("config.write", tenant=True)
async def update_tenant_config(
    tenant_id: str, request: Request, service: ServiceDep, comment: str = ""
) -> JSONResponse:
    """Apply a JSON merge patch (``null`` removes a key) as a new, validated version.

    With ``If-Match: "<version>"`` the change is refused (412) unless the tenant is
    still at that version.
    """
    manager = await _counted(service, tenant_id)
    expected = _if_match(request)
    patch = await _body(request, service)
    try:
        version = await asyncio.to_thread(
            functools.partial(
                manager.update_config,
                patch,
                author=author_of(current_actor()),
                comment=comment,
                expected_version=expected,
            )
        )
    except ConflictError as exc:
        if expected is None:  # another writer got there first: read again and retry
            raise _refused(exc) from None
        return problems.problem(
            412, "Precondition Failed", str(exc), current_version=manager.config_version
        )
    except (NotFoundError, ConfigValidationError) as exc:
        raise _refused(exc) from None
    config = await _call(manager.show_config)
    return JSONResponse(
        {"config": config, "version": version.version},
        headers={"ETag": _etag(version.version)},
    )


@router.get("/{tenant_id}/config/history")
@require_permission("config.read", tenant=True)
async def tenant_config_history(tenant_id: str, service: ServiceDep) -> dict[str, Any]:
    """Every version of the configuration: who, when, why (contents stay in the CLI's diff)."""
    manager = await _counted(service, tenant_id)
    await _call(manager.info)
    versions = await _call(manager.history)
    return {"versions": [_version(v) for v in versions]}


@router.get("/{tenant_id}/keys")
@require_permission("tenants.read", tenant=True)
async def tenant_keys(tenant_id: str, service: ServiceDep) -> dict[str, Any]:
    """The tenant's API keys by prefix, with when each was last used."""
    manager = await _counted(service, tenant_id)
    keys = await _call(manager.api_keys)
    return {"api_keys": [_key(k) for k in keys]}


@router.post("/{tenant_id}/keys", status_code=201)
@require_permission("keys.write", tenant=True)
async def create_tenant_key(tenant_id: str, request: Request, service: ServiceDep) -> JSONResponse:
    """A new API key (``{"label"?}``), answered once: only its digest is kept."""
    manager = await _counted(service, tenant_id)
    body = await _body(request, service)
    label = _text(body, "label") or ""
    issued = await _call(manager.create_key, label)
    return JSONResponse({"api_key": _issued(issued)}, status_code=201)


@router.delete("/{tenant_id}/keys/{key_id}", status_code=204)
@require_permission("keys.write", tenant=True)
async def revoke_tenant_key(tenant_id: str, key_id: int, service: ServiceDep) -> Response:
    """Revoke a key; every instance refuses it within ``ingest.key_cache_seconds``
    (at once where the invalidation reaches it over Redis)."""
    manager = await _counted(service, tenant_id)
    await _call(manager.revoke_key, key_id)
    service.ingestor.keys.forget_tenant(tenant_id)
    return Response(status_code=204)


def _day(name: str, text: str | None, default: date) -> date:
    if text is None:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Refused(
            problems.problem(
                422,
                "Invalid request",
                f"{name} must be a date such as 2026-11-01.",
                errors=[{"field": name, "message": f"not a date: {text!r}"}],
            )
        ) from None


@router.get("/{tenant_id}/usage")
@require_permission("usage.read", tenant=True)
async def tenant_usage(
    tenant_id: str,
    request: Request,
    service: ServiceDep,
) -> dict[str, Any]:
    """Counts per UTC day (``from`` and ``to`` included; default: this month so far).

    When the tenant's plan has prices, ``amounts`` prices the totals: decimal strings
    and the same amounts formatted in the tenant's currency and locale.
    """
    manager = await _counted(service, tenant_id)
    today = datetime.now(UTC).date()
    first = _day("from", request.query_params.get("from"), today.replace(day=1))
    last = _day("to", request.query_params.get("to"), today)
    try:
        days = await _call(manager.usage, first, last)
    except ValueError as exc:
        raise Refused(problems.problem(422, "Invalid request", str(exc))) from None
    summed = dict(totals(days))
    answer: dict[str, Any] = {
        "tenant": tenant_id,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "days": [{"day": d.day.isoformat(), **d.counts()} for d in days],
        "totals": summed,
    }
    priced = await _call(manager.bill, summed)
    if priced is not None:
        answer["amounts"] = {
            "plan": priced.plan,
            "currency": priced.currency,
            "lines": [
                {
                    "metric": line.metric,
                    "count": line.count,
                    "unit_price": str(line.unit_price),
                    "amount": str(line.amount),
                    "formatted": line.formatted,
                }
                for line in priced.lines
            ],
            "total": str(priced.total),
            "total_formatted": priced.total_formatted,
        }
    return answer
