"""Writing what a sender says about a group, and marking its deliveries pending."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from slack_tools.storage import group_writes as sql
from slack_tools.storage.delivery.model import (
    DeliveryState,
    GroupResult,
    Merge,
    StoredGroup,
    TargetWrite,
    WriteOutcome,
)
from slack_tools.storage.tables import alert_groups, deliveries


class ChangeReason(StrEnum):
    """Why a notification is (or is not) a change of its group."""

    FIRST = "first notification of the group"
    CHANGED = "alerts or states changed"
    REFIRED = "fired again after it resolved: a new episode, a new message"
    DUPLICATE = "same state as stored (a copy, e.g. from an Alertmanager replica)"


@dataclass(frozen=True, slots=True)
class KnownState:
    state_hash: str
    status: str
    episode: int


def classify_change(known: KnownState | None, status: str, state_hash: str) -> ChangeReason:
    """Decide what a notification is for its group, from what is stored (pure)."""
    if known is None:
        return ChangeReason.FIRST
    if known.state_hash == state_hash:
        return ChangeReason.DUPLICATE
    if known.status == "resolved" and status == "firing":
        return ChangeReason.REFIRED
    return ChangeReason.CHANGED


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
        known = KnownState(*state) if state is not None else None
        reason = classify_change(known, change.status, change.state_hash)
        if reason is ChangeReason.DUPLICATE:
            return GroupResult(group_hash, WriteOutcome.DUPLICATE, 0)
        values = {
            **key,
            "status": change.status,
            "state_hash": change.state_hash,
            "now": stamp,
            "alerts": driver.json(change.alerts),
            "meta": driver.json(change.meta),
        }
        if known is None:
            values.update(group_key=group_key, source=source)
            if driver.execute(sql.INSERT_GROUP, values).fetchone() is None:
                continue  # another instance created it meanwhile: read it and merge again
        else:
            refired = reason is ChangeReason.REFIRED
            values["episode"] = known.episode + 1 if refired else known.episode
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


def hold_unsent(
    connection: sa.Connection, tenant_id: str, group_hash: str, *, until: datetime, now: datetime
) -> int:
    """Hold a group's deliveries that have no message for its current episode until ``until``.

    An update of a message already sent, or being sent, is never held (a resolve
    always goes through). Returns how many were not held already.
    """
    episode = (
        sa.select(alert_groups.c.episode)
        .where(alert_groups.c.tenant_id == tenant_id, alert_groups.c.group_hash == group_hash)
        .scalar_subquery()
    )
    unsent = sa.and_(
        deliveries.c.tenant_id == tenant_id,
        deliveries.c.group_hash == group_hash,
        deliveries.c.state == DeliveryState.PENDING.value,
        sa.or_(deliveries.c.message_ts.is_(None), deliveries.c.message_episode != episode),
        # One being sent now gets its message: the change that follows is an update.
        deliveries.c.lease_owner.is_(None),
    )
    newly = connection.execute(
        sa.select(sa.func.count()).where(unsent, deliveries.c.held_at.is_(None))
    ).scalar_one()
    connection.execute(
        deliveries.update()
        .where(unsent)
        .values(
            available_at=until,
            held_at=sa.func.coalesce(deliveries.c.held_at, now),
        )
    )
    return int(newly)
