"""What the cache counts, read by the metrics collector at scrape time.

Plain integers bumped on the hot path (a dict update) rather than Prometheus
counters: an L1 hit costs well under a microsecond, a labelled counter about as
much again. ``configs.metrics.CacheCollector`` turns these into metric families.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from enum import StrEnum


class Event(StrEnum):
    HIT = "hit"
    STALE_HIT = "stale_hit"
    MISS = "miss"
    COALESCED = "coalesced"
    EVICTION = "eviction"
    INVALIDATION_RECEIVED = "invalidation_received"
    ERROR = "error"


class Tier(StrEnum):
    L1 = "l1"
    L2 = "l2"
    L3 = "l3"
    LOADER = "loader"


LatencyObserver = Callable[[str, str, float], None]
"""Called with (tier, tenant class, seconds) for each L2/L3 read and each loader call."""


class CacheStats:
    """Counts by (namespace, tier, event, tenant class), and the invalidation channel state."""

    def __init__(self) -> None:
        self._counts: defaultdict[tuple[str, str, str, str], int] = defaultdict(int)
        self._lock = threading.Lock()
        self.channel_up = False
        self.channel_drops = 0
        self.l2_available = True

    def add(self, namespace: str, tier: Tier, event: Event, tenant_class: str, n: int = 1) -> None:
        # No lock on this path (it runs on every L1 hit): two threads bumping one count
        # at the same instant may lose one increment, never add one.
        self._counts[namespace, tier, event, tenant_class or "none"] += n

    def snapshot(self) -> dict[tuple[str, str, str, str], int]:
        with self._lock:
            return {
                (namespace, str(tier), str(event), tenant_class): n
                for (namespace, tier, event, tenant_class), n in list(self._counts.items())
            }

    def count(self, tier: Tier, event: Event) -> int:
        """Sum over namespaces and tenant classes (tests and the benchmark)."""
        return sum(n for (_, t, e, _), n in self.snapshot().items() if t == tier and e == event)
