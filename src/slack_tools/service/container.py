"""The one object that holds everything a running service needs, built from the configuration."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy.exc import SQLAlchemyError

from slack_tools.configs import ConfigManager, ConfigRuntime
from slack_tools.configs.cache_manager import CacheManager
from slack_tools.configs.hot_reload import ConfigWatcher, TreeWatcher
from slack_tools.configs.localization import Catalogs, packaged_catalogs
from slack_tools.configs.metrics import (
    CacheMetrics,
    ConfigCollector,
    ServiceMetrics,
    build_registry,
)
from slack_tools.configs.quotas import (
    FailoverQuotaCounter,
    MemoryQuotaCounter,
    QuotaCounter,
    RedisQuotaCounter,
)
from slack_tools.configs.schema import AppConfig
from slack_tools.configs.security.tokens import hmac_secret
from slack_tools.configs.templates import TemplateEngine, TemplateFallback
from slack_tools.errors import SlackToolsError
from slack_tools.service import retention
from slack_tools.service.dispatcher import Dispatcher
from slack_tools.service.ingest import FloodGate, Ingestor, KeyCache
from slack_tools.service.logging import scrubber
from slack_tools.service.writer import CommitWriters
from slack_tools.slack.client import SlackClient
from slack_tools.slack.fake import DEV_TOKEN, FakeSlack
from slack_tools.slack.ratelimit import Bucket, RateLimiter, RedisRateLimiter
from slack_tools.storage import Database
from slack_tools.storage import delivery as outbox
from slack_tools.storage.tenants import TenantStore

log = structlog.get_logger(__name__)

DEV_SLACK_PATH = "/dev/slack"
STATS_SECONDS = 5.0
PRUNE_SECONDS = 600.0
KEY_USAGE_SECONDS = 30.0


@dataclass
class Service:
    """Configuration, storage, ingest, dispatch, metrics and the dev Slack fake."""

    runtime: ConfigRuntime
    registry: CollectorRegistry
    metrics: ServiceMetrics
    watcher: ConfigWatcher
    writer: CommitWriters
    ingestor: Ingestor
    dispatcher: Dispatcher
    slack: SlackClient
    tenants: TenantStore
    catalogs: Catalogs
    templates: TemplateEngine
    cache: CacheManager
    file_watchers: list[TreeWatcher] = field(default_factory=list)
    fake: FakeSlack | None = None
    redis: Redis | None = None
    quotas: QuotaCounter = field(default_factory=MemoryQuotaCounter)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _reported_tenants: set[str] = field(default_factory=set)
    _unreadable: set[str | None] = field(default_factory=set)

    @property
    def manager(self) -> ConfigManager:
        return ConfigManager(self.runtime)

    @property
    def database(self) -> Database:
        return self.runtime.database

    async def start(self) -> None:
        """Start the writer thread and the background tasks."""
        await self.cache.start()  # this loop becomes the cache's: Redis, invalidations
        self.writer.start()
        self.tasks = [
            asyncio.create_task(self.watcher.run(self.stop), name="config-watcher"),
            asyncio.create_task(self.dispatcher.run(self.stop), name="dispatcher"),
            asyncio.create_task(self._maintain(), name="maintenance"),
            asyncio.create_task(retention.run(self), name="retention"),
            *(
                asyncio.create_task(w.run(self.stop), name=f"{w.name}-watcher")
                for w in self.file_watchers
            ),
        ]

    async def close(self, grace_seconds: float) -> None:
        """Stop claiming, finish the sends in flight within the grace period, release the rest."""
        self.begin_stopping()
        for task in self.tasks:  # the dispatcher loop first: it claims nothing more
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, timeout=grace_seconds)
        await self.dispatcher.drain(grace_seconds)
        await asyncio.to_thread(self.writer.stop)  # every database's writer
        with contextlib.suppress(SlackToolsError):
            await self.ingestor.keys.flush_usage()
        await self.slack.close()
        await self.cache.aclose()
        if self.redis is not None:
            await self.redis.aclose()

    def begin_stopping(self) -> None:
        """Claim nothing more (called at SIGTERM, before the HTTP server drains)."""
        self.dispatcher.stopping = True
        self.stop.set()

    def dispatcher_alive(self) -> bool:
        task = next((t for t in self.tasks if t.get_name() == "dispatcher"), None)
        last = self.dispatcher.last_cycle
        if task is None or task.done() or last is None:
            return False
        stale_after = max(self.runtime.config.delivery.poll_seconds * 10, 15.0)
        return datetime.now(UTC).timestamp() - last < stale_after

    async def _maintain(self) -> None:
        """Queue gauges, pruning of old deliveries, and API key last-use times."""
        loop = asyncio.get_running_loop()
        next_prune = next_usage = loop.time()
        while not self.stop.is_set():
            try:
                await self._publish_stats()
                await asyncio.to_thread(self._retire_writers)
                if loop.time() >= next_usage:
                    await self.ingestor.keys.flush_usage()
                    next_usage = loop.time() + KEY_USAGE_SECONDS
                if loop.time() >= next_prune:
                    await asyncio.to_thread(self._prune)
                    next_prune = loop.time() + PRUNE_SECONDS
            except SlackToolsError as exc:
                log.warning("maintenance.failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=STATS_SECONDS)

    def _each_database(self, what: str) -> Iterator[tuple[str | None, Database]]:
        """The shared database, then each strict tenant's own (None: the shared one).

        A tenant database that cannot be opened is skipped, and logged when that starts.
        """
        return self.runtime.databases.reachable(
            lambda tenant_id, exc: self._unreachable(tenant_id, what, exc)
        )

    def tenant_database_states(self) -> dict[str, str]:
        """Each strict tenant's database, "ok" or "down" as the last statistics run found
        it (answered from memory: a readiness probe must not query every database)."""
        return {
            tenant_id: "down" if tenant_id in self._unreadable else "ok"
            for tenant_id in self.runtime.databases.strict_ids()
        }

    def _unreachable(self, tenant_id: str | None, what: str, exc: Exception) -> None:
        if tenant_id not in self._unreadable:
            self._unreadable.add(tenant_id)
            log.warning(
                "maintenance.database_unreachable",
                tenant=tenant_id or "",
                task=what,
                error=str(exc) if isinstance(exc, SlackToolsError) else type(exc).__name__,
            )

    def _read_stats(self) -> outbox.QueueStats:
        """The outbox statistics of every database together (one tenant's database each)."""
        pending: dict[str, int] = {}
        dead: dict[str, int] = {}
        oldest: list[datetime] = []
        readable: set[str | None] = set()
        for tenant_id, database in self._each_database("stats"):
            try:
                with database.engine.connect() as connection:
                    stats = outbox.queue_stats(connection)
            except SQLAlchemyError as exc:
                self._unreachable(tenant_id, "stats", exc)
                continue
            readable.add(tenant_id)
            # A strict tenant's database speaks for that tenant only.
            for counts, into in ((stats.pending_by_tenant, pending), (stats.dead_by_tenant, dead)):
                for tenant, count in counts.items():
                    if tenant_id is None or tenant == tenant_id:
                        into[tenant] = into.get(tenant, 0) + count
            if stats.oldest_pending_since is not None:
                oldest.append(stats.oldest_pending_since)
        for tenant_id in self._unreadable & readable:
            log.info("maintenance.database_back", tenant=tenant_id or "")
        self._unreadable -= readable
        return outbox.QueueStats(pending, dead, min(oldest) if oldest else None)

    async def _publish_stats(self) -> None:
        stats = await asyncio.to_thread(self._read_stats)
        for tenant, count in stats.pending_by_tenant.items():
            self.metrics.outbox_depth.labels(tenant=tenant).set(count)
        for tenant, count in stats.dead_by_tenant.items():
            self.metrics.dead_letters.labels(tenant=tenant).set(count)
        # A tenant whose queue emptied drops out of the statistics: show it at zero.
        for tenant in self._reported_tenants - set(stats.pending_by_tenant):
            self.metrics.outbox_depth.labels(tenant=tenant).set(0)
        for tenant in self._reported_tenants - set(stats.dead_by_tenant):
            self.metrics.dead_letters.labels(tenant=tenant).set(0)
        self._reported_tenants |= set(stats.pending_by_tenant) | set(stats.dead_by_tenant)
        oldest = stats.oldest_pending_since
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
        self.metrics.oldest_undelivered.set(max(age, 0.0))

    def _retire_writers(self) -> None:
        """Stop the commit writers of tenant databases no longer open (tenant deleted)."""
        databases = self.runtime.databases
        retired = self.writer.retire_except(
            lambda: [database.engine for database in databases.open_databases()]
        )
        if retired:
            log.info("ingest.writers_retired", count=retired)

    def _prune(self) -> None:
        """Delete what resolved groups no longer need, in every database."""
        retention = timedelta(hours=self.runtime.config.delivery.retention_hours)
        before = datetime.now(UTC) - retention
        for tenant_id, database in self._each_database("prune"):
            try:
                with database.transaction() as connection:
                    deliveries, groups = outbox.prune(connection, before)
            except SQLAlchemyError as exc:
                self._unreachable(tenant_id, "prune", exc)
                continue
            if deliveries or groups:
                log.info(
                    "outbox.pruned", tenant=tenant_id or "", deliveries=deliveries, groups=groups
                )


def known_secrets(runtime: ConfigRuntime) -> list[str]:
    """Secret values the log scrubber must never let through."""
    config = runtime.config
    values = [
        config.slack.bot_token,
        config.slack.signing_secret,
        # The secret admin tokens are checked with: configured, or dev's generated one.
        hmac_secret(config) if config.security.admin_api else config.security.jwt.secret,
        config.database.password,
        config.redis.password,
        runtime.environment.master_keys,
    ]
    found = [v.get_secret_value() for v in values if v is not None]
    if runtime.environment.master_keys is not None:
        # Each key's base64 on its own, as well as the whole variable.
        found += [entry.partition(":")[2] for entry in found[-1].split(",")]
    return found


def tenant_class(runtime: ConfigRuntime, tenant_id: str, *, load: bool = False) -> str:
    """The tenant's plan, for metric labels: from its cached view, else ``none`` (or, with
    ``load``, from its view read now: worker threads only)."""
    effective = runtime.peek_effective(tenant_id)
    if effective is None and load:
        with contextlib.suppress(SlackToolsError):
            effective = runtime.effective(tenant_id)
    return effective.tenant.plan if effective is not None else "none"


def slack_base_url(config: AppConfig, port: int) -> str:
    """Where the Slack client sends its calls: Slack, or the fake this service mounts in dev."""
    if config.slack.mock:
        return f"http://127.0.0.1:{port}{DEV_SLACK_PATH}/api/"
    return config.slack.base_url


def build_service(runtime: ConfigRuntime, *, port: int | None = None) -> Service:
    """Wire a service around a started configuration runtime."""
    config = runtime.config
    registry = build_registry()
    registry.register(ConfigCollector(runtime))
    metrics = ServiceMetrics(registry)
    # One cache manager for the service; effective views, API keys and channel ids use it.
    cache_metrics = CacheMetrics(registry)
    cache = CacheManager(config, observe=cache_metrics.observe)
    cache_metrics.watch(cache)
    runtime.use_cache(cache)
    watcher = ConfigWatcher(
        runtime,
        [Path(p) for p in runtime.environment.config_paths],
        debounce_seconds=config.reload.debounce_seconds,
        poll_database_seconds=config.reload.poll_database_seconds,
        watch_files=config.reload.watch_files,
    )
    database = runtime.database
    redis, limiter = _redis(config)
    quotas = _quotas(runtime, redis, metrics)
    tenants = TenantStore(database.engine)
    catalogs, templates = _localization(config, metrics)
    slack = SlackClient(
        slack_base_url(config, port or config.server.port), timeout=config.slack.timeout_seconds
    )
    fake = FakeSlack.dev() if config.slack.mock else None
    dispatcher = Dispatcher(
        runtime,
        slack,
        catalogs,
        metrics,
        templates=templates,
        limiter=limiter,
        quotas=quotas,
        default_token=(lambda: DEV_TOKEN) if fake is not None else (lambda: None),
    )
    # One group-commit writer per database: the shared one's, each strict tenant's on use.
    writer = CommitWriters(database.engine, max_batch=config.ingest.group_commit_max)
    ingest = config.ingest
    ingestor = Ingestor(
        runtime,
        writer,
        KeyCache(
            tenants,
            ingest.key_cache_seconds,
            cache,
            tenant_class=lambda tenant_id: tenant_class(runtime, tenant_id, load=True),
        ),
        FloodGate(limiter, Bucket(ingest.flood_requests_per_second, ingest.flood_burst)),
        metrics,
        on_queued=dispatcher.wake,
        quotas=quotas,
    )
    runtime.on_change(lambda _change: scrubber.update(known_secrets(runtime)))
    # monitoring.log_level and the breaker settings may change at run time.
    runtime.on_change(
        lambda change: logging.getLogger().setLevel(change.current.monitoring.log_level)
    )
    runtime.on_change(
        lambda change: dispatcher.breakers.configure(change.current.resilience.breaker)
    )
    return Service(
        runtime=runtime,
        registry=registry,
        metrics=metrics,
        watcher=watcher,
        writer=writer,
        ingestor=ingestor,
        dispatcher=dispatcher,
        slack=slack,
        tenants=tenants,
        catalogs=catalogs,
        templates=templates,
        cache=cache,
        file_watchers=_file_watchers(config, catalogs, templates),
        fake=fake,
        redis=redis,
        quotas=quotas,
    )


def _quotas(runtime: ConfigRuntime, redis: Redis | None, metrics: ServiceMetrics) -> QuotaCounter:
    """Shared in Redis when it is configured (memory while it fails), else this process's.

    A strictly isolated tenant's counters are under its own key prefix."""
    if redis is None:
        return MemoryQuotaCounter()
    return FailoverQuotaCounter(
        RedisQuotaCounter(
            redis, runtime.config.redis.key_prefix, strict=runtime.databases.is_known_strict
        ),
        on_fallback=metrics.quota_fallbacks.inc,
    )


def _localization(config: AppConfig, metrics: ServiceMetrics) -> tuple[Catalogs, TemplateEngine]:
    settings = config.localization
    catalogs = Catalogs(
        directory=Path(settings.catalogs_directory or packaged_catalogs()),
        # The fallback and default locales are always loaded, offered or not.
        supported=tuple(
            dict.fromkeys(
                (*settings.supported_locales, settings.fallback_locale, settings.default_locale)
            )
        ),
        default_locale=settings.default_locale,
        fallback_locale=settings.fallback_locale,
    )

    def count_fallback(event: TemplateFallback) -> None:
        # Renders run inside the dispatcher, which binds the tenant being delivered.
        tenant = str(structlog.contextvars.get_contextvars().get("tenant", ""))
        metrics.template_fallbacks.labels(
            tenant=tenant, origin=event.origin.value, reason=event.reason.value
        ).inc()

    directory = settings.templates_directory
    templates = TemplateEngine(
        Path(directory) if directory else None,
        limits=settings.template_limits,
        on_fallback=count_fallback,
    )
    return catalogs, templates


def _file_watchers(
    config: AppConfig, catalogs: Catalogs, templates: TemplateEngine
) -> list[TreeWatcher]:
    """Reload catalogs and templates when their files change (``localization.hot_reload``)."""
    if not config.localization.hot_reload:
        return []
    timing = {
        "debounce_seconds": config.reload.debounce_seconds,
        "poll_seconds": config.reload.poll_database_seconds,
    }
    return [
        TreeWatcher("catalogs", [catalogs.directory], catalogs.reload, suffixes=(".po",), **timing),
        TreeWatcher(
            "templates", [templates.directory], templates.reload, suffixes=(".j2",), **timing
        ),
    ]


def _redis(config: AppConfig) -> tuple[Redis | None, RateLimiter | None]:
    if not config.redis.url:
        return None, None
    password = config.redis.password.get_secret_value() if config.redis.password else None
    client = Redis.from_url(
        config.redis.url,
        password=password,
        socket_timeout=config.redis.socket_timeout_seconds,
        socket_connect_timeout=config.redis.socket_timeout_seconds,
    )
    return client, RedisRateLimiter(client, config.redis.key_prefix + "ratelimit:")
