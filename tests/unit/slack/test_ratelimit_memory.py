"""The in-process token buckets, on an injected clock: bursts, refills, waits, penalties."""

from __future__ import annotations

import pytest

from slack_tools.slack.ratelimit import (
    CHANNEL_POSTS,
    WORKSPACE_UPDATES,
    Bucket,
    MemoryRateLimiter,
    RateLimiter,
    channel_posts_key,
    workspace_posts_key,
    workspace_updates_key,
)


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, now: float = 500.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A fresh fake clock."""
    return FakeClock()


@pytest.fixture
def limiter(clock: FakeClock) -> MemoryRateLimiter:
    """A limiter on the fake clock."""
    return MemoryRateLimiter(clock=clock)


async def test_a_full_bucket_grants_its_burst_then_refuses(limiter: MemoryRateLimiter) -> None:
    """A new bucket starts full: burst takes succeed at once, the next one waits one token."""
    bucket = Bucket(rate_per_second=2.0, burst=3.0)
    assert [await limiter.try_acquire("c", bucket) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await limiter.try_acquire("c", bucket) == 0.5


@pytest.mark.parametrize(
    ("taken", "advance", "cost", "expected"),
    [
        pytest.param(2.0, 0.0, 1.0, 1.0, id="empty-one-token"),
        pytest.param(2.0, 0.25, 1.0, 0.75, id="partly-refilled"),
        pytest.param(2.0, 1.0, 1.0, 0.0, id="refilled-exactly"),
        pytest.param(2.0, 0.5, 2.0, 1.5, id="bigger-cost"),
        pytest.param(1.5, 0.0, 1.0, 0.5, id="half-token-left"),
        pytest.param(2.0, 100.0, 2.0, 0.0, id="long-idle"),
    ],
)
async def test_refused_take_returns_the_wait_for_its_tokens(
    limiter: MemoryRateLimiter,
    clock: FakeClock,
    taken: float,
    advance: float,
    cost: float,
    expected: float,
) -> None:
    """The wait returned is exactly the time the bucket needs to refill the missing tokens."""
    bucket = Bucket(rate_per_second=1.0, burst=2.0)
    assert await limiter.try_acquire("c", bucket, taken) == 0.0
    clock.advance(advance)
    assert await limiter.try_acquire("c", bucket, cost) == expected


async def test_refill_never_exceeds_the_burst(limiter: MemoryRateLimiter, clock: FakeClock) -> None:
    """However long a bucket stays idle it holds at most burst tokens."""
    bucket = Bucket(rate_per_second=1.0, burst=2.0)
    await limiter.try_acquire("c", bucket, 2.0)
    clock.advance(3600)
    assert await limiter.try_acquire("c", bucket, 2.0) == 0.0
    assert await limiter.try_acquire("c", bucket) == 1.0


async def test_a_refused_take_takes_nothing(limiter: MemoryRateLimiter, clock: FakeClock) -> None:
    """After waiting the returned time the take succeeds: the refusal consumed no tokens."""
    bucket = Bucket(rate_per_second=1.0, burst=1.0)
    await limiter.try_acquire("c", bucket)
    clock.advance(0.25)
    wait = await limiter.try_acquire("c", bucket)
    assert wait == 0.75
    clock.advance(wait)
    assert await limiter.try_acquire("c", bucket) == 0.0


async def test_keys_have_separate_buckets(limiter: MemoryRateLimiter) -> None:
    """Emptying one channel's bucket does not slow another channel."""
    await limiter.try_acquire("c1", CHANNEL_POSTS)
    assert await limiter.try_acquire("c1", CHANNEL_POSTS) == 1.0
    assert await limiter.try_acquire("c2", CHANNEL_POSTS) == 0.0


async def test_take_all_is_all_or_nothing(limiter: MemoryRateLimiter) -> None:
    """When one bucket is short, no bucket of the request loses tokens."""
    channel = Bucket(rate_per_second=1.0, burst=1.0)
    workspace = Bucket(rate_per_second=1.0, burst=3.0)
    await limiter.try_acquire("ch", channel)
    wait = await limiter.try_acquire_all([("ch", channel, 1.0), ("ws", workspace, 1.0)])
    assert wait == 1.0
    assert await limiter.try_acquire("ws", workspace, 3.0) == 0.0


async def test_take_all_takes_from_every_bucket(limiter: MemoryRateLimiter) -> None:
    """A granted request takes its cost from each of its buckets."""
    channel = Bucket(rate_per_second=1.0, burst=2.0)
    workspace = Bucket(rate_per_second=1.0, burst=2.0)
    requests = [("ch", channel, 1.0), ("ws", workspace, 2.0)]
    assert await limiter.try_acquire_all(requests) == 0.0
    assert await limiter.try_acquire("ch", channel, 2.0) == 1.0
    assert await limiter.try_acquire("ws", workspace) == 1.0


@pytest.mark.parametrize(
    ("channel_taken", "workspace_taken", "expected"),
    [
        pytest.param(0.0, 0.0, 0.0, id="both-free"),
        pytest.param(1.0, 0.0, 1.0, id="channel-short"),
        pytest.param(0.0, 4.0, 2.0, id="workspace-short"),
        pytest.param(1.0, 4.0, 2.0, id="both-short-longest-wins"),
    ],
)
async def test_take_all_returns_the_longest_wait(
    limiter: MemoryRateLimiter, channel_taken: float, workspace_taken: float, expected: float
) -> None:
    """A refused multi-bucket take reports the wait of the slowest bucket."""
    channel = Bucket(rate_per_second=1.0, burst=1.0)
    workspace = Bucket(rate_per_second=0.5, burst=4.0)
    if channel_taken:
        await limiter.try_acquire("ch", channel, channel_taken)
    if workspace_taken:
        await limiter.try_acquire("ws", workspace, workspace_taken)
    requests = [("ch", channel, 1.0), ("ws", workspace, 1.0)]
    assert await limiter.try_acquire_all(requests) == expected


async def test_empty_take_all_is_granted(limiter: MemoryRateLimiter) -> None:
    """A request for no bucket at all has nothing to wait for."""
    assert await limiter.try_acquire_all([]) == 0.0


async def test_penalise_keeps_the_bucket_empty_until_retry_after(
    limiter: MemoryRateLimiter, clock: FakeClock
) -> None:
    """After a 429 nothing is granted before Retry-After; then the bucket refills at its rate."""
    bucket = Bucket(rate_per_second=1.0, burst=5.0)
    await limiter.penalise("ch", bucket, 30.0)
    assert await limiter.try_acquire("ch", bucket) == 31.0
    clock.advance(29.5)
    assert await limiter.try_acquire("ch", bucket) == 1.5
    clock.advance(0.5)
    assert await limiter.try_acquire("ch", bucket) == 1.0
    clock.advance(1.0)
    assert await limiter.try_acquire("ch", bucket) == 0.0


async def test_penalise_never_shortens_a_longer_pause(
    limiter: MemoryRateLimiter, clock: FakeClock
) -> None:
    """A shorter Retry-After arriving later does not cut an earlier, longer pause."""
    bucket = Bucket(rate_per_second=1.0, burst=1.0)
    await limiter.penalise("ch", bucket, 60.0)
    clock.advance(10)
    await limiter.penalise("ch", bucket, 5.0)
    assert await limiter.try_acquire("ch", bucket) == 51.0


async def test_penalise_pauses_every_sender_of_the_key(limiter: MemoryRateLimiter) -> None:
    """A post request sharing the penalised workspace bucket is refused too."""
    workspace = Bucket(rate_per_second=10.0, burst=10.0)
    await limiter.penalise("ws", workspace, 2.0)
    requests = [("c9", CHANNEL_POSTS, 1.0), ("ws", workspace, 1.0)]
    assert await limiter.try_acquire_all(requests) == pytest.approx(2.1)
    assert await limiter.try_acquire("c9", CHANNEL_POSTS) == 0.0


async def test_empty_counts_the_next_token_from_now(
    limiter: MemoryRateLimiter, clock: FakeClock
) -> None:
    """Emptied after a take, the bucket's next token is one full interval from the emptying."""
    await limiter.try_acquire("ch", CHANNEL_POSTS)
    clock.advance(0.3)  # the time Slack took to answer
    await limiter.empty("ch", CHANNEL_POSTS)
    assert await limiter.try_acquire("ch", CHANNEL_POSTS) == 1.0
    clock.advance(1.0)
    assert await limiter.try_acquire("ch", CHANNEL_POSTS) == 0.0


async def test_empty_takes_every_token_of_a_full_bucket(limiter: MemoryRateLimiter) -> None:
    """A full bucket emptied grants nothing until it refills one token."""
    bucket = Bucket(rate_per_second=2.0, burst=3.0)
    await limiter.empty("ch", bucket)
    assert await limiter.try_acquire("ch", bucket) == 0.5


async def test_empty_never_shortens_a_pause(limiter: MemoryRateLimiter, clock: FakeClock) -> None:
    """Emptying a bucket paused by a 429 keeps the pause."""
    await limiter.penalise("ch", CHANNEL_POSTS, 30.0)
    clock.advance(10)
    await limiter.empty("ch", CHANNEL_POSTS)
    assert await limiter.try_acquire("ch", CHANNEL_POSTS) == 21.0


@pytest.mark.parametrize("seconds", [0.0, -3.0])
async def test_penalise_without_a_pause_changes_nothing(
    limiter: MemoryRateLimiter, seconds: float
) -> None:
    """A Retry-After of zero or less leaves the bucket as it was."""
    bucket = Bucket(rate_per_second=1.0, burst=2.0)
    await limiter.penalise("ch", bucket, seconds)
    assert await limiter.try_acquire("ch", bucket, 2.0) == 0.0


@pytest.mark.parametrize(
    "requests",
    [
        pytest.param([("ch", Bucket(1.0, 1.0), 2.0)], id="cost-over-burst"),
        pytest.param([("ch", Bucket(1.0, 1.0), 0.0)], id="zero-cost"),
        pytest.param([("ch", Bucket(1.0, 1.0), -1.0)], id="negative-cost"),
        pytest.param([("ch", Bucket(1.0, 1.0), 1.0), ("ch", Bucket(1.0, 1.0), 1.0)], id="dup-key"),
    ],
)
async def test_impossible_requests_are_refused(
    limiter: MemoryRateLimiter, requests: list[tuple[str, Bucket, float]]
) -> None:
    """A take that could never be granted, or names a key twice, is a ValueError."""
    with pytest.raises(ValueError, match=r"key|cost"):
        await limiter.try_acquire_all(requests)


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1.0), (1.0, 0.0), (-1.0, 1.0)])
def test_bucket_refuses_non_positive_settings(rate: float, burst: float) -> None:
    """A bucket needs a positive rate and a positive burst."""
    with pytest.raises(ValueError, match="must be > 0"):
        Bucket(rate, burst)


def test_slack_budgets_match_the_published_limits() -> None:
    """Posts are paced at one per second per channel, edits at 50 per minute per workspace."""
    assert (CHANNEL_POSTS.rate_per_second, CHANNEL_POSTS.burst) == (1.0, 1.0)
    assert WORKSPACE_UPDATES.rate_per_second * 60 == pytest.approx(50.0)


def test_keys_of_one_workspace_share_a_hash_tag() -> None:
    """A workspace's keys carry the same {workspace} tag and differ from each other."""
    keys = [
        channel_posts_key("T1", "C1"),
        workspace_posts_key("T1"),
        workspace_updates_key("T1"),
    ]
    assert all(key.startswith("{T1}:") for key in keys)
    assert len(set(keys)) == 3
    assert channel_posts_key("T2", "C1") != keys[0]


async def test_idle_refilled_buckets_are_forgotten(clock: FakeClock) -> None:
    """Buckets that have refilled are swept, so memory follows the channels in use."""
    limiter = MemoryRateLimiter(clock=clock)
    limiter._SWEEP_EVERY = 10
    for number in range(9):
        await limiter.try_acquire(f"c{number}", CHANNEL_POSTS)
    assert len(limiter._levels) == 9
    clock.advance(5)
    await limiter.try_acquire("busy", CHANNEL_POSTS)
    assert set(limiter._levels) == {"busy"}


def test_memory_limiter_is_a_rate_limiter(limiter: MemoryRateLimiter) -> None:
    """The in-process limiter satisfies the RateLimiter protocol callers depend on."""
    typed: RateLimiter = limiter
    assert typed is limiter
