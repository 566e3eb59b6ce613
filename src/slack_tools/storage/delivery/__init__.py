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

from slack_tools.storage.delivery.acks import (
    Acknowledged,
    AckOutcome,
    acknowledge,
    acknowledgements_by,
    forget_acknowledgements_by,
)
from slack_tools.storage.delivery.dispatch import (
    bury,
    claim,
    forget_messages,
    hold,
    load_groups,
    ready_channels,
    record_sent,
    release,
)
from slack_tools.storage.delivery.ingest import (
    hold_unsent,
    write_group,
)
from slack_tools.storage.delivery.model import (
    Ack,
    ChannelWork,
    Claimed,
    DeadLetter,
    DeliveryState,
    GroupChange,
    GroupResult,
    Merge,
    QueueStats,
    Sent,
    StoredGroup,
    TargetWrite,
    WriteOutcome,
    stored_from_row,
    utc,
)
from slack_tools.storage.delivery.operations import (
    dead_letters,
    expire,
    prune,
    queue_stats,
    replay,
)

__all__ = [
    "Ack",
    "AckOutcome",
    "Acknowledged",
    "ChannelWork",
    "Claimed",
    "DeadLetter",
    "DeliveryState",
    "GroupChange",
    "GroupResult",
    "Merge",
    "QueueStats",
    "Sent",
    "StoredGroup",
    "TargetWrite",
    "WriteOutcome",
    "acknowledge",
    "acknowledgements_by",
    "bury",
    "claim",
    "dead_letters",
    "expire",
    "forget_acknowledgements_by",
    "forget_messages",
    "hold",
    "hold_unsent",
    "load_groups",
    "prune",
    "queue_stats",
    "ready_channels",
    "record_sent",
    "release",
    "replay",
    "stored_from_row",
    "utc",
    "write_group",
]
