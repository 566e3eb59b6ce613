"""Circuit breaker decisions, registry, retry policy and bulkheads, on an injected clock."""

from __future__ import annotations

import asyncio
from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slack_tools.configs.circuit_breaker import (
    BreakerRegistry,
    BreakerSnapshot,
    BreakerState,
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    RetryPolicy,
)
from slack_tools.configs.schema import BreakerConfig
from slack_tools.errors import SlackToolsError

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def config(**changes: float) -> BreakerConfig:
    """A small breaker configuration with the given fields changed."""
    values: dict[str, float] = {
        "window_seconds": 10.0,
        "failure_rate_threshold": 0.5,
        "minimum_calls": 4,
        "open_seconds": 30.0,
        "half_open_probes": 2,
    }
    values.update(changes)
    return BreakerConfig.model_validate(values)


def play_result(breaker: CircuitBreaker, outcome: str) -> None:
    """Record one result: S success, F failure, I ignored."""
    {"S": breaker.record_success, "F": breaker.record_failure, "I": breaker.record_ignored}[
        outcome
    ]()


def play(breaker: CircuitBreaker, outcomes: str) -> None:
    """Run calls through the breaker, each allowed then recorded (S, F or I)."""
    for outcome in outcomes:
        assert breaker.allow()
        play_result(breaker, outcome)


def open_breaker(clock: FakeClock, **changes: float) -> CircuitBreaker:
    """A breaker that has just opened on four failures."""
    breaker = CircuitBreaker("T1", config(**changes), clock=clock)
    play(breaker, "FFFF")
    assert breaker.state is OPEN
    return breaker


@pytest.mark.parametrize(
    ("outcomes", "minimum_calls", "threshold", "expected"),
    [
        pytest.param("FFF", 4, 0.5, CLOSED, id="below-minimum-calls-never-opens"),
        pytest.param("F" * 9, 10, 0.1, CLOSED, id="all-failures-below-minimum"),
        pytest.param("FFFF", 4, 0.5, OPEN, id="minimum-reached-all-failing"),
        pytest.param("SSFF", 4, 0.5, OPEN, id="rate-equal-to-threshold-opens"),
        pytest.param("SSSFF", 4, 0.5, CLOSED, id="rate-just-below-threshold"),
        pytest.param("FFS", 3, 0.5, OPEN, id="a-success-reaching-minimum-calls-opens"),
        pytest.param("SSSSF", 4, 0.2, OPEN, id="low-threshold-boundary"),
        pytest.param("FFFS", 4, 1.0, CLOSED, id="threshold-one-needs-every-call-failing"),
        pytest.param("FFFF", 4, 1.0, OPEN, id="threshold-one-all-failing"),
        pytest.param("S" * 20, 4, 0.01, CLOSED, id="successes-alone-never-open"),
        pytest.param("IIIIIIFFF", 4, 0.5, CLOSED, id="ignored-calls-do-not-count"),
        pytest.param("IIIFIIIFFIF", 4, 0.5, OPEN, id="ignored-calls-between-failures"),
    ],
)
def test_closed_breaker_opens_on_failure_rate_over_minimum_calls(
    outcomes: str, minimum_calls: int, threshold: float, expected: BreakerState
) -> None:
    """It opens only with minimum_calls counted and a failure rate at or over the threshold."""
    breaker = CircuitBreaker(
        "T1",
        config(minimum_calls=minimum_calls, failure_rate_threshold=threshold),
        clock=FakeClock(),
    )
    play(breaker, outcomes)
    assert breaker.state is expected


@pytest.mark.parametrize(
    ("advance", "expected"),
    [
        pytest.param(0.0, OPEN, id="same-second"),
        pytest.param(9.0, OPEN, id="old-bucket-still-inside-window"),
        pytest.param(9.4, OPEN, id="last-moment-of-old-bucket"),
        pytest.param(9.6, CLOSED, id="old-bucket-slid-out"),
        pytest.param(60.0, CLOSED, id="long-after"),
    ],
)
def test_window_slides_old_failures_out(advance: float, expected: BreakerState) -> None:
    """Failures older than the window's 1-second buckets no longer count toward opening."""
    clock = FakeClock(100.5)
    breaker = CircuitBreaker("T1", config(window_seconds=10.0), clock=clock)
    play(breaker, "FFF")
    clock.advance(advance)
    play(breaker, "F")
    assert breaker.state is expected


def test_a_success_counts_only_what_a_shrunk_window_still_holds() -> None:
    """A window made shorter leaves out the older buckets for every later result, a
    success included, even when the clock read earlier meanwhile (an injected one)."""
    clock = FakeClock(100.5)
    breaker = CircuitBreaker(
        "T1", config(window_seconds=10.0, minimum_calls=3, failure_rate_threshold=0.3), clock=clock
    )
    play(breaker, "F")
    clock.now = 105.5
    play(breaker, "S")
    clock.now = 50.0
    breaker.configure(config(window_seconds=2.0, minimum_calls=3, failure_rate_threshold=0.3))
    clock.now = 105.6
    play(breaker, "S")
    assert breaker.state is CLOSED
    assert breaker.snapshot().failures == 0


def test_failure_rate_follows_the_window() -> None:
    """failure_rate() covers only the calls still in the window, and is 0.0 when empty."""
    clock = FakeClock(0.0)
    breaker = CircuitBreaker("T1", config(minimum_calls=100), clock=clock)
    assert breaker.failure_rate() == 0.0
    play(breaker, "FF")
    clock.advance(5)
    play(breaker, "SS")
    assert breaker.failure_rate() == 0.5
    clock.advance(5)
    assert breaker.failure_rate() == 0.0
    assert breaker.snapshot().calls == 2


def test_open_breaker_refuses_until_open_seconds_passed_then_probes() -> None:
    """An open breaker refuses until retry_at(), then turns half-open and lets a probe through."""
    clock = FakeClock()
    opened_at = clock.now
    breaker = open_breaker(clock, open_seconds=30.0)
    assert breaker.retry_at() == opened_at + 30.0
    clock.advance(29.999)
    assert not breaker.allow()
    assert breaker.state is OPEN
    clock.advance(0.001)
    assert breaker.allow()
    assert breaker.state is HALF_OPEN
    assert breaker.retry_at() is None


@pytest.mark.parametrize("probes", [1, 2, 5])
def test_half_open_lets_exactly_the_probe_count_through(probes: int) -> None:
    """While half-open, concurrent callers beyond half_open_probes are refused."""
    clock = FakeClock()
    breaker = open_breaker(clock, half_open_probes=probes)
    clock.advance(30)
    granted = [breaker.allow() for _ in range(probes + 3)]
    assert granted == [True] * probes + [False] * 3


def test_ignored_probe_frees_its_slot() -> None:
    """A probe recorded as ignored (a 429) gives its slot to another caller."""
    clock = FakeClock()
    breaker = open_breaker(clock, half_open_probes=2)
    clock.advance(30)
    assert breaker.allow()
    assert breaker.allow()
    assert not breaker.allow()
    breaker.record_ignored()
    assert breaker.state is HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()


@pytest.mark.parametrize(
    ("probe_results", "expected"),
    [
        pytest.param("SS", CLOSED, id="all-probes-succeed-closes"),
        pytest.param("S", HALF_OPEN, id="one-success-is-not-enough"),
        pytest.param("F", OPEN, id="first-probe-fails"),
        pytest.param("SF", OPEN, id="last-probe-fails"),
        pytest.param("ISS", CLOSED, id="ignored-probe-replaced"),
    ],
)
def test_probe_results_decide_the_half_open_state(
    probe_results: str, expected: BreakerState
) -> None:
    """All probes succeeding closes the breaker; any probe failing re-opens it."""
    clock = FakeClock()
    breaker = open_breaker(clock, half_open_probes=2)
    clock.advance(30)
    play(breaker, probe_results)
    assert breaker.state is expected


def test_failed_probe_reopens_for_a_full_open_period() -> None:
    """A failed probe re-opens the breaker and restarts the open period from now."""
    clock = FakeClock()
    breaker = open_breaker(clock)
    clock.advance(30)
    play(breaker, "F")
    assert breaker.retry_at() == clock.now + 30
    assert not breaker.allow()


def test_closing_clears_the_window() -> None:
    """A breaker closed by its probes starts with an empty window: one failure cannot re-open it."""
    clock = FakeClock()
    breaker = open_breaker(clock, window_seconds=60)
    clock.advance(30)
    play(breaker, "SS")
    assert breaker.state is CLOSED
    assert breaker.failure_rate() == 0.0
    play(breaker, "F")
    assert breaker.state is CLOSED


def test_listener_hears_every_transition() -> None:
    """The listener gets (name, old, new) for each transition of a full cycle."""
    clock = FakeClock()
    heard: list[tuple[str, BreakerState, BreakerState]] = []
    breaker = CircuitBreaker(
        "T1", config(), clock=clock, on_transition=lambda *event: heard.append(event)
    )
    play(breaker, "FFFF")
    clock.advance(30)
    play(breaker, "F")
    clock.advance(30)
    play(breaker, "SS")
    assert heard == [
        ("T1", CLOSED, OPEN),
        ("T1", OPEN, HALF_OPEN),
        ("T1", HALF_OPEN, OPEN),
        ("T1", OPEN, HALF_OPEN),
        ("T1", HALF_OPEN, CLOSED),
    ]


def test_snapshot_is_frozen_and_reports_the_window() -> None:
    """snapshot() freezes name, state, counts, rate and retry time for health and metrics."""
    clock = FakeClock()
    breaker = open_breaker(clock)
    snapshot = breaker.snapshot()
    assert snapshot == BreakerSnapshot(
        name="T1",
        state=OPEN,
        calls=4,
        failures=4,
        failure_rate=1.0,
        retry_at=clock.now + 30,
    )
    with pytest.raises(FrozenInstanceError):
        snapshot.state = CLOSED  # type: ignore[misc]


def test_registry_gives_one_breaker_per_name() -> None:
    """The registry creates a breaker per workspace on first use and returns the same one after."""
    registry = BreakerRegistry(config(), clock=FakeClock())
    first = registry.get("T1")
    assert registry.get("T1") is first
    assert registry.get("T2") is not first
    assert set(registry.states()) == {"T1", "T2"}


def test_registry_reconfigure_keeps_state_and_applies_new_limits() -> None:
    """A hot reload keeps open breakers open and their windows, but uses the new settings."""
    clock = FakeClock()
    heard: list[tuple[str, BreakerState, BreakerState]] = []
    registry = BreakerRegistry(
        config(open_seconds=60), clock=clock, on_transition=lambda *event: heard.append(event)
    )
    play(registry.get("T1"), "FFFF")
    play(registry.get("T2"), "FF")
    registry.configure(config(open_seconds=5, minimum_calls=3))
    states = registry.states()
    assert states["T1"].state is OPEN
    assert states["T2"].calls == 2
    assert registry.config.open_seconds == 5
    clock.advance(5)
    assert registry.get("T1").allow()
    play(registry.get("T2"), "F")
    assert registry.get("T2").state is OPEN
    assert registry.get("T3").config.minimum_calls == 3
    assert ("T2", CLOSED, OPEN) in heard


class Observer:
    """Drives a breaker as callers would and checks its promises after every step."""

    def __init__(self, breaker_config: BreakerConfig) -> None:
        self.clock = FakeClock(0.0)
        self.probes = breaker_config.half_open_probes
        self.granted = self.ignored = self.pending = 0
        self.breaker = CircuitBreaker(
            "T1", breaker_config, clock=self.clock, on_transition=self.on_transition
        )

    def on_transition(self, _name: str, _old: BreakerState, new: BreakerState) -> None:
        if new is HALF_OPEN:
            self.granted = self.ignored = 0

    def allow(self) -> bool:
        retry_at = self.breaker.retry_at()
        granted = self.breaker.allow()
        assert not (granted and retry_at is not None and self.clock.now < retry_at)
        if granted and self.breaker.state is HALF_OPEN:
            self.granted += 1
        return granted

    def record(self, outcome: str) -> None:
        if outcome == "I" and self.breaker.state is HALF_OPEN:
            self.ignored += 1
        play_result(self.breaker, outcome)

    def step(self, kind: str, seconds: float, outcome: str) -> None:
        if kind == "advance":
            self.clock.advance(seconds)
        elif kind == "call" and self.allow():
            self.record(outcome)
        elif kind == "start" and self.allow():
            self.pending += 1
        elif kind == "finish" and self.pending:
            self.pending -= 1
            self.record(outcome)

    def check(self) -> None:
        if self.breaker.state is HALF_OPEN:
            assert self.granted <= self.probes + self.ignored
        assert 0.0 <= self.breaker.failure_rate() <= 1.0


@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["advance", "call", "start", "finish"]),
            st.floats(0.0, 40.0),
            st.sampled_from("SFI"),
        ),
        max_size=80,
    ),
    probes=st.integers(1, 4),
    minimum_calls=st.integers(1, 6),
    threshold=st.sampled_from([0.2, 0.5, 1.0]),
    window=st.floats(1.0, 20.0),
    open_seconds=st.floats(1.0, 30.0),
)
@settings(max_examples=300, deadline=None)
def test_half_open_never_lets_more_than_the_probes_through(
    steps: list[tuple[str, float, str]],
    probes: int,
    minimum_calls: int,
    threshold: float,
    window: float,
    open_seconds: float,
) -> None:
    """Any calls and clock moves keep half-open grants within the probes and the rate in [0, 1]."""
    observer = Observer(
        config(
            half_open_probes=probes,
            minimum_calls=minimum_calls,
            failure_rate_threshold=threshold,
            window_seconds=window,
            open_seconds=open_seconds,
        )
    )
    for step in steps:
        observer.step(*step)
        observer.check()


@pytest.mark.parametrize(
    ("attempt", "upper_bound"),
    [(1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0), (6, 60.0), (50, 60.0), (100_000, 60.0)],
)
def test_retry_delay_bounds_follow_full_jitter(attempt: int, upper_bound: float) -> None:
    """random() = 0 gives no wait and random() = 1 gives min(max, base·2^(attempt-1))."""
    low = RetryPolicy(2.0, 60.0, 10, random=lambda: 0.0)
    high = RetryPolicy(2.0, 60.0, 10, random=lambda: 1.0)
    assert low.delay(attempt) == 0.0
    assert high.delay(attempt) == upper_bound


def test_retry_delay_scales_the_random_draw() -> None:
    """The delay is the random draw times the cap, so draws spread retries uniformly."""
    policy = RetryPolicy(1.0, 300.0, 8, random=lambda: 0.25)
    assert policy.delay(4) == 2.0


@pytest.mark.parametrize(("attempt", "expected"), [(1, True), (2, True), (3, False), (4, False)])
def test_should_retry_stops_at_max_attempts(attempt: int, expected: bool) -> None:
    """Retries continue until the attempt that failed is the last allowed one."""
    assert RetryPolicy(1.0, 10.0, 3).should_retry(attempt) is expected


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        pytest.param(None, 4.0, id="no-retry-after-uses-backoff"),
        pytest.param(30.0, 30.0, id="longer-retry-after-wins"),
        pytest.param(1.5, 4.0, id="shorter-retry-after-keeps-backoff"),
        pytest.param(0.0, 4.0, id="zero-retry-after"),
    ],
)
def test_next_delay_is_never_earlier_than_retry_after(
    retry_after: float | None, expected: float
) -> None:
    """next_delay honours a server's Retry-After and never schedules before it."""
    policy = RetryPolicy(2.0, 60.0, 10, random=lambda: 1.0)
    assert policy.next_delay(2, retry_after) == expected


def test_retry_after_wins_even_with_zero_jitter() -> None:
    """With a zero jitter draw the wait is exactly the Retry-After."""
    policy = RetryPolicy(2.0, 60.0, 10, random=lambda: 0.0)
    assert policy.next_delay(7, 12.0) == 12.0


@pytest.mark.parametrize(
    ("base", "maximum", "attempts"),
    [(0.0, 10.0, 3), (-1.0, 10.0, 3), (5.0, 1.0, 3), (1.0, 10.0, 0)],
)
def test_retry_policy_refuses_nonsense_settings(base: float, maximum: float, attempts: int) -> None:
    """A non-positive base, a max below the base, or no attempts is refused with ValueError."""
    with pytest.raises(ValueError, match="must be"):
        RetryPolicy(base, maximum, attempts)


def test_retry_delay_refuses_attempt_zero() -> None:
    """Attempts are numbered from 1."""
    with pytest.raises(ValueError, match="numbered from 1"):
        RetryPolicy(1.0, 10.0, 3).delay(0)


async def test_bulkhead_limits_concurrency_and_queues_then_rejects() -> None:
    """Beyond the limit callers queue; beyond the queue they get BulkheadFullError."""
    bulkhead = Bulkhead(2, 1, name="tenant-a")
    gate = asyncio.Event()

    async def hold() -> None:
        async with bulkhead:
            await gate.wait()

    running = [asyncio.create_task(hold()) for _ in range(3)]
    await asyncio.sleep(0)
    assert (bulkhead.active, bulkhead.waiting) == (2, 1)
    assert not bulkhead.try_acquire()
    with pytest.raises(BulkheadFullError, match="tenant-a") as caught:
        await bulkhead.acquire()
    assert isinstance(caught.value, SlackToolsError)
    gate.set()
    await asyncio.gather(*running)
    assert (bulkhead.active, bulkhead.waiting) == (0, 0)


async def test_bulkhead_never_exceeds_its_limit() -> None:
    """Many tasks through a bulkhead never run more than its limit at once."""
    bulkhead = Bulkhead(3, 100)
    inside = 0
    peak = 0

    async def work() -> None:
        nonlocal inside, peak
        async with bulkhead:
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(work() for _ in range(50)))
    assert peak == 3
    assert bulkhead.active == 0


async def test_bulkhead_serves_waiters_first_in_first_out() -> None:
    """Released slots go to queued callers in arrival order, ahead of try_acquire."""
    bulkhead = Bulkhead(1, 5)
    assert bulkhead.try_acquire()
    order: list[int] = []

    async def wait_turn(number: int) -> None:
        await bulkhead.acquire()
        order.append(number)
        bulkhead.release()

    tasks = [asyncio.create_task(wait_turn(n)) for n in range(4)]
    await asyncio.sleep(0)
    bulkhead.release()
    assert not bulkhead.try_acquire()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3]


async def test_cancelled_waiter_leaves_the_queue_and_loses_no_slot() -> None:
    """A waiter cancelled in the queue frees its place, and the slot count stays right."""
    bulkhead = Bulkhead(1, 2)
    assert bulkhead.try_acquire()
    waiter = asyncio.create_task(bulkhead.acquire())
    await asyncio.sleep(0)
    assert bulkhead.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert bulkhead.waiting == 0
    bulkhead.release()
    assert bulkhead.active == 0
    assert bulkhead.try_acquire()


async def test_waiter_cancelled_after_handover_passes_the_slot_on() -> None:
    """A slot handed to a waiter that is cancelled before it runs goes to the next waiter."""
    bulkhead = Bulkhead(1, 2)
    assert bulkhead.try_acquire()
    first = asyncio.create_task(bulkhead.acquire())
    second = asyncio.create_task(bulkhead.acquire())
    await asyncio.sleep(0)
    bulkhead.release()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    assert (bulkhead.active, bulkhead.waiting) == (1, 0)


@pytest.mark.parametrize(("limit", "queue_limit"), [(0, 1), (1, -1)])
def test_bulkhead_refuses_nonsense_sizes(limit: int, queue_limit: int) -> None:
    """A bulkhead needs at least one slot and a non-negative queue."""
    with pytest.raises(ValueError, match="must be"):
        Bulkhead(limit, queue_limit)


def test_bulkhead_release_without_acquire_is_an_error() -> None:
    """Releasing more often than acquiring is a programming error, not a silent miscount."""
    with pytest.raises(RuntimeError, match="released more often"):
        Bulkhead(1, 0).release()


async def test_a_cancelled_cache_read_gives_its_half_open_probe_back() -> None:
    """A Redis read cancelled while it waited is neither a success nor a failure: the
    probe it held is freed, or the breaker would stay half-open with no probe left."""
    from redis.asyncio import Redis  # noqa: PLC0415 - only here

    from slack_tools.configs.cache_manager.redis_tier import L2Unavailable, RedisTier  # noqa: PLC0415

    clock = FakeClock()
    breaker = open_breaker(clock, half_open_probes=1)
    clock.advance(30.0)
    tier = RedisTier(Redis(), "t:", breaker)  # never connects: nothing is awaited on it
    assert breaker.allow()  # the one probe, taken by the read below
    with pytest.raises(asyncio.CancelledError), tier.reporting("get"):
        raise asyncio.CancelledError
    assert breaker.state is HALF_OPEN
    assert breaker.allow()  # the probe is free again
    breaker.record_ignored()

    with pytest.raises(L2Unavailable), tier.reporting("get"):
        raise ConnectionError("refused")  # a failed probe opens it again
    assert breaker.state is OPEN
