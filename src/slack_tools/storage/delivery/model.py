"""The outbox's values: groups as stored, deliveries as claimed, outcomes and statistics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, overload


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
    held_at: datetime | None = None  # held back by the tenant's quota since then
    ack: Ack | None = None  # the acknowledgement of the current message, if any


@dataclass(frozen=True, slots=True)
class Ack:
    """Someone acknowledged the message: ``by`` a Slack user id (None once erased)."""

    by: str | None
    at: datetime


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


def stored_from_row(row: Any) -> StoredGroup:
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
