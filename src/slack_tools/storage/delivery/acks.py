"""Acknowledgements: someone pressed "Acknowledge" on a group's message in Slack.

The acknowledgement is kept on the delivery that owns the message, and that delivery is
made pending again, so the dispatcher edits the message to show it — through the same
pacing, breaker, retries and one-send-in-flight rule as every other change, so it can
neither overtake nor be overwritten by an update of the group already on its way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa

from slack_tools.storage.delivery.model import utc
from slack_tools.storage.group_writes import BUMP_DELIVERY
from slack_tools.storage.tables import deliveries

_ACKNOWLEDGE = sa.text(
    "UPDATE deliveries SET acked_ts = :ts, acked_by = :by, acked_at = :now, "  # noqa: S608 - constant fragments, values bound  # nosec B608
    + BUMP_DELIVERY
    + " WHERE id = :id"
)


class AckOutcome(StrEnum):
    RECORDED = "recorded"
    ALREADY = "already"  # someone acknowledged this message before
    UNKNOWN = "unknown"  # not a current group message of this tenant


@dataclass(frozen=True, slots=True)
class Acknowledged:
    outcome: AckOutcome
    group_hash: str | None = None
    by: str | None = None
    at: datetime | None = None


def acknowledge(
    connection: sa.Connection,
    tenant_id: str,
    channel_id: str,
    ts: str,
    user: str,
    now: datetime,
) -> Acknowledged:
    """Record ``user``'s acknowledgement of the group message ``ts`` in ``channel_id``.

    Only the tenant's current message of a group counts (a digest, an older episode's
    message or another tenant's message is UNKNOWN); the first acknowledgement wins.
    """
    row = connection.execute(
        sa.select(
            deliveries.c.id,
            deliveries.c.group_hash,
            deliveries.c.acked_ts,
            deliveries.c.acked_by,
            deliveries.c.acked_at,
        )
        .where(
            deliveries.c.tenant_id == tenant_id,
            deliveries.c.message_channel_id == channel_id,
            deliveries.c.message_ts == ts,
            deliveries.c.message_kind == "group",
        )
        .with_for_update()
    ).first()
    if row is None:
        return Acknowledged(AckOutcome.UNKNOWN)
    if row.acked_ts == ts:
        return Acknowledged(AckOutcome.ALREADY, row.group_hash, row.acked_by, utc(row.acked_at))
    connection.execute(_ACKNOWLEDGE, {"ts": ts, "by": user, "now": now, "id": row.id})
    return Acknowledged(AckOutcome.RECORDED, row.group_hash, user, now)


def acknowledgements_by(
    connection: sa.Connection, user: str, tenant_id: str | None = None
) -> list[dict[str, object]]:
    """Every acknowledgement ``user`` made that is still stored, in one tenant or all
    (for a GDPR export)."""
    statement = sa.select(
        deliveries.c.tenant_id,
        deliveries.c.message_channel_id,
        deliveries.c.acked_ts,
        deliveries.c.acked_at,
    ).where(deliveries.c.acked_by == user)
    if tenant_id is not None:
        statement = statement.where(deliveries.c.tenant_id == tenant_id)
    rows = connection.execute(statement)
    return [
        {
            "tenant": r.tenant_id,
            "channel": r.message_channel_id,
            "message_ts": r.acked_ts,
            "at": utc(r.acked_at).isoformat() if r.acked_at else None,
        }
        for r in rows
    ]


def forget_acknowledgements_by(
    connection: sa.Connection, user: str, tenant_id: str | None = None
) -> int:
    """Erase ``user`` from their acknowledgements (in one tenant, or all): the fact stays,
    the who goes (GDPR erasure)."""
    statement = deliveries.update().where(deliveries.c.acked_by == user)
    if tenant_id is not None:
        statement = statement.where(deliveries.c.tenant_id == tenant_id)
    return connection.execute(statement.values(acked_by=None)).rowcount or 0
