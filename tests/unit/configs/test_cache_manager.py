"""The cache manager without Redis: L1 policies and bounds, lifetimes, L3, single-flight."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slack_tools.configs.cache_manager import MISSING, CacheError, CacheManager, Event, Tier
from slack_tools.configs.cache_manager.memory import Entry, MemoryTier, Policy
from slack_tools.configs.cache_manager.ttl import SmartTtl, jittered, smart_ttl
from slack_tools.configs.schema import AppConfig

T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def config(tmp_path: Path, **cache: Any) -> AppConfig:
    return AppConfig.model_validate(
        {"data_dir": str(tmp_path), "cache": {"ttl_jitter": 0.0, **cache}}
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(tmp_path: Path, clock: Clock) -> Iterator[CacheManager]:
    manager = CacheManager(config(tmp_path), clock=clock)
    yield manager
    manager.close()


def entry(
    value: Any, *, size: int = 10, until: float = T0 + 100, tags: tuple[str, ...] = ()
) -> Entry:
    return Entry(value, until, until, size, tags)


# --- L1 policies and bounds --------------------------------------------------------------


def test_lru_drops_the_least_recently_used(clock: Clock) -> None:
    """Under LRU, the entry read least recently goes first when the entry bound is reached."""
    memory = MemoryTier(policy=Policy.LRU, max_entries=3, max_bytes=10_000, clock=clock)
    for key in "abc":
        memory.put(key, entry(key))
    memory.get("a")
    memory.put("d", entry("d"))
    assert sorted(memory.keys()) == ["a", "c", "d"]
    assert memory.evictions == 1


def test_lfu_keeps_the_frequently_read(clock: Clock) -> None:
    """Under LFU, an entry read often survives newer entries read once."""
    memory = MemoryTier(policy=Policy.LFU, max_entries=2, max_bytes=10_000, clock=clock)
    memory.put("hot", entry(1))
    for _ in range(5):
        memory.get("hot")
    memory.put("b", entry(2))
    memory.put("c", entry(3))
    assert sorted(memory.keys()) == ["c", "hot"]


def test_ttl_policy_drops_the_expired_first(clock: Clock) -> None:
    """The TTL policy removes outlived entries before any live one."""
    memory = MemoryTier(policy=Policy.TTL, max_entries=2, max_bytes=10_000, clock=clock)
    memory.put("short", entry(1, until=T0 + 1))
    memory.put("long", entry(2, until=T0 + 100))
    clock.now = T0 + 2
    memory.put("new", entry(3))
    assert sorted(memory.keys()) == ["long", "new"]
    assert memory.evictions == 0  # an outlived entry leaving is not an eviction


def test_byte_bound_evicts_until_the_new_entry_fits(clock: Clock) -> None:
    """Entries are evicted by size as well as by count; one larger than the bound is refused."""
    memory = MemoryTier(policy=Policy.LRU, max_entries=100, max_bytes=100, clock=clock)
    for key in "abcd":
        memory.put(key, entry(key, size=30))
    assert sorted(memory.keys()) == ["b", "c", "d"]
    assert memory.bytes == 90
    assert memory.put("huge", entry("x", size=101)) is False
    assert memory.get("huge") is None


def test_entries_expire_with_the_injected_clock(clock: Clock) -> None:
    """An entry is served until its stale limit on the injected clock, then dropped."""
    memory = MemoryTier(policy=Policy.LRU, max_entries=10, max_bytes=1000, clock=clock)
    memory.put("k", entry("v", until=T0 + 10))
    clock.now = T0 + 9.9
    assert memory.get("k") is not None
    clock.now = T0 + 10
    assert memory.get("k") is None
    assert len(memory) == 0


def test_tag_and_prefix_removal(clock: Clock) -> None:
    """Deleting a tag or a prefix removes exactly the entries it names, and the index follows."""
    memory = MemoryTier(policy=Policy.LRU, max_entries=10, max_bytes=1000, clock=clock)
    memory.put("t1:a", entry(1, tags=("tenant:t1",)))
    memory.put("t1:b", entry(2, tags=("tenant:t1",)))
    memory.put("t2:a", entry(3, tags=("tenant:t2",)))
    assert memory.delete_tag("tenant:t1") == 2
    assert sorted(memory.keys()) == ["t2:a"]
    assert memory.delete_prefix("t2:") == 1
    assert memory.delete_tag("tenant:t2") == 0


# --- lifetimes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("streak", "expected"),
    [(0, 30.0), (1, 60.0), (2, 120.0), (6, 1920.0), (7, 3600.0), (500, 3600.0)],
)
def test_smart_ttl_doubles_per_unchanged_write_within_bounds(streak: int, expected: float) -> None:
    """The lifetime is min_ttl * 2**streak, capped at max_ttl."""
    assert smart_ttl(streak, 30.0, 3600.0) == expected


def test_smart_ttl_resets_when_the_value_changes() -> None:
    """Unchanged writes lengthen the lifetime; a changed value starts again from min_ttl."""
    history = SmartTtl(10.0, 100.0, max_keys=10)
    assert [history.next_ttl("k", b"v1") for _ in range(5)] == [10.0, 20.0, 40.0, 80.0, 100.0]
    assert history.next_ttl("k", b"v2") == 10.0
    history.forget("k")
    assert history.next_ttl("k", b"v2") == 10.0


def test_jitter_takes_at_most_its_share() -> None:
    """Jitter shortens a lifetime by at most its ratio."""
    assert jittered(100.0, 0.1, lambda: 0.0) == 100.0
    assert jittered(100.0, 0.1, lambda: 1.0) == pytest.approx(90.0)


def test_set_with_smart_ttl_uses_the_history(cache: CacheManager, clock: Clock) -> None:
    """A value written unchanged lives longer each time; expiry follows the injected clock."""
    settings = cache.core.settings
    cache.set("user_prefs_123", {"locale": "fr_FR"}, smart_ttl=True)
    cache.set("user_prefs_123", {"locale": "fr_FR"}, smart_ttl=True)
    clock.now = T0 + settings.min_ttl_seconds * 2 - 1
    assert cache.get("user_prefs_123", fallback="gone") == {"locale": "fr_FR"}
    clock.now = T0 + settings.min_ttl_seconds * 2 + 1
    cache.memory.clear()
    assert cache.get("user_prefs_123", fallback="gone") == "gone"


def test_the_specification_example(cache: CacheManager) -> None:
    """The specification's calls work as written, from synchronous code."""
    preferences = {"locale": "de_DE", "timezone": "Europe/Berlin"}
    cache.set("user_prefs_123", preferences, smart_ttl=True)
    assert cache.get("user_prefs_123", fallback={}) == preferences
    assert cache.get("user_prefs_999", fallback={"locale": "fr_FR"}) == {"locale": "fr_FR"}
    cache.set_bulk({"key1": "value1", "key2": "value2"}, ttl=3600)
    assert cache.get_bulk(["key1", "key2", "key3"]) == {"key1": "value1", "key2": "value2"}
    cache.delete("key1")
    assert cache.get("key1") is None


# --- L3 ----------------------------------------------------------------------------------


def test_disk_tier_survives_a_restart(tmp_path: Path, clock: Clock) -> None:
    """What was written is read back from the SQLite file by a new manager."""
    first = CacheManager(config(tmp_path), clock=clock)
    first.set("expensive", {"rows": list(range(100))}, ttl=600, tags=["report"])
    first.close()
    second = CacheManager(config(tmp_path), clock=clock)
    try:
        assert second.get("expensive") == {"rows": list(range(100))}
        assert second.stats.count(Tier.L3, Event.HIT) == 1
        second.invalidate(tag="report")
        second.memory.clear()
        assert second.get("expensive") is None
    finally:
        second.close()


def test_invalidation_by_prefix_reaches_the_disk(cache: CacheManager) -> None:
    """A prefix invalidation removes matching keys from L1 and L3, not the others."""
    cache.set_bulk({"tenant:a:x": 1, "tenant:a:y": 2, "tenant:b:x": 3})
    cache.invalidate(prefix="tenant:a:")
    cache.memory.clear()
    assert cache.get_bulk(["tenant:a:x", "tenant:a:y", "tenant:b:x"]) == {"tenant:b:x": 3}


def test_warm_loads_only_what_is_missing(cache: CacheManager) -> None:
    """warm() calls the loader for keys not cached yet and caches what it returns."""
    cache.set("a", "cached")
    loaded: list[str] = []

    def load(key: str) -> str:
        loaded.append(key)
        return key.upper()

    assert cache.warm(["a", "b", "c"], load) == 2
    assert loaded == ["b", "c"]
    assert cache.get_bulk(["a", "b", "c"]) == {"a": "cached", "b": "B", "c": "C"}


# --- single-flight, stale-while-revalidate, the loops ------------------------------------


async def test_a_stampede_calls_the_loader_once(tmp_path: Path) -> None:
    """Fifty concurrent misses of one key share one loader call; the others are counted."""
    cache = CacheManager(config(tmp_path))
    calls = 0

    async def load(key: str) -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return f"value of {key}"

    try:
        results = await asyncio.gather(*(cache.aget("k", loader=load) for _ in range(50)))
        assert set(results) == {"value of k"}
        assert calls == 1
        assert cache.stats.count(Tier.L1, Event.COALESCED) == 49
    finally:
        await cache.aclose()


def test_threads_share_one_load(tmp_path: Path) -> None:
    """Sync callers in several threads missing one key also share one load."""
    cache = CacheManager(config(tmp_path))
    calls = 0
    release = threading.Event()

    def load(key: str) -> str:
        nonlocal calls
        calls += 1
        release.wait(5)
        return key

    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get("k", loader=load)))
        for _ in range(8)
    ]
    try:
        for thread in threads:
            thread.start()
        while not cache.core.inflight:
            threading.Event().wait(0.001)
        release.set()
        for thread in threads:
            thread.join(5)
        assert results == ["k"] * 8
        assert calls == 1
    finally:
        cache.close()


async def test_stale_values_are_served_while_one_caller_reloads(tmp_path: Path) -> None:
    """Past its lifetime but within the stale window, the old value is returned at once
    and reloaded in the background, once."""
    clock = Clock()
    cache = CacheManager(config(tmp_path, stale_seconds=30.0), clock=clock)
    versions = iter(["v1", "v2", "v3"])
    started = asyncio.Event()

    async def load(_key: str) -> str:
        started.set()
        return next(versions)

    try:
        assert await cache.aget("k", loader=load, ttl=10) == "v1"
        clock.now = T0 + 15
        assert await cache.aget("k", loader=load, ttl=10) == "v1"
        assert await cache.aget("k", loader=load, ttl=10) == "v1"
        await asyncio.sleep(0.01)
        assert await cache.aget("k", loader=load, ttl=10) == "v2"
        assert cache.stats.count(Tier.L1, Event.STALE_HIT) == 2
        clock.now = T0 + 200  # past the stale window: a plain miss
        assert await cache.aget("k", loader=load, ttl=10) == "v3"
    finally:
        await cache.aclose()


async def test_a_blocking_call_on_the_home_loop_is_refused(tmp_path: Path) -> None:
    """The sync API used on the cache's own event loop says to use the async one."""
    cache = CacheManager(config(tmp_path))
    try:
        await cache.start()
        assert cache.peek("k") is MISSING
        with pytest.raises(CacheError, match="use the async methods"):
            cache.get("k")
    finally:
        await cache.aclose()


async def test_l1_only_namespaces_never_need_the_loop(tmp_path: Path) -> None:
    """An L1-only namespace keeps any object, sized by size_of, and serves sync calls on
    the loop itself."""
    cache = CacheManager(config(tmp_path))
    views = cache.namespace("views", tiers=["l1"], max_entries=2, size_of=lambda _v: 10)
    try:
        await cache.start()
        marker = object()
        views.set("a", marker, tags=["tenant:t"])
        assert views.get("a") is marker
        views.invalidate(tag="tenant:t")
        assert views.get("a", fallback="gone") == "gone"
        assert cache.namespace("views") is views
        with pytest.raises(CacheError, match="reserved"):
            cache.namespace("a:b")
    finally:
        await cache.aclose()


async def test_sync_and_async_calls_share_one_cache(tmp_path: Path) -> None:
    """A value set from a worker thread is read on the loop and the other way round."""
    cache = CacheManager(config(tmp_path))
    try:
        await cache.start()
        await asyncio.to_thread(cache.set, "from-thread", 1)
        assert await cache.aget("from-thread") == 1
        await cache.aset("from-loop", 2)
        assert await asyncio.to_thread(cache.get, "from-loop") == 2
        await asyncio.to_thread(cache.invalidate, "from-loop")
        assert await cache.aget("from-loop") is None
    finally:
        await cache.aclose()
