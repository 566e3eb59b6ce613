"""The ingest write path, spoken to the database driver directly.

Every accepted request runs these few statements, and building and caching
SQLAlchemy expressions cost about ten times the statements themselves (3 ms of
Python per group against 0.3 ms; measured with bench/ingest.py). So this module
keeps the same SQL as plain strings, one variant per backend, and executes them
on the transaction's own DBAPI cursor. Datetimes and JSON are written in exactly
the forms SQLAlchemy's column types use, so the rest of ``storage`` reads them back
unchanged. The schema itself stays defined once, in ``tables``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
import sqlalchemy as sa

_PLACEHOLDER = re.compile(r":([a-z_][a-z0-9_]*)")
# The statements below are constants; every value reaches them as a bound parameter.

# What "a new version to deliver" means: pending again, a dead letter revived, and a
# running backoff kept (a change does not let a failing delivery jump the queue).
_BUMP = """
    version = deliveries.version + 1,
    state = 'pending',
    attempts = CASE WHEN deliveries.state = 'dead' THEN 0 ELSE deliveries.attempts END,
    last_error = CASE WHEN deliveries.state = 'dead' THEN NULL ELSE deliveries.last_error END,
    pending_since = COALESCE(deliveries.pending_since, :now),
    available_at = CASE WHEN deliveries.state <> 'dead' AND deliveries.available_at > :now
                        THEN deliveries.available_at ELSE :now END,
    updated_at = :now
"""

# For other writers that ask for a delivery to be sent again (acknowledgements).
BUMP_DELIVERY = _BUMP

SELECT_STATE = """
SELECT state_hash, status, episode FROM alert_groups
WHERE tenant_id = :tenant_id AND group_hash = :group_hash"""

SELECT_FULL = """
SELECT tenant_id, group_hash, group_key, source, status, state_hash, episode, alerts, meta,
       received_at, updated_at
FROM alert_groups WHERE tenant_id = :tenant_id AND group_hash = :group_hash"""

INSERT_GROUP = """
INSERT INTO alert_groups (tenant_id, group_hash, group_key, source, status, state_hash,
                          episode, alerts, meta, received_at, updated_at)
VALUES (:tenant_id, :group_hash, :group_key, :source, :status, :state_hash, 1,
        {alerts}, {meta}, :now, :now)
ON CONFLICT (tenant_id, group_hash) DO NOTHING
RETURNING group_hash"""

UPDATE_GROUP = """
UPDATE alert_groups SET status = :status, state_hash = :state_hash, episode = :episode,
    alerts = {alerts}, meta = {meta}, received_at = :now, updated_at = :now
WHERE tenant_id = :tenant_id AND group_hash = :group_hash"""

UPSERT_DELIVERY = f"""
INSERT INTO deliveries (tenant_id, group_hash, channel, locale, state, version,
                        delivered_version, attempts, available_at, pending_since, updated_at)
VALUES (:tenant_id, :group_hash, :channel, :locale, 'pending', 1, 0, 0, :now, :now, :now)
ON CONFLICT (tenant_id, group_hash, channel) DO UPDATE SET locale = :locale, {_BUMP}"""  # noqa: S608 - constant fragments, values bound  # nosec B608

BUMP_CHANNEL = f"""
UPDATE deliveries SET {_BUMP}
WHERE tenant_id = :tenant_id AND group_hash = :group_hash AND channel = :channel"""  # noqa: S608 - constant fragments, values bound  # nosec B608

BUMP_TOLD_ELSEWHERE = """
UPDATE deliveries SET {bump}
WHERE tenant_id = :tenant_id AND group_hash = :group_hash AND message_ts IS NOT NULL
  {not_routed}"""


class Driver:
    """One transaction's cursor, with the backend's placeholders, times and JSON."""

    def __init__(self, connection: sa.Connection) -> None:
        self.postgres = connection.dialect.name == "postgresql"
        self.cursor: Any = connection.connection.cursor()

    def execute(self, statement: str, params: dict[str, Any]) -> Any:
        self.cursor.execute(_sql(statement, self.postgres), params)
        return self.cursor

    def when(self, moment: datetime) -> Any:
        """A time as SQLAlchemy's DateTime stores it: naive UTC text on SQLite."""
        if self.postgres:
            return moment
        # isoformat writes strftime's "%Y-%m-%d %H:%M:%S.%f" in a quarter of the time.
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

    @staticmethod
    def json(value: Any) -> str:
        return orjson.dumps(value).decode("utf-8")

    def load(self, raw: Any) -> Any:
        return json.loads(raw) if isinstance(raw, str | bytes) else raw

    def read_time(self, raw: Any) -> datetime:
        if isinstance(raw, datetime):
            return raw if raw.tzinfo else raw.replace(tzinfo=UTC)
        return datetime.fromisoformat(str(raw)).replace(tzinfo=UTC)


@cache
def _sql(statement: str, postgres: bool) -> str:
    json_value = "CAST({} AS JSON)" if postgres else "{}"
    text = statement.replace("{alerts}", json_value.format(":alerts")).replace(
        "{meta}", json_value.format(":meta")
    )
    if statement in (SELECT_STATE, SELECT_FULL) and postgres:
        text += " FOR UPDATE"
    return _PLACEHOLDER.sub(r"%(\1)s", text) if postgres else text


@cache
def bump_told_elsewhere(routed: int) -> str:
    """The statement bumping channels already told but not among ``routed`` targets."""
    not_routed = " ".join(f"AND channel <> :routed_{n}" for n in range(routed))
    return BUMP_TOLD_ELSEWHERE.format(bump=_BUMP, not_routed=not_routed)


def routed_params(channels: Sequence[str]) -> dict[str, str]:
    return dict(zip(_routed_names(len(channels)), channels, strict=True))


@cache
def _routed_names(routed: int) -> tuple[str, ...]:
    return tuple(f"routed_{n}" for n in range(routed))
