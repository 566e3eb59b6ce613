"""Accepting alerts: authenticate, limit floods, parse, route, and store durably.

The answer (202) is given only after the alerts and their deliveries are
committed (group commit, see ``writer``): what is accepted survives a crash.
Quotas never cost an alert (DESIGN "Decisions"); only the flood limit refuses,
with a status the sender retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

import sqlalchemy as sa
import structlog

from slack_tools.alerts import sources
from slack_tools.alerts.models import (
    AlertGroup,
    Source,
    Status,
    alert_from_dict,
    alert_to_dict,
    common_labels,
    group_meta,
    merge_alerts,
    parse_severity,
)
from slack_tools.alerts.routing import route_group
from slack_tools.configs import ConfigRuntime
from slack_tools.configs.cache_manager import MISSING, CacheManager, Event, Tier
from slack_tools.configs.metrics import ServiceMetrics
from slack_tools.configs.quotas import ALERTS, MemoryQuotaCounter, QuotaCounter, resource_quotas
from slack_tools.configs.runtime import tenant_tag
from slack_tools.configs.security import api_key_digest
from slack_tools.errors import AuthError, SlackToolsError, StorageError
from slack_tools.service.writer import CommitWriters, GroupCommitWriter
from slack_tools.slack.ratelimit import (
    Bucket,
    MemoryRateLimiter,
    RateLimiter,
    RateLimiterUnavailableError,
)
from slack_tools.storage import delivery
from slack_tools.storage.tenants import TenantStore
from slack_tools.storage.usage import note_usage

log = structlog.get_logger(__name__)
T = TypeVar("T")


class FloodError(SlackToolsError):
    """A tenant sends more requests than the hard flood limit allows."""

    def __init__(self, tenant_id: str, retry_after: float) -> None:
        super().__init__(f"tenant {tenant_id!r} is over its flood limit")
        self.retry_after = retry_after


class Unauthorized(AuthError):  # noqa: N818 - named after the HTTP answer it becomes
    """No key, or a key we do not know: 401."""


class Forbidden(AuthError):  # noqa: N818 - named after the HTTP answer it becomes
    """A known key that may not do this (tenant disabled): 403."""


@dataclass(frozen=True, slots=True)
class Caller:
    tenant_id: str
    key_id: int
    # Strict isolation: the tenant's data is in a database of its own, not the shared one.
    strict: bool = False


@dataclass(frozen=True, slots=True)
class Accepted:
    tenant_id: str
    alerts: int
    groups: tuple[delivery.GroupResult, ...]


KEYS_KNOWN_MAX = 50_000
KEYS_UNKNOWN_MAX = 5_000
UNKNOWN_SECONDS = 5.0
# Cache namespaces of API key lookups: process memory only, keyed by the key's digest
# (a key itself is never kept, and nothing of it leaves the process).
KEYS_NAMESPACE = "api_keys"
UNKNOWN_KEYS_NAMESPACE = "api_keys_unknown"


def _no_class(_tenant_id: str) -> str:
    return ""


class KeyCache:
    """API key digest → tenant, remembered for a while so requests do not hit the database.

    Held in two L1-only namespaces of the cache manager, tagged by tenant: known keys
    and unknown ones apart, each bounded, so random keys sent by anyone can neither
    grow memory nor push the real tenants' keys out.
    """

    def __init__(
        self,
        store: TenantStore,
        ttl: float,
        cache: CacheManager,
        *,
        tenant_class: Callable[[str], str] = _no_class,
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._tenant_class = tenant_class
        self._known = cache.namespace(
            KEYS_NAMESPACE, tiers=[Tier.L1], max_entries=KEYS_KNOWN_MAX, ttl=ttl
        )
        self._unknown = cache.namespace(
            UNKNOWN_KEYS_NAMESPACE,
            tiers=[Tier.L1],
            max_entries=KEYS_UNKNOWN_MAX,
            ttl=min(ttl, UNKNOWN_SECONDS),
        )
        self.used: dict[int, datetime] = {}

    async def caller(self, authorization: str | None) -> Caller:
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized("send the tenant's API key as Authorization: Bearer <key>")
        digest = api_key_digest(key.strip())
        if self._unknown.peek(digest) is not MISSING:
            raise Unauthorized("unknown or revoked API key")
        cached = self._known.peek(digest)
        if cached is MISSING:
            found = await asyncio.to_thread(self._lookup, digest)
            if found is None:
                self._known.stats.add(KEYS_NAMESPACE, Tier.L1, Event.MISS, "")
                self._unknown.set(digest, True)
                raise Unauthorized("unknown or revoked API key")
            cached, tenant_class = found
            self._known.stats.add(KEYS_NAMESPACE, Tier.L1, Event.MISS, tenant_class)
            self._known.set(
                digest, cached, tags=(tenant_tag(cached[0].tenant_id),), tenant_class=tenant_class
            )
        caller: Caller = cached[0]
        if not cached[1]:  # the tenant is not active
            raise Forbidden(f"tenant {caller.tenant_id!r} is disabled")
        self.used[caller.key_id] = datetime.now(UTC)
        return caller

    def _lookup(self, digest: str) -> tuple[tuple[Caller, bool], str] | None:
        """The key's caller and whether its tenant is active, with the tenant's class
        (worker thread: both may read the database)."""
        found = self._store.find_key(digest)
        if found is None:
            return None
        record, tenant = found
        caller = Caller(tenant.id, record.id, tenant.is_strict)
        return (caller, tenant.is_active), self._tenant_class(tenant.id)

    def forget(self) -> None:
        self._known.drop_local()
        self._unknown.drop_local()

    def forget_tenant(self, tenant_id: str) -> None:
        """Drop a tenant's keys here and (over Redis, without waiting) on every instance:
        a revoked key or a disabled tenant is refused at once instead of within the TTL."""
        self._known.invalidate_soon(tag=tenant_tag(tenant_id))

    async def flush_usage(self) -> None:
        used, self.used = self.used, {}
        if used:
            await asyncio.to_thread(self._store.touch_keys, used)


class FloodGate:
    """The hard per-tenant request limit, shared through Redis when configured."""

    def __init__(self, limiter: RateLimiter | None, bucket: Bucket) -> None:
        self._shared = limiter
        self._local = MemoryRateLimiter()
        self.bucket = bucket

    async def check(self, tenant_id: str) -> None:
        key = f"flood:{tenant_id}"
        wait: float
        if self._shared is not None:
            try:
                wait = await self._shared.try_acquire(key, self.bucket)
            except RateLimiterUnavailableError:
                wait = await self._local.try_acquire(key, self.bucket)
        else:
            wait = await self._local.try_acquire(key, self.bucket)
        if wait > 0:
            raise FloodError(tenant_id, wait)


def group_merger(group: AlertGroup) -> delivery.Merge:
    """How ``group`` combines with what is stored: replaced whole, or merged by alert."""

    def merge(stored: delivery.StoredGroup | None) -> delivery.GroupChange:
        current = group
        if not group.replaces and stored is not None:
            alerts = merge_alerts(
                tuple(alert_from_dict(a) for a in stored.alerts),
                group.alerts,
                refired=stored.status == Status.RESOLVED.value and group.status is Status.FIRING,
            )
            firing = any(not a.is_resolved for a in alerts)
            current = replace(
                group,
                alerts=alerts,
                common_labels=common_labels(alerts),
                status=Status.FIRING if firing else Status.RESOLVED,
            )
        return delivery.GroupChange(
            status=current.status.value,
            state_hash=current.state_hash,
            alerts=[alert_to_dict(a) for a in current.alerts],
            meta=group_meta(current),
        )

    return merge


class Ingestor:
    """Turns an authenticated request body into durably stored notifications."""

    def __init__(
        self,
        runtime: ConfigRuntime,
        writers: CommitWriters,
        keys: KeyCache,
        flood: FloodGate,
        metrics: ServiceMetrics,
        *,
        on_queued: Callable[[str], None] = lambda _tenant_id: None,
        quotas: QuotaCounter | None = None,
    ) -> None:
        self.runtime = runtime
        self.quotas = quotas or MemoryQuotaCounter()
        self.writers = writers
        self.keys = keys
        self.flood = flood
        self.metrics = metrics
        self.on_queued = on_queued

    async def authenticate(self, authorization: str | None) -> Caller:
        try:
            caller = await self.keys.caller(authorization)
        except AuthError:
            self.metrics.rejected_of("", "auth").inc()
            raise
        try:
            await self.flood.check(caller.tenant_id)
        except FloodError:
            self.metrics.rejected_of(caller.tenant_id, "flood").inc()
            raise
        return caller

    async def accept(self, caller: Caller, source: Source, body: bytes) -> Accepted:
        """Parse, route and store; returns once everything is committed."""
        groups = sources.parse(source, body)
        effective = self.runtime.peek_effective(caller.tenant_id)
        if effective is None:
            effective = await asyncio.to_thread(self.runtime.effective, caller.tenant_id)
        tenant = effective.tenant
        now = datetime.now(UTC)
        writes = []
        for group in groups:
            targets = tuple(
                delivery.TargetWrite(t.channel, t.locale, t.passes_threshold)
                for t in route_group(group, tenant)
            )
            writes.append((group, targets))
        alerts = sum(len(g.alerts) for g in groups)
        hold_until = await self._alerts_over_quota(caller.tenant_id, tenant.quotas, alerts)
        writer = await self._writer_of(caller) if caller.strict else self.writers.shared
        results = await writer.run(
            _store(caller.tenant_id, source, writes, now, hold_until=hold_until)
        )
        self._count(caller.tenant_id, source, groups, results)
        if any(r.outcome is delivery.WriteOutcome.QUEUED for r in results):
            self.on_queued(caller.tenant_id)
        return Accepted(caller.tenant_id, alerts, tuple(results))

    async def _writer_of(self, caller: Caller) -> GroupCommitWriter:
        """The writer of a strictly isolated tenant's own database.

        The open database is looked up in memory on every request, so a tenant deleted
        (its database closed) or made again elsewhere is never written to the old one.
        """
        databases = self.runtime.databases
        database = databases.opened(caller.tenant_id)
        if database is None:  # off the loop: opening reads the registry and the database
            database = await asyncio.to_thread(self.runtime.database_for, caller.tenant_id)
        if database is databases.shared:
            # Deleted since its key was looked up (the key cache keeps it a little while):
            # its alerts have nowhere to go, and must not land among the shared tenants'.
            raise StorageError(f"tenant {caller.tenant_id} has no database of its own now")
        return self.writers.for_engine(database.engine)

    async def _alerts_over_quota(
        self, tenant_id: str, limits: Mapping[str, int], alerts: int
    ) -> datetime | None:
        """Count the alerts against the tenant's alert quotas; when the new ones may be sent.

        None when they fit. Over a quota they are still accepted and stored, and their
        new messages wait for the window to reopen (DESIGN "Decisions": quotas never
        cost an alert).
        """
        over = []
        for quota in resource_quotas(limits, ALERTS):
            use = await self.quotas.take(tenant_id, quota, alerts)
            if not use.allowed:
                over.append(use)
                self.metrics.quota_exceeded.labels(tenant=tenant_id, quota=quota.name).inc()
        if not over:
            return None
        return datetime.fromtimestamp(max(use.window_end for use in over), UTC)

    def _count(
        self,
        tenant_id: str,
        source: Source,
        groups: list[AlertGroup],
        results: list[delivery.GroupResult],
    ) -> None:
        metrics = self.metrics
        metrics.alerts_received_of(tenant_id, source.value).inc(sum(len(g.alerts) for g in groups))
        for result in results:
            metrics.notifications_of(tenant_id, result.outcome.value).inc()
        unknown = sum(
            1 for g in groups for a in g.alerts if not parse_severity(a.labels.get("severity"))[1]
        )
        if unknown:
            metrics.unknown_severity_of(tenant_id).inc(unknown)


def _store(
    tenant_id: str,
    source: Source,
    writes: list[tuple[AlertGroup, tuple[delivery.TargetWrite, ...]]],
    now: datetime,
    *,
    hold_until: datetime | None = None,
) -> Callable[[sa.Connection], list[delivery.GroupResult]]:
    def job(connection: sa.Connection) -> list[delivery.GroupResult]:
        results = [
            delivery.write_group(
                connection,
                tenant_id=tenant_id,
                group_hash=group.group_hash,
                group_key=group.group_key,
                source=source.value,
                merge=group_merger(group),
                targets=targets,
                now=now,
                merge_needs_alerts=not group.replaces,
            )
            for group, targets in writes
        ]
        # An HA replica's copy of a notification is not billed a second time.
        received = sum(
            len(group.alerts)
            for (group, _), result in zip(writes, results, strict=True)
            if result.outcome is not delivery.WriteOutcome.DUPLICATE
        )
        held = 0
        if hold_until is not None:
            held = sum(
                delivery.hold_unsent(connection, tenant_id, r.group_hash, until=hold_until, now=now)
                for r in results
                if r.outcome is not delivery.WriteOutcome.DUPLICATE
            )
        note_usage(
            connection,
            tenant_id,
            now,
            alerts_received=received,
            api_calls=1,
            messages_held=held,
        )
        return results

    return job
