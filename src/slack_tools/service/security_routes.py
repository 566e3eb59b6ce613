"""Admin routes of the audit trail and of GDPR requests: list, verify, export, erase.

Each is a thin translation of :class:`AuditLog` and :mod:`configs.security.gdpr`
(as ``slack-tools audit …`` and ``gdpr …`` are). A caller limited to some tenants
names one of them; views across every tenant need an all-tenants caller.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from slack_tools.configs.security import gdpr
from slack_tools.configs.security.audit import AuditLog
from slack_tools.configs.security.rbac import authorize, authorize_all_tenants, require_permission
from slack_tools.service import problems
from slack_tools.service.admin_auth import ServiceDep, authenticate

router = APIRouter(dependencies=[Depends(authenticate)])

TenantQuery = Annotated[str | None, Query(min_length=1, description="Only this tenant.")]


def _authorize(permission: str, tenant: str | None) -> None:
    if tenant is None:
        authorize_all_tenants(permission)
    else:
        authorize(permission, tenant)


@router.get("/api/v1/audit")
@require_permission("audit.read")
async def list_audit(
    service: ServiceDep,
    tenant: TenantQuery = None,
    since: Annotated[str | None, Query(description="ISO date or time, UTC unless said.")] = None,
    action: Annotated[str | None, Query(min_length=1)] = None,
    actor: Annotated[str | None, Query(min_length=1)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> Any:
    """Audit entries, newest first, filtered by tenant, time, action (or family) and actor."""
    _authorize("audit.read", tenant)
    start = None
    if since is not None:
        try:
            start = datetime.fromisoformat(since)
        except ValueError:
            return problems.problem(
                422,
                "Invalid query",
                f"since={since!r} is not an ISO date or time (e.g. 2026-11-26T08:00:00Z).",
            )
    log = AuditLog.of(service.runtime)
    found = await asyncio.to_thread(
        log.list, tenant=tenant, since=start, action=action, actor=actor, limit=limit
    )
    return {"entries": [e.as_dict() for e in found]}


@router.get("/api/v1/audit/verify")
@require_permission("audit.read")
async def verify_audit(service: ServiceDep) -> JSONResponse:
    """Check the whole trail; 200 when intact, 409 naming the first broken entry."""
    authorize_all_tenants("audit.read")
    result = await asyncio.to_thread(AuditLog.of(service.runtime).verify)
    body: dict[str, Any] = {"checked": dict(result.checked), "heads": dict(result.heads)}
    if result.breach is None:
        return JSONResponse({"ok": True, **body})
    breach = result.breach
    return problems.problem(
        409,
        "Audit trail broken",
        breach.format(),
        chain=breach.chain,
        seq=breach.seq,
        reason=breach.reason,
        **body,
    )


@router.get("/api/v1/gdpr/users/{user_id}")
@require_permission("gdpr.export")
async def export_user(service: ServiceDep, user_id: str, tenant: TenantQuery = None) -> Any:
    """Everything held about a person (in one tenant, or in all)."""
    _authorize("gdpr.export", tenant)
    return await asyncio.to_thread(gdpr.export_user, service.runtime, user_id, tenant)


@router.delete("/api/v1/gdpr/users/{user_id}")
@require_permission("gdpr.erase")
async def erase_user(service: ServiceDep, user_id: str, tenant: TenantQuery = None) -> Any:
    """Erase what is held about a person; the audit trail keeps only their pseudonym."""
    _authorize("gdpr.erase", tenant)
    erasure = await asyncio.to_thread(gdpr.erase_user, service.runtime, user_id, tenant)
    return {"erased": True, "pseudonym": erasure.pseudonym, "removed": dict(erasure.removed)}
