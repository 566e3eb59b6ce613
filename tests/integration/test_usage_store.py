"""Usage rows on real databases: counted with their transaction, summed per UTC day."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

from slack_tools.storage import create_engine, upgrade
from slack_tools.storage.database import write_transaction
from slack_tools.storage.tables import metadata
from slack_tools.storage.usage import DayUsage, note_usage, totals, usage, usage_noted

NOON = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_the_migrations_build_exactly_the_tables(engine: Engine) -> None:
    """No table, column, index or constraint differs between the migrations and tables.py."""
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_noted_usage_is_added_when_the_transaction_commits(engine: Engine) -> None:
    with write_transaction(engine) as connection, usage_noted(connection):
        note_usage(connection, "acme", NOON, alerts_received=10, api_calls=1)
        note_usage(connection, "acme", NOON, alerts_received=5, api_calls=1)
        note_usage(connection, "globex", NOON, messages_sent=2)
    with write_transaction(engine) as connection, usage_noted(connection):
        note_usage(connection, "acme", NOON + timedelta(hours=1), dead_letters=1)

    day = NOON.date()
    assert usage(engine, "acme", day, day) == [
        DayUsage(day, alerts_received=15, api_calls=2, dead_letters=1)
    ]
    assert usage(engine, "globex", day, day) == [DayUsage(day, messages_sent=2)]


def test_a_rolled_back_transaction_counts_nothing_now_or_later(engine: Engine) -> None:
    """The notes of failed work are dropped, also from the pooled connection reused next."""

    class FailedWorkError(Exception):
        pass

    def failing_work() -> None:
        with write_transaction(engine) as connection, usage_noted(connection):
            note_usage(connection, "acme", NOON, alerts_received=100)
            raise FailedWorkError

    with pytest.raises(FailedWorkError):
        failing_work()
    with write_transaction(engine) as connection, usage_noted(connection):
        note_usage(connection, "acme", NOON, api_calls=1)
    assert usage(engine, "acme", NOON.date(), NOON.date()) == [DayUsage(NOON.date(), api_calls=1)]


def test_days_are_utc_days_and_a_range_includes_both_ends(engine: Engine) -> None:
    paris = timezone(timedelta(hours=1))
    moments = [
        datetime(2026, 11, 1, 0, 30, tzinfo=paris),  # 2026-10-31 23:30 UTC
        datetime(2026, 11, 1, 0, 30, tzinfo=UTC),
        datetime(2026, 11, 3, 23, 59, tzinfo=UTC),
        datetime(2026, 11, 4, 0, 0, tzinfo=UTC),
    ]
    with write_transaction(engine) as connection, usage_noted(connection):
        for moment in moments:
            note_usage(connection, "acme", moment, alerts_received=1)
    days = usage(engine, "acme", date(2026, 11, 1), date(2026, 11, 3))
    assert [(d.day, d.alerts_received) for d in days] == [
        (date(2026, 11, 1), 1),
        (date(2026, 11, 3), 1),
    ]
    assert totals(days)["alerts_received"] == 2
    assert usage(engine, "acme", date(2026, 10, 31), date(2026, 10, 31))[0].alerts_received == 1
    assert usage(engine, "globex", date(2026, 11, 1), date(2026, 11, 30)) == []


def test_an_unknown_metric_is_refused(engine: Engine) -> None:
    with write_transaction(engine) as connection, pytest.raises(ValueError, match="alerts_sent"):
        note_usage(connection, "acme", NOON, alerts_sent=1)


def test_concurrent_writers_on_the_same_rows_lose_nothing(engine: Engine) -> None:
    """Two writers adding to the same tenants' rows at once, noted in opposite orders."""
    rounds = 40
    errors: list[BaseException] = []

    def write(order: tuple[str, str]) -> None:
        try:
            for _ in range(rounds):
                with write_transaction(engine) as connection, usage_noted(connection):
                    for tenant in order:
                        note_usage(connection, tenant, NOON, alerts_received=1)
                        # Hold something else in between, as an ingest transaction does.
                        connection.execute(sa.text("SELECT 1"))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(("acme", "globex"),)),
        threading.Thread(target=write, args=(("globex", "acme"),)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for tenant in ("acme", "globex"):
        assert usage(engine, tenant, NOON.date(), NOON.date())[0].alerts_received == 2 * rounds
