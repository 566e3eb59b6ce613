"""Usage per tenant and UTC day: what billing counts.

A counted thing notes its usage on the transaction that does it
(:func:`note_usage`); :func:`usage_noted`, around the transaction's work, adds
the notes to ``usage_daily`` as its last statements. So a count is committed exactly
when what it counts is, and never otherwise. The adds come last and in
(tenant, day) order: a transaction that holds a usage row wants no other lock
after it, so two instances adding to the same row wait for each other but never
deadlock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from slack_tools.storage.group_writes import Driver
from slack_tools.storage.tables import usage_daily

_NOTES = "slack_tools.usage"

_ADD = """
INSERT INTO usage_daily (tenant_id, day, alerts_received, messages_sent, messages_held,
                         dead_letters, api_calls)
VALUES (:tenant_id, :day, :alerts_received, :messages_sent, :messages_held, :dead_letters,
        :api_calls)
ON CONFLICT (tenant_id, day) DO UPDATE SET
    alerts_received = usage_daily.alerts_received + excluded.alerts_received,
    messages_sent = usage_daily.messages_sent + excluded.messages_sent,
    messages_held = usage_daily.messages_held + excluded.messages_held,
    dead_letters = usage_daily.dead_letters + excluded.dead_letters,
    api_calls = usage_daily.api_calls + excluded.api_calls"""


@dataclass(frozen=True, slots=True)
class DayUsage:
    """One tenant's counts for one UTC day."""

    day: date
    alerts_received: int = 0
    messages_sent: int = 0
    messages_held: int = 0
    dead_letters: int = 0
    api_calls: int = 0

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in METRICS}


METRICS = tuple(f.name for f in fields(DayUsage) if f.name != "day")


def note_usage(connection: sa.Connection, tenant_id: str, moment: datetime, **counts: int) -> None:
    """Count ``counts`` (metric → amount) for the tenant on ``moment``'s UTC day, on commit."""
    unknown = set(counts) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown usage metrics {sorted(unknown)}: use {', '.join(METRICS)}")
    notes: dict[tuple[str, date], Counter[str]] = connection.info.setdefault(_NOTES, {})
    # A naive moment is taken as UTC, as everywhere in storage.
    day = (moment if moment.tzinfo is None else moment.astimezone(UTC)).date()
    notes.setdefault((tenant_id, day), Counter()).update(counts)


@contextmanager
def usage_noted(connection: sa.Connection) -> Iterator[None]:
    """Around a transaction's work: adds what was noted when the work succeeds.

    The adds are the transaction's last statements; notes of work that failed are
    dropped (the connection's ``info`` outlives the transaction).
    """
    try:
        yield
        _add_noted(connection)
    finally:
        connection.info.pop(_NOTES, None)


def _add_noted(connection: sa.Connection) -> None:
    notes: dict[tuple[str, date], Counter[str]] | None = connection.info.get(_NOTES)
    if not notes:
        return
    driver = Driver(connection)
    for (tenant_id, day), counted in sorted(notes.items()):
        params: dict[str, Any] = {name: counted.get(name, 0) for name in METRICS}
        params.update(tenant_id=tenant_id, day=day if driver.postgres else day.isoformat())
        driver.execute(_ADD, params)


def usage(engine: Engine, tenant_id: str, first: date, last: date) -> list[DayUsage]:
    """The tenant's days from ``first`` to ``last`` included; days with no row are omitted."""
    statement = (
        sa.select(usage_daily)
        .where(
            usage_daily.c.tenant_id == tenant_id,
            usage_daily.c.day >= first,
            usage_daily.c.day <= last,
        )
        .order_by(usage_daily.c.day)
    )
    with engine.connect() as connection:
        rows = connection.execute(statement).all()
    return [DayUsage(row.day, *(int(getattr(row, name)) for name in METRICS)) for row in rows]


def totals(days: list[DayUsage]) -> Mapping[str, int]:
    """The counts of several days added up."""
    summed: Counter[str] = Counter()
    for day in days:
        summed.update(day.counts())
    return {name: summed[name] for name in METRICS}
