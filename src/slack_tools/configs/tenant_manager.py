"""``TenantManager``: the specification's API over one tenant.

```python
from slack_tools.configs.tenant_manager import TenantManager
tenant_mgr = TenantManager("tenant_spotify_premium")
config = tenant_mgr.get_config()
tenant_mgr.update_config({"slack_channel": "#premium-alerts", "alert_threshold": "critical_only"})
```

A tenant is an entry in the registry (id, name, status, API keys) and a versioned
configuration document (Global → Tenant → User). Configuration changes go
through :class:`ConfigManager`: validated, versioned with their author, applied to
routing at once here and within a poll on other instances. The CLI
(``slack-tools tenant …``) and the admin API (``/api/v1/tenants``) both use this
class, so they behave alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date
from typing import Any

from slack_tools.configs import billing
from slack_tools.configs.billing import Bill
from slack_tools.configs.manager import ConfigManager, default_author
from slack_tools.configs.runtime import ConfigRuntime
from slack_tools.configs.schema import IsolationMode, TenantConfig
from slack_tools.configs.security import new_api_key
from slack_tools.configs.security.audit import AuditLog
from slack_tools.errors import ConfigError, ConflictError
from slack_tools.storage import Database, DocumentKey, DocumentVersion, usage
from slack_tools.storage.audit import Draft
from slack_tools.storage.tenant_databases import (
    check_reference,
    empty,
    holds_data,
    sqlite_files,
    tenant_reference,
)
from slack_tools.storage.tenants import (
    ApiKeyRecord,
    NewKey,
    TenantRecord,
    TenantStatus,
    TenantStore,
    check_tenant_id,
)
from slack_tools.storage.usage import DayUsage

__all__ = ["DayUsage", "IssuedKey", "TenantManager", "TenantRecord", "TenantStatus"]

MAX_USAGE_DAYS = 366


@dataclass(frozen=True)
class IssuedKey:
    """A new API key: ``key`` is shown once and never stored; ``record`` is what is kept."""

    key: str
    record: ApiKeyRecord


def _runtime(runtime: ConfigRuntime | None) -> ConfigRuntime:
    if runtime is not None:
        return runtime
    from slack_tools.configs import default_runtime  # noqa: PLC0415 - avoids a cycle

    return default_runtime()


def checked_database_url(isolation: str, database_url: str | None) -> str | None:
    """The ``database_url`` of a creation: a database reference (no password), and only
    for strict isolation. Raises :class:`StorageError` or :class:`ConfigError` saying why
    (never repeating the URL)."""
    if database_url is None:
        return None
    check_reference(database_url)
    if str(isolation) != IsolationMode.STRICT.value:
        raise ConfigError(
            f"a database of its own is for strict isolation only (this tenant would be {isolation})"
        )
    return database_url


def _new_key(label: str) -> tuple[str, NewKey]:
    made = new_api_key()
    return made.key, NewKey(made.digest, made.prefix, label)


class TenantManager:
    """One tenant: its registry entry, its configuration and its API keys."""

    def __init__(self, tenant_id: str, runtime: ConfigRuntime | None = None) -> None:
        self.tenant_id = check_tenant_id(tenant_id)
        self.runtime = _runtime(runtime)
        self._config = ConfigManager(self.runtime)
        self._store = TenantStore(self.runtime.database.engine)
        self._document = DocumentKey.for_scope(tenant_id)

    # --- the registry ------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        tenant_id: str,
        *,
        name: str | None = None,
        config: Mapping[str, Any] | None = None,
        author: str | None = None,
        runtime: ConfigRuntime | None = None,
        database_url: str | None = None,
    ) -> tuple[TenantManager, IssuedKey]:
        """Register a tenant with its configuration and a first API key.

        The registry entry comes first, so of two creations of one id the second is
        refused before it writes anything; an invalid configuration then removes the
        entry again, leaving no tenant behind (and any document written for the id
        beforehand as it was).

        A strictly isolated tenant (``isolation: strict`` in ``config``, or the
        default) gets its own database first: ``database_url``, or
        ``tenants.strict_database_url`` for its id.
        """
        manager = cls(tenant_id, runtime)
        key, new = _new_key("created with tenant")
        target = f"tenant:{tenant_id}"
        with manager.audit.failures("tenant.create", target=target, tenant=tenant_id):
            reference = manager._own_database(dict(config or {}), database_url)
            try:
                _, record = manager._store.create_with_key(
                    tenant_id, name or tenant_id, new, database=reference
                )
            except BaseException:
                if reference is not None and manager._store.get(tenant_id) is None:
                    manager._destroy_database(reference)
                raise
            manager.runtime.databases.registered(tenant_id, reference, record.created_at)
        try:
            # Audited once, with the document's first version: the creation is complete
            # only when its configuration is written.
            manager._config.apply(
                manager._document,
                dict(config or {}),
                author=author,
                comment="tenant created",
                audit_action="tenant.create",
            )
        except BaseException:
            manager._store.unregister(tenant_id)
            if reference is not None:
                manager._destroy_database(reference)
            raise
        return manager, IssuedKey(key, record)

    def _own_database(self, config: Mapping[str, Any], database_url: str | None) -> str | None:
        """Make a strict tenant's database (migrated, and empty); its reference, else None."""
        settings = self.runtime.config.tenants
        isolation = str(config.get("isolation", settings.defaults.isolation))
        checked_database_url(isolation, database_url)
        if isolation != IsolationMode.STRICT.value:
            return None
        if self.exists():  # before looking at its database, which would be the existing one's
            raise ConflictError(f"tenant {self.tenant_id!r} already exists")
        reference = database_url or tenant_reference(settings.strict_database_url, self.tenant_id)
        database = self.runtime.create_tenant_database(reference)
        try:
            holding = holds_data(database)
        finally:
            database.dispose()
        if holding:
            # Someone else's data, or a tenant of this id deleted without its database.
            raise ConflictError(
                f"the database for tenant {self.tenant_id!r} already holds data ({holding}): "
                "give another with --database-url, or empty it first"
            )
        return reference

    def _destroy_database(self, reference: str) -> None:
        """Empty a strict tenant's database that is not (or no longer) registered."""
        database = self.runtime.create_tenant_database(reference)
        try:
            empty(database)
        finally:
            database.dispose()
        self._remove_files(database)

    def _remove_files(self, database: Database) -> None:
        """Close a deleted strict tenant's database; a SQLite file goes with it (a
        PostgreSQL database stays, empty, for its owner to drop)."""
        self.runtime.databases.forget(self.tenant_id)
        database.dispose()
        for path in sqlite_files(database):
            path.unlink(missing_ok=True)

    @staticmethod
    def all(runtime: ConfigRuntime | None = None) -> list[TenantRecord]:
        """Every registered tenant, by id."""
        return TenantStore(_runtime(runtime).database.engine).all()

    def exists(self) -> bool:
        return self._store.get(self.tenant_id) is not None

    def info(self) -> TenantRecord:
        """The registry entry; :class:`NotFoundError` for an unknown tenant."""
        return self._store.require(self.tenant_id)

    @property
    def audit(self) -> AuditLog:
        """The audit trail every change of this tenant is recorded in."""
        return AuditLog.of(self.runtime)

    def _entry(self, action: str, **diff: Any) -> Draft:
        return self.audit.draft(
            action, target=f"tenant:{self.tenant_id}", tenant=self.tenant_id, diff=diff
        )

    def _failures(self, action: str) -> AbstractContextManager[None]:
        return self.audit.failures(action, target=f"tenant:{self.tenant_id}", tenant=self.tenant_id)

    def rename(self, name: str) -> None:
        with self._failures("tenant.rename"):
            before = self.info().name
            entry = self._entry("tenant.rename", name={"old": before, "new": name})
            self._store.rename(self.tenant_id, name, audit_entry=entry)

    def disable(self) -> None:
        """Refuse the tenant's alerts from now on (within ``ingest.key_cache_seconds``).

        What was already accepted is still delivered: a 202 is a promise.
        """
        self._set_status(TenantStatus.DISABLED, "tenant.disable")

    def enable(self) -> None:
        self._set_status(TenantStatus.ACTIVE, "tenant.enable")

    def _set_status(self, status: TenantStatus, action: str) -> None:
        with self._failures(action):
            entry = self._entry(action, status=status.value)
            self._store.set_status(self.tenant_id, status, audit_entry=entry)

    def delete(self) -> dict[str, int]:
        """Remove the tenant and everything stored for it; returns the rows removed per kind.

        Its keys stop working within ``ingest.key_cache_seconds`` on every instance;
        its pending notifications are dropped with it.
        """
        with self._failures("tenant.delete"):
            reference = self.info().database
            own = None if reference is None else self.runtime.database_for(self.tenant_id)
            # Its own database first: if that fails, the tenant is still registered and
            # deleting it again finishes the job.
            emptied = {} if own is None else empty(own)
            entry = self._entry("tenant.delete", database=reference, emptied=emptied)
            removed = self._store.delete(self.tenant_id, audit_entry=entry)
        for table, count in emptied.items():
            removed[table] = removed.get(table, 0) + count
        if own is not None:
            self._remove_files(own)
        self.runtime.forget_tenant(self.tenant_id)
        return removed

    # --- configuration -----------------------------------------------------------------

    def get_config(self) -> TenantConfig:
        """The tenant's effective configuration: defaults with its own values on top."""
        self.info()
        return self._config.get_tenant_config(self.tenant_id)

    def show_config(self) -> dict[str, Any]:
        """The effective configuration as JSON-ready data, secrets masked."""
        self.info()
        return self._config.show(self._document)

    @property
    def config_version(self) -> int:
        """The version of the tenant's document (0: it has only the defaults)."""
        current = self._config.document(self._document)
        return current.version if current else 0

    def update_config(
        self,
        changes: Mapping[str, Any],
        *,
        author: str | None = None,
        comment: str = "",
        expected_version: int | None = None,
    ) -> DocumentVersion:
        """Merge ``changes`` into the tenant's configuration as a new version.

        Validated (every issue at once, :class:`ConfigValidationError`); ``None``
        removes a key. ``expected_version`` refuses with :class:`ConflictError`
        when someone else changed the tenant since it was read.
        """
        self.info()
        return self._config.apply(
            self._document,
            changes,
            author=author or default_author(),
            comment=comment,
            expected_version=expected_version,
        )

    def history(self) -> list[DocumentVersion]:
        """Every version of the tenant's configuration, newest first."""
        return self._config.history(self._document)

    def rollback(
        self, version: int, *, author: str | None = None, comment: str = ""
    ) -> DocumentVersion:
        """Make an earlier version current again (as a new version, validated again)."""
        self.info()
        return self._config.rollback(self._document, version, author=author, comment=comment)

    # --- API keys ----------------------------------------------------------------------

    def create_key(self, label: str = "") -> IssuedKey:
        """A new API key for this tenant (several may live at once, for rotation)."""
        key, new = _new_key(label)
        with self._failures("tenant.key.create"):
            record = self._store.add_key(
                self.tenant_id,
                digest=new.digest,
                prefix=new.prefix,
                label=new.label,
                audit_entry=self._entry("tenant.key.create", prefix=new.prefix, label=label),
            )
        return IssuedKey(key, record)

    def api_keys(self) -> list[ApiKeyRecord]:
        """The tenant's keys, revoked ones included: prefix, label, created and last used."""
        self.info()
        return self._store.keys(self.tenant_id)

    # --- usage ---------------------------------------------------------------------------

    def usage(self, first: date, last: date) -> list[DayUsage]:
        """Counts per UTC day from ``first`` to ``last`` included (days without any omitted)."""
        self.info()
        if last < first:
            raise ValueError(f"the period ends ({last}) before it starts ({first})")
        if (last - first).days >= MAX_USAGE_DAYS:
            raise ValueError(f"ask for at most {MAX_USAGE_DAYS} days at once")
        return usage.usage(
            self.runtime.database_for(self.tenant_id).engine, self.tenant_id, first, last
        )

    def bill(self, counts: Mapping[str, int]) -> Bill | None:
        """What ``counts`` cost on the tenant's plan (None when the plan has no prices)."""
        tenant = self.get_config()
        prices = self.runtime.config.tenants.prices.get(tenant.plan)
        if prices is None:
            return None
        return billing.bill(counts, tenant.plan, prices, tenant.locale)

    def revoke_key(self, key_id: int) -> None:
        """Stop accepting a key (within ``ingest.key_cache_seconds`` on every instance)."""
        with self._failures("tenant.key.revoke"):
            entry = self._entry("tenant.key.revoke", key_id=key_id)
            self._store.revoke_key(self.tenant_id, key_id, audit_entry=entry)
