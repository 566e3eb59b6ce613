"""L1: values in process memory, bounded in entries and in bytes, per namespace.

LFU and TLRU ("the soonest to expire first") are cachetools' (LFU in O(1)). LRU,
the default and the one every L2 hit writes to, is an ``OrderedDict`` kept here:
cachetools' LRU reorders through several layers of Python on every read and write,
which measured as most of an L2 hit's cost beyond the Redis GET (docs/cache.md);
``OrderedDict`` moves and evicts in C. What is added around both is what they lack:
a second bound (entries *and* bytes), a tag index so a tag or a prefix can be
dropped at once, lifetimes checked against an injected clock, and eviction counts.
A hit is a lock, a dict lookup and a comparison, so synchronous callers (the event
loop included) read L1 without going through any other thread.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cachetools import LFUCache, TLRUCache

Clock = Callable[[], float]
# What one entry costs besides its value: the key, the entry object, the index slots.
ENTRY_OVERHEAD = 200


class Policy(StrEnum):
    """What L1 drops first when it is full."""

    LRU = "lru"
    LFU = "lfu"
    TTL = "ttl"


@dataclass(slots=True)  # never changed, only replaced (not frozen: see codec.Envelope)
class Entry:
    """A value in memory with its lifetimes (clock seconds), size, tags and tenant class."""

    value: Any
    fresh_until: float
    stale_until: float
    size: int
    tags: tuple[str, ...] = ()
    tenant_class: str = ""

    def is_fresh(self, now: float) -> bool:
        return now < self.fresh_until


class _Bounded:
    """Mixed into a cachetools class: an entry-count bound beside its byte bound, and
    a hook on every entry that leaves because of the policy."""

    max_entries: int
    on_evict: Callable[[str, Entry], None]

    def __setitem__(self, key: str, value: Entry) -> None:
        store: Any = self
        if key not in store:
            while len(store) >= self.max_entries:
                store.popitem()
        super().__setitem__(key, value)  # type: ignore[misc]

    def popitem(self) -> tuple[str, Entry]:
        key, entry = super().popitem()  # type: ignore[misc]
        self.on_evict(key, entry)
        return key, entry

    def expire(self, time: float | None = None) -> list[tuple[str, Entry]]:
        gone: list[tuple[str, Entry]] = super().expire(time)  # type: ignore[misc]
        for key, entry in gone:
            self.on_evict(key, entry)
        return gone


class _LRU:
    """Least recently used first, bounded in entries and in bytes (``getsizeof`` of
    each entry); the subset of cachetools' ``Cache`` interface that L1 uses."""

    def __init__(self, maxsize: int, getsizeof: Callable[[Entry], int]) -> None:
        self.maxsize = maxsize
        self.currsize = 0
        self.max_entries = 0  # set by MemoryTier, as on the cachetools classes
        self.on_evict: Callable[[str, Entry], None] = lambda _key, _entry: None
        self._sizeof = getsizeof
        self._data: OrderedDict[str, Entry] = OrderedDict()

    def get(self, key: str, default: Entry | None = None) -> Entry | None:
        entry = self._data.get(key)
        if entry is None:
            return default
        self._data.move_to_end(key)
        return entry

    def __setitem__(self, key: str, entry: Entry) -> None:
        data = self._data
        old = data.pop(key, None)
        if old is not None:
            self.currsize -= self._sizeof(old)
        size = self._sizeof(entry)
        while data and (len(data) >= self.max_entries or self.currsize + size > self.maxsize):
            evicted_key, evicted = data.popitem(last=False)
            self.currsize -= self._sizeof(evicted)
            self.on_evict(evicted_key, evicted)
        data[key] = entry
        self.currsize += size

    def pop(self, key: str, default: Entry | None = None) -> Entry | None:
        entry = self._data.pop(key, None)
        if entry is None:
            return default
        self.currsize -= self._sizeof(entry)
        return entry

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def items(self) -> Iterable[tuple[str, Entry]]:
        return self._data.items()

    def clear(self) -> None:
        self._data.clear()
        self.currsize = 0


class _LFU(_Bounded, LFUCache[str, Entry]):
    pass


class _TLRU(_Bounded, TLRUCache[str, Entry]):
    pass


def _size(entry: Entry) -> int:
    return entry.size


def _until(_key: str, entry: Entry, _now: float) -> float:
    return entry.stale_until


class MemoryTier:
    """One namespace's L1. Thread-safe: the event loop and worker threads share it."""

    def __init__(
        self,
        *,
        policy: Policy = Policy.LRU,
        max_entries: int,
        max_bytes: int,
        clock: Clock,
        on_evict: Callable[[Entry], None] | None = None,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._on_evict_hook = on_evict
        self._lock = threading.Lock()
        self._tags: dict[str, set[str]] = {}
        store: _LRU | _LFU | _TLRU
        if policy is Policy.LFU:
            store = _LFU(max_bytes, getsizeof=_size)
        elif policy is Policy.TTL:
            store = _TLRU(max_bytes, ttu=_until, timer=clock, getsizeof=_size)
        else:
            store = _LRU(max_bytes, getsizeof=_size)
        store.max_entries = max_entries
        store.on_evict = self._evicted
        self._store = store
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._store)

    @property
    def bytes(self) -> int:
        return int(self._store.currsize)

    @property
    def max_bytes(self) -> int:
        return int(self._store.maxsize)

    def get(self, key: str) -> Entry | None:
        """The entry if it may still be served (fresh or stale); an outlived one is dropped."""
        with self._lock:
            entry = self._store.get(key)
            if entry is None:
                return None
            if self._clock() >= entry.stale_until:
                self._remove(key)
                return None
            return entry

    def put(self, key: str, entry: Entry) -> bool:
        """Keep ``entry``; False when it alone is larger than the byte bound."""
        if entry.size > self._store.maxsize:
            self.delete(key)
            return False
        with self._lock:
            old = self._store.get(key)
            if old is not None:
                self._unindex(key, old)
            self._store[key] = entry
            for tag in entry.tags:
                self._tags.setdefault(tag, set()).add(key)
        return True

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._remove(key)

    def delete_tag(self, tag: str) -> int:
        with self._lock:
            keys = self._tags.pop(tag, set())
            return sum(self._remove(key) for key in list(keys))

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            keys = [key for key in self._store if key.startswith(prefix)]
            return sum(self._remove(key) for key in keys)

    def clear(self) -> int:
        with self._lock:
            count = len(self._store)
            self._store.clear()
            self._tags.clear()
            return count

    def keys(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._store))

    def cap(self, until: float) -> None:
        """Shorten every entry's lifetime to at most ``until`` (clock seconds)."""
        with self._lock:
            for key, entry in list(self._store.items()):
                if entry.stale_until > until:
                    self._store[key] = Entry(
                        entry.value,
                        min(entry.fresh_until, until),
                        until,
                        entry.size,
                        entry.tags,
                        entry.tenant_class,
                    )

    def _remove(self, key: str) -> bool:
        entry = self._store.pop(key, None)
        if entry is None:
            return False
        self._unindex(key, entry)
        return True

    def _unindex(self, key: str, entry: Entry) -> None:
        for tag in entry.tags:
            keys = self._tags.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tags[tag]

    def _evicted(self, key: str, entry: Entry) -> None:
        # Called by the store under our lock, while it makes room.
        if entry.tags:
            self._unindex(key, entry)
        if self._clock() < entry.stale_until:  # outlived entries are not evictions
            self.evictions += 1
            if self._on_evict_hook is not None:
                self._on_evict_hook(entry)


def tagged(tags: Iterable[str] | None) -> tuple[str, ...]:
    """Tags as a tuple without duplicates, in their order."""
    return tuple(dict.fromkeys(tags)) if tags else ()
