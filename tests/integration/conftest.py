"""Fixtures the integration tests share."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.conftest import REDIS_URL, unavailable


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A Redis key prefix unique to this test; its keys are deleted afterwards."""
    prefix = f"slack_tools_test:{uuid.uuid4().hex}:"
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        unavailable("Redis", str(exc))
    yield prefix
    keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
