"""Retention: delete each tenant's alert data once older than its ``retention_days``.

Runs every ``delivery.retention_interval_minutes``, deletes per tenant (in the
tenant's own database under strict isolation) in batches
of ``delivery.retention_batch`` groups (one short transaction each, so ingestion
and dispatch are never held up for long), counts what it deleted in metrics, and
records one audit entry per run, as the system.

Undelivered notifications (pending, or held back by quota) are never deleted,
whatever their age: nothing accepted is ever lost, and that wins over retention.
``delivery.retention_hours`` stays what it was — the dispatcher's housekeeping of
delivered notifications of resolved groups, which it no longer needs to edit —
and usually removes those long before ``retention_days``; this job bounds how
long any alert data is kept (firing groups and dead letters included).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.exc import SQLAlchemyError

from slack_tools.configs.runtime import ConfigRuntime
from slack_tools.configs.security.actors import SYSTEM, acting_as
from slack_tools.configs.security.audit import AuditLog
from slack_tools.errors import SlackToolsError
from slack_tools.storage import delivery as outbox
from slack_tools.storage.database import write_transaction
from slack_tools.storage.tenants import TenantStore

if TYPE_CHECKING:
    from slack_tools.configs.metrics import ServiceMetrics
    from slack_tools.service.container import Service

log = structlog.get_logger(__name__)


def expire_tenant(
    runtime: ConfigRuntime, tenant_id: str, now: datetime, batch: int
) -> dict[str, int]:
    """Delete one tenant's alert data older than its retention, batch by batch."""
    days = runtime.effective(tenant_id).tenant.retention_days
    before = now - timedelta(days=days)
    counts = {"groups": 0, "deliveries": 0}
    database = runtime.database_for(tenant_id)  # its own, under strict isolation
    while True:
        with write_transaction(database.engine) as connection:
            deliveries, groups = outbox.expire(connection, tenant_id, before, batch)
        counts["groups"] += groups
        counts["deliveries"] += deliveries
        if groups < batch:
            return counts


def run_once(
    runtime: ConfigRuntime,
    *,
    metrics: ServiceMetrics | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, dict[str, int]]:
    """One pass over every tenant; returns what was deleted per tenant (audited, counted)."""
    started = now()
    batch = runtime.config.delivery.retention_batch
    deleted: dict[str, dict[str, int]] = {}
    failed: list[str] = []
    with acting_as(SYSTEM):
        for tenant in TenantStore(runtime.database.engine).all():
            try:
                counts = expire_tenant(runtime, tenant.id, started, batch)
            except (SlackToolsError, SQLAlchemyError) as exc:
                # One tenant's broken configuration, or its own database being away,
                # stops no other.
                reason = str(exc) if isinstance(exc, SlackToolsError) else type(exc).__name__
                log.warning("retention.tenant_failed", tenant=tenant.id, error=reason)
                failed.append(tenant.id)
                continue
            if any(counts.values()):
                deleted[tenant.id] = counts
        outcome = "failure" if failed else "success"
        AuditLog.of(runtime).record(
            "retention.run",
            target="alert-data",
            outcome=outcome,
            diff={"deleted": deleted, "failed": failed},
        )
    if metrics is not None:
        metrics.retention_runs.labels(outcome=outcome).inc()
        for tenant_id, counts in deleted.items():
            for kind, count in counts.items():
                metrics.retention_deleted.labels(tenant=tenant_id, kind=kind).inc(count)
    if deleted:
        log.info("retention.deleted", tenants=deleted)
    return deleted


async def run(service: Service) -> None:
    """Run the job until the service stops (the first pass one interval after start)."""
    while not service.stop.is_set():
        interval = service.runtime.config.delivery.retention_interval_minutes * 60
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(service.stop.wait(), timeout=interval)
        if service.stop.is_set():
            return
        try:
            await asyncio.to_thread(run_once, service.runtime, metrics=service.metrics)
        except SlackToolsError as exc:
            log.warning("retention.failed", error=str(exc))
