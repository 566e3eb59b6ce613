"""Lifetimes: smart TTL from a key's history, jitter, and the stale window.

The rule (docs/cache.md "Smart TTL"): each write of a key with ``smart_ttl`` compares
a digest of the new value with the previous one. A value that changed starts
again from ``min_ttl``; each write that finds it unchanged doubles its lifetime,
up to ``max_ttl``: ``ttl = min(max_ttl, min_ttl * 2**streak)``. While the
invalidation channel is down, what process memory keeps is further bounded by
``l1_stale_seconds`` (see ``CacheManager``). The history is an LRU of digests
bounded like L1, so a key pushed out starts from ``min_ttl`` again.

cachetools and cashews take a fixed TTL per call; the history is ours.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import LRUCache


@dataclass(frozen=True, slots=True)
class Lifetime:
    """How long a value is fresh, then how long it may still be served stale (seconds)."""

    fresh: float
    stale: float


def jittered(ttl: float, jitter: float, uniform: Callable[[], float] = random.random) -> float:
    """``ttl`` less a random share of at most ``jitter``, so hot keys expire apart."""
    return ttl * (1.0 - jitter * uniform())


def smart_ttl(streak: int, min_ttl: float, max_ttl: float) -> float:
    """The lifetime of a value found unchanged ``streak`` writes in a row."""
    if streak <= 0:
        return min_ttl
    # 2**streak overflows a float long after it passes any sensible max_ttl.
    return min(max_ttl, min_ttl * 2.0 ** min(streak, 64))


def digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()


class SmartTtl:
    """Remembers, per key, the last value's digest and how many writes found it unchanged."""

    def __init__(self, min_ttl: float, max_ttl: float, max_keys: int) -> None:
        self.min_ttl = min_ttl
        self.max_ttl = max(min_ttl, max_ttl)
        self._history: LRUCache[str, tuple[bytes, int]] = LRUCache(max_keys)
        self._lock = threading.Lock()

    def next_ttl(self, key: str, body: bytes) -> float:
        """Record a write of ``body`` (the serialized value) and return its lifetime."""
        seen = digest(body)
        with self._lock:
            previous = self._history.get(key)
            streak = previous[1] + 1 if previous is not None and previous[0] == seen else 0
            self._history[key] = (seen, streak)
        return smart_ttl(streak, self.min_ttl, self.max_ttl)

    def forget(self, key: str) -> None:
        with self._lock:
            self._history.pop(key, None)
