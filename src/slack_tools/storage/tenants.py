"""The tenant registry and tenants' API keys.

Keys are looked up by their digest; the key itself is never stored. Only the
prefix is kept in clear, so that a person can tell their keys apart.
"""

from __future__ import annotations

import contextlib
import re
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
from slack_tools.storage.tables import (
    alert_groups,
    api_keys,
    config_documents,
    config_versions,
    deliveries,
    tenant_data_keys,
    tenants,
    usage_daily,
)

TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}$")


class TenantStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class TenantRecord:
    id: str
    name: str
    status: TenantStatus
    created_at: datetime
    # Strict isolation: the reference of the tenant's own database (None: the shared one).
    database: str | None = None

    @property
    def is_active(self) -> bool:
        return self.status is TenantStatus.ACTIVE

    @property
    def is_strict(self) -> bool:
        return self.database is not None


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: int
    tenant_id: str
    prefix: str
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _tenant(row: Any) -> TenantRecord:
    return TenantRecord(
        row.id,
        row.name,
        TenantStatus(row.status),
        _utc(row.created_at),  # type: ignore[arg-type]
        row.database,
    )


def _key(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        row.id,
        row.tenant_id,
        row.prefix,
        row.label,
        _utc(row.created_at),  # type: ignore[arg-type]
        _utc(row.last_used_at),
        _utc(row.revoked_at),
    )


@dataclass(frozen=True, slots=True)
class NewKey:
    """What is stored of a new API key: never the key, only its digest and shown prefix."""

    digest: str
    prefix: str
    label: str = ""


def _insert_key(
    connection: sa.Connection, tenant_id: str, key: NewKey, now: datetime
) -> ApiKeyRecord:
    key_id = connection.execute(
        api_keys.insert().values(
            tenant_id=tenant_id,
            prefix=key.prefix,
            digest=key.digest,
            label=key.label,
            created_at=now,
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    return ApiKeyRecord(int(key_id), tenant_id, key.prefix, key.label, now, None, None)


def check_tenant_id(tenant_id: str) -> str:
    """Tenant ids are lowercase letters, digits, ``_ . -``: they appear in URLs, files, metrics."""
    if not TENANT_ID.fullmatch(tenant_id):
        raise ValueError(
            f"invalid tenant id {tenant_id!r}: use lowercase letters, digits, _ . - "
            "(at most 128, starting with a letter or digit)"
        )
    return tenant_id


class TenantStore:
    """Create, read and change tenants and their API keys."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _read(self, statement: sa.Executable) -> list[Any]:
        try:
            with self._engine.connect() as connection:
                return list(connection.execute(statement))
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot read tenants: {describe(exc)}") from None

    def create(self, tenant_id: str, name: str, *, database: str | None = None) -> TenantRecord:
        return self._create(tenant_id, name, None, database)[0]

    def create_with_key(
        self, tenant_id: str, name: str, key: NewKey, *, database: str | None = None
    ) -> tuple[TenantRecord, ApiKeyRecord]:
        """A new tenant and its first API key, in one transaction.

        ``database``: the reference of the tenant's own database (strict isolation).
        """
        record, key_record = self._create(tenant_id, name, key, database)
        assert key_record is not None
        return record, key_record

    def _create(
        self, tenant_id: str, name: str, first_key: NewKey | None, database: str | None
    ) -> tuple[TenantRecord, ApiKeyRecord | None]:
        check_tenant_id(tenant_id)
        record = TenantRecord(tenant_id, name, TenantStatus.ACTIVE, datetime.now(UTC), database)
        key: ApiKeyRecord | None = None
        try:
            with write_transaction(self._engine) as connection:
                connection.execute(
                    tenants.insert().values(
                        id=record.id,
                        name=record.name,
                        status=record.status.value,
                        created_at=record.created_at,
                        database=record.database,
                    )
                )
                if first_key is not None:
                    key = _insert_key(connection, tenant_id, first_key, record.created_at)
        except IntegrityError:
            raise ConflictError(f"tenant {tenant_id!r} already exists") from None
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot create tenant {tenant_id!r}: {describe(exc)}") from None
        return record, key

    def get(self, tenant_id: str) -> TenantRecord | None:
        rows = self._read(sa.select(tenants).where(tenants.c.id == tenant_id))
        return _tenant(rows[0]) if rows else None

    def require(self, tenant_id: str) -> TenantRecord:
        found = self.get(tenant_id)
        if found is None:
            raise NotFoundError(f"no tenant {tenant_id!r} (slack-tools tenant create {tenant_id})")
        return found

    def all(self) -> list[TenantRecord]:
        return [_tenant(row) for row in self._read(sa.select(tenants).order_by(tenants.c.id))]

    def set_status(
        self, tenant_id: str, status: TenantStatus, *, audit_entry: audit.Draft | None = None
    ) -> None:
        self._update(tenant_id, audit_entry, status=status.value)

    def rename(self, tenant_id: str, name: str, *, audit_entry: audit.Draft | None = None) -> None:
        self._update(tenant_id, audit_entry, name=name)

    def _update(self, tenant_id: str, audit_entry: audit.Draft | None, **values: str) -> None:
        with write_transaction(self._engine) as connection:
            done = connection.execute(
                tenants.update().where(tenants.c.id == tenant_id).values(**values)
            ).rowcount
            if done and audit_entry is not None:
                audit.append(connection, audit_entry)
        if not done:
            raise NotFoundError(f"no tenant {tenant_id!r}")

    def unregister(self, tenant_id: str) -> None:
        """Remove only the registry entry and its keys (a creation that did not go through)."""
        with write_transaction(self._engine) as connection:
            connection.execute(api_keys.delete().where(api_keys.c.tenant_id == tenant_id))
            connection.execute(tenants.delete().where(tenants.c.id == tenant_id))

    def delete(self, tenant_id: str, *, audit_entry: audit.Draft | None = None) -> dict[str, int]:
        """Remove the tenant and everything stored for it, in one transaction.

        Its keys, every version of its configuration and of its users' (the
        documents stay as empty tombstones, holding no content), its alert groups,
        its deliveries (pending ones included: a deleted tenant has nowhere to
        post) and its usage. Returns the rows removed (tombstoned) per kind.
        """
        owned_documents = sa.select(config_documents.c.id).where(
            config_documents.c.tenant_id == tenant_id
        )
        with write_transaction(self._engine) as connection:
            removed = {
                "deliveries": connection.execute(
                    deliveries.delete().where(deliveries.c.tenant_id == tenant_id)
                ).rowcount,
                "alert_groups": connection.execute(
                    alert_groups.delete().where(alert_groups.c.tenant_id == tenant_id)
                ).rowcount,
                # Explicit rather than by cascade: SQLite cascades only with its pragma set.
                "config_versions": connection.execute(
                    config_versions.delete().where(
                        config_versions.c.document_id.in_(owned_documents)
                    )
                ).rowcount,
                # Kept as tombstones with a new version number: other instances notice
                # the change, and a tenant created again under this id never reuses a
                # version number they already know.
                "config_documents": connection.execute(
                    config_documents.update()
                    .where(config_documents.c.tenant_id == tenant_id)
                    .values(
                        current_version=config_documents.c.current_version + 1,
                        updated_at=datetime.now(UTC),
                    )
                ).rowcount,
                "api_keys": connection.execute(
                    api_keys.delete().where(api_keys.c.tenant_id == tenant_id)
                ).rowcount,
                "usage_days": connection.execute(
                    usage_daily.delete().where(usage_daily.c.tenant_id == tenant_id)
                ).rowcount,
                "data_keys": connection.execute(
                    tenant_data_keys.delete().where(tenant_data_keys.c.tenant_id == tenant_id)
                ).rowcount,
            }
            if not connection.execute(tenants.delete().where(tenants.c.id == tenant_id)).rowcount:
                raise NotFoundError(f"no tenant {tenant_id!r}")
            if audit_entry is not None:
                audit.append(connection, audit_entry.with_diff(removed=removed))
        return removed

    # --- data keys (partial isolation) ----------------------------------------------------

    def data_key(self, tenant_id: str) -> str | None:
        """The tenant's wrapped data key, if it has one."""
        rows = self._read(
            sa.select(tenant_data_keys.c.wrapped).where(tenant_data_keys.c.tenant_id == tenant_id)
        )
        return str(rows[0].wrapped) if rows else None

    def keep_data_key(self, tenant_id: str, wrapped: str) -> str:
        """Store a wrapped data key unless the tenant has one already; returns the one kept.

        Two instances making a key for the same tenant at once both end up with the
        first one stored.
        """
        with (
            contextlib.suppress(IntegrityError),
            write_transaction(self._engine) as connection,
        ):
            connection.execute(
                tenant_data_keys.insert().values(
                    tenant_id=tenant_id, wrapped=wrapped, created_at=datetime.now(UTC)
                )
            )
        kept = self.data_key(tenant_id)
        assert kept is not None
        return kept

    def data_keys(self) -> dict[str, str]:
        """Every tenant's wrapped data key (for rotating the master key)."""
        rows = self._read(sa.select(tenant_data_keys.c.tenant_id, tenant_data_keys.c.wrapped))
        return {row.tenant_id: row.wrapped for row in rows}

    def rewrap_data_key(self, tenant_id: str, wrapped: str) -> None:
        with write_transaction(self._engine) as connection:
            connection.execute(
                tenant_data_keys.update()
                .where(tenant_data_keys.c.tenant_id == tenant_id)
                .values(wrapped=wrapped)
            )

    def add_key(
        self,
        tenant_id: str,
        *,
        digest: str,
        prefix: str,
        label: str,
        audit_entry: audit.Draft | None = None,
    ) -> ApiKeyRecord:
        """Store a new key's digest (the caller shows the key once and forgets it)."""
        self.require(tenant_id)
        try:
            with write_transaction(self._engine) as connection:
                record = _insert_key(
                    connection, tenant_id, NewKey(digest, prefix, label), datetime.now(UTC)
                )
                if audit_entry is not None:
                    audit.append(connection, audit_entry.with_diff(key_id=record.id))
                return record
        except IntegrityError:
            raise ConflictError("this key already exists; generate another") from None

    def find_key(self, digest: str) -> tuple[ApiKeyRecord, TenantRecord] | None:
        """The live key with this digest and its tenant (revoked keys are not found)."""
        rows = self._read(
            sa.select(
                api_keys,
                tenants.c.name.label("tenant_name"),
                tenants.c.status.label("tenant_status"),
                tenants.c.created_at.label("tenant_created_at"),
                tenants.c.database.label("tenant_database"),
            )
            .join(tenants, tenants.c.id == api_keys.c.tenant_id)
            .where(api_keys.c.digest == digest, api_keys.c.revoked_at.is_(None))
        )
        if not rows:
            return None
        row = rows[0]
        tenant = TenantRecord(
            row.tenant_id,
            row.tenant_name,
            TenantStatus(row.tenant_status),
            _utc(row.tenant_created_at),  # type: ignore[arg-type]
            row.tenant_database,
        )
        return _key(row), tenant

    def keys(self, tenant_id: str) -> list[ApiKeyRecord]:
        return [
            _key(row)
            for row in self._read(
                sa.select(api_keys).where(api_keys.c.tenant_id == tenant_id).order_by(api_keys.c.id)
            )
        ]

    def revoke_key(
        self, tenant_id: str, key_id: int, *, audit_entry: audit.Draft | None = None
    ) -> None:
        with write_transaction(self._engine) as connection:
            done = connection.execute(
                api_keys.update()
                .where(
                    api_keys.c.id == key_id,
                    api_keys.c.tenant_id == tenant_id,
                    api_keys.c.revoked_at.is_(None),
                )
                .values(revoked_at=datetime.now(UTC))
            ).rowcount
            if done and audit_entry is not None:
                audit.append(connection, audit_entry)
        if not done:
            raise NotFoundError(f"tenant {tenant_id!r} has no live key {key_id}")

    def touch_keys(self, used: dict[int, datetime]) -> None:
        """Record when keys were last used (batched: the hot path never writes per request)."""
        if not used:
            return
        with write_transaction(self._engine) as connection:
            connection.execute(
                api_keys.update()
                .where(api_keys.c.id == sa.bindparam("key_id"))
                .values(last_used_at=sa.bindparam("used_at")),
                [{"key_id": key_id, "used_at": when} for key_id, when in used.items()],
            )
