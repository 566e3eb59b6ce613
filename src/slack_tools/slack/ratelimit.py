"""Token buckets that pace calls to Slack before Slack has to say so.

A post takes from its channel's bucket (~1 chat.postMessage per second) and its
workspace's post budget at once, all or nothing; an edit takes from the
workspace's chat.update budget (Tier 3, ~50 per minute). A 429 empties a bucket
until Slack's Retry-After has passed, so every sender of that key pauses. Once
Slack has answered a post, the channel's bucket is emptied again, so its next
second counts from Slack's answer rather than from the request.

Nothing here sleeps: a refused take returns the seconds until it would succeed
and the caller reschedules. :class:`MemoryRateLimiter` serves one process;
:class:`RedisRateLimiter` lets several instances share the buckets. It raises
:class:`RateLimiterUnavailableError` when Redis fails, and the caller decides
the fallback (pace in memory, or hold the work).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from slack_tools.errors import SlackToolsError

Clock = Callable[[], float]
_MIN_WAIT = 1e-6
"""A refused take never reports 0.0, which means "taken"."""


@dataclass(frozen=True)
class Bucket:
    """A token bucket: refills at ``rate_per_second`` up to ``burst`` tokens; starts full."""

    rate_per_second: float
    burst: float

    def __post_init__(self) -> None:
        if not self.rate_per_second > 0:
            raise ValueError(f"rate_per_second must be > 0, got {self.rate_per_second!r}")
        if not self.burst > 0:
            raise ValueError(f"burst must be > 0, got {self.burst!r}")

    @classmethod
    def per_minute(cls, count: float, burst: float) -> Bucket:
        """A bucket that grants ``count`` tokens per minute."""
        return cls(count / 60.0, burst)


Request = tuple[str, Bucket, float]
"""One take: (key, bucket, cost in tokens)."""

CHANNEL_POSTS = Bucket(rate_per_second=1.0, burst=1.0)
"""chat.postMessage: about one message per second per channel; bursts are not guaranteed."""

WORKSPACE_UPDATES = Bucket.per_minute(50, burst=5.0)
"""chat.update: Tier 3, 50+ per minute per workspace, sporadic bursts welcome."""


def channel_posts_key(workspace: str, channel: str) -> str:
    """Key of a channel's post bucket.

    Keys are tagged with ``{workspace}`` so one workspace's buckets share a Redis
    Cluster slot, which a multi-key take needs.
    """
    return f"{{{workspace}}}:post:{channel}"


def workspace_posts_key(workspace: str) -> str:
    """Key of a workspace's post budget (Slack keeps one above the per-channel pace)."""
    return f"{{{workspace}}}:post"


def workspace_updates_key(workspace: str) -> str:
    """Key of a workspace's chat.update budget."""
    return f"{{{workspace}}}:update"


class RateLimiterUnavailableError(SlackToolsError):
    """The shared rate-limit store (Redis) failed; the caller picks the fallback."""


class RateLimiter(Protocol):
    """Where buckets live: in this process or shared between instances."""

    async def try_acquire(self, key: str, bucket: Bucket, cost: float = 1.0) -> float:
        """Take ``cost`` tokens and return 0.0, or take nothing and return the seconds to wait."""
        ...

    async def try_acquire_all(self, requests: Sequence[Request]) -> float:
        """Take from every bucket or from none; return 0.0 or the longest wait."""
        ...

    async def penalise(self, key: str, bucket: Bucket, seconds: float) -> None:
        """Empty the bucket so nothing is granted before ``seconds`` (Retry-After) pass."""
        ...

    async def empty(self, key: str, bucket: Bucket) -> None:
        """Empty the bucket now: its next token comes one refill interval from now."""
        ...


def _check(requests: Sequence[Request]) -> None:
    keys = [key for key, _, _ in requests]
    if len(set(keys)) != len(keys):
        raise ValueError(f"each key may appear once in a take, got {keys!r}")
    for key, bucket, cost in requests:
        if not 0 < cost <= bucket.burst:
            raise ValueError(
                f"cost for {key!r} must be > 0 and <= the bucket's burst "
                f"({bucket.burst!r}), got {cost!r}; it could never be granted"
            )


def _refill(tokens: float, stamp: float, now: float, bucket: Bucket) -> float:
    if now <= stamp:
        return tokens
    return min(bucket.burst, tokens + (now - stamp) * bucket.rate_per_second)


@dataclass
class _Level:
    tokens: float
    stamp: float
    bucket: Bucket


class MemoryRateLimiter:
    """Buckets in this process; an await never interrupts a take, so no lock is needed."""

    _SWEEP_EVERY = 1024

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._levels: dict[str, _Level] = {}
        self._operations = 0

    async def try_acquire(self, key: str, bucket: Bucket, cost: float = 1.0) -> float:
        """Take ``cost`` tokens and return 0.0, or take nothing and return the seconds to wait."""
        return await self.try_acquire_all([(key, bucket, cost)])

    async def try_acquire_all(self, requests: Sequence[Request]) -> float:
        """Take from every bucket or from none; return 0.0 or the longest wait."""
        _check(requests)
        now = self._clock()
        self._maybe_sweep(now)
        levels: list[float] = []
        wait = 0.0
        for key, bucket, cost in requests:
            tokens = self._tokens(key, bucket, now)
            levels.append(tokens)
            if tokens < cost:
                wait = max(wait, (cost - tokens) / bucket.rate_per_second, _MIN_WAIT)
        if wait > 0:
            return wait
        for (key, bucket, cost), tokens in zip(requests, levels, strict=True):
            self._levels[key] = _Level(tokens - cost, now, bucket)
        return 0.0

    async def penalise(self, key: str, bucket: Bucket, seconds: float) -> None:
        """Empty the bucket so nothing is granted before ``seconds`` (Retry-After) pass."""
        if seconds > 0:
            self._drain(key, bucket, seconds)

    async def empty(self, key: str, bucket: Bucket) -> None:
        """Empty the bucket now: its next token comes one refill interval from now."""
        self._drain(key, bucket, 0.0)

    def _drain(self, key: str, bucket: Bucket, seconds: float) -> None:
        now = self._clock()
        tokens = min(self._tokens(key, bucket, now), -seconds * bucket.rate_per_second)
        self._levels[key] = _Level(tokens, now, bucket)

    def _tokens(self, key: str, bucket: Bucket, now: float) -> float:
        level = self._levels.get(key)
        if level is None:
            return bucket.burst
        return _refill(level.tokens, level.stamp, now, bucket)

    def _maybe_sweep(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket: forget it, so
        # memory follows the channels in use rather than every channel ever seen.
        self._operations += 1
        if self._operations % self._SWEEP_EVERY:
            return
        full = [
            key
            for key, level in self._levels.items()
            if _refill(level.tokens, level.stamp, now, level.bucket) >= level.bucket.burst
        ]
        for key in full:
            del self._levels[key]


# Time comes from the server (TIME) so every instance sees the same clock; a
# key expires once it would have refilled, which is the same as a full bucket.
# Numbers are passed as strings with 17 significant digits: Lua's own number
# formatting keeps 14, which loses microseconds.
_TIME_LUA = """
local server_time = redis.call('TIME')
local now = tonumber(server_time[1]) + tonumber(server_time[2]) / 1000000

local function level(key, rate, burst)
  local state = redis.call('HMGET', key, 'tokens', 'stamp')
  local tokens = tonumber(state[1])
  local stamp = tonumber(state[2])
  if tokens == nil or stamp == nil then
    return burst
  end
  if now > stamp then
    tokens = math.min(burst, tokens + (now - stamp) * rate)
  end
  return tokens
end

local function store(key, tokens, rate, burst)
  redis.call('HSET', key, 'tokens', string.format('%.17g', tokens),
             'stamp', string.format('%.17g', now))
  local idle_ms = math.ceil((burst - tokens) / rate * 1000) + 1000
  redis.call('PEXPIRE', key, math.min(idle_ms, 1e12))
end
"""

_ACQUIRE_LUA = (
    _TIME_LUA
    + """
-- KEYS: bucket keys; ARGV: rate, burst, cost for each key in turn.
local levels = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[3 * i - 2])
  local cost = tonumber(ARGV[3 * i])
  levels[i] = level(key, rate, tonumber(ARGV[3 * i - 1]))
  if levels[i] < cost then
    wait = math.max(wait, (cost - levels[i]) / rate)
  end
end
if wait > 0 then
  return {0, string.format('%.17g', wait)}
end
for i, key in ipairs(KEYS) do
  store(key, levels[i] - tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i - 2]),
        tonumber(ARGV[3 * i - 1]))
end
return {1, '0'}
"""
)

_PENALISE_LUA = (
    _TIME_LUA
    + """
-- KEYS[1]: bucket key; ARGV: rate, burst, seconds to keep it empty.
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tokens = math.min(level(KEYS[1], rate, burst), -tonumber(ARGV[3]) * rate)
store(KEYS[1], tokens, rate, burst)
return 1
"""
)


def _number(value: float) -> str:
    return repr(float(value))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisRateLimiter:
    """Buckets in Redis, shared by every instance; each take is one Lua script.

    redis-py's registered scripts run with EVALSHA and load the script again when
    the server answers NOSCRIPT (after a restart or a SCRIPT FLUSH). Needs Redis
    5 or later (scripts replicated by effects, so TIME may precede writes).
    """

    def __init__(self, client: Redis, prefix: str) -> None:
        self._prefix = prefix
        self._acquire = client.register_script(_ACQUIRE_LUA)
        self._penalise = client.register_script(_PENALISE_LUA)

    async def try_acquire(self, key: str, bucket: Bucket, cost: float = 1.0) -> float:
        """Take ``cost`` tokens and return 0.0, or take nothing and return the seconds to wait.

        Raises:
            RateLimiterUnavailableError: Redis failed; nothing is known to be taken.
        """
        return await self.try_acquire_all([(key, bucket, cost)])

    async def try_acquire_all(self, requests: Sequence[Request]) -> float:
        """Take from every bucket or from none; return 0.0 or the longest wait.

        Raises:
            RateLimiterUnavailableError: Redis failed; nothing is known to be taken.
        """
        _check(requests)
        if not requests:
            return 0.0
        keys = [self._prefix + key for key, _, _ in requests]
        args: list[str] = []
        for _, bucket, cost in requests:
            args += [_number(bucket.rate_per_second), _number(bucket.burst), _number(cost)]
        try:
            granted, wait = await self._acquire(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc
        if int(granted):
            return 0.0
        return max(float(_text(wait)), _MIN_WAIT)

    async def penalise(self, key: str, bucket: Bucket, seconds: float) -> None:
        """Empty the bucket so nothing is granted before ``seconds`` (Retry-After) pass.

        Raises:
            RateLimiterUnavailableError: Redis failed; the pause may not be shared.
        """
        if seconds > 0:
            await self._drain(key, bucket, seconds)

    async def empty(self, key: str, bucket: Bucket) -> None:
        """Empty the bucket now: its next token comes one refill interval from now.

        Raises:
            RateLimiterUnavailableError: Redis failed; the bucket may be unchanged.
        """
        await self._drain(key, bucket, 0.0)

    async def _drain(self, key: str, bucket: Bucket, seconds: float) -> None:
        args = [_number(bucket.rate_per_second), _number(bucket.burst), _number(seconds)]
        try:
            await self._penalise(keys=[self._prefix + key], args=args)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc

    @staticmethod
    def _unavailable(exc: BaseException) -> RateLimiterUnavailableError:
        return RateLimiterUnavailableError(
            f"The Redis rate limiter failed ({type(exc).__name__}: {exc}); "
            "pace in memory or hold the work until Redis is back."
        )
