"""Every table of the shared database, in one SQLAlchemy ``MetaData``."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# One row per versioned configuration document: the global overrides, one per
# tenant, one per (tenant, user). Empty strings, not NULLs, fill the unused ids so
# that the unique constraint holds on every database.
config_documents = Table(
    "config_documents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(16), nullable=False),
    Column("tenant_id", String(128), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("current_version", Integer, nullable=False),
    # Other instances poll documents updated recently and compare their versions.
    Column("updated_at", DateTime(timezone=True), nullable=False, index=True),
    UniqueConstraint("scope", "tenant_id", "user_id", name="uq_config_documents_identity"),
)

# Every version ever written. Versions are never deleted, and only key rotation
# rewrites one (the stored form of its secrets, not their values).
config_versions = Table(
    "config_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "document_id",
        Integer,
        ForeignKey("config_documents.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("version", Integer, nullable=False),
    Column("content", JSON, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("author", String(200), nullable=False),
    Column("comment", Text, nullable=False),
    Column("action", String(16), nullable=False),
    Column("based_on", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("document_id", "version", name="uq_config_versions_document_version"),
)

# --- tenants and their API keys ---------------------------------------------------------

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Strict isolation: the URL of the tenant's own database (a relative SQLite path is
    # under the data directory; never a password). NULL: the tenant's data is here.
    Column("database", String(500), nullable=True),
)

# Keys are stored as an HMAC-SHA256 digest: high-entropy random keys need no slow
# password hash, and a lookup by digest is one indexed read on the hot path.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", String(128), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("prefix", String(24), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("label", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# The data key of each partially isolated tenant, only ever stored wrapped by the master
# key. Deleting a row destroys every value encrypted with it (crypto-shredding).
tenant_data_keys = Table(
    "tenant_data_keys",
    metadata,
    Column("tenant_id", String(128), primary_key=True),
    Column("wrapped", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# --- alert groups and their deliveries (the outbox) -------------------------------------

# The current state of each notification group: what the sender last said about it.
alert_groups = Table(
    "alert_groups",
    metadata,
    Column("tenant_id", String(128), primary_key=True),
    Column("group_hash", String(32), primary_key=True),
    Column("group_key", Text, nullable=False),
    Column("source", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("state_hash", String(32), nullable=False),
    # Incremented when a resolved group fires again: a new episode gets a new message.
    Column("episode", Integer, nullable=False),
    Column("alerts", JSON, nullable=False),
    Column("meta", JSON, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, index=True),
)

# One row per (group, channel): the transactional outbox. A change of the group
# bumps ``version``; the dispatcher delivers the group's state as it is when sent and
# records the version it sent. One row per channel means at most one send in flight
# per (tenant, group, channel), so a resolve can never overtake the post it edits.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", String(128), nullable=False),
    Column("group_hash", String(32), nullable=False),
    Column("channel", String(128), nullable=False),
    Column("locale", String(16), nullable=False),
    Column("state", String(16), nullable=False),  # pending, done, dead
    Column("version", Integer, nullable=False),
    Column("delivered_version", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("available_at", DateTime(timezone=True), nullable=False),
    Column("pending_since", DateTime(timezone=True), nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("last_error", String(200), nullable=True),
    Column("message_kind", String(16), nullable=True),  # group, digest
    Column("message_channel_id", String(32), nullable=True),
    Column("message_ts", String(32), nullable=True),
    Column("message_episode", Integer, nullable=True),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    # Since when the tenant's quota holds this delivery back (None: not held).
    Column("held_at", DateTime(timezone=True), nullable=True),
    # Who acknowledged the message ``acked_ts`` (a Slack user id) and when; it applies
    # while that is still the group's message (``message_ts``), so a new episode's new
    # message starts unacknowledged without anything to reset.
    Column("acked_ts", String(32), nullable=True),
    Column("acked_by", String(64), nullable=True),
    Column("acked_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("tenant_id", "group_hash", "channel", name="uq_deliveries_target"),
)
Index("ix_deliveries_ready", deliveries.c.state, deliveries.c.available_at)
Index("ix_deliveries_tenant_state", deliveries.c.tenant_id, deliveries.c.state)
# An acknowledgement names its message by channel and ts.
Index("ix_deliveries_message", deliveries.c.message_channel_id, deliveries.c.message_ts)

# --- usage, for billing -----------------------------------------------------------------

# One row per tenant and UTC day; each counter is added to in the transaction that
# did the counted thing, so usage is exactly as durable as what it counts.
usage_daily = Table(
    "usage_daily",
    metadata,
    Column("tenant_id", String(128), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("alerts_received", BigInteger, nullable=False, default=0),
    Column("messages_sent", BigInteger, nullable=False, default=0),
    Column("messages_held", BigInteger, nullable=False, default=0),
    Column("dead_letters", BigInteger, nullable=False, default=0),
    Column("api_calls", BigInteger, nullable=False, default=0),
)

# --- the audit trail --------------------------------------------------------------------

# Append-only: each entry carries the hash of the one before it in its chain. ``actor``
# and ``subject`` are keyed pseudonyms of people, never their identity (that lives in
# audit_pseudonyms, which erasure deletes from).
audit_entries = Table(
    "audit_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("chain", String(128), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("actor_kind", String(16), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(300), nullable=False),
    Column("tenant_id", String(128), nullable=False),
    Column("subject", String(128), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("error", String(200), nullable=False),
    Column("correlation_id", String(128), nullable=False),
    Column("diff", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("chain", "seq", name="uq_audit_entries_chain_seq"),
)
Index("ix_audit_entries_tenant_at", audit_entries.c.tenant_id, audit_entries.c.at)
Index("ix_audit_entries_action", audit_entries.c.action)
Index("ix_audit_entries_actor", audit_entries.c.actor)
Index("ix_audit_entries_subject", audit_entries.c.subject)

# One row per chain: its head (the last entry's hash and the number of entries). Appends
# lock it, so they are serialised per chain; it also shows a chain cut at its tail.
audit_chains = Table(
    "audit_chains",
    metadata,
    Column("chain", String(128), primary_key=True),
    Column("length", BigInteger, nullable=False),
    Column("head_hash", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Pseudonym → identity: the one place a person's id sits beside the audit trail.
audit_pseudonyms = Table(
    "audit_pseudonyms",
    metadata,
    Column("pseudonym", String(128), primary_key=True),
    Column("identity", String(300), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Keys of the audit trail (the pseudonym key), stored wrapped by the master key.
audit_keys = Table(
    "audit_keys",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("wrapped", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
