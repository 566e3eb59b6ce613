"""The Redis token buckets against the real Redis: shared between instances and atomic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from slack_tools.errors import SlackToolsError
from slack_tools.slack.ratelimit import (
    Bucket,
    RateLimiter,
    RateLimiterUnavailableError,
    RedisRateLimiter,
    channel_posts_key,
    workspace_posts_key,
)
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.redis

# A rate so slow that no token comes back while a test runs: counts are exact.
STILL = 0.001

MakeLimiter = Callable[..., RedisRateLimiter]


@pytest.fixture
async def make_limiter(prefix: str) -> AsyncIterator[MakeLimiter]:
    """Build limiters on the test's prefix, each with its own Redis client (an instance)."""
    clients: list[Redis] = []

    def build(**options: Any) -> RedisRateLimiter:
        client = Redis.from_url(REDIS_URL, **options)
        clients.append(client)
        return RedisRateLimiter(client, prefix)

    yield build
    for client in clients:
        await client.aclose()


async def test_two_instances_share_one_bucket(make_limiter: MakeLimiter) -> None:
    """Tokens taken by one instance are gone for the other."""
    first, second = make_limiter(), make_limiter()
    bucket = Bucket(rate_per_second=STILL, burst=3.0)
    assert await first.try_acquire("ch", bucket, 2.0) == 0.0
    assert await second.try_acquire("ch", bucket) == 0.0
    assert await second.try_acquire("ch", bucket) > 0.0
    assert await first.try_acquire("ch", bucket) > 0.0


async def test_refused_take_returns_the_refill_wait(make_limiter: MakeLimiter) -> None:
    """An empty bucket at one token per second reports a wait of at most one second."""
    limiter = make_limiter()
    bucket = Bucket(rate_per_second=1.0, burst=1.0)
    assert await limiter.try_acquire("ch", bucket) == 0.0
    wait = await limiter.try_acquire("ch", bucket)
    assert 0.0 < wait <= 1.0


async def test_take_all_is_all_or_nothing(make_limiter: MakeLimiter) -> None:
    """When the channel bucket is short the workspace bucket keeps every token."""
    limiter = make_limiter()
    channel = Bucket(rate_per_second=STILL, burst=1.0)
    workspace = Bucket(rate_per_second=STILL, burst=5.0)
    assert await limiter.try_acquire("ch", channel) == 0.0
    wait = await limiter.try_acquire_all([("ch", channel, 1.0), ("ws", workspace, 1.0)])
    assert wait > 900.0
    assert await limiter.try_acquire("ws", workspace, 5.0) == 0.0


async def test_concurrent_multi_bucket_takes_never_exceed_any_bucket(
    make_limiter: MakeLimiter,
) -> None:
    """Concurrent posts from two instances get exactly the workspace budget; refusals take none."""
    instances = [make_limiter(), make_limiter()]
    channels = [channel_posts_key("T1", f"C{number}") for number in range(3)]
    workspace_key = workspace_posts_key("T1")
    channel = Bucket(rate_per_second=STILL, burst=4.0)
    workspace = Bucket(rate_per_second=STILL, burst=6.0)

    async def post(number: int) -> tuple[str, bool]:
        key = channels[number % len(channels)]
        limiter = instances[number % len(instances)]
        wait = await limiter.try_acquire_all([(key, channel, 1.0), (workspace_key, workspace, 1.0)])
        return key, wait == 0.0

    results = await asyncio.gather(*(post(number) for number in range(120)))
    granted = {key: sum(ok for k, ok in results if k == key) for key in channels}
    assert sum(granted.values()) == 6
    assert all(count <= 4 for count in granted.values())
    for key, count in granted.items():
        if count < 4:
            assert await instances[0].try_acquire(key, channel, 4.0 - count) == 0.0
    assert await instances[1].try_acquire(workspace_key, workspace) > 0.0


async def test_penalise_is_seen_by_the_other_instance(make_limiter: MakeLimiter) -> None:
    """A 429 recorded by one instance pauses the same key on another for the Retry-After."""
    first, second = make_limiter(), make_limiter()
    bucket = Bucket(rate_per_second=1.0, burst=5.0)
    await first.penalise("ws", bucket, 30.0)
    wait = await second.try_acquire("ws", bucket)
    assert 29.0 < wait <= 31.0


async def test_penalise_never_shortens_a_longer_pause(make_limiter: MakeLimiter) -> None:
    """A later, shorter Retry-After keeps the longer pause already in force."""
    limiter = make_limiter()
    bucket = Bucket(rate_per_second=1.0, burst=1.0)
    await limiter.penalise("ch", bucket, 60.0)
    await limiter.penalise("ch", bucket, 5.0)
    assert await limiter.try_acquire("ch", bucket) > 59.0


async def test_empty_is_seen_by_the_other_instance(make_limiter: MakeLimiter) -> None:
    """A bucket one instance empties (Slack answered its post) refuses the other's take."""
    first, second = make_limiter(), make_limiter()
    bucket = Bucket(rate_per_second=STILL, burst=3.0)
    await first.empty("ch", bucket)
    assert await second.try_acquire("ch", bucket) > 0.0


async def test_empty_never_shortens_a_pause(make_limiter: MakeLimiter) -> None:
    """Emptying a bucket that a 429 paused keeps the pause."""
    limiter = make_limiter()
    bucket = Bucket(rate_per_second=1.0, burst=1.0)
    await limiter.penalise("ch", bucket, 60.0)
    await limiter.empty("ch", bucket)
    assert await limiter.try_acquire("ch", bucket) > 59.0


async def test_keys_expire_once_they_would_have_refilled(
    make_limiter: MakeLimiter, prefix: str
) -> None:
    """An idle bucket's key expires about when it would be full again, so Redis does not fill up."""
    limiter = make_limiter()
    bucket = Bucket(rate_per_second=1.0, burst=2.0)
    await limiter.try_acquire("ch", bucket)
    await limiter.penalise("paused", bucket, 30.0)
    client = Redis.from_url(REDIS_URL)
    try:
        assert 0 < await client.pttl(f"{prefix}ch") <= 2000
        assert 30_000 < await client.pttl(f"{prefix}paused") <= 33_000
    finally:
        await client.aclose()


async def test_script_reloaded_when_the_server_does_not_know_it(make_limiter: MakeLimiter) -> None:
    """On NOSCRIPT the limiter loads its script again and the take still happens."""
    limiter = make_limiter()
    limiter._acquire.sha = "0" * 40
    bucket = Bucket(rate_per_second=STILL, burst=1.0)
    assert await limiter.try_acquire("ch", bucket) == 0.0
    assert await limiter.try_acquire("ch", bucket) > 0.0


async def test_works_with_a_client_that_decodes_responses(make_limiter: MakeLimiter) -> None:
    """A client built with decode_responses=True returns text, and waits still parse."""
    limiter = make_limiter(decode_responses=True)
    bucket = Bucket(rate_per_second=2.0, burst=1.0)
    assert await limiter.try_acquire("ch", bucket) == 0.0
    assert 0.0 < await limiter.try_acquire("ch", bucket) <= 0.5


async def test_redis_failure_raises_a_typed_error() -> None:
    """When Redis cannot be reached the caller gets RateLimiterUnavailableError to fall back on."""
    client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    limiter: RateLimiter = RedisRateLimiter(client, "unreachable:")
    try:
        with pytest.raises(RateLimiterUnavailableError, match="pace in memory") as caught:
            await limiter.try_acquire("ch", Bucket(1.0, 1.0))
        assert isinstance(caught.value, SlackToolsError)
        with pytest.raises(RateLimiterUnavailableError):
            await limiter.penalise("ch", Bucket(1.0, 1.0), 5.0)
        with pytest.raises(RateLimiterUnavailableError):
            await limiter.empty("ch", Bucket(1.0, 1.0))
    finally:
        await client.aclose()
