"""Circuit breakers per Slack workspace, a retry policy, and bulkheads.

Written here rather than taken from a library: no Python breaker fits asyncio
with a failure-rate window (pybreaker has no asyncio, aiobreaker blocks the loop
on Redis, purgatory and hyx count consecutive failures only; see RESEARCH.md
"Resilience"). The breaker is shaped like Resilience4j's: a time-based sliding
window of 1-second buckets, a failure-rate threshold with a minimum number of
calls, N half-open probes, and calls that are ignored (a 429, a permanent client
error). State stays local to each instance, as Resilience4j advises.

Nothing here sleeps: the breaker says when to come back (:meth:`retry_at`) and
the retry policy says how long to wait; callers reschedule work in the outbox.
Everything runs on one event loop, so there are no locks: none of these
objects is thread-safe, and none needs to be.
"""

from __future__ import annotations

import asyncio
import math
import random as _random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType

from slack_tools.configs.schema import BreakerConfig
from slack_tools.errors import SlackToolsError

Clock = Callable[[], float]


class BreakerState(StrEnum):
    """Where a breaker stands: calls flow, calls are refused, or a few probe."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


TransitionListener = Callable[[str, BreakerState, BreakerState], None]
"""Called with (breaker name, old state, new state) on every transition."""


@dataclass(frozen=True)
class BreakerSnapshot:
    """A breaker's state and window figures at one moment, for health and metrics."""

    name: str
    state: BreakerState
    calls: int
    failures: int
    failure_rate: float
    retry_at: float | None


@dataclass
class _Bucket:
    second: int
    calls: int = 0
    failures: int = 0


def _window_buckets(config: BreakerConfig) -> int:
    """How many 1-second buckets the sliding window holds."""
    return max(1, math.ceil(config.window_seconds))


class CircuitBreaker:
    """A failure-rate circuit breaker over a time-based sliding window.

    Every call that ``allow()`` let through must be followed by exactly one of
    ``record_success()``, ``record_failure()`` or ``record_ignored()``. As in
    Resilience4j, a result counts in the state the breaker is in when it is
    recorded.
    """

    def __init__(
        self,
        name: str,
        config: BreakerConfig,
        *,
        clock: Clock = time.monotonic,
        on_transition: TransitionListener | None = None,
    ) -> None:
        self.name = name
        self._config = config
        self._window_buckets = _window_buckets(config)
        self._clock = clock
        self._on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._buckets: deque[_Bucket] = deque()
        self._calls = 0
        self._failures = 0
        self._opened_at = 0.0
        self._probes_granted = 0
        self._probe_successes = 0

    @property
    def config(self) -> BreakerConfig:
        return self._config

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker turns half-open on the next ``allow()``."""
        return self._state

    def configure(self, config: BreakerConfig) -> None:
        """Apply new thresholds, keeping the state and the recorded calls."""
        self._config = config
        self._window_buckets = _window_buckets(config)
        self._evict(self._clock())

    def allow(self) -> bool:
        """Say whether a call may go now; while half-open this reserves a probe slot."""
        now = self._clock()
        if self._state is BreakerState.OPEN:
            if now < self._opened_at + self._config.open_seconds:
                return False
            self._transition(BreakerState.HALF_OPEN)
        if self._state is BreakerState.HALF_OPEN:
            if self._probes_granted >= self._config.half_open_probes:
                return False
            self._probes_granted += 1
        return True

    def record_success(self) -> None:
        """Count a successful call; enough successful probes close the breaker."""
        buckets = self._buckets
        if self._state is BreakerState.CLOSED and buckets:
            # The common case, on every cache read from Redis: closed, in the second last
            # counted, and nothing old enough to leave the window (what _record would do).
            bucket = buckets[-1]
            second = math.floor(self._clock())
            if bucket.second == second and buckets[0].second > second - self._window_buckets:
                bucket.calls += 1
                self._calls += 1
                if self._failures:
                    self._check_threshold()
                return
        self._record(failed=False)
        if self._state is BreakerState.HALF_OPEN:
            self._probe_successes += 1
            if self._probe_successes >= self._config.half_open_probes:
                self._close()
        elif self._state is BreakerState.CLOSED:
            self._check_threshold()

    def record_failure(self) -> None:
        """Count a failed call; a failed probe re-opens the breaker at once."""
        self._record(failed=True)
        if self._state is BreakerState.HALF_OPEN:
            self._open()
        elif self._state is BreakerState.CLOSED:
            self._check_threshold()

    def record_ignored(self) -> None:
        """Forget a call that must not count (a 429, a permanent error); frees its probe slot."""
        if self._state is BreakerState.HALF_OPEN and self._probes_granted > self._probe_successes:
            self._probes_granted -= 1

    def retry_at(self) -> float | None:
        """Clock time at which an open breaker lets a probe through; None unless open."""
        if self._state is BreakerState.OPEN:
            return self._opened_at + self._config.open_seconds
        return None

    def failure_rate(self) -> float:
        """Share of failed calls among those in the window (0.0 when there are none)."""
        self._evict(self._clock())
        return self._failures / self._calls if self._calls else 0.0

    def snapshot(self) -> BreakerSnapshot:
        """Freeze the state and window figures for health and metrics."""
        rate = self.failure_rate()
        return BreakerSnapshot(
            name=self.name,
            state=self._state,
            calls=self._calls,
            failures=self._failures,
            failure_rate=rate,
            retry_at=self.retry_at(),
        )

    def _record(self, *, failed: bool) -> None:
        now = self._clock()
        self._evict(now)
        second = math.floor(now)
        if not self._buckets or self._buckets[-1].second != second:
            self._buckets.append(_Bucket(second))
        bucket = self._buckets[-1]
        bucket.calls += 1
        self._calls += 1
        if failed:
            bucket.failures += 1
            self._failures += 1

    def _evict(self, now: float) -> None:
        oldest = math.floor(now) - self._window_buckets + 1
        while self._buckets and self._buckets[0].second < oldest:
            gone = self._buckets.popleft()
            self._calls -= gone.calls
            self._failures -= gone.failures

    def _check_threshold(self) -> None:
        if (
            self._failures
            and self._calls >= self._config.minimum_calls
            and self._failures / self._calls >= self._config.failure_rate_threshold
        ):
            self._open()

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._transition(BreakerState.OPEN)

    def _close(self) -> None:
        self._buckets.clear()
        self._calls = self._failures = 0
        self._transition(BreakerState.CLOSED)

    def _transition(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        self._probes_granted = self._probe_successes = 0
        if self._on_transition is not None:
            self._on_transition(self.name, old, new)


class BreakerRegistry:
    """One breaker per name (a Slack workspace), created on first use."""

    def __init__(
        self,
        config: BreakerConfig,
        *,
        clock: Clock = time.monotonic,
        on_transition: TransitionListener | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._on_transition = on_transition
        self._breakers: dict[str, CircuitBreaker] = {}

    @property
    def config(self) -> BreakerConfig:
        return self._config

    def get(self, name: str) -> CircuitBreaker:
        """The breaker for ``name``, closed when first asked for."""
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(
                name, self._config, clock=self._clock, on_transition=self._on_transition
            )
            self._breakers[name] = breaker
        return breaker

    def configure(self, config: BreakerConfig) -> None:
        """Apply a reloaded configuration to every breaker without resetting any."""
        self._config = config
        for breaker in self._breakers.values():
            breaker.configure(config)

    def states(self) -> dict[str, BreakerSnapshot]:
        """A snapshot of every breaker, by name."""
        return {name: breaker.snapshot() for name, breaker in self._breakers.items()}


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped in delay and in attempts.

    Attempts are numbered from 1; ``delay(n)`` is the wait after attempt ``n``
    failed. Full jitter (uniform in [0, cap]) spreads retries of many senders.
    """

    base_seconds: float
    max_seconds: float
    max_attempts: int
    random: Callable[[], float] = field(default=_random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.base_seconds > 0:
            raise ValueError(f"base_seconds must be > 0, got {self.base_seconds!r}")
        if not self.max_seconds >= self.base_seconds:
            raise ValueError(
                f"max_seconds ({self.max_seconds!r}) must be >= base_seconds "
                f"({self.base_seconds!r})"
            )
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts!r}")

    def should_retry(self, attempt: int) -> bool:
        """Say whether another attempt may follow failed attempt number ``attempt``."""
        return attempt < self.max_attempts

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt``: uniform in [0, min(max, base·2ⁿ⁻¹)]."""
        if attempt < 1:
            raise ValueError(f"attempts are numbered from 1, got {attempt!r}")
        # The exponent is bounded so a huge attempt number cannot overflow a float.
        cap = min(self.max_seconds, self.base_seconds * 2.0 ** min(attempt - 1, 1000))
        return self.random() * cap

    def next_delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The backoff delay, but never earlier than a server's ``Retry-After``."""
        backoff = self.delay(attempt)
        if retry_after is None:
            return backoff
        return max(backoff, retry_after)


class BulkheadFullError(SlackToolsError):
    """A bulkhead's slots and waiting queue are all taken; re-queue the work."""

    def __init__(self, name: str, limit: int, queue_limit: int) -> None:
        super().__init__(
            f"Bulkhead {name!r} is full: {limit} calls running and {queue_limit} waiting; "
            "re-queue the work and try again later."
        )
        self.name = name
        self.limit = limit
        self.queue_limit = queue_limit


class Bulkhead:
    """At most ``limit`` concurrent calls, at most ``queue_limit`` waiting (FIFO) for a slot."""

    def __init__(self, limit: int, queue_limit: int, *, name: str = "bulkhead") -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        if queue_limit < 0:
            raise ValueError(f"queue_limit must be >= 0, got {queue_limit!r}")
        self.name = name
        self.limit = limit
        self.queue_limit = queue_limit
        self._active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def active(self) -> int:
        """Calls holding a slot."""
        return self._active

    @property
    def waiting(self) -> int:
        """Calls queued for a slot."""
        return len(self._waiters)

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is queued before us; never waits."""
        if self._active < self.limit and not self._waiters:
            self._active += 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a slot, waiting in the queue if needed.

        Raises:
            BulkheadFullError: every slot is taken and the queue is full.
        """
        if self.try_acquire():
            return
        if len(self._waiters) >= self.queue_limit:
            raise BulkheadFullError(self.name, self.limit, self.queue_limit)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # The slot was handed over just as we were cancelled: pass it on.
                self.release()
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back, handing it to the longest-waiting caller if any."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot changes hands; _active is unchanged
                return
        if self._active == 0:
            raise RuntimeError(f"Bulkhead {self.name!r} released more often than acquired")
        self._active -= 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
