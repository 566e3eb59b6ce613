"""Versioned documents: every write is a new version; nothing is ever overwritten.

Writes are check-and-set: a write names the version it was based on and is
refused with :class:`ConflictError` when another write got there first, so no
change is lost silently. A rollback is an ordinary write whose content is an
old version's.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from slack_tools.errors import ConflictError, NotFoundError, StorageError
from slack_tools.storage import audit
from slack_tools.storage.database import describe, write_transaction
from slack_tools.storage.tables import config_documents, config_versions
from slack_tools.storage.tenant_databases import TenantDatabases

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")


class Scope(StrEnum):
    GLOBAL = "global"
    TENANT = "tenant"
    USER = "user"


@dataclass(frozen=True, slots=True)
class DocumentKey:
    """Which document: the global overrides, a tenant's, or a user's within a tenant."""

    scope: Scope
    tenant_id: str = ""
    user_id: str = ""

    def __post_init__(self) -> None:
        needs = {
            Scope.GLOBAL: (False, False),
            Scope.TENANT: (True, False),
            Scope.USER: (True, True),
        }
        tenant_needed, user_needed = needs[self.scope]
        for name, value, needed in (
            ("tenant", self.tenant_id, tenant_needed),
            ("user", self.user_id, user_needed),
        ):
            if needed and not _ID.fullmatch(value):
                raise ValueError(
                    f"invalid {name} id {value!r}: letters, digits and . _ @ - (at most 128)"
                )
            if not needed and value:
                raise ValueError(f"a {self.scope} document has no {name} id")

    @classmethod
    def for_scope(cls, tenant_id: str | None = None, user_id: str | None = None) -> DocumentKey:
        """The key of the document named by optional tenant and user ids."""
        if user_id is not None:
            if tenant_id is None:
                raise ValueError("a user document belongs to a tenant: give the tenant too")
            return cls(Scope.USER, tenant_id, user_id)
        if tenant_id is not None:
            return cls(Scope.TENANT, tenant_id)
        return cls(Scope.GLOBAL)

    @property
    def label(self) -> str:
        if self.scope is Scope.USER:
            return f"user {self.user_id} of tenant {self.tenant_id}"
        if self.scope is Scope.TENANT:
            return f"tenant {self.tenant_id}"
        return "global overrides"


@dataclass(frozen=True, slots=True)
class DocumentVersion:
    """One stored version of a document."""

    key: DocumentKey
    version: int
    content: Mapping[str, Any]
    content_hash: str
    author: str
    comment: str
    action: str
    based_on: int | None
    created_at: datetime
    change_id: int


def content_hash(content: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON form of ``content``."""
    encoded = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class DocumentStore:
    """Read and append versions of configuration documents."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _select(self) -> sa.Select[Any]:
        return sa.select(
            config_versions,
            config_documents.c.scope,
            config_documents.c.tenant_id,
            config_documents.c.user_id,
        ).join(config_documents, config_documents.c.id == config_versions.c.document_id)

    def _where_key(self, key: DocumentKey) -> sa.ColumnElement[bool]:
        return sa.and_(
            config_documents.c.scope == key.scope.value,
            config_documents.c.tenant_id == key.tenant_id,
            config_documents.c.user_id == key.user_id,
        )

    @staticmethod
    def _row(row: sa.Row[Any]) -> DocumentVersion:
        return DocumentVersion(
            key=DocumentKey(Scope(row.scope), row.tenant_id, row.user_id),
            version=row.version,
            content=row.content,
            content_hash=row.content_hash,
            author=row.author,
            comment=row.comment,
            action=row.action,
            based_on=row.based_on,
            created_at=_utc(row.created_at),
            change_id=row.id,
        )

    def _fetch(self, statement: sa.Select[Any]) -> list[DocumentVersion]:
        try:
            with self._engine.connect() as connection:
                return [self._row(row) for row in connection.execute(statement)]
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot read configuration documents: {describe(exc)}") from None

    def current(self, key: DocumentKey) -> DocumentVersion | None:
        """The current version, or None when the document was never written."""
        rows = self._fetch(
            self._select().where(
                self._where_key(key),
                config_versions.c.version == config_documents.c.current_version,
            )
        )
        return rows[0] if rows else None

    def version(self, key: DocumentKey, version: int) -> DocumentVersion:
        rows = self._fetch(
            self._select().where(self._where_key(key), config_versions.c.version == version)
        )
        if not rows:
            raise NotFoundError(f"{key.label} has no version {version}")
        return rows[0]

    def history(self, key: DocumentKey) -> list[DocumentVersion]:
        """Every version, newest first."""
        return self._fetch(
            self._select().where(self._where_key(key)).order_by(config_versions.c.version.desc())
        )

    def documents(
        self, scope: Scope | None = None, tenant_id: str | None = None
    ) -> list[DocumentKey]:
        statement = sa.select(
            config_documents.c.scope, config_documents.c.tenant_id, config_documents.c.user_id
        ).order_by(
            config_documents.c.scope, config_documents.c.tenant_id, config_documents.c.user_id
        )
        if scope is not None:
            statement = statement.where(config_documents.c.scope == scope.value)
        if tenant_id is not None:
            statement = statement.where(config_documents.c.tenant_id == tenant_id)
        try:
            with self._engine.connect() as connection:
                return [
                    DocumentKey(Scope(r.scope), r.tenant_id, r.user_id)
                    for r in connection.execute(statement)
                ]
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot list configuration documents: {describe(exc)}") from None

    def current_versions(self, updated_since: datetime | None = None) -> dict[DocumentKey, int]:
        """Each document's current version (only those updated since a time, if given).

        Other instances poll this to notice writes they did not make. Comparing
        versions per document, rather than following a global sequence, cannot miss
        a write whose transaction committed after a later one (sequence order is not
        commit order on PostgreSQL).
        """
        statement = sa.select(
            config_documents.c.scope,
            config_documents.c.tenant_id,
            config_documents.c.user_id,
            config_documents.c.current_version,
        )
        if updated_since is not None:
            statement = statement.where(config_documents.c.updated_at >= updated_since)
        try:
            with self._engine.connect() as connection:
                return {
                    DocumentKey(Scope(r.scope), r.tenant_id, r.user_id): r.current_version
                    for r in connection.execute(statement)
                }
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot read configuration changes: {describe(exc)}") from None

    def append(
        self,
        key: DocumentKey,
        content: Mapping[str, Any],
        *,
        expected_version: int,
        author: str,
        comment: str = "",
        action: str = "update",
        based_on: int | None = None,
        audit_entry: audit.Draft | None = None,
    ) -> DocumentVersion:
        """Store ``content`` as version ``expected_version + 1``.

        ``expected_version`` is the version the change was based on (0: the
        document must not exist yet). Raises :class:`ConflictError` when it is no
        longer the current version. ``audit_entry`` is appended to the audit trail
        in the same transaction, with the new version number.
        """
        now = datetime.now(UTC)
        new_version = expected_version + 1
        conflict = ConflictError(
            f"{key.label} changed since version {expected_version}: "
            "read it again and re-apply your change"
        )
        try:
            with write_transaction(self._engine) as connection:
                if expected_version == 0:
                    document_id, new_version = self._create(connection, key, now)
                else:
                    updated = connection.execute(
                        config_documents.update()
                        .where(
                            self._where_key(key),
                            config_documents.c.current_version == expected_version,
                        )
                        .values(current_version=new_version, updated_at=now)
                        .returning(config_documents.c.id)
                    ).scalar()
                    if updated is None:
                        raise conflict
                    document_id = int(updated)
                change_id = connection.execute(
                    config_versions.insert().values(
                        document_id=document_id,
                        version=new_version,
                        content=dict(content),
                        content_hash=content_hash(content),
                        author=author,
                        comment=comment,
                        action=action,
                        based_on=based_on,
                        created_at=now,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
                if audit_entry is not None:
                    audit.append(connection, audit_entry.with_diff(version=new_version))
        except IntegrityError:
            raise conflict from None
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot write {key.label}: {describe(exc)}") from None
        return DocumentVersion(
            key=key,
            version=new_version,
            content=dict(content),
            content_hash=content_hash(content),
            author=author,
            comment=comment,
            action=action,
            based_on=based_on,
            created_at=now,
            change_id=int(change_id),
        )

    def _create(
        self, connection: sa.Connection, key: DocumentKey, now: datetime
    ) -> tuple[int, int]:
        """A new document, or a deleted one (a tombstone: no versions) written again.

        A tombstone continues its numbering, so an instance that knew the deleted
        document's version sees the new one as a change.
        """
        no_versions = ~sa.exists().where(config_versions.c.document_id == config_documents.c.id)
        tombstone = connection.execute(
            sa.select(config_documents.c.id, config_documents.c.current_version).where(
                self._where_key(key), no_versions
            )
        ).first()
        if tombstone is not None:
            # Guarded by the version read: a concurrent revival changes it, so this one
            # updates nothing and is a conflict (PostgreSQL re-checks only this row).
            version = int(tombstone.current_version) + 1
            revived = connection.execute(
                config_documents.update()
                .where(
                    config_documents.c.id == tombstone.id,
                    config_documents.c.current_version == tombstone.current_version,
                )
                .values(current_version=version, updated_at=now)
                .returning(config_documents.c.id)
            ).scalar()
            if revived is None:
                raise ConflictError(f"{key.label} was written by someone else at the same time")
            return int(revived), version
        created = connection.execute(
            config_documents.insert().values(
                scope=key.scope.value,
                tenant_id=key.tenant_id,
                user_id=key.user_id,
                current_version=1,
                updated_at=now,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        return int(created), 1

    def all_versions(self) -> list[DocumentVersion]:
        """Every version of every document (for key rotation)."""
        return self._fetch(self._select().order_by(config_versions.c.id))

    def reseal_version(self, change_id: int, content: Mapping[str, Any]) -> None:
        """Replace a version's stored form after its secrets were re-encrypted.

        The one exception to "never overwritten": key rotation changes how secrets
        are stored, not what they are, and an old key must be removable without
        leaving history readable only with it.
        """
        try:
            with write_transaction(self._engine) as connection:
                connection.execute(
                    config_versions.update()
                    .where(config_versions.c.id == change_id)
                    .values(content=dict(content), content_hash=content_hash(content))
                )
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot re-encrypt version {change_id}: {describe(exc)}") from None


class RoutedDocumentStore:
    """The document store of every database: each document read and written where it lives.

    Global documents are in the shared database; a tenant's document and its users'
    are in the tenant's database (its own under strict isolation).
    """

    def __init__(self, databases: TenantDatabases) -> None:
        self._databases = databases

    @staticmethod
    def _store_of(engine: Engine) -> DocumentStore:
        return DocumentStore(engine)  # holds only the engine: made per call, never stale

    def store_for(self, key: DocumentKey) -> DocumentStore:
        """The store holding ``key``'s document."""
        if key.scope is Scope.GLOBAL:
            return self._store_of(self._databases.shared.engine)
        return self._store_of(self._databases.for_tenant(key.tenant_id).engine)

    def stores(self) -> list[DocumentStore]:
        """One store per database, the shared one first."""
        return [self._store_of(database.engine) for _, database in self._databases.labelled()]

    def current(self, key: DocumentKey) -> DocumentVersion | None:
        return self.store_for(key).current(key)

    def version(self, key: DocumentKey, version: int) -> DocumentVersion:
        return self.store_for(key).version(key, version)

    def history(self, key: DocumentKey) -> list[DocumentVersion]:
        return self.store_for(key).history(key)

    def documents(
        self, scope: Scope | None = None, tenant_id: str | None = None
    ) -> list[DocumentKey]:
        if tenant_id is not None:
            return self._store_of(self._databases.for_tenant(tenant_id).engine).documents(
                scope, tenant_id
            )
        return sorted(
            {key for store in self.stores() for key in store.documents(scope)},
            key=lambda key: (key.scope.value, key.tenant_id, key.user_id),
        )

    def reachable_versions(
        self, updated_since: datetime | None = None
    ) -> tuple[dict[DocumentKey, int], list[str]]:
        """:meth:`DocumentStore.current_versions` of every database that answers, and the
        strict tenants whose database did not (the shared database must answer)."""
        found: dict[DocumentKey, int] = {}
        unreachable: list[str] = []
        for tenant_id, database in self._databases.reachable(lambda t, _: unreachable.append(t)):
            try:
                found.update(self._store_of(database.engine).current_versions(updated_since))
            except StorageError:
                if tenant_id is None:
                    raise
                unreachable.append(tenant_id)
        return found, unreachable

    def append(
        self,
        key: DocumentKey,
        content: Mapping[str, Any],
        *,
        expected_version: int,
        author: str,
        comment: str = "",
        action: str = "update",
        based_on: int | None = None,
        audit_entry: audit.Draft | None = None,
    ) -> DocumentVersion:
        return self.store_for(key).append(
            key,
            content,
            expected_version=expected_version,
            author=author,
            comment=comment,
            action=action,
            based_on=based_on,
            audit_entry=audit_entry,
        )


# --- a person's documents (GDPR export and erasure) -----------------------------------------


def user_document_keys(
    connection: sa.Connection, user_id: str, tenant_id: str | None = None
) -> list[DocumentKey]:
    """The user documents of ``user_id`` (in one tenant, or in every tenant)."""
    statement = sa.select(config_documents.c.tenant_id).where(
        config_documents.c.scope == Scope.USER.value, config_documents.c.user_id == user_id
    )
    if tenant_id is not None:
        statement = statement.where(config_documents.c.tenant_id == tenant_id)
    return [
        DocumentKey(Scope.USER, str(t), user_id)
        for t in connection.execute(statement.order_by(config_documents.c.tenant_id)).scalars()
    ]


def user_values(
    connection: sa.Connection, user_id: str, key: str, tenant_id: str | None = None
) -> list[str]:
    """The string values of top-level ``key`` in the current versions of a user's documents."""
    current = (
        sa.select(config_versions.c.content)
        .join(config_documents, config_documents.c.id == config_versions.c.document_id)
        .where(
            config_documents.c.scope == Scope.USER.value,
            config_documents.c.user_id == user_id,
            config_versions.c.version == config_documents.c.current_version,
        )
    )
    if tenant_id is not None:
        current = current.where(config_documents.c.tenant_id == tenant_id)
    found = (content.get(key) for content in connection.execute(current).scalars())
    return [value for value in found if isinstance(value, str) and value]


def erase_user_documents(
    connection: sa.Connection, user_id: str, tenant_id: str | None = None
) -> dict[str, int]:
    """Delete a user's documents and every version of them, in the caller's transaction.

    No tombstone is kept (it would keep the user id): another instance drops its
    cached view of the user at its next change of that tenant or restart.
    """
    owned = sa.select(config_documents.c.id).where(
        config_documents.c.scope == Scope.USER.value, config_documents.c.user_id == user_id
    )
    if tenant_id is not None:
        owned = owned.where(config_documents.c.tenant_id == tenant_id)
    versions = connection.execute(
        config_versions.delete().where(config_versions.c.document_id.in_(owned))
    ).rowcount
    documents = connection.execute(
        config_documents.delete().where(config_documents.c.id.in_(owned.scalar_subquery()))
    ).rowcount
    return {"user_documents": int(documents or 0), "user_versions": int(versions or 0)}


def authored_versions(
    connection: sa.Connection, author: str, tenant_id: str | None = None
) -> list[dict[str, Any]]:
    """Versions of any document written by ``author``: which document, version and when."""
    statement = (
        sa.select(
            config_documents.c.scope,
            config_documents.c.tenant_id,
            config_documents.c.user_id,
            config_versions.c.version,
            config_versions.c.action,
            config_versions.c.created_at,
        )
        .join(config_documents, config_documents.c.id == config_versions.c.document_id)
        .where(config_versions.c.author == author)
        .order_by(config_versions.c.id)
    )
    if tenant_id is not None:
        statement = statement.where(config_documents.c.tenant_id == tenant_id)
    return [
        {
            "document": DocumentKey(Scope(r.scope), r.tenant_id, r.user_id).label,
            "version": r.version,
            "action": r.action,
            "at": _utc(r.created_at).isoformat(),
        }
        for r in connection.execute(statement)
    ]


def replace_author(
    connection: sa.Connection, author: str, replacement: str, tenant_id: str | None = None
) -> int:
    """Attribute ``author``'s versions to ``replacement`` (a pseudonym); how many."""
    statement = config_versions.update().where(config_versions.c.author == author)
    if tenant_id is not None:
        statement = statement.where(
            config_versions.c.document_id.in_(
                sa.select(config_documents.c.id).where(config_documents.c.tenant_id == tenant_id)
            )
        )
    return int(connection.execute(statement.values(author=replacement)).rowcount or 0)
