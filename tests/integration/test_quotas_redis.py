"""Quota counts in the real Redis: shared by instances, aligned windows, failover to memory."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from slack_tools.configs.quotas import (
    FailoverQuotaCounter,
    MemoryQuotaCounter,
    Quota,
    QuotaBackendUnavailableError,
    RedisQuotaCounter,
)
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.redis

T0 = 1_795_701_780.0  # the start of a minute
QUOTA = Quota.named("alerts_per_minute", 3)
# Nothing listens there: connections are refused at once.
DOWN_URL = "redis://127.0.0.1:1/0"


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL, socket_timeout=2)
    yield client
    await client.aclose()


async def test_two_instances_count_into_one_window(client: Redis, prefix: str) -> None:
    """Uses counted by one instance are seen by the other; the limit is shared."""
    clock = Clock()
    first = RedisQuotaCounter(client, prefix, clock)
    second = RedisQuotaCounter(Redis.from_url(REDIS_URL), prefix, clock)
    try:
        assert (await first.take("acme", QUOTA, 2)).allowed
        at_limit = await second.take("acme", QUOTA)
        over = await first.take("acme", QUOTA)
        assert (at_limit.used, at_limit.allowed) == (3, True)
        assert (over.used, over.allowed, over.over_by) == (4, False, 1)
        assert (await second.peek("acme", QUOTA)).used == 4
        assert (await second.take("globex", QUOTA)).used == 1
    finally:
        await second._client.aclose()


async def test_a_new_window_starts_from_zero_and_old_keys_expire(
    client: Redis, prefix: str
) -> None:
    clock = Clock(T0 + 59.9)
    counter = RedisQuotaCounter(client, prefix, clock)
    for _ in range(4):
        last = await counter.take("acme", QUOTA)
    assert not last.allowed
    clock.now = T0 + 60.0
    rolled = await counter.take("acme", QUOTA)
    assert (rolled.used, rolled.allowed, rolled.window_start) == (1, True, T0 + 60)
    keys = sorted([key async for key in client.scan_iter(match=f"{prefix}*")])
    assert len(keys) == 2
    for key in keys:
        assert 0 < await client.ttl(key) <= 2 * QUOTA.period_seconds


async def test_an_unreachable_redis_is_an_error_of_its_own() -> None:
    down = Redis.from_url(DOWN_URL, socket_connect_timeout=0.5)
    try:
        with pytest.raises(QuotaBackendUnavailableError, match="alerts_per_minute"):
            await RedisQuotaCounter(down, "p:").take("acme", QUOTA)
    finally:
        await down.aclose()


async def test_redis_down_counts_in_memory_with_a_warning_and_a_count() -> None:
    """Every take is still answered; the fallback is logged once and counted each time."""
    down = Redis.from_url(DOWN_URL, socket_connect_timeout=0.5)
    fallbacks: list[None] = []
    counter = FailoverQuotaCounter(
        RedisQuotaCounter(down, "p:"),
        fallback=MemoryQuotaCounter(Clock()),
        retry_seconds=60,
        on_fallback=lambda: fallbacks.append(None),
    )
    try:
        with capture_logs() as logs:
            uses = [await counter.take("acme", QUOTA) for _ in range(4)]
    finally:
        await down.aclose()
    assert [u.used for u in uses] == [1, 2, 3, 4]
    assert [u.allowed for u in uses] == [True, True, True, False]
    assert counter.degraded
    assert len(fallbacks) == 4
    warnings = [e for e in logs if e["event"] == "quota.redis_unavailable"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"


async def test_counting_returns_to_redis_once_it_answers_again(client: Redis, prefix: str) -> None:
    """After retry_seconds the next take tries Redis; when it answers, Redis counts again."""
    monotonic = Clock(0.0)
    broken = Redis.from_url(DOWN_URL, socket_connect_timeout=0.5)
    primary = RedisQuotaCounter(broken, prefix, Clock())
    counter = FailoverQuotaCounter(
        primary, fallback=MemoryQuotaCounter(Clock()), retry_seconds=5, clock=monotonic
    )
    try:
        assert (await counter.take("acme", QUOTA)).used == 1  # in memory
        counter._primary = RedisQuotaCounter(client, prefix, Clock())  # Redis is back
        monotonic.now = 4.0
        assert (await counter.take("acme", QUOTA)).used == 2  # still in memory: not yet retried
        monotonic.now = 5.0
        with capture_logs() as logs:
            back = await counter.take("acme", QUOTA)
    finally:
        await broken.aclose()
    assert back.used == 1  # Redis's own count
    assert not counter.degraded
    assert [e["event"] for e in logs] == ["quota.redis_recovered"]
