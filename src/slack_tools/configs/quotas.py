"""Tenant quotas: how much a tenant used of a resource in the current calendar window.

A quota is named ``<resource>_per_<unit>`` (``alerts_per_minute``,
``messages_per_hour``, ``admin_calls_per_minute``) with a limit; its window is
aligned on the clock (from 14:03:00 to 14:04:00, not "60 s from the first
alert"), so every instance agrees on which window a use falls in, a summary can
say "held back between 14:03 and 14:04", and daily usage lines up with days.

Counting is one script call in Redis when configured (``INCRBY`` of the window's
key, which is given an expiry when it is created: atomic, shared by every
instance, one round trip) or a dict in memory. When Redis fails,
:class:`FailoverQuotaCounter` counts in memory (a warning is logged and
``on_fallback`` called, which the service counts in a metric) and tries Redis
again after ``retry_seconds``. Counts made in memory during an outage are this
instance's only: a quota may then let through up to one limit per instance,
which is the price of never refusing for a Redis outage.

Taking always counts, also beyond the limit: ``used`` is what the tenant asked
for, and :attr:`QuotaUse.allowed` says whether this take fits. Quotas never
refuse an alert; what to do with a take that does not fit (hold it, summarise
it later) is the caller's decision.

Why not the ``limits`` library: its fixed windows start at the first hit of each
key (so instances and days disagree on boundaries) and its memory storage reads
the wall clock, which the window roll-over tests need to inject. What is left to
write is one Redis script and a dict.

Keys are ``<redis.key_prefix>quota:<tenant>:<quota>:<window>``; a strictly
isolated tenant's are under a prefix of its own, ``<redis.key_prefix>tenant:<id>:``
(:func:`tenant_key_prefix`), so an operator can give it a Redis ACL key pattern
(``~slack-tools:tenant:acme:*``) of its own.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from slack_tools.errors import SlackToolsError

log = structlog.get_logger(__name__)

Clock = Callable[[], float]
UNITS: Mapping[str, int] = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_NAME = re.compile(r"^[a-z][a-z0-9_]*_per_(second|minute|hour|day)$")


class QuotaBackendUnavailableError(SlackToolsError):
    """Redis did not answer a quota count."""


@dataclass(frozen=True, slots=True)
class Quota:
    """A limit on a resource per calendar window of ``period_seconds``."""

    name: str
    limit: int
    period_seconds: int

    @classmethod
    def named(cls, name: str, limit: int) -> Quota:
        """``Quota.named("alerts_per_minute", 600)``: the period comes from the name."""
        found = _NAME.fullmatch(name)
        if found is None:
            raise ValueError(
                f"quota {name!r}: name it <resource>_per_<second|minute|hour|day>, "
                "such as alerts_per_minute"
            )
        if limit < 1:
            raise ValueError(f"quota {name!r}: the limit must be at least 1, got {limit}")
        return cls(name, limit, UNITS[found.group(1)])

    def window(self, now: float) -> int:
        """The index of the window ``now`` (seconds since the epoch) falls in."""
        return math.floor(now / self.period_seconds)


# The resources the service counts: alerts where they arrive, messages where they are sent.
ALERTS = "alerts"
MESSAGES = "messages"


def resource_quotas(limits: Mapping[str, int], resource: str) -> tuple[Quota, ...]:
    """The quotas on ``resource`` among a tenant's ``quotas`` (``alerts_per_minute``…)."""
    return _resource_quotas(tuple(limits.items()), resource)


@functools.lru_cache(maxsize=1024)
def _resource_quotas(limits: tuple[tuple[str, int], ...], resource: str) -> tuple[Quota, ...]:
    # Asked on every request and send; the answer depends only on a few settings.
    found = []
    for name, limit in limits:
        if name.partition("_per_")[0] != resource:
            continue
        try:
            found.append(Quota.named(name, limit))
        except ValueError:  # a name without a period the schema let through: nothing to count
            continue
    return tuple(found)


@dataclass(frozen=True, slots=True)
class QuotaUse:
    """What a take found: the count of its window after it, and when that window ends."""

    quota: Quota
    used: int
    amount: int
    window_start: float
    window_end: float
    at: float

    @property
    def allowed(self) -> bool:
        """The take fits: the window's count, this take included, is within the limit."""
        return self.used <= self.quota.limit

    @property
    def over_by(self) -> int:
        """How much of this take is beyond the limit (0 when it fits)."""
        return max(0, min(self.amount, self.used - self.quota.limit))

    @property
    def remaining(self) -> int:
        return max(0, self.quota.limit - self.used)

    @property
    def retry_after(self) -> float:
        """Seconds from the take until the window reopens."""
        return max(0.0, self.window_end - self.at)


def _use(quota: Quota, now: float, used: int, amount: int) -> QuotaUse:
    start = quota.window(now) * quota.period_seconds
    return QuotaUse(quota, used, amount, start, start + quota.period_seconds, now)


class QuotaCounter(Protocol):
    async def take(self, tenant_id: str, quota: Quota, amount: int = 1) -> QuotaUse:
        """Count ``amount`` uses in the current window and say whether they fit."""
        ...

    async def peek(self, tenant_id: str, quota: Quota) -> QuotaUse:
        """The current window's count, without counting anything."""
        ...


class MemoryQuotaCounter:
    """Counts in this process (one instance, or Redis down); one entry per tenant and quota."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._counts: dict[tuple[str, str], tuple[int, int]] = {}  # → (window, count)

    async def take(self, tenant_id: str, quota: Quota, amount: int = 1) -> QuotaUse:
        return self.take_now(tenant_id, quota, amount)

    async def peek(self, tenant_id: str, quota: Quota) -> QuotaUse:
        return self.take_now(tenant_id, quota, 0)

    def take_now(self, tenant_id: str, quota: Quota, amount: int = 1) -> QuotaUse:
        """:meth:`take` for synchronous callers; never waits."""
        now = self._clock()
        window = quota.window(now)
        key = (tenant_id, quota.name)
        counted_window, count = self._counts.get(key, (window, 0))
        used = (count if counted_window == window else 0) + amount
        if amount:
            self._counts[key] = (window, used)
        return _use(quota, now, used, amount)


# A window's key expires one period after its window ends, for a clock a little behind.
_TAKE = """
local used = redis.call('INCRBY', KEYS[1], ARGV[1])
if used == tonumber(ARGV[1]) then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return used
"""


def tenant_key_prefix(key_prefix: str, tenant_id: str) -> str:
    """The prefix of a strictly isolated tenant's own Redis keys: ``<prefix>tenant:<id>:``."""
    return f"{key_prefix}tenant:{tenant_id}:"


class RedisQuotaCounter:
    """Counts in Redis, shared by every instance: one script call per take.

    ``strict`` says whether a tenant is strictly isolated (its keys then live under
    :func:`tenant_key_prefix`); without it every tenant's keys are under ``prefix``.
    It is asked on every take, so it must answer from memory (the service gives
    ``runtime.databases.is_known_strict``).
    """

    def __init__(
        self,
        client: Redis,
        prefix: str,
        clock: Clock = time.time,
        *,
        strict: Callable[[str], bool] | None = None,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._clock = clock
        self._strict = strict
        self._take = client.register_script(_TAKE)

    def key(self, tenant_id: str, quota: Quota, window: int) -> str:
        """The Redis key counting ``tenant_id``'s uses of ``quota`` in ``window``."""
        if self._strict is not None and self._strict(tenant_id):
            return f"{tenant_key_prefix(self._prefix, tenant_id)}quota:{quota.name}:{window}"
        return f"{self._prefix}quota:{tenant_id}:{quota.name}:{window}"

    async def take(self, tenant_id: str, quota: Quota, amount: int = 1) -> QuotaUse:
        now = self._clock()
        key = self.key(tenant_id, quota, quota.window(now))
        try:
            if amount == 0:
                used = int(await self._client.get(key) or 0)
            else:
                used = int(await self._take(keys=[key], args=[amount, 2 * quota.period_seconds]))
        except (RedisError, OSError) as exc:
            raise QuotaBackendUnavailableError(
                f"Redis did not count quota {quota.name}: {type(exc).__name__}"
            ) from exc
        return _use(quota, now, used, amount)

    async def peek(self, tenant_id: str, quota: Quota) -> QuotaUse:
        return await self.take(tenant_id, quota, 0)


class FailoverQuotaCounter:
    """Redis while it answers; this process's memory while it does not.

    ``on_fallback`` is called for each count made in memory because Redis failed.
    """

    def __init__(
        self,
        primary: RedisQuotaCounter,
        *,
        fallback: MemoryQuotaCounter | None = None,
        retry_seconds: float = 5.0,
        on_fallback: Callable[[], None] = lambda: None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._primary = primary
        self._fallback = fallback or MemoryQuotaCounter()
        self._retry_seconds = retry_seconds
        self._on_fallback = on_fallback
        self._clock = clock
        self._down_until: float | None = None

    @property
    def degraded(self) -> bool:
        """Counting in memory because Redis failed."""
        return self._down_until is not None

    async def take(self, tenant_id: str, quota: Quota, amount: int = 1) -> QuotaUse:
        if self._down_until is None or self._clock() >= self._down_until:
            try:
                use = await self._primary.take(tenant_id, quota, amount)
            except QuotaBackendUnavailableError as exc:
                if self._down_until is None:
                    log.warning("quota.redis_unavailable", error=str(exc), counting="memory")
                self._down_until = self._clock() + self._retry_seconds
            else:
                if self._down_until is not None:
                    log.info("quota.redis_recovered")
                    self._down_until = None
                return use
        self._on_fallback()
        return await self._fallback.take(tenant_id, quota, amount)

    async def peek(self, tenant_id: str, quota: Quota) -> QuotaUse:
        return await self.take(tenant_id, quota, 0)
