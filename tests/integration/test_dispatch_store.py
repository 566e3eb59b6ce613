"""Counting a channel's ready deliveries, which decides between single posts and a digest."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from slack_tools.storage.database import write_transaction
from slack_tools.storage.delivery import ready_channels, release
from slack_tools.storage.delivery.dispatch import ready_count
from tests.integration.test_delivery_store import DEV, OPS, OTHER, TENANT, at, engine, take, write

__all__ = ["engine"]  # the fixture, shared with the store's own tests


def test_ready_count_counts_one_channel_of_one_tenant(engine: Engine) -> None:
    """Only the channel's own ready rows count: not another channel's, not another tenant's."""
    for group in ("g1", "g2", "g3"):
        write(engine, group=group, targets=(OPS, DEV), now=at(0))
    write(engine, tenant=OTHER, group="g1", targets=(OPS,), now=at(0))

    with engine.connect() as connection:
        assert ready_count(connection, TENANT, "#ops", at(1)) == 3
        assert ready_count(connection, TENANT, "#dev", at(1)) == 3
        assert ready_count(connection, OTHER, "#ops", at(1)) == 1
        assert ready_count(connection, OTHER, "#dev", at(1)) == 0


def test_ready_count_agrees_with_ready_channels(engine: Engine) -> None:
    """Leased and rescheduled rows are left out, as in the cycle's own count."""
    for group in ("leased", "later", "ready"):
        write(engine, group=group, now=at(0))
    by_group = {c.group_hash: c for c in take(engine, now=at(1), owner="w1")}
    with write_transaction(engine) as connection:
        for group, when in (("ready", at(1)), ("later", at(600))):
            release(
                connection,
                [by_group[group].id],
                owner="w1",
                available_at=when,
                count_attempt=False,
                error=None,
                now=at(1),
            )

    with engine.connect() as connection:
        listed = ready_channels(connection, at(10), 10)
        counted = ready_count(connection, TENANT, "#ops", at(10))

    assert counted == 1
    assert [w.ready for w in listed] == [counted]
