"""What the dispatcher writes to the outbox about the deliveries it claimed.

Each method is one transaction per database, blocking (the dispatcher runs them
off the event loop), and touches only rows this dispatcher holds the lease of.
Every row is written in the database of its tenant: the shared one, or a strictly
isolated tenant's own. Usage for billing is counted in the same transaction as
what it counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime

from slack_tools.storage import Database
from slack_tools.storage import delivery as outbox
from slack_tools.storage.usage import note_usage, usage_noted


class Ledger:
    def __init__(
        self,
        database_for: Callable[[str], Database],
        owner: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.database_for = database_for
        self.owner = owner
        self.clock = clock

    def _by_database(
        self, rows: Sequence[outbox.Claimed]
    ) -> list[tuple[Database, list[outbox.Claimed]]]:
        """The rows by the database that holds them (one per tenant, shared ones together)."""
        by_tenant: dict[str, list[outbox.Claimed]] = defaultdict(list)
        for row in rows:
            by_tenant[row.tenant_id].append(row)
        by_engine: dict[int, tuple[Database, list[outbox.Claimed]]] = {}
        for tenant_id, held in by_tenant.items():
            database = self.database_for(tenant_id)
            by_engine.setdefault(id(database.engine), (database, []))[1].extend(held)
        return list(by_engine.values())

    def sent(self, sent: list[outbox.Sent], now: datetime, tenant_id: str) -> None:
        """Record what Slack accepted (idempotent: safe to repeat)."""
        database = self.database_for(tenant_id)
        with database.transaction() as connection, usage_noted(connection):
            outbox.record_sent(connection, sent, now)
            note_usage(connection, tenant_id, now, messages_sent=1)

    def release(
        self, rows: Sequence[outbox.Claimed], when: datetime, attempt: bool, error: str | None
    ) -> None:
        """Give deliveries back, to be tried at ``when`` (``attempt``: count a failed try)."""
        for database, held in self._by_database(rows):
            with database.transaction() as connection:
                outbox.release(
                    connection,
                    [r.id for r in held],
                    owner=self.owner,
                    available_at=when,
                    count_attempt=attempt,
                    error=error,
                    now=self.clock(),
                )

    def forget_messages(self, rows: Sequence[outbox.Claimed]) -> None:
        for database, held in self._by_database(rows):
            with database.transaction() as connection:
                outbox.forget_messages(connection, [r.id for r in held])

    def hold(
        self, rows: Sequence[outbox.Claimed], until: datetime, now: datetime, tenant_id: str
    ) -> int:
        """Hold deliveries back by quota until ``until``; returns how many were not held yet."""
        database = self.database_for(tenant_id)
        with database.transaction() as connection, usage_noted(connection):
            newly = outbox.hold(
                connection, [r.id for r in rows], owner=self.owner, until=until, now=now
            )
            note_usage(connection, tenant_id, now, messages_held=newly)
            return newly

    def bury(self, rows: Sequence[outbox.Claimed], reason: str) -> None:
        """Make deliveries dead letters, with the reason."""
        now = self.clock()
        for database, held in self._by_database(rows):
            with database.transaction() as connection, usage_noted(connection):
                outbox.bury(
                    connection, [r.id for r in held], owner=self.owner, reason=reason, now=now
                )
                for row in held:
                    note_usage(connection, row.tenant_id, now, dead_letters=1)
