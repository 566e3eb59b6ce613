"""The live configuration of a process: one immutable snapshot, swapped whole on reload.

Readers take ``runtime.config`` (or an effective tenant/user view) and keep a
reference to an object that never changes. A reload — file change, SIGHUP, admin
call, or a write seen in the database — loads and validates a complete new
snapshot first; only then is the reference swapped and subscribers told. An
invalid reload is rejected, logged, and the old snapshot keeps serving.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path as FsPath
from typing import Any, Literal

import structlog

from slack_tools.configs import documents, security
from slack_tools.configs.cache_manager import MISSING, CacheManager, CacheNamespace, Event, Tier
from slack_tools.configs.config_loader import (
    Layer,
    LoadedConfig,
    ProcessEnvironment,
    Sources,
    load_sources,
    read_environment,
    resolve,
)
from slack_tools.configs.schema import AppConfig, IsolationMode, TenantConfig, UserConfig
from slack_tools.configs.trees import leaves
from slack_tools.configs.validator import ConfigValidationError, Issue, Level, errors_in
from slack_tools.errors import SecretError, SlackToolsError, StorageError
from slack_tools.storage import (
    Database,
    DocumentKey,
    DocumentVersion,
    Scope,
    check_schema,
    create_engine,
    default_sqlite_url,
    head_revision,
    upgrade,
)
from slack_tools.storage.database import current_revision, ensure_database
from slack_tools.storage.documents import RoutedDocumentStore
from slack_tools.storage.tenant_databases import (
    TenantDatabases,
    has_tenant_databases,
    missing_sqlite_file,
    resolve_reference,
)
from slack_tools.storage.tenants import TenantStore

log = structlog.get_logger(__name__)

# Keys read once at start-up: a reload that changes them says a restart is needed.
RESTART_KEYS: tuple[tuple[str, ...], ...] = (
    ("server", "host"),
    ("server", "port"),
    ("database",),
    ("data_dir",),
    ("redis", "url"),
)

Outcome = Literal["never", "applied", "unchanged", "rejected"]

# How far back each poll looks beyond the previous one: covers writers whose clock is
# behind ours and transactions that committed a while after they stamped ``updated_at``.
POLL_OVERLAP = timedelta(seconds=60)

# The cache namespace of effective views: process memory only (views hold decrypted
# secrets and live objects), tagged by tenant.
EFFECTIVE_NAMESPACE = "effective_config"


def effective_key(tenant_id: str, user_id: str | None) -> str:
    """The cache key of a tenant's (or one of its users') effective view."""
    return f"{tenant_id}\x1f{user_id or ''}"


def tenant_tag(tenant_id: str) -> str:
    """The tag every cached view of a tenant carries."""
    return f"tenant:{tenant_id}"


@dataclass(frozen=True)
class ReloadStatus:
    """The last reload's outcome, for health checks and metrics."""

    outcome: Outcome
    trigger: str
    at: datetime | None
    active_hash: str
    errors: tuple[str, ...] = ()
    retryable: bool = False  # rejected for a passing reason (database down), not the content


@dataclass(frozen=True)
class ConfigChange:
    """What subscribers are told after a change has been applied."""

    trigger: str
    previous: AppConfig
    current: AppConfig
    documents: tuple[DocumentKey, ...] = ()
    restart_needed: tuple[str, ...] = ()


@dataclass(frozen=True)
class EffectiveConfig:
    """Application, tenant and (optionally) user configuration as one consistent view."""

    app: AppConfig
    tenant: TenantConfig
    user: UserConfig | None
    tenant_version: int
    user_version: int


@dataclass(frozen=True)
class Snapshot:
    sources: Sources
    loaded: LoadedConfig
    global_version: DocumentVersion | None
    global_issues: tuple[Issue, ...] = field(default=())


TENANT_POOL_SIZE = 1


def database_url(config: AppConfig) -> str:
    """The configured database, or the embedded SQLite file in the data directory."""
    return config.database.url or default_sqlite_url(config.data_dir or "./data")


def open_database(
    config: AppConfig, reference: str | None = None, *, create: bool = False
) -> Database:
    """The shared database, or with ``reference`` a strict tenant's own.

    A tenant's database is made only when ``create`` is set (the tenant is being
    created): one that has gone missing is an error, not silently made again empty.
    """
    settings = config.database
    password = settings.password.get_secret_value() if settings.password else None
    url = database_url(config)
    if reference is not None:
        url = resolve_reference(reference, config.data_dir or "./data")
        if create:
            ensure_database(url, password=password)
        else:
            missing_sqlite_file(url)
    # Each strict tenant's database has a pool of its own: few idle connections each,
    # so that many tenants do not exhaust the server's connection limit.
    pool_size = settings.pool_size if reference is None else TENANT_POOL_SIZE
    engine = create_engine(
        url,
        password=password,
        pool_size=pool_size,
        max_overflow=settings.pool_size if reference is None else settings.pool_size - 1,
        echo=settings.echo,
        sqlite_synchronous=settings.sqlite_synchronous,
    )
    return Database(engine)


@dataclass(frozen=True)
class DatabaseStatus:
    """Where a database is (password hidden) and which schema revision it is at.

    ``tenant``: the strictly isolated tenant it belongs to (None: the shared database);
    ``error``: why it could not be read (then its revision is unknown).
    """

    url: str
    current: str | None
    head: str
    tenant: str | None = None
    error: str | None = None

    @property
    def is_current(self) -> bool:
        return self.error is None and self.current == self.head


def _each_database(
    config: AppConfig, unreachable: Callable[[str, StorageError], None]
) -> Iterator[tuple[str | None, Database]]:
    """The shared database, then every strict tenant's that opens (each disposed after
    use); one that does not is told to ``unreachable`` and skipped.

    The registry is read once the shared database is past the migration that gave it
    tenant databases (the caller may have just upgraded it); before, there are none.
    """
    shared = open_database(config)
    try:
        yield None, shared
        if not has_tenant_databases(shared):
            return
        databases = TenantDatabases(shared, lambda ref: open_database(config, ref))
        try:
            for tenant_id, database in databases.reachable(unreachable):
                if tenant_id is not None:
                    yield tenant_id, database
        finally:
            databases.dispose()
    finally:
        shared.dispose()


def database_status(config: AppConfig) -> list[DatabaseStatus]:
    """The schema revision of the shared database and of every strict tenant's."""
    head = head_revision()
    found: list[DatabaseStatus] = []

    def unreachable(tenant: str, exc: StorageError) -> None:
        found.append(DatabaseStatus("", None, head, tenant, str(exc)))

    for tenant, database in _each_database(config, unreachable):
        try:
            current = current_revision(database.engine)
        except StorageError as exc:
            if tenant is None:
                raise
            unreachable(tenant, exc)
            continue
        found.append(DatabaseStatus(database.safe_url, current, head, tenant))
    return found


def migrate_database(config: AppConfig) -> list[tuple[DatabaseStatus, str | None]]:
    """Apply pending migrations to every database that opens; each new status with the
    revision before (a tenant database that does not open is listed with its error)."""
    head = head_revision()
    done: list[tuple[DatabaseStatus, str | None]] = []

    def unreachable(tenant: str, exc: StorageError) -> None:
        done.append((DatabaseStatus("", None, head, tenant, str(exc)), None))

    for tenant, database in _each_database(config, unreachable):
        try:
            before, after = upgrade(database.engine)
        except StorageError as exc:
            if tenant is None:
                raise
            unreachable(tenant, exc)
            continue
        done.append((DatabaseStatus(database.safe_url, after, head, tenant), before))
    return done


def global_layer(version: DocumentVersion) -> Layer:
    """A stored global overrides document as a configuration layer."""
    origin = documents.document_origin(version)
    positions = {path: origin for path, _ in leaves(version.content)}
    return Layer(f"global overrides v{version.version}", version.content, positions)


def _value_at(config: AppConfig, path: tuple[str, ...]) -> Any:
    node: Any = config
    for part in path:
        node = getattr(node, part)
    return node


class ConfigRuntime:
    """Holds the current snapshot, the store of runtime documents, and the subscribers."""

    def __init__(
        self,
        environment: ProcessEnvironment,
        *,
        files: Sequence[FsPath] | None = None,
        database: Database | None = None,
        migrate: bool | None = None,
        cache: CacheManager | None = None,
    ) -> None:
        self.environment = environment
        self._files = files
        self._database = database
        self._databases: TenantDatabases | None = None
        self._migrate = migrate
        self._lock = threading.RLock()
        self._snapshot: Snapshot | None = None
        self._subscribers: list[Callable[[ConfigChange], None]] = []
        self._cache = cache
        self._effective_views: CacheNamespace | None = None
        self._generation = 0
        self._known_versions: dict[DocumentKey, int] = {}
        # Unwrapped data keys of partially isolated tenants, with the master they came from.
        self._tenant_ciphers: dict[
            str, tuple[security.ValueCipher, str, security.TenantCipher]
        ] = {}
        self._last_poll: datetime | None = None
        self.status = ReloadStatus("never", "", None, "")
        self.reload_counts: Counter[tuple[str, Outcome]] = Counter()

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, **options: Any
    ) -> ConfigRuntime:
        return cls(read_environment(environ), **options)

    # --- start-up ------------------------------------------------------------------------

    def start(self) -> Snapshot:
        """Load files and environment, open the database, apply the stored overrides."""
        with self._lock:
            if self._snapshot is not None:
                return self._snapshot
            sources = load_sources(self.environment, self._files)
            base = resolve(sources)
            if self._database is None:
                self._database = open_database(base.config)
            migrate = base.config.database.auto_migrate if self._migrate is None else self._migrate
            if migrate:
                upgrade(self._database.engine)
            else:
                check_schema(self._database.engine)
            self._databases = TenantDatabases(self._database, self._open_tenant_database)
            self._store = RoutedDocumentStore(self._databases)
            self._last_poll = datetime.now(UTC)
            snapshot = self._with_overrides(sources, base)
            self._snapshot = snapshot
            # After the snapshot: opening a strict tenant's database reads the configuration.
            self._known_versions, unreachable = self._store.reachable_versions()
            if unreachable:
                self._last_poll = None  # the first poll reads everything again
                log.warning("config.tenant_databases_unreachable", tenants=unreachable)
            self._effective  # noqa: B018 - made now, so a reload only empties it
            self._record(
                ReloadStatus(
                    "applied" if not snapshot.global_issues else "rejected",
                    "start",
                    datetime.now(UTC),
                    snapshot.loaded.content_hash,
                    tuple(i.format() for i in errors_in(snapshot.global_issues)),
                )
            )
            return snapshot

    def _with_overrides(self, sources: Sources, base: LoadedConfig) -> Snapshot:
        """Add the stored global overrides; if they no longer validate, serve without them."""
        current = self._store.current(DocumentKey(Scope.GLOBAL))
        if current is None:
            return Snapshot(sources, base, None)
        try:
            return Snapshot(sources, resolve(sources, [global_layer(current)]), current)
        except ConfigValidationError as exc:
            log.error(
                "config.global_overrides_invalid",
                version=current.version,
                errors=[i.format() for i in errors_in(exc.issues)],
                hint="fix or roll back with: slack-tools config history / config rollback",
            )
            return Snapshot(sources, base, None, exc.issues)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot if self._snapshot is not None else self.start()

    @property
    def config(self) -> AppConfig:
        return self.snapshot.loaded.config

    @property
    def database(self) -> Database:
        self.snapshot  # noqa: B018 - starting opens the database
        assert self._database is not None
        return self._database

    @property
    def databases(self) -> TenantDatabases:
        """Where each tenant's data is: the shared database or its own (strict isolation)."""
        self.snapshot  # noqa: B018 - starting opens the database
        assert self._databases is not None
        return self._databases

    def close(self) -> None:
        """Close every database connection this runtime opened (tenants' own included)."""
        if self._databases is not None:
            self._databases.dispose()
        if self._database is not None:
            self._database.dispose()

    def database_for(self, tenant_id: str) -> Database:
        """The database holding ``tenant_id``'s data."""
        return self.databases.for_tenant(tenant_id)

    def _open_tenant_database(
        self, reference: str, *, migrate: bool | None = None, create: bool = False
    ) -> Database:
        config = self.config
        database = open_database(config, reference, create=create)
        try:
            if migrate is None:
                migrate = config.database.auto_migrate if self._migrate is None else self._migrate
            if migrate:
                upgrade(database.engine)
            else:
                check_schema(database.engine)
        except BaseException:
            database.dispose()
            raise
        return database

    def create_tenant_database(self, reference: str) -> Database:
        """Make a new strict tenant's database (and its schema) before it is registered."""
        return self._open_tenant_database(reference, migrate=True, create=True)

    @property
    def store(self) -> RoutedDocumentStore:
        self.snapshot  # noqa: B018 - starting opens the store
        return self._store

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold off reloads and other local writes while a document is written."""
        with self._lock:
            yield

    def reload_counts_snapshot(self) -> dict[tuple[str, Outcome], int]:
        """A copy of the reload counters, safe to iterate while reloads run."""
        with self._lock:
            return dict(self.reload_counts)

    def _record(self, status: ReloadStatus) -> None:
        self.status = status
        self.reload_counts[(status.trigger, status.outcome)] += 1

    # --- subscribers ---------------------------------------------------------------------

    def on_change(self, callback: Callable[[ConfigChange], None]) -> Callable[[], None]:
        """Call ``callback`` after every applied change; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def _notify(self, change: ConfigChange) -> None:
        for callback in list(self._subscribers):
            try:
                callback(change)
            except Exception:  # one broken subscriber must not stop the others
                log.exception("config.subscriber_failed", subscriber=repr(callback))

    # --- reloads -------------------------------------------------------------------------

    def reload(self, trigger: str = "manual") -> ReloadStatus:
        """Re-read files and stored overrides; apply only if everything validates."""
        with self._lock:
            self.snapshot  # noqa: B018 - starts the runtime if needed
            try:
                sources = load_sources(self.environment, self._files)
                current = self.store.current(DocumentKey(Scope.GLOBAL))
                layers = [global_layer(current)] if current else []
                loaded = resolve(sources, layers)
            except SlackToolsError as exc:
                return self._reject(trigger, exc)
            return self._swap(Snapshot(sources, loaded, current), trigger, ())

    def _reject(self, trigger: str, exc: SlackToolsError) -> ReloadStatus:
        """Record and log a reload that could not be applied; the old snapshot keeps serving."""
        if isinstance(exc, ConfigValidationError):
            errors = tuple(i.format() for i in errors_in(exc.issues))
        else:  # the database or a key file could not be read
            errors = (str(exc),)
        log.error("config.reload_rejected", trigger=trigger, errors=list(errors))
        self._record(
            ReloadStatus(
                "rejected",
                trigger,
                datetime.now(UTC),
                self.snapshot.loaded.content_hash,
                errors,
                retryable=not isinstance(exc, ConfigValidationError),
            )
        )
        return self.status

    def _swap(self, new: Snapshot, trigger: str, changed: tuple[DocumentKey, ...]) -> ReloadStatus:
        old = self.snapshot
        now = datetime.now(UTC)
        # The hash leaves secret values out, so compare the configurations too: a rotated
        # token must reach subscribers (the log scrubber, the Slack clients).
        same = new.loaded.content_hash == old.loaded.content_hash
        if same and new.loaded.config == old.loaded.config and not changed:
            self._snapshot = new
            self._record(ReloadStatus("unchanged", trigger, now, new.loaded.content_hash))
            return self.status
        restart = tuple(
            ".".join(path)
            for path in RESTART_KEYS
            if _value_at(old.loaded.config, path) != _value_at(new.loaded.config, path)
        )
        if restart:
            log.warning("config.restart_needed", keys=list(restart), trigger=trigger)
        self._snapshot = new
        self._invalidate_all()
        self._record(ReloadStatus("applied", trigger, now, new.loaded.content_hash))
        for issue in new.loaded.issues:
            if issue.level is Level.WARNING:
                log.debug("config.warning", issue=issue.format())
        log.info("config.reloaded", trigger=trigger, hash=new.loaded.content_hash[:12])
        self._notify(ConfigChange(trigger, old.loaded.config, new.loaded.config, changed, restart))
        return self.status

    def resolve_with_global(self, layer: Layer) -> LoadedConfig:
        """The application configuration if ``layer`` were the global overrides."""
        return resolve(self.snapshot.sources, [layer])

    def apply_written(self, version: DocumentVersion) -> None:
        """Make a document this process just wrote take effect here at once."""
        with self._lock:
            self._known_versions[version.key] = version.version
            if version.key.scope is Scope.GLOBAL:
                loaded = resolve(self.snapshot.sources, [global_layer(version)])
                self._swap(
                    Snapshot(self.snapshot.sources, loaded, version), "write", (version.key,)
                )
                return
            self._invalidate(version.key, broadcast=True)
            config = self.config
            self._notify(ConfigChange("write", config, config, (version.key,)))

    def refresh_from_database(self) -> tuple[DocumentKey, ...]:
        """Pick up documents written by other instances; returns the ones that changed."""
        self.snapshot  # noqa: B018 - starting sets the poll state
        self._refresh_registry()
        with self._lock:
            started = datetime.now(UTC)
            since = None if self._last_poll is None else self._last_poll - POLL_OVERLAP
            current, unreachable = self.store.reachable_versions(updated_since=since)
            if unreachable:
                # Not moved on: what those databases changed meanwhile is read when they answer.
                log.warning("config.tenant_databases_unreachable", tenants=unreachable)
            else:
                self._last_poll = started
            changed = tuple(
                key for key, version in current.items() if self._known_versions.get(key) != version
            )
            self._known_versions.update(current)
            if not changed:
                return ()
            for key in changed:
                self._invalidate(key)
            documents_only = tuple(key for key in changed if key.scope is not Scope.GLOBAL)
            if len(documents_only) < len(changed) and self._reload_global(changed):
                return changed
            if documents_only:  # a rejected global change alone changed nothing here
                log.info("config.documents_changed", documents=[k.label for k in documents_only])
                config = self.config
                self._notify(ConfigChange("database", config, config, documents_only))
            return changed

    def _reload_global(self, changed: tuple[DocumentKey, ...]) -> bool:
        """Apply the stored global overrides; False (old config kept) if they are invalid."""
        old = self.snapshot
        current = self.store.current(DocumentKey(Scope.GLOBAL))
        try:
            loaded = resolve(old.sources, [global_layer(current)] if current else [])
        except ConfigValidationError as exc:
            self._reject("database", exc)
            return False
        self._swap(Snapshot(old.sources, loaded, current), "database", changed)
        return True

    def _refresh_registry(self) -> None:
        """Pick up strict tenants created or deleted by other processes."""
        for tenant_id in self.databases.refresh():  # deleted, or deleted and created again
            self.forget_tenant(tenant_id)

    def forget_tenant(self, tenant_id: str) -> None:
        """Drop what this process holds of a tenant whose documents were deleted."""
        with self._lock:
            self._known_versions = {
                key: version
                for key, version in self._known_versions.items()
                if key.tenant_id != tenant_id
            }
            self._invalidate(DocumentKey.for_scope(tenant_id), broadcast=True)
            self._tenant_ciphers.pop(tenant_id, None)

    # --- ciphers -------------------------------------------------------------------------

    def cipher_for(
        self,
        tenant_id: str,
        tenant_document: Mapping[str, Any] | None,
        *,
        for_writing: bool = False,
    ) -> security.ValueCipher | None:
        """The cipher of a tenant's (and its users') secrets, given its stored document.

        The master key's, or under partial isolation the tenant's own data key, made
        when something is first written with it (stored wrapped by the master key).
        A document holding values under a data key is read with it whatever the
        settings say now.
        """
        master = self.snapshot.loaded.cipher
        document = tenant_document or {}
        isolation = document.get("isolation", self.config.tenants.defaults.isolation)
        holds_tenant_values = any(
            isinstance(value, str) and value.startswith(security.TENANT_PREFIX)
            for _, value in leaves(document)
        )
        if str(isolation) != IsolationMode.PARTIAL.value and not holds_tenant_values:
            return master
        if master is None:
            raise SecretError(
                f"tenant {tenant_id}: partial isolation encrypts with a data key wrapped by "
                "the master key, and none is configured (SLACK_TOOLS_MASTER_KEYS)"
            )
        # Read each time (views are cached above this): a tenant deleted and created
        # again by another instance has a new key.
        store = TenantStore(self.database.engine)
        wrapped = store.data_key(tenant_id)
        if wrapped is None:
            if not for_writing:  # nothing was written with a data key yet
                return master
            _, made = security.new_data_key(master, tenant_id)
            wrapped = store.keep_data_key(tenant_id, made)
        cached = self._tenant_ciphers.get(tenant_id)
        if cached is not None and cached[0] is master and cached[1] == wrapped:
            return cached[2]
        cipher = security.TenantCipher(master, security.unwrap_data_key(master, tenant_id, wrapped))
        self._tenant_ciphers[tenant_id] = (master, wrapped, cipher)
        return cipher

    # --- effective views -----------------------------------------------------------------

    @property
    def cache(self) -> CacheManager:
        """The cache manager holding the effective views (made from this configuration)."""
        if self._cache is None:
            with self._lock:
                if self._cache is None:
                    self._cache = CacheManager(self.config)
        return self._cache

    def use_cache(self, cache: CacheManager) -> None:
        """Keep effective views in ``cache`` from now on (the service's, with its metrics)."""
        with self._lock:
            if self._effective_views is not None:
                self._effective_views.drop_local()
            self._cache = cache
            self._effective_views = None
            self._generation += 1

    @property
    def _effective(self) -> CacheNamespace:
        views = self._effective_views
        if views is None:
            with self._lock:
                settings = self.config.cache
                views = self.cache.namespace(
                    EFFECTIVE_NAMESPACE,
                    tiers=[Tier.L1],
                    max_entries=settings.l1_max_entries,
                    # Changes invalidate; the lifetime only bounds a missed one.
                    ttl=settings.max_ttl_seconds,
                )
                self._effective_views = views
        return views

    def _invalidate_all(self) -> None:
        self._generation += 1
        self._effective.invalidate(prefix="", broadcast=False)

    def _invalidate(self, key: DocumentKey, *, broadcast: bool = False) -> None:
        """Drop the views ``key`` changes; ``broadcast`` tells the other instances too
        (for a write made here: they would otherwise see it at their next poll)."""
        self._generation += 1
        views = self._effective
        if key.scope is Scope.GLOBAL:  # every instance reloads its global config itself
            views.invalidate(prefix="", broadcast=False)
        elif key.scope is Scope.TENANT:
            self._drop(views, broadcast, tag=tenant_tag(key.tenant_id))
        else:
            self._drop(views, broadcast, keys=(effective_key(key.tenant_id, key.user_id),))

    @staticmethod
    def _drop(
        views: CacheNamespace,
        broadcast: bool,
        *,
        keys: tuple[str, ...] = (),
        tag: str | None = None,
    ) -> None:
        if broadcast:  # never waits: writers may hold the lock or run on the event loop
            views.invalidate_soon(keys=keys, tag=tag)
        else:
            views.invalidate(keys=keys, tag=tag, broadcast=False)

    def peek_effective(self, tenant_id: str, user_id: str | None = None) -> EffectiveConfig | None:
        """The cached view, or None without touching the database (for the event loop)."""
        found = self._effective.peek(effective_key(tenant_id, user_id))
        return None if found is MISSING else found

    def effective(self, tenant_id: str, user_id: str | None = None) -> EffectiveConfig:
        """The configuration as tenant ``tenant_id`` (and user) sees it; cached until a change."""
        views = self._effective
        cache_key = effective_key(tenant_id, user_id)
        found = views.peek(cache_key)
        if found is not MISSING:
            return found  # type: ignore[no-any-return]
        generation = self._generation
        computed = self._compute(tenant_id, user_id)
        plan = computed.tenant.plan
        views.stats.add(views.name, Tier.L1, Event.MISS, plan)
        with self._lock:
            # A change applied while computing makes the result stale: return it, don't keep it.
            if generation == self._generation:
                views.set(cache_key, computed, tags=(tenant_tag(tenant_id),), tenant_class=plan)
        return computed

    def _compute(self, tenant_id: str, user_id: str | None) -> EffectiveConfig:
        snapshot = self.snapshot
        app = snapshot.loaded.config
        tenant_key = DocumentKey.for_scope(tenant_id)
        tenant_doc = self.store.current(tenant_key)
        cipher = self.cipher_for(tenant_id, tenant_doc.content if tenant_doc else None)
        # A tenant that never changed anything has the defaults (version 0).
        tenant = self._validated(
            Scope.TENANT, tenant_key, documents.tenant_base(app), tenant_doc, cipher
        )
        assert isinstance(tenant, TenantConfig)
        tenant = self._with_registry_isolation(tenant_id, tenant)
        user: UserConfig | None = None
        user_version = 0
        if user_id is not None:
            user_key = DocumentKey.for_scope(tenant_id, user_id)
            user_doc = self.store.current(user_key)
            user_version = user_doc.version if user_doc else 0
            validated = self._validated(
                Scope.USER, user_key, documents.user_base(tenant), user_doc, cipher
            )
            assert isinstance(validated, UserConfig)
            user = validated
        tenant_version = tenant_doc.version if tenant_doc else 0
        return EffectiveConfig(app, tenant, user, tenant_version, user_version)

    def _with_registry_isolation(self, tenant_id: str, tenant: TenantConfig) -> TenantConfig:
        """The tenant as the registry places it: strict exactly when it has its own database.

        A tenant's database is chosen when it is created, so ``tenants.defaults.isolation:
        strict`` does not move a tenant created before; such a tenant reads as logical.
        """
        strict = self.databases.is_strict(tenant_id)
        if strict == (tenant.isolation is IsolationMode.STRICT):
            return tenant
        isolation = IsolationMode.STRICT if strict else IsolationMode.LOGICAL
        return tenant.model_copy(update={"isolation": isolation})

    @staticmethod
    def _validated(
        scope: Scope,
        key: DocumentKey,
        base: Mapping[str, Any],
        stored: DocumentVersion | None,
        cipher: Any,
    ) -> Any:
        content, issues = documents.open_secrets(key, stored.content if stored else {}, cipher)
        origin = documents.document_origin(stored) if stored else None
        positions = {p: origin for p, _ in leaves(content)} if origin else {}
        checked = documents.check_document(scope, base, content, positions)
        issues += checked.issues
        if errors_in(issues) or checked.model is None:
            raise ConfigValidationError(issues)
        return checked.model
