"""L2: Redis, shared by every instance, behind a circuit breaker.

Every call goes through the breaker of ``configs.circuit_breaker``: while Redis
fails, calls are refused at once (:class:`L2Unavailable`) instead of each waiting
for a timeout, a warning says so once, and half-open probes bring L2 back by
themselves. Keys are ``<redis.key_prefix>cache:<namespace>:<key>``; a tag is a Redis
set of the keys written with it, expiring with the longest of them.

Plain redis-py rather than cashews' Redis backend: that backend's serializer
pickles, and its client-side mode keeps L1 behind an async-only API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from slack_tools.configs.circuit_breaker import BreakerState, CircuitBreaker
from slack_tools.errors import SlackToolsError

log = structlog.get_logger(__name__)
T = TypeVar("T")
SCAN_BATCH = 500
# What a call to Redis raises when Redis (or the way to it) fails.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


class L2Unavailable(SlackToolsError):  # noqa: N818 - reads as the state it reports
    """Redis failed or its breaker is open: callers carry on with L1 and L3."""


class RedisTier:
    """Reads and writes cache entries in Redis; every failure becomes :class:`L2Unavailable`."""

    def __init__(
        self,
        client: Redis,
        key_prefix: str,
        breaker: CircuitBreaker,
    ) -> None:
        self.client = client
        self.prefix = f"{key_prefix}cache:"
        self.channel = f"{key_prefix}cache:invalidate"
        self.breaker = breaker
        self.errors = 0

    @property
    def is_available(self) -> bool:
        return self.breaker.state is not BreakerState.OPEN

    def key(self, namespace: str, key: str) -> str:
        return f"{self.prefix}{namespace}:{key}"

    def tag_key(self, namespace: str, tag: str) -> str:
        return f"{self.prefix}{namespace}#tag:{tag}"

    async def _call(self, operation: str, make: Callable[[], Awaitable[T]]) -> T:
        if not self.breaker.allow():
            raise L2Unavailable("Redis cache tier unavailable (breaker open)")
        with self.reporting(operation):
            return await make()

    def reporting(self, operation: str) -> _Reporting:
        """A context reporting the call made in it to the breaker, once: a success, a
        failure (raised as :class:`L2Unavailable`), or neither when it was cancelled."""
        return _Reporting(self, operation)

    def failed(self, operation: str, exc: BaseException) -> L2Unavailable:
        """Count a failed call against the breaker; the error to raise."""
        self.errors += 1
        was_open = self.breaker.state is BreakerState.OPEN
        self.breaker.record_failure()
        if not was_open and self.breaker.state is BreakerState.OPEN:
            log.warning(
                "cache.redis_unavailable",
                operation=operation,
                error=type(exc).__name__,
                retry_in=self.breaker.config.open_seconds,
            )
        return L2Unavailable(f"Redis cache tier failed: {type(exc).__name__}")

    def succeeded(self) -> None:
        """Count a call that worked (it may close the breaker)."""
        was_half_open = self.breaker.state is BreakerState.HALF_OPEN
        self.breaker.record_success()
        if was_half_open and self.breaker.state is BreakerState.CLOSED:
            log.warning("cache.redis_recovered")

    def start_get(self, namespace: str, key: str) -> Awaitable[bytes | None]:
        """The GET of one entry, for the caller to await itself inside :meth:`reporting`:
        on the hot read, one coroutine frame less between the caller and the socket
        (each suspension crosses every frame)."""
        if not self.breaker.allow():
            raise L2Unavailable("Redis cache tier unavailable (breaker open)")
        return self._get(self.key(namespace, key))

    async def _get(self, name: str) -> bytes | None:
        """GET on a pooled connection, without redis-py's command wrapper.

        ``Redis.execute_command`` runs each command through its retry wrapper and its
        telemetry hooks, about a tenth of a GET on loopback (bench/cache.py): a cache
        read wants neither, since a failure is the breaker's to count (our metrics
        say so) and a retry only delays serving from L1/L3. The connection drops
        itself on any error or cancellation while a reply is awaited
        (``read_response``), so the pool never hands out one with a reply unread.
        """
        pool = self.client.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await connection.send_command("GET", name)
            found: bytes | None = await connection.read_response()  # bytes: no decoding
        finally:
            await pool.release(connection)
        return found

    async def get_many(self, namespace: str, keys: Sequence[str]) -> list[bytes | None]:
        names = [self.key(namespace, key) for key in keys]
        found: Any = await self._call("mget", lambda: self.client.mget(names))
        return found  # type: ignore[no-any-return]

    async def set_many(
        self,
        namespace: str,
        items: Sequence[tuple[str, bytes, float, tuple[str, ...]]],
        *,
        message: bytes | None = None,
    ) -> None:
        """Write ``(key, data, seconds to live, tags)`` and publish ``message``, in one trip."""

        async def write() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for key, data, seconds, tags in items:
                name = self.key(namespace, key)
                pipe.set(name, data, px=max(1, int(seconds * 1000)))
                for tag in tags:
                    tag_name = self.tag_key(namespace, tag)
                    pipe.sadd(tag_name, name)
                    # The set lives as long as its longest member (GT: never shortened).
                    pipe.pexpire(tag_name, max(1, int(seconds * 1000)), gt=True)
                    pipe.pexpire(tag_name, max(1, int(seconds * 1000)), nx=True)
            if message is not None:
                pipe.publish(self.channel, message)
            result: list[Any] = await pipe.execute()
            return result

        await self._call("set", write)

    async def delete(self, namespace: str, keys: Sequence[str]) -> None:
        names = [self.key(namespace, key) for key in keys]
        if names:
            await self._call("delete", lambda: self.client.unlink(*names))

    async def delete_tag(self, namespace: str, tag: str) -> None:
        tag_name = self.tag_key(namespace, tag)

        async def drop() -> None:
            members = await self.client.smembers(tag_name)
            await self.client.unlink(tag_name, *members)

        await self._call("delete_tag", drop)

    async def delete_prefix(self, namespace: str, prefix: str) -> None:
        pattern = _glob_escape(self.key(namespace, prefix)) + "*"

        async def drop() -> None:
            batch: list[bytes] = []
            async for name in self.client.scan_iter(match=pattern, count=SCAN_BATCH):
                batch.append(name)
                if len(batch) >= SCAN_BATCH:
                    await self.client.unlink(*batch)
                    batch = []
            if batch:
                await self.client.unlink(*batch)

        await self._call("delete_prefix", drop)

    async def publish(self, message: bytes) -> None:
        await self._call("publish", lambda: self.client.publish(self.channel, message))


class _Reporting:
    # A class rather than a contextlib generator: it is entered on every L2 read, and
    # costs a third as much.
    __slots__ = ("operation", "tier")

    def __init__(self, tier: RedisTier, operation: str) -> None:
        self.tier = tier
        self.operation = operation

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _trace: object
    ) -> None:
        if kind is None:
            self.tier.succeeded()
        elif issubclass(kind, L2Unavailable):  # refused by the breaker: nothing to report
            pass
        elif issubclass(kind, REDIS_ERRORS):
            raise self.tier.failed(self.operation, error or kind()) from None
        else:  # cancelled, or a bug: neither a success nor a failure
            self.tier.breaker.record_ignored()


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
