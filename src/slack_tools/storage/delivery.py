"""Alert groups and their deliveries: the transactional outbox.

``write_group`` stores what a sender says about a group and marks each channel's
delivery pending, in the caller's transaction, so an accepted alert is durable
exactly when its notification is. The dispatcher then claims deliveries with a
lease (and ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), sends the group's current
state, and records what it sent.

Deliveries are level-triggered: a row says "this channel should show version N of
the group"; changes that arrive before a send are merged into it, and the send
always shows the group as it is. One row per (tenant, group, channel) means at
most one send in flight for it, so a resolve never overtakes the post it edits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, overload

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from slack_tools.storage import group_writes as sql
from slack_tools.storage.tables import alert_groups, deliveries


class DeliveryState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    DEAD = "dead"


class WriteOutcome(StrEnum):
    QUEUED = "queued"  # at least one channel will be sent the new state
    DUPLICATE = "duplicate"  # the group already is in this state (Alertmanager HA copies)
    UNROUTED = "unrouted"  # stored, but no channel is to be told (below threshold, never posted)


@dataclass(frozen=True, slots=True)
class StoredGroup:
    tenant_id: str
    group_hash: str
    group_key: str
    source: str
    status: str
    state_hash: str
    episode: int
    alerts: list[dict[str, Any]]
    meta: dict[str, Any]
    received_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class GroupChange:
    """The new state of a group, computed by the caller from the stored one."""

    status: str
    state_hash: str
    alerts: list[dict[str, Any]]
    meta: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TargetWrite:
    channel: str
    locale: str
    passes_threshold: bool


@dataclass(frozen=True, slots=True)
class GroupResult:
    group_hash: str
    outcome: WriteOutcome
    deliveries: int


@dataclass(frozen=True, slots=True)
class ChannelWork:
    tenant_id: str
    channel: str
    ready: int
    oldest: datetime


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    tenant_id: str
    group_hash: str
    channel: str
    locale: str
    version: int
    attempts: int
    message_kind: str | None
    message_channel_id: str | None
    message_ts: str | None
    message_episode: int | None
    pending_since: datetime | None


@dataclass(frozen=True, slots=True)
class Sent:
    """What a successful send produced, for one delivery."""

    id: int
    version: int
    message_kind: str
    channel_id: str
    ts: str
    episode: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    tenant_id: str
    group_key: str
    channel: str
    reason: str
    attempts: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class QueueStats:
    pending_by_tenant: dict[str, int]
    dead_by_tenant: dict[str, int]
    oldest_pending_since: datetime | None

    @property
    def pending(self) -> int:
        return sum(self.pending_by_tenant.values())

    @property
    def dead(self) -> int:
        return sum(self.dead_by_tenant.values())


Merge = Callable[[StoredGroup | None], GroupChange]


@overload
def utc(value: datetime) -> datetime: ...
@overload
def utc(value: None) -> None: ...
def utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _insert(connection: sa.Connection, table: sa.Table) -> Any:
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _stored(row: Any) -> StoredGroup:
    return StoredGroup(
        tenant_id=row.tenant_id,
        group_hash=row.group_hash,
        group_key=row.group_key,
        source=row.source,
        status=row.status,
        state_hash=row.state_hash,
        episode=row.episode,
        alerts=list(row.alerts),
        meta=dict(row.meta),
        received_at=utc(row.received_at),
        updated_at=utc(row.updated_at),
    )


def _group_key(tenant_id: str, group_hash: str) -> sa.ColumnElement[bool]:
    return sa.and_(alert_groups.c.tenant_id == tenant_id, alert_groups.c.group_hash == group_hash)


# --- ingest -----------------------------------------------------------------------------


def write_group(
    connection: sa.Connection,
    *,
    tenant_id: str,
    group_hash: str,
    group_key: str,
    source: str,
    merge: Merge,
    targets: Sequence[TargetWrite],
    now: datetime,
    merge_needs_alerts: bool = True,
) -> GroupResult:
    """Store a group's new state and mark its deliveries pending, in the caller's transaction.

    The stored row is read with a row lock (PostgreSQL), so two instances receiving
    the same notification at once see each other's write: the second finds the state
    unchanged and queues nothing. ``merge_needs_alerts=False`` spares reading the
    stored alerts when the new state replaces them whole (Alertmanager, Grafana).
    """
    driver = sql.Driver(connection)
    key = {"tenant_id": tenant_id, "group_hash": group_hash}
    stamp = driver.when(now)
    for _ in range(3):
        if merge_needs_alerts:
            row = driver.execute(sql.SELECT_FULL, key).fetchone()
            stored = _stored_row(driver, row) if row is not None else None
            state = (stored.state_hash, stored.status, stored.episode) if stored else None
        else:
            found = driver.execute(sql.SELECT_STATE, key).fetchone()
            state = (found[0], found[1], found[2]) if found is not None else None
            stored = None
        change = merge(stored)
        if state is not None and state[0] == change.state_hash:
            return GroupResult(group_hash, WriteOutcome.DUPLICATE, 0)
        values = {
            **key,
            "status": change.status,
            "state_hash": change.state_hash,
            "now": stamp,
            "alerts": driver.json(change.alerts),
            "meta": driver.json(change.meta),
        }
        if state is None:
            values.update(group_key=group_key, source=source)
            if driver.execute(sql.INSERT_GROUP, values).fetchone() is None:
                continue  # another instance created it meanwhile: read it and merge again
        else:
            refired = state[1] == "resolved" and change.status == "firing"
            values["episode"] = state[2] + 1 if refired else state[2]
            driver.execute(sql.UPDATE_GROUP, values)
        touched = _mark_pending(driver, key, change.status, targets, stamp)
        outcome = WriteOutcome.QUEUED if touched else WriteOutcome.UNROUTED
        return GroupResult(group_hash, outcome, touched)
    msg = f"group {group_hash} kept changing under concurrent writes"
    raise RuntimeError(msg)


def _stored_row(driver: sql.Driver, row: Sequence[Any]) -> StoredGroup:
    return StoredGroup(
        tenant_id=row[0],
        group_hash=row[1],
        group_key=row[2],
        source=row[3],
        status=row[4],
        state_hash=row[5],
        episode=int(row[6]),
        alerts=list(driver.load(row[7])),
        meta=dict(driver.load(row[8])),
        received_at=driver.read_time(row[9]),
        updated_at=driver.read_time(row[10]),
    )


def _mark_pending(
    driver: sql.Driver,
    key: dict[str, str],
    status: str,
    targets: Sequence[TargetWrite],
    stamp: Any,
) -> int:
    touched = 0
    for target in targets:
        params = {**key, "channel": target.channel, "locale": target.locale, "now": stamp}
        if status == "firing" and target.passes_threshold:
            driver.execute(sql.UPSERT_DELIVERY, params)
            touched += 1
        else:
            # Below the threshold, or resolved: only a channel already told hears of it.
            touched += int(driver.execute(sql.BUMP_CHANNEL, params).rowcount)
    # A channel that was told but is no longer routed to (the routes changed) still hears
    # of every change, so that a notified alert's resolve always goes through.
    channels = [target.channel for target in targets]
    params = {**key, "now": stamp, **sql.routed_params(channels)}
    touched += int(driver.execute(sql.bump_told_elsewhere(len(channels)), params).rowcount)
    return touched


# --- dispatch ---------------------------------------------------------------------------


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
    return {row.group_hash: _stored(row) for row in rows}


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


# --- operations -------------------------------------------------------------------------


def dead_letters(
    connection: sa.Connection, tenant_id: str | None = None, limit: int = 1000
) -> list[DeadLetter]:
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
        .where(deliveries.c.state == DeliveryState.DEAD.value)
        .order_by(deliveries.c.updated_at.desc(), deliveries.c.id.desc())
        .limit(limit)
    )
    if tenant_id is not None:
        statement = statement.where(deliveries.c.tenant_id == tenant_id)
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
    *,
    now: datetime,
    ids: Sequence[int] | None = None,
    tenant_id: str | None = None,
) -> int:
    """Queue dead letters again (by id, by tenant, or all); returns how many."""
    condition = deliveries.c.state == DeliveryState.DEAD.value
    if ids is not None:
        condition = sa.and_(condition, deliveries.c.id.in_(list(ids)))
    if tenant_id is not None:
        condition = sa.and_(condition, deliveries.c.tenant_id == tenant_id)
    return int(
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
