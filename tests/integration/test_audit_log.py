"""The audit trail on real databases: recording, listing, tamper detection, concurrent appends."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from slack_tools.configs.security.actors import SYSTEM, Actor, acting_as
from slack_tools.configs.security.audit import AuditLog, Outcome, audit_action
from slack_tools.storage import Database, create_engine, upgrade
from slack_tools.storage.database import write_transaction
from slack_tools.storage.tables import audit_chains, audit_entries, audit_pseudonyms
from tests.helpers import assert_no_secret
from tests.integration.test_document_store import database

__all__ = ["database"]  # the fixture: a migrated database on each backend

TOKEN = "xoxb-1111111111-audit-log-secret-token"
ALICE = Actor("alice", roles=frozenset({"admin"}), all_tenants=True)


@pytest.fixture
def log(database: Database) -> AuditLog:
    return AuditLog(database)


def fill(log: AuditLog, count: int = 5) -> None:
    with acting_as(ALICE):
        for number in range(count):
            log.record(f"test.action{number}", target=f"thing:{number}", tenant="acme")


def test_an_entry_holds_who_what_where_and_outcome(log: AuditLog) -> None:
    """An entry records the actor (resolved), action, target, tenant, outcome and diff."""
    with acting_as(ALICE):
        log.record("config.update", target="tenant:acme", tenant="acme", diff={"a": 1})
    (entry,) = log.list()
    assert (entry.actor, entry.action, entry.target, entry.tenant, entry.outcome) == (
        "alice",
        "config.update",
        "tenant:acme",
        "acme",
        "success",
    )
    assert entry.diff == {"a": 1}
    assert log.verify().ok


def test_actors_are_stored_as_pseudonyms(log: AuditLog, database: Database) -> None:
    """The stored actor is a keyed pseudonym; only the erasable mapping holds the name."""
    with acting_as(ALICE):
        log.record("x.y")
    with database.engine.connect() as connection:
        stored = connection.execute(sa.select(audit_entries.c.actor)).scalar_one()
        mapping = dict(
            connection.execute(
                sa.select(audit_pseudonyms.c.pseudonym, audit_pseudonyms.c.identity)
            ).all()
        )
    assert stored.startswith("p_")
    assert "alice" not in stored
    assert mapping == {stored: "alice"}
    assert log.pseudonym("alice") == stored


def test_no_actor_set_records_the_local_administrator(log: AuditLog) -> None:
    """Direct library use with nobody acting is recorded as the OS user, never as nobody."""
    log.record("x.y")
    (entry,) = log.list()
    assert entry.actor
    assert entry.actor_kind == "local"


def test_the_system_actor_is_not_pseudonymised(log: AuditLog) -> None:
    """The service's own work is recorded as ``system``."""
    log.record("retention.run", actor=SYSTEM)
    assert log.list()[0].actor == "system"


def test_secrets_in_a_diff_are_masked(log: AuditLog, database: Database) -> None:
    """A token under any name, or under a secret-like name, never reaches the trail."""
    log.record(
        "x.y",
        diff={"slack_bot_token": "plain-value-1234", "note": f"uses {TOKEN}", "n": 3},
        target=f"t {TOKEN}",
    )
    with database.engine.connect() as connection:
        text = str(list(connection.execute(sa.select(audit_entries))))
    assert_no_secret(text, TOKEN, "plain-value-1234")
    assert log.list()[0].diff["n"] == 3


def test_a_failure_keeps_the_error_class_not_its_message(log: AuditLog) -> None:
    """Failures record the error's class; its message may hold a secret."""
    log.record("x.y", outcome=Outcome.FAILURE, error=ValueError(TOKEN))
    entry = log.list()[0]
    assert (entry.outcome, entry.error) == ("failure", "ValueError")
    assert_no_secret(str(entry.as_dict()), TOKEN)


def test_list_filters_by_tenant_since_action_and_actor(log: AuditLog) -> None:
    """Filters combine: tenant, time, action (or its prefix) and actor identity."""
    with acting_as(ALICE):
        log.record("tenant.create", tenant="acme")
        log.record("config.update", tenant="acme")
    with acting_as(Actor("bob")):
        log.record("tenant.create", tenant="other")
    assert [e.action for e in log.list(tenant="acme")] == ["config.update", "tenant.create"]
    assert [e.tenant for e in log.list(action="tenant")] == ["other", "acme"]
    assert [e.tenant for e in log.list(actor="bob")] == ["other"]
    assert log.list(since=datetime.now(UTC) + timedelta(minutes=1)) == []


# --- tampering ----------------------------------------------------------------------------


def tamper(database: Database, statement: sa.Executable) -> None:
    with write_transaction(database.engine) as connection:
        connection.execute(statement)


def test_an_edited_entry_is_named(log: AuditLog, database: Database) -> None:
    """Changing any field of an entry breaks it, and verify names that entry."""
    fill(log)
    tamper(database, audit_entries.update().where(audit_entries.c.seq == 3).values(target="forged"))
    breach = log.verify().breach
    assert breach is not None
    assert (breach.seq, breach.reason) == (3, "modified")


def test_an_edited_and_rehashed_entry_is_named(log: AuditLog, database: Database) -> None:
    """Rewriting an entry with a fresh hash of its own still breaks the next entry's link."""
    fill(log)
    with database.engine.connect() as connection:
        row = connection.execute(sa.select(audit_entries).where(audit_entries.c.seq == 2)).one()
    from slack_tools.storage import audit as store  # noqa: PLC0415 - the forger's tool

    fields = store.hashed_fields(
        chain=row.chain,
        at=row.at,
        actor=row.actor,
        actor_kind=row.actor_kind,
        action=row.action,
        target="forged",
        tenant_id=row.tenant_id,
        subject=row.subject,
        outcome=row.outcome,
        error=row.error,
        correlation_id=row.correlation_id,
        diff=row.diff,
        prev_hash=row.prev_hash,
    )
    tamper(
        database,
        audit_entries.update()
        .where(audit_entries.c.seq == 2)
        .values(target="forged", hash=store.entry_hash(fields)),
    )
    breach = log.verify().breach
    assert breach is not None
    assert (breach.seq, breach.reason) == (2, "modified")


def test_a_deleted_entry_is_named(log: AuditLog, database: Database) -> None:
    """Removing an entry from the middle names the missing position."""
    fill(log)
    tamper(database, audit_entries.delete().where(audit_entries.c.seq == 2))
    breach = log.verify().breach
    assert breach is not None
    assert (breach.seq, breach.reason) == (2, "deleted")


def test_a_deleted_and_renumbered_entry_is_named(log: AuditLog, database: Database) -> None:
    """Closing the gap after a deletion still shows where an entry went missing."""
    fill(log)
    tamper(database, audit_entries.delete().where(audit_entries.c.seq == 2))
    for seq in (3, 4, 5):
        tamper(
            database, audit_entries.update().where(audit_entries.c.seq == seq).values(seq=seq - 1)
        )
    breach = log.verify().breach
    assert breach is not None
    assert (breach.seq, breach.reason) == (2, "deleted")


def test_reordered_entries_are_named(log: AuditLog, database: Database) -> None:
    """Swapping two entries' positions names the first one out of place."""
    fill(log)
    tamper(database, audit_entries.update().where(audit_entries.c.seq == 3).values(seq=100))
    tamper(database, audit_entries.update().where(audit_entries.c.seq == 4).values(seq=3))
    tamper(database, audit_entries.update().where(audit_entries.c.seq == 100).values(seq=4))
    breach = log.verify().breach
    assert breach is not None
    assert (breach.seq, breach.reason) == (3, "reordered")


def test_a_truncated_tail_is_named(log: AuditLog, database: Database) -> None:
    """Cutting the last entries off is caught by the chain head's count."""
    fill(log)
    tamper(database, audit_entries.delete().where(audit_entries.c.seq >= 4))
    breach = log.verify().breach
    assert breach is not None
    assert (breach.seq, breach.reason) == (4, "truncated")


def test_a_removed_head_row_is_caught(log: AuditLog, database: Database) -> None:
    """Deleting the chain head to hide a truncation leaves entries no head accounts for."""
    fill(log, 3)
    tamper(database, audit_chains.delete())
    assert not log.verify().ok


def test_an_untouched_chain_verifies(log: AuditLog) -> None:
    """Verification passes on an honest chain and reports its head."""
    fill(log)
    result = log.verify()
    assert result.ok
    assert result.checked == {"global": 5}
    assert result.heads["global"] == log.list(limit=1)[0].hash


# --- the decorator ------------------------------------------------------------------------


def test_the_decorator_records_success_and_failure(log: AuditLog) -> None:
    """``@audit_action`` records each call with tenant, subject and redacted changes."""

    @audit_action("config.update", log=log)
    def update_configuration(user_id: str, changes: dict[str, object], tenant_id: str) -> str:
        if changes.get("fail"):
            raise RuntimeError(TOKEN)
        return "ok"

    with acting_as(ALICE):
        assert update_configuration("u1", {"slack_bot_token": TOKEN}, tenant_id="acme") == "ok"
        with pytest.raises(RuntimeError):
            update_configuration("u1", {"fail": True}, tenant_id="acme")
    failure, success = log.list()
    assert (success.action, success.outcome, success.actor, success.tenant, success.subject) == (
        "config.update",
        "success",
        "alice",
        "acme",
        "u1",
    )
    assert (failure.outcome, failure.error) == ("failure", "RuntimeError")
    assert_no_secret(str([e.as_dict() for e in log.list()]), TOKEN)


def test_the_decorator_works_on_async_functions(log: AuditLog) -> None:
    """An async function is recorded after it completes, as the actor of its caller."""

    @audit_action("thing.do", log=log)
    async def do(tenant_id: str) -> int:
        return 7

    async def main() -> int:
        with acting_as(ALICE):
            return await do("acme")

    assert asyncio.run(main()) == 7
    (entry,) = log.list()
    assert (entry.action, entry.actor, entry.tenant) == ("thing.do", "alice", "acme")


# --- concurrency --------------------------------------------------------------------------

WORKERS, EACH = 4, 25


def _append_from_process(url: str, worker: int) -> None:
    database = Database(create_engine(url))
    log = AuditLog(database)
    with acting_as(Actor(f"worker{worker}")):
        for number in range(EACH):
            log.record("test.concurrent", target=f"{worker}:{number}")
    database.dispose()


def test_concurrent_appends_from_processes_keep_one_chain(postgres_url: str) -> None:
    """Processes appending at once on PostgreSQL produce one unbroken chain."""
    database = Database(create_engine(postgres_url))
    upgrade(database.engine)
    AuditLog(database).pseudonym("warm-up")  # the key is made once, before the race
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_append_from_process, args=(postgres_url, n)) for n in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    result = AuditLog(database).verify()
    database.dispose()
    assert result.breach is None
    assert result.checked == {"global": WORKERS * EACH}


def test_concurrent_appends_from_threads_keep_one_chain(database: Database) -> None:
    """Threads appending at once (each its own connection) produce one unbroken chain."""
    log = AuditLog(database)
    log.pseudonym("warm-up")
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            with acting_as(Actor(f"t{worker}")):
                for number in range(EACH):
                    log.record("test.concurrent", target=f"{worker}:{number}")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    result = log.verify()
    assert result.ok
    assert result.checked == {"global": WORKERS * EACH}


def test_the_pseudonym_key_is_wrapped_by_the_master_key(tmp_path: Path, master_keys: str) -> None:
    """With a master key, the stored pseudonym key is encrypted, and pseudonyms are stable."""
    from slack_tools.configs.security import ValueCipher, parse_keys  # noqa: PLC0415
    from slack_tools.storage.tables import audit_keys  # noqa: PLC0415

    database = Database(create_engine(f"sqlite:///{tmp_path / 'k.db'}"))
    upgrade(database.engine)
    cipher = ValueCipher(parse_keys([master_keys], "test"))
    first = AuditLog(database, cipher).pseudonym("alice")
    with database.engine.connect() as connection:
        stored = connection.execute(sa.select(audit_keys.c.wrapped)).scalar_one()
    assert stored.startswith("enc:v1:")
    assert AuditLog(database, cipher).pseudonym("alice") == first
    database.dispose()
