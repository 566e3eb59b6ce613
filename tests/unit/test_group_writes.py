"""The ingest write path's values are written as SQLAlchemy's column types write them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from slack_tools.storage.group_writes import Driver

_SQLITE = sqlite.dialect()
_DATETIME = sa.DateTime(timezone=True).dialect_impl(_SQLITE).bind_processor(_SQLITE)


class _SqliteDriver(Driver):
    def __init__(self) -> None:  # no connection needed to format values
        self.postgres = False


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),  # noqa: DTZ001 - hypothesis wants naive bounds
        max_value=datetime(9999, 12, 30),  # noqa: DTZ001
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5, minutes=30))]
        ),
    )
)
def test_a_time_is_written_as_sqlalchemy_writes_it_on_sqlite(moment: datetime) -> None:
    """Naive UTC text with microseconds, whatever the zone it came in."""
    assert _DATETIME is not None
    assert _SqliteDriver().when(moment) == _DATETIME(moment.astimezone(UTC).replace(tzinfo=None))
