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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from slack_tools.errors import StorageError
from slack_tools.storage.database import Database, describe, write_transaction
from slack_tools.storage.tables import metadata, tenants

SAFE_QUERY_PARAMETERS = frozenset(
    {"sslmode", "sslrootcert", "application_name", "connect_timeout", "options"}
)


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
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise StorageError("a tenant's SQLite database needs a file, not an in-memory database")
    # Only what says where and how to connect: never credentials, nor another host.
    unsafe = sorted(set(url.query) - SAFE_QUERY_PARAMETERS)
    if unsafe:
        raise StorageError(
            "a tenant database URL may carry only "
            + ", ".join(sorted(SAFE_QUERY_PARAMETERS))
            + " as parameters, not "
            + ", ".join(unsafe)
        )
    return reference


def safe_reference(reference: str) -> str:
    """A reference as shown to people: never with a password (none is stored, but still)."""
    try:
        return make_url(reference).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unreadable reference)"


def resolve_reference(reference: str, data_dir: str | Path) -> str:
    """The URL to connect to: a relative SQLite path is put under ``data_dir``."""
    url = make_url(reference)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database).expanduser()
        if not path.is_absolute():
            path = Path(data_dir).expanduser().resolve() / path
        return url.set(database=str(path)).render_as_string(hide_password=False)
    return reference


def missing_sqlite_file(url: str) -> None:
    """Refuse to open a tenant's SQLite file that is not there (connecting would make it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return
    if parsed.database != ":memory:" and not Path(parsed.database).exists():
        raise StorageError(f"its SQLite file {parsed.database} is missing")


def has_tenant_databases(shared: Database) -> bool:
    """Whether the shared database's registry can name tenant databases (migration 0008)."""
    try:
        columns = sa.inspect(shared.engine).get_columns("tenants")
    except sa.exc.NoSuchTableError:
        return False
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot reach the database: {describe(exc)}") from None
    return any(column["name"] == "database" for column in columns)


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


RETRY_OPEN_SECONDS = 5.0


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Registered:
    """What the registry says of a tenant: where its data is, and which creation it is."""

    reference: str | None
    created_at: datetime


class TenantDatabases:
    """The shared database and each strictly isolated tenant's own, opened on first use.

    The registry is read once and then per unknown tenant; :meth:`refresh` (called
    by the configuration poll) picks up tenants another process created or deleted.
    A database is opened outside the lock, so one slow tenant database delays only
    the callers that need it; one that fails to open is not tried again for
    ``RETRY_OPEN_SECONDS`` (its callers fail at once, naming the tenant).
    """

    def __init__(
        self,
        shared: Database,
        open_database: Callable[[str], Database],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shared = shared
        self._open = open_database
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, Registered] | None = None
        self._opened: dict[str, tuple[str, Database]] = {}
        self._opening: dict[str, threading.Lock] = {}
        self._failed: dict[str, tuple[str, float, str]] = {}

    def _registry(self, tenant_id: str | None = None) -> dict[str, Registered]:
        statement = sa.select(tenants.c.id, tenants.c.database, tenants.c.created_at)
        if tenant_id is not None:
            statement = statement.where(tenants.c.id == tenant_id)
        try:
            with self.shared.engine.connect() as connection:
                return {
                    row.id: Registered(row.database, _utc(row.created_at))
                    for row in connection.execute(statement)
                }
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot read the tenant registry: {describe(exc)}") from None

    def _known(self) -> dict[str, Registered]:
        # Called under the lock; the first call reads the whole registry.
        if self._entries is None:
            self._entries = self._registry()
        return self._entries

    def reference(self, tenant_id: str) -> str | None:
        """The tenant's own database reference; None when its data is in the shared one."""
        with self._lock:
            found = self._known().get(tenant_id)
        if found is None:
            # Perhaps created by another process since the registry was read. An id
            # still unknown is not remembered: it may be about to be created.
            found = self._registry(tenant_id).get(tenant_id)
            if found is None:
                return None
            with self._lock:
                self._known()[tenant_id] = found
        return found.reference

    def is_strict(self, tenant_id: str) -> bool:
        return self.reference(tenant_id) is not None

    def is_known_strict(self, tenant_id: str) -> bool:
        """:meth:`is_strict` from memory only, never reading the registry (for the event
        loop): a tenant created elsewhere is known after its first lookup or a refresh."""
        with self._lock:
            entries = self._entries
            found = None if entries is None else entries.get(tenant_id)
        return found is not None and found.reference is not None

    def for_tenant(self, tenant_id: str) -> Database:
        """The database holding ``tenant_id``'s data.

        Raises :class:`StorageError` naming the tenant when its database cannot be opened.
        """
        reference = self.reference(tenant_id)
        if reference is None:
            return self.shared
        with self._lock:
            opened = self._opened.get(tenant_id)
            if opened is not None and opened[0] == reference:
                return opened[1]
            opening = self._opening.setdefault(tenant_id, threading.Lock())
        with opening:  # one open per tenant at a time; others wait for it, not for the lock
            with self._lock:
                opened = self._opened.get(tenant_id)
                failed = self._failed.get(tenant_id)
            if opened is not None and opened[0] == reference:
                return opened[1]
            if failed is not None and failed[0] == reference and self._clock() < failed[1]:
                raise StorageError(f"tenant {tenant_id}'s database: {failed[2]}")
            try:
                database = self._open(reference)
            except StorageError as exc:
                with self._lock:
                    self._failed[tenant_id] = (
                        reference,
                        self._clock() + RETRY_OPEN_SECONDS,
                        str(exc),
                    )
                raise StorageError(f"tenant {tenant_id}'s database: {exc}") from None
            with self._lock:
                self._failed.pop(tenant_id, None)
                stale = self._opened.get(tenant_id)
                self._opened[tenant_id] = (reference, database)
        if stale is not None:
            stale[1].dispose()
        return database

    def opened(self, tenant_id: str) -> Database | None:
        """The tenant's own database if it is open, from memory only (for the event loop);
        None when it is not open (or no longer: deleted, or created again elsewhere)."""
        with self._lock:
            found = self._opened.get(tenant_id)
        return None if found is None else found[1]

    def open_databases(self) -> list[Database]:
        """The tenant databases open now (from memory only)."""
        with self._lock:
            return [database for _, database in self._opened.values()]

    def strict_ids(self) -> list[str]:
        """The strictly isolated tenants known, without opening their databases."""
        with self._lock:
            return sorted(t for t, e in self._known().items() if e.reference is not None)

    def labelled(self) -> Iterator[tuple[str | None, Database]]:
        """Each database with the strict tenant it belongs to (None: the shared one),
        each opened as it is reached; one that cannot be opened raises, naming its tenant."""
        yield None, self.shared
        for tenant_id in self.strict_ids():
            yield tenant_id, self.for_tenant(tenant_id)

    def reachable(
        self, unreachable: Callable[[str, StorageError], None]
    ) -> Iterator[tuple[str | None, Database]]:
        """:meth:`labelled`, skipping each strict tenant's database that cannot be opened
        after telling ``unreachable`` (the shared database must open)."""
        yield None, self.shared
        for tenant_id in self.strict_ids():
            try:
                database = self.for_tenant(tenant_id)
            except StorageError as exc:
                unreachable(tenant_id, exc)
                continue
            yield tenant_id, database

    def registered(self, tenant_id: str, reference: str | None, created_at: datetime) -> None:
        """This process registered a tenant: known at once, without a registry read."""
        with self._lock:
            self._known()[tenant_id] = Registered(reference, created_at)

    def forget(self, tenant_id: str) -> None:
        """The tenant was deleted: close its database."""
        with self._lock:
            if self._entries is not None:
                self._entries.pop(tenant_id, None)
            self._failed.pop(tenant_id, None)
            opened = self._opened.pop(tenant_id, None)
        if opened is not None:
            opened[1].dispose()

    def refresh(self) -> set[str]:
        """Read the registry again; returns the tenants deleted or created again since it
        was last read (their databases are closed)."""
        current = self._registry()
        with self._lock:
            before = self._entries or {}
            changed = {t for t, entry in before.items() if current.get(t) != entry}
            self._entries = current
            closing = [self._opened.pop(t)[1] for t in changed if t in self._opened]
            for tenant_id in changed:
                self._failed.pop(tenant_id, None)
        for database in closing:
            database.dispose()
        return changed

    def dispose(self) -> None:
        """Close every tenant database (the shared one belongs to its opener)."""
        with self._lock:
            opened, self._opened = self._opened, {}
        for _, database in opened.values():
            database.dispose()
