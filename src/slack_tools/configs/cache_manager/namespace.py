"""The cache API of one namespace: sync and async, one implementation.

Each public method exists twice, ``get`` and ``aget``. Both share the same steps:
the L1 part runs inline in the caller's thread (an L1 hit never leaves it);
the rest (L2, L3, loaders, invalidation messages) is one coroutine, awaited
by the async method and run on the home loop for the sync one.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from slack_tools.configs.cache_manager.codec import CodecError, Envelope
from slack_tools.configs.cache_manager.core import Core, Flight
from slack_tools.configs.cache_manager.memory import (
    ENTRY_OVERHEAD,
    Entry,
    MemoryTier,
    Policy,
    tagged,
)
from slack_tools.configs.cache_manager.redis_tier import L2Unavailable
from slack_tools.configs.cache_manager.stats import CacheStats, Event, Tier
from slack_tools.configs.cache_manager.ttl import SmartTtl, jittered

Loader = Callable[[str], Any] | Callable[[str], Awaitable[Any]]
SizeOf = Callable[[Any], int]
# Size charged to a value that is never serialized (L1-only namespaces without size_of).
DEFAULT_VALUE_BYTES = 1024


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A value ready for every tier: its entry in memory and its stored bytes."""

    key: str
    entry: Entry
    stored: bytes | None
    seconds: float  # to live in L2/L3, stale window included


class CacheNamespace:
    """A namespace of a cache manager: its own L1 (policy, bounds) and key space."""

    def __init__(
        self,
        core: Core,
        name: str,
        *,
        policy: Policy | str | None = None,
        max_entries: int | None = None,
        max_bytes: int | None = None,
        ttl: float | None = None,
        tiers: Iterable[str] | None = None,
        size_of: SizeOf | None = None,
    ) -> None:
        settings = core.settings
        self._core = core
        self.name = name
        wanted = {Tier(t) for t in (tiers or (Tier.L1, Tier.L2, Tier.L3))}
        self.tiers = frozenset(
            t
            for t in wanted
            if (t is not Tier.L2 or core.has_redis) and (t is not Tier.L3 or settings.persistent)
        )
        self.ttl = ttl
        self._size_of = size_of
        self._l1 = MemoryTier(
            policy=Policy(policy or settings.l1_policy),
            max_entries=max_entries or settings.l1_max_entries,
            max_bytes=max_bytes or settings.l1_max_bytes,
            clock=core.clock,
            on_evict=self._evicted,
        )
        self._smart = SmartTtl(
            settings.min_ttl_seconds,
            settings.max_ttl_seconds,
            max_entries or settings.l1_max_entries,
        )
        self._l2 = Tier.L2 in self.tiers
        self._l3 = Tier.L3 in self.tiers
        self._io = self._l2 or self._l3

    @property
    def is_shared(self) -> bool:
        """Whether other instances may change this namespace's values (through Redis)."""
        return self._l2

    @property
    def memory(self) -> MemoryTier:
        return self._l1

    @property
    def stats(self) -> CacheStats:
        return self._core.stats

    def _evicted(self, entry: Entry) -> None:
        self._core.stats.add(self.name, Tier.L1, Event.EVICTION, entry.tenant_class)

    # --- reads -------------------------------------------------------------------------

    def _fresh(self, key: str) -> Any:
        """The L1 value if fresh (counted as a hit), else MISSING."""
        entry = self._l1.get(key)
        if entry is not None and self._core.clock() < entry.fresh_until:
            self._core.stats.add(self.name, Tier.L1, Event.HIT, entry.tenant_class)
            return entry.value
        return MISSING

    def peek(self, key: str) -> Any:
        """The value in process memory if fresh, else MISSING; never waits for anything."""
        return self._fresh(key)

    def get(
        self,
        key: str,
        fallback: Any = None,
        *,
        loader: Loader | None = None,
        ttl: float | None = None,
        smart_ttl: bool = False,
        tags: Iterable[str] | None = None,
        tenant_class: str = "",
    ) -> Any:
        """The cached value of ``key``, else what ``loader`` returns (then cached), else
        ``fallback``. Reads L1, then L2 and L3 (promoting what it finds)."""
        found = self._fresh(key)
        if found is not MISSING:
            return found
        if not self._io and loader is None:
            self._core.stats.add(self.name, Tier.L1, Event.MISS, tenant_class)
            return fallback
        return self._core.call(
            functools.partial(
                self.aget,
                key,
                fallback,
                loader=loader,
                ttl=ttl,
                smart_ttl=smart_ttl,
                tags=tags,
                tenant_class=tenant_class,
            )
        )

    async def aget(
        self,
        key: str,
        fallback: Any = None,
        *,
        loader: Loader | None = None,
        ttl: float | None = None,
        smart_ttl: bool = False,
        tags: Iterable[str] | None = None,
        tenant_class: str = "",
    ) -> Any:
        """Async :meth:`get`."""
        core = self._core
        # L1 is looked at once (as _fresh does): a stale entry found here is served below.
        entry = self._l1.get(key)
        if entry is not None and core.clock() < entry.fresh_until:
            core.stats.add(self.name, Tier.L1, Event.HIT, entry.tenant_class)
            return entry.value
        if not self._io and loader is None:
            core.stats.add(self.name, Tier.L1, Event.MISS, tenant_class)
            return fallback
        if not core.on_home():
            # Read on the home loop, where this same method goes on below.
            return await core.hop(
                functools.partial(
                    self.aget,
                    key,
                    fallback,
                    loader=loader,
                    ttl=ttl,
                    smart_ttl=smart_ttl,
                    tags=tags,
                    tenant_class=tenant_class,
                )
            )
        # On the home loop the read goes on here, not in a helper coroutine (see _load).
        if entry is not None and loader is not None:  # stale: serve it, one caller reloads
            core.stats.add(self.name, Tier.L1, Event.STALE_HIT, entry.tenant_class)
            if (self.name, key) not in core.inflight:
                core.spawn(self._load(key, loader, ttl, smart_ttl, tags, tenant_class))
            return entry.value
        core.stats.add(self.name, Tier.L1, Event.MISS, tenant_class)
        value = await self._load(key, loader, ttl, smart_ttl, tags, tenant_class)
        return fallback if value is MISSING else value

    async def _load(
        self,
        key: str,
        loader: Loader | None,
        ttl: float | None,
        smart_ttl: bool,
        tags: Iterable[str] | None,
        tenant_class: str,
    ) -> Any:
        """L2, then L3, then the loader; concurrent callers for one key share one load."""
        core = self._core
        flight = (self.name, key)
        running = core.inflight.get(flight)
        if running is not None:
            core.stats.add(self.name, Tier.L1, Event.COALESCED, tenant_class)
            return await asyncio.shield(running.join())
        load = Flight()
        core.inflight[flight] = load
        try:
            # L2 then L3, read here rather than in a helper coroutine: every coroutine
            # frame between this one and Redis's socket is crossed again each time the
            # read suspends, which costs an L2 hit more than the rest of its work.
            value: Any = MISSING
            l2_down = not self._l2
            if self._l2 and core.redis is not None:
                redis = core.redis
                started = time.perf_counter() if core.observe is not None else 0.0
                try:
                    with redis.reporting("get"):
                        data = await redis.start_get(self.name, key)
                    if core.observe is not None:
                        core.observe(Tier.L2.value, tenant_class, time.perf_counter() - started)
                except L2Unavailable:
                    core.stats.add(self.name, Tier.L2, Event.ERROR, tenant_class)
                    data, l2_down = None, True
                value = self._promote(key, data, Tier.L2, tenant_class)
            if value is MISSING and self._l3:
                value = await self._read_below_disk(key, tenant_class, l2_down=l2_down)
            if value is MISSING and loader is not None:
                started = time.perf_counter()
                value = loader(key)
                if inspect.isawaitable(value):
                    value = await value
                if core.observe is not None:
                    core.observe(Tier.LOADER.value, tenant_class, time.perf_counter() - started)
                await self._store(self._prepare(key, value, ttl, smart_ttl, tags, tenant_class))
        except BaseException as exc:
            load.fail(exc)
            raise
        else:
            load.succeed(value)
        finally:
            core.inflight.pop(flight, None)
        return value

    def _promote(self, key: str, data: bytes | None, tier: Tier, tenant_class: str) -> Any:
        core = self._core
        envelope: Envelope | None = None
        if data is not None:
            try:
                envelope = core.codec.unpack(data)
            except CodecError:
                core.stats.add(self.name, tier, Event.ERROR, tenant_class)
        if envelope is None or core.clock() >= envelope.fresh_until:
            core.stats.add(self.name, tier, Event.MISS, tenant_class)
            return MISSING
        core.stats.add(self.name, tier, Event.HIT, envelope.tenant_class)
        entry = Entry(
            envelope.value,
            envelope.fresh_until,
            envelope.stale_until,
            len(data or b"") + len(key) + ENTRY_OVERHEAD,
            envelope.tags,
            envelope.tenant_class,
        )
        self._l1.put(key, entry if core.channel_up else self._capped(entry))
        return envelope.value

    def get_bulk(self, keys: Iterable[str], *, tenant_class: str = "") -> dict[str, Any]:
        """The cached values among ``keys`` (absent keys are left out)."""
        wanted = list(dict.fromkeys(keys))
        found, missing = self._bulk_l1(wanted)
        if missing and self._io:
            found.update(self._core.call(lambda: self._bulk_below(missing, tenant_class)))
        return found

    async def aget_bulk(self, keys: Iterable[str], *, tenant_class: str = "") -> dict[str, Any]:
        """Async :meth:`get_bulk`."""
        wanted = list(dict.fromkeys(keys))
        found, missing = self._bulk_l1(wanted)
        if missing and self._io:
            if self._core.on_home():
                found.update(await self._bulk_below(missing, tenant_class))
            else:
                found.update(await self._core.hop(lambda: self._bulk_below(missing, tenant_class)))
        return found

    def _bulk_l1(self, keys: list[str]) -> tuple[dict[str, Any], list[str]]:
        found: dict[str, Any] = {}
        missing: list[str] = []
        for key in keys:
            value = self._fresh(key)
            if value is MISSING:
                missing.append(key)
            else:
                found[key] = value
        return found, missing

    async def _bulk_below(self, keys: list[str], tenant_class: str) -> dict[str, Any]:
        core = self._core
        found: dict[str, Any] = {}
        core.stats.add(self.name, Tier.L1, Event.MISS, tenant_class, len(keys))
        rest = keys
        if self._l2 and core.redis is not None:
            try:
                datas = await core.redis.get_many(self.name, keys)  # one MGET
            except L2Unavailable:
                core.stats.add(self.name, Tier.L2, Event.ERROR, tenant_class)
                datas = [None] * len(keys)
            rest = []
            for key, data in zip(keys, datas, strict=True):
                value = self._promote(key, data, Tier.L2, tenant_class)
                if value is MISSING:
                    rest.append(key)
                else:
                    found[key] = value
        l2_down = not (self._l2 and core.redis is not None and core.redis.is_available)
        for key in rest:
            if self._l3:
                value = await self._read_below_disk(key, tenant_class, l2_down=l2_down)
                if value is not MISSING:
                    found[key] = value
        return found

    async def _read_below_disk(self, key: str, tenant_class: str, *, l2_down: bool) -> Any:
        core = self._core
        disk = core.disk
        if disk is None:
            return MISSING
        started = time.perf_counter()
        row = disk.get(self.name, key, core.clock())
        if core.observe is not None:
            core.observe(Tier.L3.value, tenant_class, time.perf_counter() - started)
        # Rows from before a gap in invalidations may be stale: a last resort only.
        if row is not None and (row.written_at >= core.trusted_since or l2_down):
            return self._promote(key, row.data, Tier.L3, tenant_class)
        core.stats.add(self.name, Tier.L3, Event.MISS, tenant_class)
        return MISSING

    # --- writes ------------------------------------------------------------------------

    def _prepare(
        self,
        key: str,
        value: Any,
        ttl: float | None,
        smart_ttl: bool,
        tags: Iterable[str] | None,
        tenant_class: str,
    ) -> _Prepared:
        core = self._core
        settings = core.settings
        body = core.codec.dumps(value) if (self._io or smart_ttl) else None
        if smart_ttl and body is not None:
            lifetime = self._smart.next_ttl(key, body)
        else:
            lifetime = ttl or self.ttl or settings.default_ttl_seconds
        fresh = jittered(lifetime, settings.ttl_jitter, core.uniform)
        now = core.clock()
        tag_tuple = tagged(tags)
        if body is not None:
            size = len(body) + len(key) + ENTRY_OVERHEAD
        elif self._size_of is not None:
            size = self._size_of(value) + len(key) + ENTRY_OVERHEAD
        else:
            size = DEFAULT_VALUE_BYTES + len(key) + ENTRY_OVERHEAD
        entry = Entry(
            value, now + fresh, now + fresh + settings.stale_seconds, size, tag_tuple, tenant_class
        )
        stored = None
        if self._io:
            envelope = Envelope(
                value, entry.fresh_until, entry.stale_until, tag_tuple, tenant_class
            )
            stored = core.codec.pack(envelope, body)
        return _Prepared(key, entry, stored, fresh + settings.stale_seconds)

    def _capped(self, entry: Entry) -> Entry:
        """While invalidations cannot arrive, keep shared values only briefly in L1."""
        core = self._core
        if not self._l2 or core.channel_up:
            return entry
        until = core.clock() + core.settings.l1_stale_seconds
        if entry.stale_until <= until:
            return entry
        return Entry(
            entry.value,
            min(entry.fresh_until, until),
            until,
            entry.size,
            entry.tags,
            entry.tenant_class,
        )

    def _keep(self, prepared: _Prepared) -> None:
        self._l1.put(prepared.key, self._capped(prepared.entry))

    async def _store(self, *prepared: _Prepared) -> None:
        """Write-through below L1, and tell the other instances to drop their copies."""
        self._keep_all(prepared)
        await self._write_below(prepared)

    def _keep_all(self, prepared: tuple[_Prepared, ...]) -> None:
        for item in prepared:
            self._keep(item)

    async def _write_below(self, prepared: tuple[_Prepared, ...]) -> None:
        core = self._core
        if self._l2 and core.redis is not None:
            try:
                await core.redis.set_many(
                    self.name,
                    [(p.key, p.stored or b"", p.seconds, p.entry.tags) for p in prepared],
                    message=core.message(self.name, keys=tuple(p.key for p in prepared)),
                )
            except L2Unavailable:
                core.stats.add(self.name, Tier.L2, Event.ERROR, "")
        if self._l3 and (disk := core.disk) is not None:
            now = core.clock()
            full = False
            for p in prepared:
                full = disk.put(
                    self.name,
                    p.key,
                    p.stored or b"",
                    stale_until=p.entry.stale_until,
                    written_at=now,
                    tags=p.entry.tags,
                )
            if full:
                core.spawn(core.flush_disk())

    def set(
        self,
        key: str,
        value: Any,
        ttl: float | None = None,
        *,
        smart_ttl: bool = False,
        tags: Iterable[str] | None = None,
        tenant_class: str = "",
    ) -> None:
        """Cache ``value`` in every tier of this namespace (write-through).

        ``smart_ttl`` picks the lifetime from the key's history (docs/cache.md).
        """
        prepared = (self._prepare(key, value, ttl, smart_ttl, tags, tenant_class),)
        self._keep_all(prepared)
        if self._io:
            self._core.call(lambda: self._write_below(prepared))

    async def aset(
        self,
        key: str,
        value: Any,
        ttl: float | None = None,
        *,
        smart_ttl: bool = False,
        tags: Iterable[str] | None = None,
        tenant_class: str = "",
    ) -> None:
        """Async :meth:`set`."""
        prepared = (self._prepare(key, value, ttl, smart_ttl, tags, tenant_class),)
        self._keep_all(prepared)
        if self._io:
            await self._run(lambda: self._write_below(prepared))

    def set_bulk(
        self,
        items: Mapping[str, Any],
        ttl: float | None = None,
        *,
        tags: Iterable[str] | None = None,
        tenant_class: str = "",
    ) -> None:
        """Cache several values in one round trip per tier."""
        prepared = tuple(
            self._prepare(k, v, ttl, False, tags, tenant_class) for k, v in items.items()
        )
        self._keep_all(prepared)
        if self._io and prepared:
            self._core.call(lambda: self._write_below(prepared))

    async def aset_bulk(
        self,
        items: Mapping[str, Any],
        ttl: float | None = None,
        *,
        tags: Iterable[str] | None = None,
        tenant_class: str = "",
    ) -> None:
        """Async :meth:`set_bulk`."""
        prepared = tuple(
            self._prepare(k, v, ttl, False, tags, tenant_class) for k, v in items.items()
        )
        self._keep_all(prepared)
        if self._io and prepared:
            await self._run(lambda: self._write_below(prepared))

    async def _run(self, make: Callable[[], Awaitable[None]]) -> None:
        if self._core.on_home():
            await make()
        else:
            await self._core.hop(make)  # type: ignore[arg-type]

    # --- invalidation ------------------------------------------------------------------

    def delete(self, *keys: str) -> None:
        """Remove ``keys`` from every tier, here and on every instance."""
        self.invalidate(keys=keys)

    async def adelete(self, *keys: str) -> None:
        """Async :meth:`delete`."""
        await self.ainvalidate(keys=keys)

    def invalidate(
        self,
        key: str | None = None,
        *,
        keys: Iterable[str] = (),
        prefix: str | None = None,
        tag: str | None = None,
        broadcast: bool = True,
    ) -> None:
        """Drop a key, the keys starting with ``prefix``, or those written with ``tag``.

        ``broadcast=False`` keeps it to this instance (for changes every instance
        finds out about by itself).
        """
        selection = self._select(key, keys, prefix, tag)
        self._drop_local(*selection)
        if self._io or (broadcast and self._core.has_redis):
            self._core.call(lambda: self._drop_below(*selection, broadcast=broadcast))

    async def ainvalidate(
        self,
        key: str | None = None,
        *,
        keys: Iterable[str] = (),
        prefix: str | None = None,
        tag: str | None = None,
        broadcast: bool = True,
    ) -> None:
        """Async :meth:`invalidate`."""
        selection = self._select(key, keys, prefix, tag)
        self._drop_local(*selection)
        if self._io or (broadcast and self._core.has_redis):
            await self._run(lambda: self._drop_below(*selection, broadcast=broadcast))

    def invalidate_soon(
        self, *, keys: Iterable[str] = (), prefix: str | None = None, tag: str | None = None
    ) -> None:
        """Drop locally now, and tell the other tiers and instances without waiting.

        For callers that may not block (the event loop, code holding a lock).
        """
        selection = self._select(None, keys, prefix, tag)
        self._drop_local(*selection)
        if self._io or self._core.has_redis:
            self._core.post(lambda: self._drop_below(*selection, broadcast=True))

    @staticmethod
    def _select(
        key: str | None, keys: Iterable[str], prefix: str | None, tag: str | None
    ) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        chosen = tuple(keys) + ((key,) if key is not None else ())
        return chosen, (prefix,) if prefix is not None else (), (tag,) if tag is not None else ()

    def _drop_local(
        self, keys: tuple[str, ...], prefixes: tuple[str, ...], tags: tuple[str, ...]
    ) -> None:
        for key in keys:
            self._l1.delete(key)
            self._smart.forget(key)
        for prefix in prefixes:
            self._l1.delete_prefix(prefix)
        for tag in tags:
            self._l1.delete_tag(tag)

    async def _drop_below(
        self,
        keys: tuple[str, ...],
        prefixes: tuple[str, ...],
        tags: tuple[str, ...],
        *,
        broadcast: bool,
    ) -> None:
        core = self._core
        redis = core.redis
        if redis is not None:
            try:
                if self._l2:
                    await redis.delete(self.name, keys)
                    for prefix in prefixes:
                        await redis.delete_prefix(self.name, prefix)
                    for tag in tags:
                        await redis.delete_tag(self.name, tag)
                if broadcast:
                    await redis.publish(core.message(self.name, keys, prefixes, tags))
            except L2Unavailable:
                core.stats.add(self.name, Tier.L2, Event.ERROR, "")
        self._drop_disk(keys, prefixes, tags)

    def _drop_disk(
        self, keys: tuple[str, ...], prefixes: tuple[str, ...], tags: tuple[str, ...]
    ) -> None:
        disk = self._core.disk if self._l3 else None
        if disk is None:
            return
        if keys:
            disk.delete(self.name, keys)
        for prefix in prefixes:
            disk.delete_prefix(self.name, prefix)
        for tag in tags:
            disk.delete_tag(self.name, tag)

    def apply_remote(
        self, keys: tuple[str, ...], prefixes: tuple[str, ...], tags: tuple[str, ...]
    ) -> None:
        """What another instance changed: drop it from L1 and L3 here."""
        self._drop_local(keys, prefixes, tags)
        self._drop_disk(keys, prefixes, tags)

    def drop_local(self) -> None:
        """Empty this namespace's L1."""
        self._l1.clear()

    # --- warming -----------------------------------------------------------------------

    def warm(
        self,
        keys: Iterable[str],
        loader: Loader,
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        tenant_class: str = "",
    ) -> int:
        """Load the keys not cached yet through ``loader``; returns how many were loaded."""
        wanted = list(keys)
        return self._core.call(lambda: self._warm(wanted, loader, ttl, tags, tenant_class))

    async def awarm(
        self,
        keys: Iterable[str],
        loader: Loader,
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        tenant_class: str = "",
    ) -> int:
        """Async :meth:`warm`."""
        wanted = list(keys)
        if self._core.on_home():
            return await self._warm(wanted, loader, ttl, tags, tenant_class)
        return await self._core.hop(lambda: self._warm(wanted, loader, ttl, tags, tenant_class))

    async def _warm(
        self,
        keys: list[str],
        loader: Loader,
        ttl: float | None,
        tags: Iterable[str] | None,
        tenant_class: str,
    ) -> int:
        missing = [key for key in keys if self._fresh(key) is MISSING]
        present = await self._bulk_below(missing, tenant_class) if self._io else {}
        loaded = 0
        for key in keys:
            if key in present or self._l1.get(key) is not None:
                continue
            await self._load(key, loader, ttl, False, tags, tenant_class)
            loaded += 1
        return loaded
