"""Prometheus metrics in the ``slack_tools_*`` family, on a registry the caller owns.

Library code never registers on the global registry: the service builds one
registry and passes it, so tests get a fresh one each and two services in one
process do not collide.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from slack_tools.configs.cache_manager import CacheManager
from slack_tools.configs.runtime import ConfigRuntime

MetricT = TypeVar("MetricT", Counter, Histogram, Gauge)


def build_registry() -> CollectorRegistry:
    """A fresh registry for one service."""
    # ``*_created`` series double every counter and nobody here reads them.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    return CollectorRegistry(auto_describe=True)


class ConfigCollector(Collector):
    """Reload outcomes and the active configuration, read from the runtime at scrape time."""

    def __init__(self, runtime: ConfigRuntime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        status = self.runtime.status
        reloads = CounterMetricFamily(
            "slack_tools_config_reloads",
            "Configuration reloads by trigger and outcome.",
            labels=["trigger", "outcome"],
        )
        for (trigger, outcome), count in sorted(self.runtime.reload_counts_snapshot().items()):
            reloads.add_metric([trigger, outcome], count)
        yield reloads
        success = GaugeMetricFamily(
            "slack_tools_config_last_reload_success",
            "1 if the last configuration reload was applied or unchanged, 0 if rejected.",
        )
        success.add_metric([], 0.0 if status.outcome == "rejected" else 1.0)
        yield success
        if status.at is not None:
            yield GaugeMetricFamily(
                "slack_tools_config_last_reload_timestamp_seconds",
                "When the last configuration reload ran (Unix time).",
                value=status.at.timestamp(),
            )
        info = GaugeMetricFamily(
            "slack_tools_config_info",
            "The active configuration: environment and content hash.",
            labels=["environment", "hash"],
        )
        info.add_metric([self.runtime.config.environment.value, status.active_hash[:12]], 1.0)
        yield info


class CacheCollector(Collector):
    """The cache's counts and the state of its Redis tier, read at scrape time."""

    def __init__(self, cache: CacheManager) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        counts = self.cache.stats.snapshot()
        events = CounterMetricFamily(
            "slack_tools_cache_events",
            "Cache lookups and what became of them (hit, stale_hit, miss, coalesced, "
            "eviction, invalidation_received, error), by namespace, tier and tenant class.",
            labels=["namespace", "tier", "event", "tenant_class"],
        )
        lookups: dict[str, list[int]] = {}
        for (namespace, tier, event, tenant_class), count in sorted(counts.items()):
            events.add_metric([namespace, tier, event, tenant_class], count)
            if tier == "l1" and event in {"hit", "stale_hit", "miss"}:
                seen = lookups.setdefault(namespace, [0, 0])
                seen[0] += count if event != "miss" else 0
                seen[1] += count
        yield events
        ratio = GaugeMetricFamily(
            "slack_tools_cache_hit_ratio",
            "Share of lookups served from process memory since start, by namespace.",
            labels=["namespace"],
        )
        for namespace, (hits, total) in sorted(lookups.items()):
            ratio.add_metric([namespace], hits / total if total else 0.0)
        yield ratio
        core = self.cache.core
        if core.has_redis:
            yield GaugeMetricFamily(
                "slack_tools_cache_redis_available",
                "1 while the cache's Redis tier is in use, 0 while its breaker keeps it off.",
                value=1.0 if core.redis is None or core.redis.is_available else 0.0,
            )
            yield GaugeMetricFamily(
                "slack_tools_cache_invalidation_channel_up",
                "1 while this instance receives the other instances' cache invalidations.",
                value=1.0 if core.channel_up else 0.0,
            )


CACHE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1)


class CacheMetrics:
    """The cache's latency per tier (L2, L3 and loaders; an L1 hit is not timed: timing
    would cost as much as the hit) and its collector."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self.latency = Histogram(
            "slack_tools_cache_latency_seconds",
            "Time of one cache read below process memory, by tier and tenant class.",
            ["tier", "tenant_class"],
            buckets=CACHE_BUCKETS,
            registry=registry,
        )
        self._latency_of = Children(self.latency)

    def observe(self, tier: str, tenant_class: str, seconds: float) -> None:
        self._latency_of(tier, tenant_class or "none").observe(seconds)

    def watch(self, cache: CacheManager) -> None:
        """Export ``cache``'s counts on this registry."""
        self._registry.register(CacheCollector(cache))


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 5, 10, 30, 60, 120, 300, 900)


class Children(Generic[MetricT]):
    """A metric's children by label values, looked up once each.

    ``labels()`` checks, converts and locks on every call, which on the ingest path
    cost more than the increment itself. The series are the metric's own, so
    ``/metrics`` shows the same thing; only call sites that never remove a series
    use this.
    """

    def __init__(self, metric: MetricT) -> None:
        self._metric: MetricT = metric
        self._children: dict[tuple[str, ...], MetricT] = {}

    def __call__(self, *values: str) -> MetricT:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class ServiceMetrics:
    """The service's metrics. Business counters carry ``tenant``; latency histograms
    carry the bounded ``tenant_class`` (the tenant's plan) instead (DESIGN "Metric labels")."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.request_duration = Histogram(
            "slack_tools_request_duration_seconds",
            "HTTP request duration.",
            ["route", "method", "status", "tenant_class"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.alerts_received = Counter(
            "slack_tools_alerts_received",
            "Alerts accepted, by tenant and source.",
            ["tenant", "source"],
            registry=registry,
        )
        self.notifications = Counter(
            "slack_tools_notifications",
            "Group notifications received, by what became of them.",
            ["tenant", "outcome"],
            registry=registry,
        )
        self.rejected = Counter(
            "slack_tools_requests_rejected",
            "Requests refused, by reason.",
            ["tenant", "reason"],
            registry=registry,
        )
        self.unknown_severity = Counter(
            "slack_tools_unknown_severity",
            "Alerts whose severity label was not understood.",
            ["tenant"],
            registry=registry,
        )
        self.retention_deleted = Counter(
            "slack_tools_retention_deleted",
            "Alert data deleted by the retention job, by tenant and kind (groups, deliveries).",
            ["tenant", "kind"],
            registry=registry,
        )
        self.retention_runs = Counter(
            "slack_tools_retention_runs",
            "Runs of the retention job, by outcome (success, failure).",
            ["outcome"],
            registry=registry,
        )
        self.quota_exceeded = Counter(
            "slack_tools_quota_exceeded",
            "Uses beyond a tenant's quota (held or refused), by tenant and quota.",
            ["tenant", "quota"],
            registry=registry,
        )
        self.messages_held = Counter(
            "slack_tools_messages_held",
            "Deliveries held back by a tenant's quota (each counted once), by tenant.",
            ["tenant"],
            registry=registry,
        )
        self.quota_fallbacks = Counter(
            "slack_tools_quota_fallbacks",
            "Quota counts made in this process's memory because Redis failed.",
            registry=registry,
        )
        # The ingest path's series, by label values in the metrics' label order.
        self.request_duration_of = Children(self.request_duration)
        self.alerts_received_of = Children(self.alerts_received)
        self.notifications_of = Children(self.notifications)
        self.rejected_of = Children(self.rejected)
        self.unknown_severity_of = Children(self.unknown_severity)
        self.messages_sent = Counter(
            "slack_tools_messages_sent",
            "Messages Slack accepted, by kind.",
            ["tenant", "status"],
            registry=registry,
        )
        self.delivery_errors = Counter(
            "slack_tools_delivery_errors",
            "Failed Slack calls, by reason.",
            ["tenant", "reason"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "slack_tools_slack_rate_limited",
            "429 answers received from Slack.",
            ["tenant"],
            registry=registry,
        )
        self.delivery_latency = Histogram(
            "slack_tools_delivery_latency_seconds",
            "From acceptance to Slack's ok.",
            ["tenant_class"],
            buckets=DELIVERY_BUCKETS,
            registry=registry,
        )
        self.outbox_depth = Gauge(
            "slack_tools_outbox_depth",
            "Deliveries waiting to be sent.",
            ["tenant"],
            registry=registry,
        )
        self.dead_letters = Gauge(
            "slack_tools_dead_letters",
            "Deliveries given up on, waiting for a replay.",
            ["tenant"],
            registry=registry,
        )
        self.oldest_undelivered = Gauge(
            "slack_tools_oldest_undelivered_seconds",
            "Age of the oldest waiting delivery.",
            registry=registry,
        )
        self.breaker_state = Gauge(
            "slack_tools_breaker_state",
            "Circuit breaker per Slack workspace: 0 closed, 1 half-open, 2 open.",
            ["workspace"],
            registry=registry,
        )
        self.template_fallbacks = Counter(
            "slack_tools_template_fallbacks",
            "Messages rendered with the default template because the chosen one failed or "
            "was stopped, by origin (tenant, operator, packaged) and reason.",
            ["tenant", "origin", "reason"],
            registry=registry,
        )
        self.dispatcher_heartbeat = Gauge(
            "slack_tools_dispatcher_heartbeat_timestamp_seconds",
            "When the dispatcher last completed a cycle (Unix time).",
            registry=registry,
        )
