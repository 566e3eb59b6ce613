"""The Localizer's formatting caches: bounded, and every result exactly Babel's own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_datetime
from babel.lists import format_list
from babel.numbers import format_decimal
from babel.units import format_unit
from hypothesis import given
from hypothesis import strategies as st

from slack_tools.configs import localization
from slack_tools.configs.localization import Catalogs
from slack_tools.configs.schema import SUPPORTED_LOCALES

CATALOGS = Catalogs()
ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe")
CACHES: tuple[Any, ...] = (
    localization._babel_locale,
    localization._integer,
    localization._date,
    localization._date_time_pattern,
    localization._unit,
    localization._duration,
)

locales = st.sampled_from(SUPPORTED_LOCALES)
zones = st.sampled_from(ZONES)
attached: list[tzinfo | None] = [None, UTC, *(ZoneInfo(zone) for zone in ZONES)]
moments = st.datetimes(
    min_value=datetime(1900, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
    max_value=datetime(2200, 1, 1),  # noqa: DTZ001
    timezones=st.sampled_from(attached),
)
formats = st.sampled_from(["short", "medium", "long", "full", "EEEE d MMMM y, HH:mm zzzz"])


def babel_duration(locale: str, span: timedelta) -> str:
    """A duration as Localizer.duration wrote it before it kept anything: Babel on each call."""
    remaining = max(int(span.total_seconds()), 0)
    amounts = []
    for unit, size in (
        ("duration-day", 86400),
        ("duration-hour", 3600),
        ("duration-minute", 60),
        ("duration-second", 1),
    ):
        amount, remaining = divmod(remaining, size)
        amounts.append((unit, amount))
    first = next((i for i, (_, amount) in enumerate(amounts) if amount), len(amounts) - 1)
    parts = [
        format_unit(amount, unit, length="short", locale=locale)
        for index, (unit, amount) in enumerate(amounts[first : first + 2])
        if amount or index == 0
    ]
    try:
        return format_list(parts, style="unit-narrow", locale=locale)
    except KeyError:
        return format_list(parts, style="unit", locale=locale)


@given(locale=locales, zone=zones, moment=moments, fmt=formats)
def test_times_are_babels_own(locale: str, zone: str, moment: datetime, fmt: str) -> None:
    """A date and time, its date part kept per day, reads exactly as Babel formats it."""
    expected = format_datetime(moment, fmt, tzinfo=ZoneInfo(zone), locale=locale)
    assert CATALOGS.localizer(locale, zone).format_time(moment, fmt) == expected


@given(
    locale=locales,
    # Babel itself cannot quantize floats of 25 digits and more (decimal's precision).
    value=st.integers(-(10**15), 10**15) | st.floats(-1e15, 1e15, allow_nan=False),
)
def test_numbers_are_babels_own(locale: str, value: float) -> None:
    """Integers (kept) and floats (not) read as Babel formats them; 12 and 12.0 are not mixed."""
    localizer = CATALOGS.localizer(locale)
    assert localizer.number(value) == format_decimal(value, locale=locale)
    if value == int(value):
        assert localizer.number(int(value)) == format_decimal(int(value), locale=locale)


@given(locale=locales, seconds=st.integers(-100, 10**9))
def test_durations_are_babels_own(locale: str, seconds: int) -> None:
    """A duration kept by its amounts reads as Babel's units and list pattern make it."""
    span = timedelta(seconds=seconds, milliseconds=500)
    assert CATALOGS.localizer(locale).duration(span) == babel_duration(locale, span)


@pytest.mark.parametrize("cache", CACHES, ids=lambda cache: cache.__name__)
def test_every_formatting_cache_is_bounded(cache: Any) -> None:
    """Each cache keeps at most a few thousand results, whatever the values formatted."""
    maxsize = cache.cache_parameters()["maxsize"]
    assert maxsize is not None
    assert maxsize <= 4096


@pytest.mark.parametrize(
    ("cache", "fill"),
    [
        (localization._integer, lambda n: CATALOGS.localizer("de_DE").number(n)),
        (
            localization._duration,
            lambda n: CATALOGS.localizer("it_IT").duration(timedelta(days=n, hours=1)),
        ),
        (
            localization._date,
            lambda n: CATALOGS.localizer("es_ES").format_time(
                datetime(2000, 1, 1, tzinfo=UTC) + timedelta(days=n)
            ),
        ),
    ],
    ids=["numbers", "durations", "dates"],
)
def test_many_distinct_values_leave_a_cache_at_its_bound(
    cache: Any, fill: Callable[[int], str]
) -> None:
    """More distinct values than a cache holds: the oldest are dropped, the size stays put."""
    maxsize = cache.cache_parameters()["maxsize"]
    for n in range(maxsize + 100):
        fill(n)
    assert cache.cache_info().currsize == maxsize


def test_a_slack_date_follows_its_moment_not_the_day_it_was_first_formatted() -> None:
    """Two times of one day share the kept date part; each keeps its own time and epoch."""
    localizer = CATALOGS.localizer("fr_FR", "Europe/Paris")
    morning = datetime(2026, 11, 26, 8, 3, 12, tzinfo=UTC)
    night = datetime(2026, 11, 26, 23, 30, 1, tzinfo=UTC)  # already the 27th in Paris

    assert localizer.slack_date(morning) == (
        f"<!date^{int(morning.timestamp())}^{{date_short_pretty}} {{time_secs}}"
        "|26 nov. 2026, 09:03:12>"
    )
    assert localizer.slack_date(night).endswith("|27 nov. 2026, 00:30:01>")
