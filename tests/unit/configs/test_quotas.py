"""Quota windows and the in-memory counter, on an injected clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slack_tools.configs.quotas import MemoryQuotaCounter, Quota

# 2026-11-26 14:03:00 UTC, the start of a minute, an hour boundary is 14:00.
T0 = 1_795_701_780.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_periods_come_from_the_names() -> None:
    assert [
        Quota.named("alerts_per_minute", 600),
        Quota.named("messages_per_hour", 3600),
        Quota.named("usage_per_day", 1),
    ] == [
        Quota("alerts_per_minute", 600, 60),
        Quota("messages_per_hour", 3600, 3600),
        Quota("usage_per_day", 1, 86400),
    ]


@pytest.mark.parametrize(
    ("name", "limit", "message"),
    [
        ("alerts", 10, "_per_"),
        ("alerts_per_week", 10, "_per_"),
        ("Alerts_per_minute", 10, "_per_"),
        ("alerts_per_minute", 0, "at least 1"),
    ],
)
def test_a_bad_quota_is_named_in_the_error(name: str, limit: int, message: str) -> None:
    with pytest.raises(ValueError, match=message) as refused:
        Quota.named(name, limit)
    assert name in str(refused.value)


def test_exactly_at_the_limit_fits_and_one_more_does_not() -> None:
    counter = MemoryQuotaCounter(Clock())
    quota = Quota.named("alerts_per_minute", 3)
    uses = [counter.take_now("acme", quota) for _ in range(4)]
    assert [u.used for u in uses] == [1, 2, 3, 4]
    assert [u.allowed for u in uses] == [True, True, True, False]
    assert [u.remaining for u in uses] == [2, 1, 0, 0]
    assert uses[-1].over_by == 1


def test_a_take_of_several_counts_them_all_and_says_how_many_are_over() -> None:
    counter = MemoryQuotaCounter(Clock())
    quota = Quota.named("alerts_per_minute", 10)
    assert counter.take_now("acme", quota, 8).allowed
    use = counter.take_now("acme", quota, 5)
    assert (use.used, use.allowed, use.over_by) == (13, False, 3)
    assert counter.take_now("acme", quota, 2).over_by == 2  # all of it: the window is full


def test_windows_are_aligned_on_the_clock_and_roll_over() -> None:
    clock = Clock(T0 + 59.5)  # 14:03:59.5
    counter = MemoryQuotaCounter(clock)
    quota = Quota.named("alerts_per_minute", 1)
    first = counter.take_now("acme", quota)
    assert (first.window_start, first.window_end) == (T0, T0 + 60)
    assert first.retry_after == pytest.approx(0.5)
    assert not counter.take_now("acme", quota).allowed

    clock.now = T0 + 60.0  # 14:04:00: a new window, whatever happened in the last one
    rolled = counter.take_now("acme", quota)
    assert (rolled.used, rolled.allowed, rolled.window_start) == (1, True, T0 + 60)


def test_hours_start_on_the_hour() -> None:
    use = MemoryQuotaCounter(Clock()).take_now("acme", Quota.named("messages_per_hour", 5))
    assert (use.window_start, use.window_end) == (T0 - 180, T0 + 3420)


def test_tenants_and_quotas_are_counted_apart() -> None:
    counter = MemoryQuotaCounter(Clock())
    alerts, messages = Quota.named("alerts_per_minute", 1), Quota.named("messages_per_hour", 1)
    assert counter.take_now("acme", alerts).allowed
    assert counter.take_now("globex", alerts).allowed
    assert counter.take_now("acme", messages).allowed
    assert not counter.take_now("acme", alerts).allowed


async def test_peek_counts_nothing() -> None:
    counter = MemoryQuotaCounter(Clock())
    quota = Quota.named("alerts_per_minute", 2)
    await counter.take("acme", quota, 2)
    assert (await counter.peek("acme", quota)).used == 2
    assert (await counter.peek("acme", quota)).allowed
    assert (await counter.take("acme", quota)).used == 3


@given(
    takes=st.lists(
        st.tuples(st.floats(min_value=0, max_value=300), st.integers(min_value=0, max_value=50)),
        max_size=40,
    ),
    limit=st.integers(min_value=1, max_value=200),
)
def test_a_windows_count_is_the_sum_of_its_takes(
    takes: list[tuple[float, int]], limit: int
) -> None:
    """Whatever the order and sizes, each answer counts exactly the takes of its window."""
    clock = Clock()
    counter = MemoryQuotaCounter(clock)
    quota = Quota.named("alerts_per_minute", limit)
    seen: dict[int, int] = {}
    elapsed = 0.0
    for step, amount in takes:
        elapsed += step
        clock.now = T0 + elapsed
        use = counter.take_now("acme", quota, amount)
        window = quota.window(clock.now)
        seen[window] = seen.get(window, 0) + amount
        assert use.used == seen[window]
        assert use.allowed == (seen[window] <= limit)
        assert use.window_start <= clock.now < use.window_end
