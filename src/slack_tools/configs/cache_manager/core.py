"""The shared engine of a cache manager: its event loop, L2 and L3, and invalidation.

All Redis and disk I/O runs on one *home* loop: the service's loop once
``await cache.start()`` bound it, else a daemon thread's loop started on first
need (scripts, the CLI). Synchronous callers reach it like anyio's blocking
portal does (``run_coroutine_threadsafe``), but only on an L1 miss; an async
caller on another loop hops the same way. A thread of our own rather than
anyio's portal: the portal's worker is not a daemon thread, so a script that
forgets ``close()`` would never exit.

Invalidation travels on a Redis pub/sub channel: ``{"o": origin, "n": namespace,
"k": keys, "p": prefixes, "t": tags}``. Each instance drops what it is told from
L1 and L3, ignoring its own messages. When the channel drops, L1 of every
namespace backed by Redis is flushed, and until it is back, values are kept
there at most ``cache.l1_stale_seconds``; when it returns, L1 is flushed again
(messages were missed) and L3 rows written before are trusted only while Redis
is unavailable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import random
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from slack_tools.configs.cache_manager.codec import Codec
from slack_tools.configs.cache_manager.disk import DiskTier
from slack_tools.configs.cache_manager.redis_tier import RedisTier
from slack_tools.configs.cache_manager.stats import CacheStats, Event, LatencyObserver, Tier
from slack_tools.configs.circuit_breaker import CircuitBreaker
from slack_tools.configs.schema import AppConfig
from slack_tools.errors import SlackToolsError

if TYPE_CHECKING:
    from slack_tools.configs.cache_manager.namespace import CacheNamespace

log = structlog.get_logger(__name__)
T = TypeVar("T")
FLUSH_SECONDS = 1.0
RECONNECT_MIN, RECONNECT_MAX = 0.2, 5.0
DISK_FILE = "cache.sqlite3"


class CacheError(SlackToolsError):
    """The cache was used in a way it cannot serve (a blocking call on its own loop)."""


class Flight:
    """A load in progress. The future its followers wait on is made only when one comes:
    most loads have none, and a future costs a read from Redis several microseconds."""

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        self._waiting: asyncio.Future[Any] | None = None

    def join(self) -> asyncio.Future[Any]:
        if self._waiting is None:
            self._waiting = asyncio.get_running_loop().create_future()
            # Nobody may wait for it in the end: mark its exception as seen.
            self._waiting.add_done_callback(lambda f: f.cancelled() or f.exception())
        return self._waiting

    def succeed(self, value: Any) -> None:
        if self._waiting is not None:
            self._waiting.set_result(value)

    def fail(self, error: BaseException) -> None:
        if self._waiting is not None:
            self._waiting.set_exception(error)


class Core:
    """State shared by every namespace of one cache manager."""

    def __init__(
        self,
        config: AppConfig,
        *,
        clock: Callable[[], float] = time.time,
        uniform: Callable[[], float] = random.random,
        observe: LatencyObserver | None = None,
        disk_path: Path | None = None,
    ) -> None:
        self.config = config
        self.settings = config.cache
        self.clock = clock
        self.uniform = uniform
        self.observe = observe
        self.codec = Codec(compress_min_bytes=self.settings.compress_min_bytes)
        self.stats = CacheStats()
        self.origin = uuid.uuid4().hex
        self.namespaces: dict[str, CacheNamespace] = {}
        self.inflight: dict[tuple[str, str], Flight] = {}
        self.has_redis = bool(config.redis.url)
        # Without Redis nobody else writes our keys: L3 is trusted whatever its age.
        self.trusted_since = clock() if self.has_redis else 0.0
        self._disk_path = disk_path or Path(config.data_dir or "./data") / DISK_FILE
        self._disk: DiskTier | None = None
        self.redis: RedisTier | None = None
        self._client: Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._bind_lock = threading.Lock()
        self._closing = False
        self._flush_task: asyncio.Task[None] | None = None

    # --- the home loop ---------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def _live_loop(self) -> asyncio.AbstractEventLoop | None:
        loop = self._loop
        if loop is None or loop.is_closed() or (self._thread is None and not loop.is_running()):
            return None
        return loop

    def on_home(self) -> bool:
        """Bind to the running loop if there is no live home yet; True when on the home loop."""
        running = asyncio.get_running_loop()
        if self._loop is running:
            return True
        with self._bind_lock:
            if self._live_loop() is None:
                self._bind(running)
                return True
        return False

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._tasks = set()
        self.redis = None
        self._client = None
        if self.has_redis:
            redis = self.config.redis
            password = redis.password.get_secret_value() if redis.password else None
            self._client = Redis.from_url(
                redis.url or "",
                password=password,
                socket_timeout=redis.socket_timeout_seconds,
                socket_connect_timeout=redis.socket_timeout_seconds,
            )
            breaker = CircuitBreaker("cache-redis", self.config.resilience.breaker)
            self.redis = RedisTier(self._client, redis.key_prefix, breaker)
            self.spawn(self._listen())
        self._flush_task = self.spawn(self._flush_forever())

    def _start_thread(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                loop.close()

        thread = threading.Thread(target=run, name="cache-manager", daemon=True)
        thread.start()
        ready.wait()
        self._thread = thread
        asyncio.run_coroutine_threadsafe(self._bind_async(loop), loop).result()
        return loop

    async def _bind_async(self, loop: asyncio.AbstractEventLoop) -> None:
        self._bind(loop)

    def home_for_sync(self) -> asyncio.AbstractEventLoop:
        """The home loop for a blocking call from this thread (started if there is none)."""
        with self._bind_lock:
            loop = self._live_loop()
            if loop is None:
                loop = self._start_thread()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise CacheError(
                "a blocking cache call was made on the cache's own event loop: "
                "use the async methods there (aget, aset, ainvalidate, …)"
            )
        return loop

    def call(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run a coroutine on the home loop and wait for it (synchronous callers)."""
        loop = self.home_for_sync()
        return asyncio.run_coroutine_threadsafe(make(), loop).result()

    async def hop(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run a coroutine on the home loop from another loop."""
        loop = self._live_loop()
        if loop is None:  # the home loop ended meanwhile
            return await make()
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(make(), loop))

    def post(self, make: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Run a coroutine on the home loop without waiting for it, from any thread."""
        loop = self._live_loop()
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.spawn(make())
        else:
            loop.call_soon_threadsafe(lambda: self.spawn(make()))

    def spawn(self, coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(coroutine, loop=self._loop)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("cache.task_failed", error=repr(task.exception()))

    # --- L3 ----------------------------------------------------------------------------

    @property
    def disk(self) -> DiskTier | None:
        if self._disk is None and self.settings.persistent and not self._closing:
            self._disk = DiskTier(self._disk_path, max_entries=self.settings.persistent_max_entries)
        return self._disk

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush_disk()

    async def flush_disk(self) -> None:
        disk = self._disk
        if disk is not None and disk.pending:
            await asyncio.to_thread(disk.flush, self.clock())

    # --- invalidation ------------------------------------------------------------------

    def message(
        self,
        namespace: str,
        keys: tuple[str, ...] = (),
        prefixes: tuple[str, ...] = (),
        tags: tuple[str, ...] = (),
    ) -> bytes:
        return orjson.dumps({"o": self.origin, "n": namespace, "k": keys, "p": prefixes, "t": tags})

    @property
    def channel_up(self) -> bool:
        return self.stats.channel_up

    async def _listen(self) -> None:
        wait = RECONNECT_MIN
        assert self._client is not None
        client = self._client
        channel = self.redis.channel if self.redis else ""
        while not self._closing:
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(channel)
                while (await pubsub.get_message(timeout=1.0)) is None:
                    pass  # the first message confirms the subscription
                self._channel_opened()
                wait = RECONNECT_MIN
                while True:
                    found = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if found is not None and found.get("type") == "message":
                        self.receive(found["data"])
            except (RedisError, OSError, TimeoutError) as exc:
                self._channel_dropped(exc)
                await asyncio.sleep(wait)
                wait = min(wait * 2, RECONNECT_MAX)
            finally:
                with contextlib.suppress(Exception):
                    # Bounded: closing right after a cancelled connect can wait forever.
                    await asyncio.wait_for(pubsub.aclose(), 1.0)  # type: ignore[no-untyped-call]

    def _channel_opened(self) -> None:
        # Whatever was invalidated while we were not listening is unknown: start afresh.
        self.flush_shared()
        self.trusted_since = self.clock()
        if not self.stats.channel_up and self.stats.channel_drops:
            log.warning("cache.invalidation_channel_restored")
        self.stats.channel_up = True

    def _channel_dropped(self, exc: BaseException) -> None:
        if self.stats.channel_up or not self.stats.channel_drops:
            log.warning(
                "cache.invalidation_channel_down",
                error=type(exc).__name__,
                memory_bound_seconds=self.settings.l1_stale_seconds,
            )
            self.stats.channel_drops += 1
        self.stats.channel_up = False
        self.flush_shared()

    def flush_shared(self) -> None:
        """Empty L1 of every namespace whose values other instances may change."""
        for namespace in list(self.namespaces.values()):
            if namespace.is_shared:
                namespace.drop_local()

    def receive(self, data: bytes) -> None:
        """Apply an invalidation message from another instance."""
        try:
            message = orjson.loads(data)
            if message.get("o") == self.origin:
                return
            target = self.namespaces.get(str(message["n"]))
            if target is None:
                return
            target.apply_remote(
                tuple(message.get("k", ())),
                tuple(message.get("p", ())),
                tuple(message.get("t", ())),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            log.warning("cache.invalidation_unreadable", error=type(exc).__name__)
            return
        self.stats.add(target.name, Tier.L1, Event.INVALIDATION_RECEIVED, "")

    # --- shutdown ----------------------------------------------------------------------

    async def aclose(self) -> None:
        self._closing = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        if self._disk is not None:
            disk, self._disk = self._disk, None
            await asyncio.to_thread(disk.close, self.clock())
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
        self.stats.channel_up = False

    def close(self) -> None:
        """Stop the home loop's tasks and flush L3; from sync code."""
        loop = self._live_loop()
        if loop is not None and self._thread is not None:
            with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
                asyncio.run_coroutine_threadsafe(self.aclose(), loop).result(timeout=5)
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout=5)
            self._thread = None
        elif loop is None and self._disk is not None:
            self._disk.close(self.clock())
            self._disk = None
        self._closing = True
