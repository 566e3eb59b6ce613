"""Dead letters, replays, pruning and queue statistics: what operators look at."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from slack_tools.storage import audit
from slack_tools.storage.delivery.model import DeadLetter, DeliveryState, QueueStats, utc
from slack_tools.storage.scope import TenantScope, scoped
from slack_tools.storage.tables import alert_groups, deliveries


def dead_letters(
    connection: sa.Connection, scope: TenantScope, limit: int = 1000
) -> list[DeadLetter]:
    """Deliveries given up on, newest first, of one tenant or (``ALL_TENANTS``) every one."""
    statement = (
        sa.select(
            deliveries.c.id,
            deliveries.c.tenant_id,
            alert_groups.c.group_key,
            deliveries.c.channel,
            deliveries.c.last_error,
            deliveries.c.attempts,
            deliveries.c.updated_at,
        )
        .join(
            alert_groups,
            sa.and_(
                alert_groups.c.tenant_id == deliveries.c.tenant_id,
                alert_groups.c.group_hash == deliveries.c.group_hash,
            ),
        )
        .where(
            deliveries.c.state == DeliveryState.DEAD.value,
            scoped(deliveries.c.tenant_id, scope),
        )
        .order_by(deliveries.c.updated_at.desc(), deliveries.c.id.desc())
        .limit(limit)
    )
    return [
        DeadLetter(
            r.id,
            r.tenant_id,
            r.group_key,
            r.channel,
            r.last_error or "",
            r.attempts,
            utc(r.updated_at),
        )
        for r in connection.execute(statement)
    ]


def replay(
    connection: sa.Connection,
    scope: TenantScope,
    *,
    now: datetime,
    ids: Sequence[int] | None = None,
    audit_entry: audit.Draft | None = None,
) -> int:
    """Queue the scope's dead letters again (those of ``ids`` only, if given); how many.

    ``audit_entry`` is appended in the same transaction with the count.
    """
    condition = sa.and_(
        deliveries.c.state == DeliveryState.DEAD.value, scoped(deliveries.c.tenant_id, scope)
    )
    if ids is not None:
        condition = sa.and_(condition, deliveries.c.id.in_(list(ids)))
    count = int(
        connection.execute(
            deliveries.update()
            .where(condition)
            .values(
                state=DeliveryState.PENDING.value,
                attempts=0,
                available_at=now,
                pending_since=sa.func.coalesce(deliveries.c.pending_since, now),
                last_error=None,
                updated_at=now,
            )
        ).rowcount
    )
    if audit_entry is not None:
        audit.append(connection, audit_entry.with_diff(replayed=count))
    return count


def prune(connection: sa.Connection, before: datetime) -> tuple[int, int]:
    """Delete what a resolved group no longer needs, once older than ``before``.

    Returns (deliveries, groups) deleted. A firing group is never pruned: its
    message must still be edited when it resolves.
    """
    resolved_old = sa.select(alert_groups.c.tenant_id, alert_groups.c.group_hash).where(
        alert_groups.c.status == "resolved", alert_groups.c.updated_at < before
    )
    done = connection.execute(
        deliveries.delete().where(
            deliveries.c.state == DeliveryState.DONE.value,
            deliveries.c.updated_at < before,
            sa.tuple_(deliveries.c.tenant_id, deliveries.c.group_hash).in_(resolved_old),
        )
    ).rowcount
    still_used = sa.select(deliveries.c.tenant_id, deliveries.c.group_hash)
    groups = connection.execute(
        alert_groups.delete().where(
            alert_groups.c.status == "resolved",
            alert_groups.c.updated_at < before,
            sa.tuple_(alert_groups.c.tenant_id, alert_groups.c.group_hash).not_in(still_used),
        )
    ).rowcount
    return int(done or 0), int(groups or 0)


def queue_stats(connection: sa.Connection) -> QueueStats:
    pending: dict[str, int] = {}
    dead: dict[str, int] = {}
    rows = connection.execute(
        sa.select(deliveries.c.tenant_id, deliveries.c.state, sa.func.count())
        .where(deliveries.c.state.in_([DeliveryState.PENDING.value, DeliveryState.DEAD.value]))
        .group_by(deliveries.c.tenant_id, deliveries.c.state)
    )
    for tenant_id, state, count in rows:
        (pending if state == DeliveryState.PENDING.value else dead)[tenant_id] = int(count)
    oldest = connection.execute(
        sa.select(sa.func.min(deliveries.c.pending_since)).where(
            deliveries.c.state == DeliveryState.PENDING.value
        )
    ).scalar()
    return QueueStats(pending, dead, utc(oldest))


def expire(
    connection: sa.Connection, tenant_id: str, before: datetime, limit: int
) -> tuple[int, int]:
    """Delete up to ``limit`` of a tenant's groups last changed before ``before``; (deliveries,
    groups) deleted.

    A group with a pending notification (held by quota included) is kept whatever
    its age: nothing accepted is ever lost to retention.
    """
    undelivered = sa.select(deliveries.c.group_hash).where(
        deliveries.c.tenant_id == tenant_id,
        deliveries.c.state == DeliveryState.PENDING.value,
    )
    hashes = list(
        connection.execute(
            sa.select(alert_groups.c.group_hash)
            .where(
                alert_groups.c.tenant_id == tenant_id,
                alert_groups.c.updated_at < before,
                alert_groups.c.group_hash.not_in(undelivered),
            )
            .order_by(alert_groups.c.updated_at)
            .limit(limit)
        ).scalars()
    )
    if not hashes:
        return 0, 0
    removed = connection.execute(
        deliveries.delete().where(
            deliveries.c.tenant_id == tenant_id,
            deliveries.c.group_hash.in_(hashes),
            deliveries.c.state != DeliveryState.PENDING.value,
        )
    ).rowcount
    groups = connection.execute(
        alert_groups.delete().where(
            alert_groups.c.tenant_id == tenant_id,
            alert_groups.c.group_hash.in_(hashes),
            alert_groups.c.group_hash.not_in(undelivered),
        )
    ).rowcount
    return int(removed or 0), int(groups or 0)
