"""Acknowledgements on deliveries: scoped to the tenant's current group message, first wins."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from slack_tools.storage.database import write_transaction
from slack_tools.storage.delivery import (
    Acknowledged,
    AckOutcome,
    acknowledge,
    acknowledgements_by,
    forget_acknowledgements_by,
)
from tests.integration.test_delivery_store import (
    OTHER,
    TENANT,
    at,
    deliver,
    engine,
    must,
    record,
    row,
    sent,
    take,
    write,
)

__all__ = ["engine"]  # the fixture, shared with the store's own tests

CHANNEL_ID = "C0123"  # what test_delivery_store's sent() records
TS = "1700000000.000100"


def press(
    engine: Engine, *, tenant: str = TENANT, ts: str = TS, user: str = "U1", seconds: float = 10
) -> Acknowledged:
    with write_transaction(engine) as connection:
        return acknowledge(connection, tenant, CHANNEL_ID, ts, user, at(seconds))


def test_acknowledgement_is_recorded_once_and_makes_the_delivery_pending(engine: Engine) -> None:
    """The first press is kept and asks for an edit; later presses change nothing."""
    write(engine, now=at(0))
    deliver(engine, now=at(1))
    before = must(row(engine))
    assert before["state"] == "done"

    first = press(engine, user="U1", seconds=10)
    assert first == Acknowledged(AckOutcome.RECORDED, "g1", "U1", at(10))
    after = must(row(engine))
    assert (after["state"], after["version"]) == ("pending", before["version"] + 1)
    assert (after["acked_ts"], after["acked_by"], after["acked_at"]) == (TS, "U1", at(10))

    second = press(engine, user="U2", seconds=20)
    assert second == Acknowledged(AckOutcome.ALREADY, "g1", "U1", at(10))
    assert must(row(engine))["version"] == after["version"]

    [claimed] = take(engine, now=at(30))
    assert claimed.ack is not None
    assert (claimed.ack.by, claimed.ack.at) == ("U1", at(10))


def test_other_tenants_and_unknown_messages_are_not_acknowledged(engine: Engine) -> None:
    """Another tenant's value, another ts, a message never sent: nothing changes."""
    write(engine, now=at(0))
    write(engine, tenant=OTHER, now=at(0))
    deliver(engine, now=at(1))
    before = must(row(engine))

    assert press(engine, tenant=OTHER).outcome is AckOutcome.UNKNOWN
    assert press(engine, ts="1700000000.999999").outcome is AckOutcome.UNKNOWN
    assert must(row(engine)) == before
    assert must(row(engine, tenant=OTHER))["acked_ts"] is None


def test_a_new_message_starts_unacknowledged(engine: Engine) -> None:
    """The acknowledgement belongs to its message: the next episode's post has none."""
    write(engine, now=at(0))
    deliver(engine, now=at(1))
    press(engine, seconds=5)
    [claimed] = take(engine, now=at(6))
    record(engine, [sent(claimed)], at(7))
    write(engine, status="resolved", now=at(8))
    [resolved] = take(engine, now=at(9))
    assert resolved.ack is not None  # the edit of the same message still shows it
    record(engine, [sent(resolved)], at(9))

    write(engine, now=at(20))  # fires again: a new episode and a new message
    [again] = take(engine, now=at(21))
    record(engine, [sent(again, ts="1700000099.000100", episode=2)], at(22))
    write(engine, label="b", now=at(30))
    [update] = take(engine, now=at(31))
    assert update.message_ts == "1700000099.000100"
    assert update.ack is None


def test_export_and_erasure_of_a_persons_acknowledgements(engine: Engine) -> None:
    """GDPR: a person's presses are listed, then forgotten while the fact stays."""
    write(engine, now=at(0))
    deliver(engine, now=at(1))
    press(engine, user="U1", seconds=10)

    with engine.connect() as connection:
        assert acknowledgements_by(connection, "U1") == [
            {"tenant": TENANT, "channel": CHANNEL_ID, "message_ts": TS, "at": at(10).isoformat()}
        ]
    with write_transaction(engine) as connection:
        assert forget_acknowledgements_by(connection, "U1") == 1
    kept = must(row(engine))
    assert (kept["acked_by"], kept["acked_ts"]) == (None, TS)
    with engine.connect() as connection:
        assert acknowledgements_by(connection, "U1") == []
