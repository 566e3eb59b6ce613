"""Slack's buckets shared through Redis, with this process's own when Redis fails."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import structlog

from slack_tools.slack.ratelimit import (
    Bucket,
    MemoryRateLimiter,
    RateLimiter,
    RateLimiterUnavailableError,
    Request,
)

log = structlog.get_logger(__name__)


class SharedLimiter:
    """Redis buckets when configured, falling back to this process's own when Redis fails."""

    def __init__(self, shared: RateLimiter | None) -> None:
        self._shared = shared
        self._local = MemoryRateLimiter()

    async def try_acquire_all(self, requests: Sequence[Request]) -> float:
        if self._shared is not None:
            try:
                return await self._shared.try_acquire_all(requests)
            except RateLimiterUnavailableError:
                log.warning("ratelimit.redis_unavailable", fallback="memory")
        return await self._local.try_acquire_all(requests)

    async def penalise(self, key: str, bucket: Bucket, seconds: float) -> None:
        if self._shared is not None:
            with contextlib.suppress(RateLimiterUnavailableError):
                await self._shared.penalise(key, bucket, seconds)
        await self._local.penalise(key, bucket, seconds)

    async def empty(self, key: str, bucket: Bucket) -> None:
        if self._shared is not None:
            with contextlib.suppress(RateLimiterUnavailableError):
                await self._shared.empty(key, bucket)
        await self._local.empty(key, bucket)
