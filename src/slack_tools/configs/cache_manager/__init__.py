"""The specification's multi-level cache: process memory, Redis, and a disk file.

```python
from slack_tools.configs.cache_manager import CacheManager
cache = CacheManager(config)
cache.set("user_prefs_123", preferences, smart_ttl=True)
prefs = cache.get("user_prefs_123", fallback=default_prefs)
cache.set_bulk({"key1": "value1", "key2": "value2"}, ttl=3600)
```

Reads go L1 → L2 → L3 and promote what they find; writes go through every
tier; concurrent misses of one key share one load; a stale value is served
while one caller reloads it; lifetimes are jittered; invalidation (by key,
prefix or tag) reaches every instance over Redis. docs/cache.md says what
each tier is for and what is guaranteed.

Built on cachetools (L1's LFU and TTL policies; LRU is an ``OrderedDict``, see
memory.py), redis-py (L2), sqlite3 (L3), msgpack and zstandard (stored form).
cashews was the first candidate and was read closely (7.6): its memory backend is
async-only (an L1 hit from sync code would cost a thread hop, ~100 µs, against < 1
µs here), its Redis serializer pickles what it reads back, its compression is
gzip/zlib on every value, and its client-side mode invalidates through Redis key
tracking, which knows nothing of our prefixes, tags or disk tier. What is written
here is what none of them offer: the tiering, single-flight, stale-while-revalidate,
smart TTL, the invalidation channel and the sync/async facade.
"""

from __future__ import annotations

import random
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path

from slack_tools.configs.cache_manager.codec import Codec, CodecError, Envelope
from slack_tools.configs.cache_manager.core import CacheError, Core
from slack_tools.configs.cache_manager.memory import Policy
from slack_tools.configs.cache_manager.namespace import MISSING, CacheNamespace, Loader, SizeOf
from slack_tools.configs.cache_manager.stats import CacheStats, Event, LatencyObserver, Tier
from slack_tools.configs.cache_manager.ttl import smart_ttl
from slack_tools.configs.schema import AppConfig

__all__ = [
    "MISSING",
    "CacheError",
    "CacheManager",
    "CacheNamespace",
    "CacheStats",
    "Codec",
    "CodecError",
    "Envelope",
    "Event",
    "Loader",
    "Policy",
    "Tier",
    "smart_ttl",
]

DEFAULT_NAMESPACE = "default"


class CacheManager(CacheNamespace):
    """A cache with its default namespace; :meth:`namespace` adds others with their own L1.

    ``config`` defaults to the process's configuration (``initialize_config()``).
    ``clock`` (wall-clock seconds) and ``uniform`` (jitter) are for tests; ``observe``
    receives L2/L3/loader latencies (``configs.metrics.CacheMetrics`` does).
    """

    def __init__(
        self,
        config: AppConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        uniform: Callable[[], float] = random.random,
        observe: LatencyObserver | None = None,
        disk_path: Path | None = None,
    ) -> None:
        if config is None:
            from slack_tools.configs import default_runtime  # noqa: PLC0415 - avoids a cycle

            config = default_runtime().config
        core = Core(config, clock=clock, uniform=uniform, observe=observe, disk_path=disk_path)
        super().__init__(core, DEFAULT_NAMESPACE)
        core.namespaces[DEFAULT_NAMESPACE] = self
        # A script that never calls close() still flushes L3 and stops the loop at exit.
        self._finalizer = weakref.finalize(self, core.close)

    @property
    def core(self) -> Core:
        return self._core

    def namespace(
        self,
        name: str,
        *,
        policy: Policy | str | None = None,
        max_entries: int | None = None,
        max_bytes: int | None = None,
        ttl: float | None = None,
        tiers: Iterable[str] | None = None,
        size_of: SizeOf | None = None,
    ) -> CacheNamespace:
        """The namespace ``name``, made with these settings on first use.

        ``tiers`` among ``l1``, ``l2``, ``l3`` (all by default; L2 only with Redis, L3
        only with ``cache.persistent``). Values of an L1-only namespace are never
        serialized; ``size_of`` then estimates their bytes.
        """
        if ":" in name or "#" in name:
            raise CacheError(f"cache namespace {name!r}: ':' and '#' are reserved")
        found = self._core.namespaces.get(name)
        if found is None:
            found = CacheNamespace(
                self._core,
                name,
                policy=policy,
                max_entries=max_entries,
                max_bytes=max_bytes,
                ttl=ttl,
                tiers=tiers,
                size_of=size_of,
            )
            self._core.namespaces[name] = found
        return found

    async def start(self) -> None:
        """Make the running loop this cache's home (the service calls this at start-up)."""
        self._core.on_home()

    async def aclose(self) -> None:
        """Flush L3, stop listening for invalidations, close the Redis connection."""
        await self._core.aclose()

    def close(self) -> None:
        """Sync :meth:`aclose`."""
        self._finalizer()
