"""Claiming deliveries with a lease, and recording what was sent, retried or given up."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import sqlalchemy as sa

from slack_tools.storage.delivery.model import (
    Ack,
    ChannelWork,
    Claimed,
    DeliveryState,
    Sent,
    StoredGroup,
    stored_from_row,
    utc,
)
from slack_tools.storage.tables import alert_groups, deliveries


def _claimable(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        deliveries.c.state == DeliveryState.PENDING.value,
        deliveries.c.available_at <= now,
        sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now),
    )


def ready_channels(
    connection: sa.Connection, now: datetime, limit: int, exclude_tenants: Iterable[str] = ()
) -> list[ChannelWork]:
    """Channels with deliveries ready now, oldest first: one entry per channel."""
    statement = (
        sa.select(
            deliveries.c.tenant_id,
            deliveries.c.channel,
            sa.func.count().label("ready"),
            sa.func.min(deliveries.c.available_at).label("oldest"),
        )
        .where(_claimable(now))
        .group_by(deliveries.c.tenant_id, deliveries.c.channel)
        .order_by(sa.func.min(deliveries.c.available_at))
        .limit(limit)
    )
    excluded = list(exclude_tenants)
    if excluded:
        statement = statement.where(deliveries.c.tenant_id.not_in(excluded))
    return [
        ChannelWork(row.tenant_id, row.channel, row.ready, utc(row.oldest))
        for row in connection.execute(statement)
    ]


def ready_count(connection: sa.Connection, tenant_id: str, channel: str, now: datetime) -> int:
    """How many deliveries of one channel are ready now."""
    statement = (
        sa.select(sa.func.count())
        .select_from(deliveries)
        .where(
            _claimable(now), deliveries.c.tenant_id == tenant_id, deliveries.c.channel == channel
        )
    )
    return int(connection.execute(statement).scalar_one())


def claim(
    connection: sa.Connection,
    *,
    tenant_id: str,
    channel: str,
    now: datetime,
    owner: str,
    lease_until: datetime,
    limit: int,
) -> list[Claimed]:
    """Lease up to ``limit`` ready deliveries of one channel, oldest first."""
    candidates = (
        sa.select(deliveries.c.id)
        .where(
            _claimable(now), deliveries.c.tenant_id == tenant_id, deliveries.c.channel == channel
        )
        .order_by(deliveries.c.available_at, deliveries.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = [row.id for row in connection.execute(candidates)]
    if not ids:
        return []
    rows = list(
        connection.execute(
            deliveries.update()
            .where(deliveries.c.id.in_(ids), _claimable(now))
            .values(lease_owner=owner, lease_until=lease_until)
            .returning(
                deliveries.c.id,
                deliveries.c.tenant_id,
                deliveries.c.group_hash,
                deliveries.c.channel,
                deliveries.c.locale,
                deliveries.c.version,
                deliveries.c.attempts,
                deliveries.c.message_kind,
                deliveries.c.message_channel_id,
                deliveries.c.message_ts,
                deliveries.c.message_episode,
                deliveries.c.pending_since,
                deliveries.c.available_at,
                deliveries.c.held_at,
                deliveries.c.acked_ts,
                deliveries.c.acked_by,
                deliveries.c.acked_at,
            )
        )
    )
    rows.sort(key=lambda r: (utc(r.available_at), r.id))
    return [
        Claimed(
            r.id,
            r.tenant_id,
            r.group_hash,
            r.channel,
            r.locale,
            r.version,
            r.attempts,
            r.message_kind,
            r.message_channel_id,
            r.message_ts,
            r.message_episode,
            utc(r.pending_since),
            utc(r.held_at),
            Ack(r.acked_by, utc(r.acked_at))
            if r.acked_ts is not None and r.acked_ts == r.message_ts and r.acked_at is not None
            else None,
        )
        for r in rows
    ]


def load_groups(
    connection: sa.Connection, tenant_id: str, group_hashes: Iterable[str]
) -> dict[str, StoredGroup]:
    wanted = sorted(set(group_hashes))
    if not wanted:
        return {}
    rows = connection.execute(
        sa.select(alert_groups).where(
            alert_groups.c.tenant_id == tenant_id, alert_groups.c.group_hash.in_(wanted)
        )
    )
    return {row.group_hash: stored_from_row(row) for row in rows}


def record_sent(connection: sa.Connection, sent: Sequence[Sent], now: datetime) -> None:
    """Record what Slack accepted; a delivery that changed meanwhile stays pending."""
    if not sent:
        return
    same = deliveries.c.version == sa.bindparam("b_version")
    connection.execute(
        deliveries.update()
        .where(deliveries.c.id == sa.bindparam("b_id"))
        .values(
            delivered_version=sa.bindparam("b_version"),
            state=sa.case((same, DeliveryState.DONE.value), else_=DeliveryState.PENDING.value),
            # Changed during the send: pending since that change (stamped in updated_at).
            pending_since=sa.case((same, None), else_=deliveries.c.updated_at),
            attempts=0,
            last_error=None,
            lease_owner=None,
            lease_until=None,
            message_kind=sa.bindparam("b_kind"),
            message_channel_id=sa.bindparam("b_channel_id"),
            message_ts=sa.bindparam("b_ts"),
            message_episode=sa.bindparam("b_episode"),
            delivered_at=now,
            held_at=None,
            updated_at=now,
        ),
        [
            {
                "b_id": s.id,
                "b_version": s.version,
                "b_kind": s.message_kind,
                "b_channel_id": s.channel_id,
                "b_ts": s.ts,
                "b_episode": s.episode,
            }
            for s in sent
        ],
    )


def release(
    connection: sa.Connection,
    ids: Sequence[int],
    *,
    owner: str,
    available_at: datetime,
    count_attempt: bool,
    error: str | None,
    now: datetime,
) -> None:
    """Give deliveries back to the queue, to be tried again at ``available_at``."""
    if not ids:
        return
    connection.execute(
        deliveries.update()
        .where(deliveries.c.id.in_(list(ids)), deliveries.c.lease_owner == owner)
        .values(
            lease_owner=None,
            lease_until=None,
            available_at=available_at,
            attempts=deliveries.c.attempts + (1 if count_attempt else 0),
            last_error=error if error is not None else deliveries.c.last_error,
            updated_at=now,
        )
    )


def hold(
    connection: sa.Connection, ids: Sequence[int], *, owner: str, until: datetime, now: datetime
) -> int:
    """Hold deliveries back until ``until`` (a quota's window reopens), spending no attempt.

    Returns how many were not held already: each is counted as held once, however
    many windows it waits.
    """
    if not ids:
        return 0
    mine = sa.and_(deliveries.c.id.in_(list(ids)), deliveries.c.lease_owner == owner)
    newly = connection.execute(
        sa.select(sa.func.count()).where(mine, deliveries.c.held_at.is_(None))
    ).scalar_one()
    connection.execute(
        deliveries.update()
        .where(mine)
        .values(
            lease_owner=None,
            lease_until=None,
            available_at=until,
            held_at=sa.func.coalesce(deliveries.c.held_at, now),
            updated_at=now,
        )
    )
    return int(newly)


def bury(
    connection: sa.Connection, ids: Sequence[int], *, owner: str, reason: str, now: datetime
) -> None:
    """Make deliveries dead letters, with the reason (replayable later)."""
    if not ids:
        return
    connection.execute(
        deliveries.update()
        .where(deliveries.c.id.in_(list(ids)), deliveries.c.lease_owner == owner)
        .values(
            state=DeliveryState.DEAD.value,
            last_error=reason[:200],
            lease_owner=None,
            lease_until=None,
            attempts=deliveries.c.attempts + 1,
            updated_at=now,
        )
    )


def forget_messages(connection: sa.Connection, ids: Sequence[int]) -> None:
    """Forget the Slack message of deliveries (it cannot be edited): the next send posts anew."""
    if not ids:
        return
    connection.execute(
        deliveries.update()
        .where(deliveries.c.id.in_(list(ids)))
        .values(message_kind=None, message_channel_id=None, message_ts=None, message_episode=None)
    )
