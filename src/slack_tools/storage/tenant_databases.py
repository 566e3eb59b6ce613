"""Where each tenant's data lives: the shared database, or its own (strict isolation).

The shared database always holds the registry — tenants, the digests of their API
keys, data keys — with the global configuration and the global audit chain. A
tenant under logical or partial isolation keeps its data there too, told apart by
``tenant_id``. A strictly isolated tenant's data — alert groups, the outbox,
dead letters, usage, its configuration and its users' with their versions, its
audit entries — lives in a database of its own, with the same schema, found
through the registry's ``database`` column.

A tenant database reference is a database URL. A SQLite URL with a relative path
(``sqlite:///tenants/acme.db``, the default) is a file under the data directory,
so the data directory can move. References never hold a password: that comes from
``database.password`` (or the driver's own sources, PGPASSWORD and ~/.pgpass).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from slack_tools.errors import StorageError
from slack_tools.storage.database import Database, describe, write_transaction
from slack_tools.storage.tables import metadata, tenants

DEFAULT_TEMPLATE = "sqlite:///tenants/{tenant}.db"


def tenant_reference(template: str, tenant_id: str) -> str:
    """The reference of a new strict tenant's database, from ``template`` ({tenant})."""
    reference = template.replace("{tenant}", tenant_id)
    check_reference(reference)
    return reference


def check_reference(reference: str) -> str:
    """Refuse what cannot be a tenant database reference, saying why."""
    try:
        url = make_url(reference)
    except ArgumentError:
        raise StorageError("a tenant database reference must be a database URL") from None
    if url.password is not None:
        raise StorageError(
            "a tenant database URL must not hold a password (it is stored in the registry): "
            "set database.password, PGPASSWORD or ~/.pgpass instead"
        )
    if url.get_backend_name() not in ("sqlite", "postgresql", "postgres"):
        raise StorageError(
            f"tenant databases are SQLite or PostgreSQL, not {url.get_backend_name()!r}"
        )
    if url.get_backend_name() == "sqlite" and not url.database:
        raise StorageError("a tenant's SQLite database needs a file, not an in-memory database")
    return reference


def resolve_reference(reference: str, data_dir: str | Path) -> str:
    """The URL to connect to: a relative SQLite path is put under ``data_dir``."""
    url = make_url(reference)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database).expanduser()
        if not path.is_absolute():
            path = Path(data_dir).expanduser().resolve() / path
        return url.set(database=str(path)).render_as_string(hide_password=False)
    return reference


def sqlite_files(database: Database) -> list[Path]:
    """The files of a SQLite database (with its WAL), none for other backends."""
    url = database.engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return []
    main = Path(url.database)
    return [main, main.with_name(main.name + "-wal"), main.with_name(main.name + "-shm")]


def holds_data(database: Database) -> str:
    """What a database holds besides its schema ("" when empty), e.g. "3 config_documents"."""
    try:
        with database.engine.connect() as connection:
            counts = {
                table.name: connection.execute(
                    sa.select(sa.func.count()).select_from(table)
                ).scalar_one()
                for table in metadata.sorted_tables
            }
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot read the tenant's database: {describe(exc)}") from None
    return ", ".join(f"{count} {name}" for name, count in counts.items() if count)


def empty(database: Database) -> dict[str, int]:
    """Delete every row of every table (a strict tenant's database, when it is deleted)."""
    removed: dict[str, int] = {}
    try:
        with write_transaction(database.engine) as connection:
            for table in reversed(metadata.sorted_tables):
                count = connection.execute(table.delete()).rowcount
                if count:
                    removed[table.name] = count
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot empty the tenant's database: {describe(exc)}") from None
    return removed


class TenantDatabases:
    """The shared database and each strictly isolated tenant's own, opened on first use.

    The registry is read once and then per unknown tenant; :meth:`refresh` (called
    by the configuration poll) picks up tenants another process created or deleted.
    """

    def __init__(self, shared: Database, open_database: Callable[[str], Database]) -> None:
        self.shared = shared
        self._open = open_database
        self._lock = threading.RLock()
        self._references: dict[str, str | None] | None = None
        self._opened: dict[str, tuple[str, Database]] = {}

    def _registry(self) -> dict[str, str | None]:
        try:
            with self.shared.engine.connect() as connection:
                rows = connection.execute(sa.select(tenants.c.id, tenants.c.database))
                return {row.id: row.database for row in rows}
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot read the tenant registry: {describe(exc)}") from None

    def _known(self) -> dict[str, str | None]:
        if self._references is None:
            self._references = self._registry()
        return self._references

    def reference(self, tenant_id: str) -> str | None:
        """The tenant's own database reference; None when its data is in the shared one."""
        with self._lock:
            known = self._known()
            if tenant_id in known:
                return known[tenant_id]
        # Perhaps created by another process since the registry was read. An id still
        # unknown is not remembered: it may be about to be created.
        found = self._lookup(tenant_id)
        if found is not None:
            with self._lock:
                self._known()[tenant_id] = found[0]
            return found[0]
        return None

    def _lookup(self, tenant_id: str) -> tuple[str | None] | None:
        """The registry's entry for one tenant: (reference,), or None when it has none."""
        try:
            with self.shared.engine.connect() as connection:
                row = connection.execute(
                    sa.select(tenants.c.database).where(tenants.c.id == tenant_id)
                ).first()
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot read the tenant registry: {describe(exc)}") from None
        return None if row is None else (row.database,)

    def is_strict(self, tenant_id: str) -> bool:
        return self.reference(tenant_id) is not None

    def is_known_strict(self, tenant_id: str) -> bool:
        """:meth:`is_strict` from memory only, never reading the registry (for the event
        loop): a tenant created elsewhere is known after its first lookup or a refresh."""
        with self._lock:
            known = self._references
            return known is not None and known.get(tenant_id) is not None

    def for_tenant(self, tenant_id: str) -> Database:
        """The database holding ``tenant_id``'s data."""
        reference = self.reference(tenant_id)
        if reference is None:
            return self.shared
        with self._lock:
            opened = self._opened.get(tenant_id)
            if opened is not None and opened[0] == reference:
                return opened[1]
            if opened is not None:
                opened[1].dispose()
            database = self._open(reference)
            self._opened[tenant_id] = (reference, database)
            return database

    def strict_ids(self) -> list[str]:
        """The strictly isolated tenants known, without opening their databases."""
        with self._lock:
            return sorted(t for t, reference in self._known().items() if reference is not None)

    def strict(self) -> dict[str, Database]:
        """Every strictly isolated tenant's database, by tenant id."""
        return {tenant_id: self.for_tenant(tenant_id) for tenant_id in self.strict_ids()}

    def all(self) -> list[Database]:
        """The shared database first, then each tenant's own."""
        return [self.shared, *self.strict().values()]

    def labelled(self) -> Iterator[tuple[str | None, Database]]:
        """Each database with the strict tenant it belongs to (None: the shared one)."""
        yield None, self.shared
        yield from self.strict().items()

    def registered(self, tenant_id: str, reference: str | None) -> None:
        """This process registered a tenant: known at once, without a registry read."""
        with self._lock:
            self._known()[tenant_id] = reference

    def forget(self, tenant_id: str) -> Database | None:
        """The tenant was deleted: close its database; returns it (already disposed)."""
        with self._lock:
            self._known().pop(tenant_id, None)
            opened = self._opened.pop(tenant_id, None)
        if opened is None:
            return None
        opened[1].dispose()
        return opened[1]

    def refresh(self) -> None:
        """Read the registry again; close the databases of tenants that are gone."""
        current = self._registry()
        with self._lock:
            self._references = current
            gone = [t for t, (ref, _) in self._opened.items() if current.get(t) != ref]
            closing = [self._opened.pop(t)[1] for t in gone]
        for database in closing:
            database.dispose()

    def dispose(self) -> None:
        """Close every tenant database (the shared one belongs to its opener)."""
        with self._lock:
            opened, self._opened = self._opened, {}
        for _, database in opened.values():
            database.dispose()
