"""The audit trail's storage: hash-chained, append-only entries and their chain heads.

Each entry holds the SHA-256 of its own canonical encoding and of the entry before
it in its chain, so an edited, removed or moved entry breaks the chain where it
happened. The chain's head row (last hash, number of entries) is locked by every
append — ``SELECT … FOR UPDATE`` on PostgreSQL, the write lock ``BEGIN IMMEDIATE``
already holds on SQLite — so appends from several instances are serialised per
chain and never fork it; the head also shows a chain cut at its tail.

A hash chain is a dozen lines over :mod:`hashlib`; the libraries that offer one
(immudb clients, Trillian) need a server of their own, which the embedded SQLite
deployment must not require.

Appends take the caller's connection, so a change and its entry commit together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from slack_tools.storage.tables import audit_chains, audit_entries, audit_keys, audit_pseudonyms

GLOBAL_CHAIN = "global"
GENESIS = "0" * 64
_READ_BATCH = 1000


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"


@dataclass(frozen=True)
class Draft:
    """An entry to append: everything but its place in the chain.

    ``actor`` and ``subject`` are pseudonyms; ``identities`` maps the pseudonyms the
    entry introduces to who they stand for (stored beside it, erasable).
    """

    action: str
    actor: str
    actor_kind: str
    target: str = ""
    tenant_id: str = ""
    subject: str = ""
    outcome: Outcome = Outcome.SUCCESS
    error: str = ""
    correlation_id: str = ""
    diff: Mapping[str, Any] = field(default_factory=dict)
    chain: str = GLOBAL_CHAIN
    identities: Mapping[str, str] = field(default_factory=dict)

    def with_diff(self, **more: Any) -> Draft:
        """The same draft with more facts in its diff (counts known only in the transaction)."""
        return replace(self, diff={**self.diff, **more})


@dataclass(frozen=True)
class StoredEntry:
    """An entry as stored."""

    id: int
    chain: str
    seq: int
    at: datetime
    actor: str
    actor_kind: str
    action: str
    target: str
    tenant_id: str
    subject: str
    outcome: str
    error: str
    correlation_id: str
    diff: Mapping[str, Any]
    prev_hash: str
    hash: str

    def hashed_fields(self) -> dict[str, Any]:
        return hashed_fields(
            chain=self.chain,
            at=self.at,
            actor=self.actor,
            actor_kind=self.actor_kind,
            action=self.action,
            target=self.target,
            tenant_id=self.tenant_id,
            subject=self.subject,
            outcome=self.outcome,
            error=self.error,
            correlation_id=self.correlation_id,
            diff=self.diff,
            prev_hash=self.prev_hash,
        )


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def hashed_fields(*, at: datetime, **values: Any) -> dict[str, Any]:
    """What an entry's hash covers: everything but its row id and position.

    The position (``seq``) is left out on purpose: an entry moved to another place
    still hashes as itself, and only its link to the previous entry breaks, so
    verification can tell a reordered entry from an edited one.
    """
    return {**values, "at": _utc(at).astimezone(UTC).isoformat(timespec="microseconds")}


def entry_hash(fields: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON encoding (sorted keys, no spaces, UTF-8)."""
    encoded = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _insert_ignoring_conflict(connection: sa.Connection, table: sa.Table, **values: Any) -> None:
    dialect = connection.dialect.name
    maker: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    connection.execute(maker(table).values(**values).on_conflict_do_nothing())


def _lock_head(connection: sa.Connection, chain: str, now: datetime) -> sa.Row[Any]:
    """The chain's head, locked until the transaction ends (created on first use)."""
    _insert_ignoring_conflict(
        connection, audit_chains, chain=chain, length=0, head_hash=GENESIS, updated_at=now
    )
    statement = sa.select(audit_chains).where(audit_chains.c.chain == chain)
    if connection.dialect.name == "postgresql":
        statement = statement.with_for_update()
    return connection.execute(statement).one()


def append(connection: sa.Connection, draft: Draft, *, now: datetime | None = None) -> StoredEntry:
    """Append ``draft`` to its chain in the caller's (write) transaction."""
    now = _utc(now or datetime.now(UTC))
    head = _lock_head(connection, draft.chain, now)
    for pseudonym, identity in draft.identities.items():
        _insert_ignoring_conflict(
            connection, audit_pseudonyms, pseudonym=pseudonym, identity=identity, created_at=now
        )
    values: dict[str, Any] = {
        "chain": draft.chain,
        "actor": draft.actor,
        "actor_kind": draft.actor_kind,
        "action": draft.action,
        "target": draft.target,
        "tenant_id": draft.tenant_id,
        "subject": draft.subject,
        "outcome": draft.outcome.value,
        "error": draft.error,
        "correlation_id": draft.correlation_id,
        "diff": dict(draft.diff),
        "prev_hash": head.head_hash,
    }
    # Hashed as it will read back: JSON has no tuples, and timestamps keep microseconds.
    values["diff"] = json.loads(json.dumps(values["diff"], default=str))
    digest = entry_hash(hashed_fields(at=now, **values))
    seq = int(head.length) + 1
    entry_id = connection.execute(
        audit_entries.insert().values(**values, seq=seq, at=now, hash=digest)
    ).inserted_primary_key[0]  # type: ignore[index]
    connection.execute(
        audit_chains.update()
        .where(audit_chains.c.chain == draft.chain)
        .values(length=seq, head_hash=digest, updated_at=now)
    )
    return StoredEntry(id=int(entry_id), seq=seq, at=now, hash=digest, **values)


def _entry(row: Any) -> StoredEntry:
    return StoredEntry(
        id=row.id,
        chain=row.chain,
        seq=int(row.seq),
        at=_utc(row.at),
        actor=row.actor,
        actor_kind=row.actor_kind,
        action=row.action,
        target=row.target,
        tenant_id=row.tenant_id,
        subject=row.subject,
        outcome=row.outcome,
        error=row.error,
        correlation_id=row.correlation_id,
        diff=row.diff,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


@dataclass(frozen=True)
class Filters:
    """Which entries to list; ``None`` leaves a criterion out."""

    tenant_id: str | None = None
    since: datetime | None = None
    action: str | None = None
    actors: Sequence[str] | None = None
    subjects: Sequence[str] | None = None
    limit: int = 1000


def entries(connection: sa.Connection, filters: Filters) -> list[StoredEntry]:
    """Entries matching ``filters``, newest first (``actors``/``subjects``: either matches)."""
    statement = sa.select(audit_entries).order_by(audit_entries.c.id.desc()).limit(filters.limit)
    if filters.tenant_id is not None:
        statement = statement.where(audit_entries.c.tenant_id == filters.tenant_id)
    if filters.since is not None:
        statement = statement.where(audit_entries.c.at >= filters.since)
    if filters.action is not None:
        # ``tenant`` lists every tenant action; ``tenant.create`` that one.
        statement = statement.where(
            sa.or_(
                audit_entries.c.action == filters.action,
                audit_entries.c.action.startswith(f"{filters.action}.", autoescape=True),
            )
        )
    people = []
    if filters.actors is not None:
        people.append(audit_entries.c.actor.in_(list(filters.actors)))
    if filters.subjects is not None:
        people.append(audit_entries.c.subject.in_(list(filters.subjects)))
    if people:
        statement = statement.where(sa.or_(*people))
    return [_entry(row) for row in connection.execute(statement)]


def chain_entries(engine: sa.Engine, chain: str) -> Iterator[StoredEntry]:
    """Every entry of ``chain`` in order, read in batches (a chain may be long)."""
    after = 0
    while True:
        with engine.connect() as connection:
            rows = list(
                connection.execute(
                    sa.select(audit_entries)
                    .where(audit_entries.c.chain == chain, audit_entries.c.seq > after)
                    .order_by(audit_entries.c.seq, audit_entries.c.id)
                    .limit(_READ_BATCH)
                )
            )
        if not rows:
            return
        for row in rows:
            yield _entry(row)
        after = int(rows[-1].seq)


@dataclass(frozen=True)
class ChainHead:
    chain: str
    length: int
    head_hash: str


def heads(connection: sa.Connection) -> list[ChainHead]:
    return [
        ChainHead(r.chain, int(r.length), r.head_hash)
        for r in connection.execute(sa.select(audit_chains).order_by(audit_chains.c.chain))
    ]


def chains_in_entries(connection: sa.Connection) -> list[str]:
    """Chains that have entries (a chain whose head row was removed still shows here)."""
    return [
        str(c) for c in connection.execute(sa.select(audit_entries.c.chain).distinct()).scalars()
    ]


# --- pseudonyms ------------------------------------------------------------------------------


def identities(connection: sa.Connection, pseudonyms: Sequence[str]) -> dict[str, str]:
    """Who each known pseudonym stands for (erased ones are absent)."""
    if not pseudonyms:
        return {}
    rows = connection.execute(
        sa.select(audit_pseudonyms).where(audit_pseudonyms.c.pseudonym.in_(list(set(pseudonyms))))
    )
    return {r.pseudonym: r.identity for r in rows}


def forget_pseudonym(connection: sa.Connection, pseudonym: str) -> int:
    """Delete a pseudonym's mapping to its identity; returns rows deleted (0 or 1)."""
    return int(
        connection.execute(
            audit_pseudonyms.delete().where(audit_pseudonyms.c.pseudonym == pseudonym)
        ).rowcount
    )


def stored_key(connection: sa.Connection, name: str) -> str | None:
    found = connection.execute(
        sa.select(audit_keys.c.wrapped).where(audit_keys.c.name == name)
    ).scalar()
    return None if found is None else str(found)


def keep_key(connection: sa.Connection, name: str, wrapped: str) -> str:
    """Store a key unless one is stored under ``name``; returns the one kept."""
    _insert_ignoring_conflict(
        connection, audit_keys, name=name, wrapped=wrapped, created_at=datetime.now(UTC)
    )
    kept = stored_key(connection, name)
    assert kept is not None
    return kept


def replace_key(connection: sa.Connection, name: str, wrapped: str) -> None:
    connection.execute(audit_keys.update().where(audit_keys.c.name == name).values(wrapped=wrapped))
