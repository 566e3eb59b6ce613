"""Engines, connection settings and schema migrations (Alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError

from slack_tools.errors import StorageError

SQLITE_FILE = "slack-tools.db"


def default_sqlite_url(data_dir: str | Path) -> str:
    """The embedded default: one SQLite file in the data directory."""
    return f"sqlite:///{Path(data_dir).expanduser().resolve() / SQLITE_FILE}"


def _normalise(url: str, password: str | None) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError("database.url is not a valid database URL") from None
    if parsed.drivername in ("postgresql", "postgres"):
        # One driver (psycopg 3) serves both the sync and the async engine.
        parsed = parsed.set(drivername="postgresql+psycopg")
    if password:
        parsed = parsed.set(password=password)
    return parsed


def create_engine(
    url: str,
    *,
    password: str | None = None,
    pool_size: int = 10,
    max_overflow: int | None = None,
    echo: bool = False,
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
) -> Engine:
    """An engine tuned for its backend: WAL and a busy timeout on SQLite, a pool on PostgreSQL.

    The pool keeps ``pool_size`` connections and opens up to ``max_overflow`` more
    under load (default: as many again). Raises :class:`StorageError` (never naming the
    URL, which may hold a password) when the backend's driver is missing or the SQLite
    file's directory cannot be made.
    """
    try:
        return _create_engine(
            url,
            password=password,
            pool_size=pool_size,
            max_overflow=pool_size if max_overflow is None else max_overflow,
            echo=echo,
            sqlite_synchronous=sqlite_synchronous,
        )
    except (NoSuchModuleError, ImportError) as exc:
        hint = " (install slack-tools[postgres])" if "postgres" in url else ""
        raise StorageError(f"no database driver for this URL's backend{hint}: {exc}") from None
    except OSError as exc:
        raise StorageError(f"cannot create the database directory: {exc.strerror}") from None


def _create_engine(
    url: str,
    *,
    password: str | None = None,
    pool_size: int = 10,
    max_overflow: int = 10,
    echo: bool = False,
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
) -> Engine:
    """An engine tuned for its backend: WAL and a busy timeout on SQLite, a pool on PostgreSQL."""
    parsed = _normalise(url, password)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            parsed, echo=echo, connect_args={"check_same_thread": False, "timeout": 30}
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            # The driver's implicit transactions start deferred, and a deferred reader
            # that later writes fails at once (SQLITE_BUSY) when another connection wrote
            # meanwhile. So the driver stays out of it and ``write_transaction`` says
            # BEGIN IMMEDIATE itself; reads run as single statements on a WAL snapshot.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # A server that does not answer fails a connection in seconds rather than hanging
    # the thread (and whatever waits on it) for the operating system's TCP timeout.
    connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": 10}
    return sa.create_engine(
        parsed,
        echo=echo,
        pool_size=pool_size,
        pool_pre_ping=True,
        max_overflow=max_overflow,
        connect_args=connect_args,
    )


def ensure_database(url: str, *, password: str | None = None) -> bool:
    """Create a PostgreSQL database that does not exist yet; True when it was created.

    SQLite files are made on first connection, so there is nothing to do for them.
    Creating needs the CREATEDB privilege on the server's ``postgres`` database.
    """
    parsed = _normalise(url, password)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return False
    name = parsed.database
    server = sa.create_engine(
        parsed.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    )
    try:
        with server.connect() as connection:
            exists = connection.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if exists:
                return False
            quoted = server.dialect.identifier_preparer.quote_identifier(name)
            connection.exec_driver_sql(f"CREATE DATABASE {quoted}")
            return True
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot create database {name!r}: {describe(exc)}") from None
    finally:
        server.dispose()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[sa.Connection]:
    """A transaction that writes: BEGIN IMMEDIATE on SQLite, an ordinary one elsewhere.

    Commits when the block ends, rolls back if it raises.
    """
    with engine.connect() as connection:
        # Begun explicitly, so that statements run on the raw DBAPI cursor (group_writes)
        # belong to the transaction that commit() ends.
        connection.begin()
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.rollback()
            raise
        connection.commit()


def _alembic_config(engine: Engine) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", "slack_tools.storage:migrations")
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    """The newest migration this code knows."""
    script = ScriptDirectory.from_config(_alembic_config(sa.create_engine("sqlite://")))
    head = script.get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise StorageError("no migrations found in the package")
    return head


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at, None for an empty database."""
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot reach the database: {describe(exc)}") from None


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Apply migrations up to ``revision``; returns (before, after)."""
    before = current_revision(engine)
    try:
        command.upgrade(_alembic_config(engine), revision)
    except SQLAlchemyError as exc:
        raise StorageError(f"migration failed: {describe(exc)}") from None
    return before, current_revision(engine)


def check_schema(engine: Engine) -> None:
    """Refuse to run against a database whose schema is not this code's."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "empty" if current is None else f"at revision {current}"
        raise StorageError(
            f"the database is {state}, this version needs {head}: run 'slack-tools db upgrade'"
        )


def describe(exc: SQLAlchemyError) -> str:
    """A one-line reason that never includes the URL (it may carry a password)."""
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@dataclass(frozen=True)
class Database:
    """An engine and what the rest of the code asks about it."""

    engine: Engine

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def ping(self) -> None:
        """Raise :class:`StorageError` unless a trivial query succeeds."""
        try:
            with self.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except (OperationalError, SQLAlchemyError) as exc:
            raise StorageError(f"database unreachable: {describe(exc)}") from None

    def transaction(self) -> contextlib.AbstractContextManager[sa.Connection]:
        """A write transaction (see :func:`write_transaction`)."""
        return write_transaction(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
