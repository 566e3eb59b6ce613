"""The cache manager on the real Redis: shared L2, invalidation between processes, outages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from structlog.testing import capture_logs

from slack_tools.configs.cache_manager import CacheManager, Event, Tier
from slack_tools.configs.metrics import CacheMetrics
from slack_tools.configs.schema import AppConfig
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.redis


def settings(prefix: str, data_dir: Path, url: str = REDIS_URL, **cache: Any) -> dict[str, Any]:
    return {
        "data_dir": str(data_dir),
        "redis": {"url": url, "key_prefix": prefix, "socket_timeout_seconds": 0.5},
        "cache": cache,
        "resilience": {
            "breaker": {
                "window_seconds": 1.0,
                "minimum_calls": 1,
                "open_seconds": 0.3,
                "half_open_probes": 1,
            }
        },
    }


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait for ``condition`` (a bound, not a measurement: fails only if it never holds)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def pair(prefix: str, tmp_path: Path) -> AsyncIterator[tuple[CacheManager, CacheManager]]:
    first = CacheManager(AppConfig.model_validate(settings(prefix, tmp_path / "a")))
    second = CacheManager(AppConfig.model_validate(settings(prefix, tmp_path / "b")))
    await first.start()
    await second.start()
    await until(lambda: first.core.channel_up and second.core.channel_up)
    yield first, second
    await first.aclose()
    await second.aclose()


async def test_instances_share_l2_and_invalidate_each_other(
    pair: tuple[CacheManager, CacheManager],
) -> None:
    """A value written by one instance is read by the other from Redis; a later write
    evicts the other's L1 copy, so it serves the new value."""
    first, second = pair
    await first.aset("k", {"v": 1})
    assert await second.aget("k") == {"v": 1}
    assert second.stats.count(Tier.L2, Event.HIT) == 1
    await first.aset("k", {"v": 2})
    await until(lambda: second.stats.count(Tier.L1, Event.INVALIDATION_RECEIVED) >= 1)
    assert await second.aget("k") == {"v": 2}


async def test_tags_and_prefixes_are_invalidated_everywhere(
    pair: tuple[CacheManager, CacheManager],
) -> None:
    """Invalidating a tag or a prefix on one instance removes the keys from Redis and
    from the other instance's memory; other keys stay."""
    first, second = pair
    await first.aset_bulk({"t1:a": 1, "t1:b": 2}, tags=["tenant:t1"])
    await first.aset_bulk({"t2:a": 3, "cfg:x": 4})
    assert await second.aget_bulk(["t1:a", "t1:b", "t2:a", "cfg:x"]) == {
        "t1:a": 1,
        "t1:b": 2,
        "t2:a": 3,
        "cfg:x": 4,
    }
    received = second.stats.count(Tier.L1, Event.INVALIDATION_RECEIVED)
    await first.ainvalidate(tag="tenant:t1")
    await first.ainvalidate(prefix="cfg:")
    await until(lambda: second.stats.count(Tier.L1, Event.INVALIDATION_RECEIVED) >= received + 2)
    assert second.memory.get("t1:a") is None
    assert await second.aget_bulk(["t1:a", "t1:b", "t2:a", "cfg:x"]) == {"t2:a": 3}


async def test_metrics_label_tenant_class(prefix: str, tmp_path: Path) -> None:
    """Counts and L2 latency are exported by tier with the tenant class, never a tenant id."""
    registry = CollectorRegistry()
    metrics = CacheMetrics(registry)
    cache = CacheManager(
        AppConfig.model_validate(settings(prefix, tmp_path)), observe=metrics.observe
    )
    metrics.watch(cache)
    try:
        await cache.aset("tenant:acme:cfg", 1, tenant_class="premium")
        cache.memory.clear()
        assert await cache.aget("tenant:acme:cfg", tenant_class="premium") == 1
        exported = generate_latest(registry).decode()
        assert (
            'slack_tools_cache_events_total{event="hit",namespace="default",'
            'tenant_class="premium",tier="l2"} 1.0'
        ) in exported
        assert (
            'slack_tools_cache_latency_seconds_count{tenant_class="premium",tier="l2"} 1.0'
        ) in exported
        assert "acme" not in exported
    finally:
        await cache.aclose()


CHILD = """
import json, sys, time
from slack_tools.configs.cache_manager import CacheManager
from slack_tools.configs.schema import AppConfig
cache = CacheManager(AppConfig.model_validate(json.loads(sys.argv[1])))
assert cache.get("shared") == "v1"
deadline = time.monotonic() + 10
while not cache.core.channel_up and time.monotonic() < deadline:
    time.sleep(0.005)
print("ready", flush=True)
while time.monotonic() < deadline:
    if cache.get("shared") == "v2":
        print(json.dumps({"seen_at": time.time()}), flush=True)
        break
    time.sleep(0.0005)
cache.close()
"""


def test_an_update_on_one_process_reaches_another(prefix: str, tmp_path: Path) -> None:
    """Process B holds the old value in L1 (TTL 300 s); after process A writes, B serves
    the new value once the invalidation arrives (bench/cache.py measures the delay)."""
    writer = CacheManager(AppConfig.model_validate(settings(prefix, tmp_path / "a")))
    writer.set("shared", "v1", ttl=300)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(settings(prefix, tmp_path / "b"))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        written_at = time.time()
        writer.set("shared", "v2", ttl=300)
        seen = json.loads(child.stdout.readline())["seen_at"]
        assert seen > written_at
        assert child.wait(10) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
        writer.close()


class Proxy:
    """A TCP relay to Redis that can be cut and restored, to play an outage, and hold
    Redis's replies back (clear ``replies``) while requests still go through."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.replies = asyncio.Event()
        self.replies.set()
        self.requests = 0  # chunks relayed to Redis
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        # Not wait_closed(): on 3.11 it waits for relays that are still being torn down.
        await asyncio.sleep(0.05)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers.update((writer, up_writer))

        async def pipe(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, gate: asyncio.Event | None
        ) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await source.read(65536):
                    if gate is not None:
                        await gate.wait()
                    else:
                        self.requests += 1
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer, None), pipe(up_reader, writer, self.replies))


async def test_redis_outage_and_recovery(prefix: str, tmp_path: Path) -> None:
    """Redis down: L1 is flushed and kept short, L3 serves, L2 fails fast behind its
    breaker with a warning and a metric; once Redis is back everything resumes by itself."""
    host, port = REDIS_URL.removeprefix("redis://").split("/")[0].split(":")
    proxy = Proxy((host, int(port)))
    await proxy.start()
    database = REDIS_URL.rsplit("/", 1)[1]
    url = f"redis://127.0.0.1:{proxy.port}/{database}"
    config = AppConfig.model_validate(settings(prefix, tmp_path, url, l1_stale_seconds=2.0))
    registry = CollectorRegistry()
    metrics = CacheMetrics(registry)
    cache = CacheManager(config, observe=metrics.observe)
    metrics.watch(cache)
    try:
        await cache.start()
        await until(lambda: cache.core.channel_up)
        await cache.aset("k", "v", ttl=300)
        with capture_logs() as logs:
            await proxy.stop()
            await until(lambda: not cache.core.channel_up)
            assert cache.memory.get("k") is None  # flushed: invalidations may be missed
            assert await cache.aget("k") == "v"  # from L3
            assert cache.stats.count(Tier.L3, Event.HIT) == 1
            assert cache.stats.count(Tier.L2, Event.ERROR) >= 1
            assert await cache.aget("absent", fallback="none") == "none"  # breaker: at once
            await cache.aset("during", "outage", ttl=300)
            kept = cache.memory.get("during")
            assert kept is not None
            assert kept.stale_until <= time.time() + 2.0
        events = [entry["event"] for entry in logs]
        assert "cache.invalidation_channel_down" in events
        assert "cache.redis_unavailable" in events
        assert "slack_tools_cache_redis_available 0.0" in generate_latest(registry).decode()

        await proxy.start()
        await until(lambda: cache.core.channel_up)
        await asyncio.sleep(0.4)  # the breaker's open time, then a probe closes it
        await cache.aset("after", "recovered", ttl=300)
        await until(lambda: cache.core.redis is not None and cache.core.redis.is_available)
        other = CacheManager(AppConfig.model_validate(settings(prefix, tmp_path / "other")))
        try:
            assert await other.aget("after") == "recovered"
        finally:
            await other.aclose()
        assert "slack_tools_cache_redis_available 1.0" in generate_latest(registry).decode()
    finally:
        await cache.aclose()
        with contextlib.suppress(Exception):
            await proxy.stop()


async def test_a_read_cancelled_before_its_reply_leaves_no_reply_for_the_next(
    prefix: str, tmp_path: Path
) -> None:
    """A GET cancelled while its reply is on the way must not leave that reply on a pooled
    connection, where the next read would take it for its own."""
    host, port = REDIS_URL.removeprefix("redis://").split("/")[0].split(":")
    proxy = Proxy((host, int(port)))
    await proxy.start()
    url = f"redis://127.0.0.1:{proxy.port}/{REDIS_URL.rsplit('/', 1)[1]}"
    # The pool hands out the connection released last: the cancelled read's.
    cache = CacheManager(AppConfig.model_validate(settings(prefix, tmp_path, url)))
    shared = cache.namespace("held", tiers=["l1", "l2"], max_entries=1)
    try:
        await cache.start()
        await shared.aset_bulk({"first": "first value", "second": "second value"}, ttl=300)
        shared.drop_local()
        proxy.replies.clear()
        sent = proxy.requests
        reading = asyncio.ensure_future(shared.aget("first"))
        await until(lambda: proxy.requests > sent)  # sent; its reply is held by the proxy
        assert not reading.done()
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        proxy.replies.set()
        assert await shared.aget("second") == "second value"
        assert await shared.aget("first") == "first value"
    finally:
        await cache.aclose()
        await proxy.stop()
