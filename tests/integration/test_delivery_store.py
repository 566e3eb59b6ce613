"""The delivery outbox against real databases: writes, HA dedup, claims, records, dead letters."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from slack_tools.storage import create_engine, upgrade
from slack_tools.storage.database import write_transaction
from slack_tools.storage.delivery import (
    ChannelWork,
    Claimed,
    DeadLetter,
    DeliveryState,
    GroupChange,
    GroupResult,
    Merge,
    Sent,
    StoredGroup,
    TargetWrite,
    WriteOutcome,
    bury,
    claim,
    dead_letters,
    hold,
    hold_unsent,
    load_groups,
    prune,
    queue_stats,
    ready_channels,
    record_sent,
    release,
    replay,
    utc,
    write_group,
)
from slack_tools.storage.scope import ALL_TENANTS
from slack_tools.storage.tables import alert_groups, deliveries

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
TENANT = "acme"
OTHER = "globex"
OPS = TargetWrite("#ops", "en_US", passes_threshold=True)
DEV = TargetWrite("#dev", "fr_FR", passes_threshold=True)
NOISE = TargetWrite("#noise", "en_US", passes_threshold=False)


def at(seconds: float) -> datetime:
    """T0 plus some seconds: every test passes explicit times, never the clock."""
    return T0 + timedelta(seconds=seconds)


def change(status: str = "firing", label: str = "a") -> GroupChange:
    """A group state whose hash depends on its status and alerts, as the ingest computes it."""
    alerts = [{"fingerprint": "f1", "status": status, "labels": {"alertname": label}}]
    digest = hashlib.sha256(json.dumps([status, alerts], sort_keys=True).encode()).hexdigest()
    return GroupChange(status, digest[:32], alerts, {"receiver": "slack"})


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated database on each backend, disposed afterwards."""
    engine = create_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def write(
    engine: Engine,
    *,
    status: str = "firing",
    label: str = "a",
    tenant: str = TENANT,
    group: str = "g1",
    targets: Sequence[TargetWrite] = (OPS,),
    now: datetime = T0,
    merge: Merge | None = None,
) -> GroupResult:
    """Write one group state in its own transaction, replacing what was stored."""
    new = change(status, label)
    with write_transaction(engine) as connection:
        return write_group(
            connection,
            tenant_id=tenant,
            group_hash=group,
            group_key=f'{{}}:{{alertname="{group}"}}',
            source="alertmanager",
            merge=merge or (lambda _stored: new),
            targets=targets,
            now=now,
        )


def take(
    engine: Engine,
    *,
    now: datetime,
    owner: str = "w1",
    tenant: str = TENANT,
    channel: str = "#ops",
    limit: int = 10,
) -> list[Claimed]:
    """Claim ready deliveries of one channel with a 30 s lease."""
    with write_transaction(engine) as connection:
        return claim(
            connection,
            tenant_id=tenant,
            channel=channel,
            now=now,
            owner=owner,
            lease_until=now + LEASE,
            limit=limit,
        )


def sent(claimed: Claimed, ts: str = "1700000000.000100", episode: int = 1) -> Sent:
    """What Slack accepted for a claimed delivery: the version that was claimed."""
    return Sent(claimed.id, claimed.version, "group", "C0123", ts, episode)


def record(engine: Engine, done: Sequence[Sent], now: datetime) -> None:
    with write_transaction(engine) as connection:
        record_sent(connection, done, now)


def deliver(engine: Engine, *, now: datetime, channel: str = "#ops", group: str = "g1") -> None:
    """Claim and record as sent the pending delivery of one group and channel."""
    claimed = [c for c in take(engine, now=now, channel=channel) if c.group_hash == group]
    assert len(claimed) == 1
    record(engine, [sent(claimed[0])], now)


def row(
    engine: Engine, channel: str = "#ops", *, tenant: str = TENANT, group: str = "g1"
) -> dict[str, Any] | None:
    """The delivery row of (tenant, group, channel), datetimes in UTC, or None."""
    with engine.connect() as connection:
        found = (
            connection.execute(
                sa.select(deliveries).where(
                    deliveries.c.tenant_id == tenant,
                    deliveries.c.group_hash == group,
                    deliveries.c.channel == channel,
                )
            )
            .mappings()
            .first()
        )
    if found is None:
        return None
    return {k: utc(v) if isinstance(v, datetime) else v for k, v in found.items()}


def must(found: dict[str, Any] | None) -> dict[str, Any]:
    assert found is not None
    return found


def group_row(engine: Engine, *, tenant: str = TENANT, group: str = "g1") -> StoredGroup | None:
    with engine.connect() as connection:
        return load_groups(connection, tenant, [group]).get(group)


def count(engine: Engine, table: sa.Table) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


# --- write_group ------------------------------------------------------------------------


def test_first_write_queues_one_pending_delivery_per_passing_target(engine: Engine) -> None:
    """A new firing group is stored at episode 1 with one pending v1 delivery per passing target."""
    result = write(engine, targets=(OPS, DEV, NOISE))

    assert result == GroupResult("g1", WriteOutcome.QUEUED, 2)
    for target in (OPS, DEV):
        delivery = must(row(engine, target.channel))
        assert delivery["state"] == DeliveryState.PENDING
        assert delivery["locale"] == target.locale
        assert (delivery["version"], delivery["delivered_version"], delivery["attempts"]) == (
            1,
            0,
            0,
        )
        assert delivery["available_at"] == T0
        assert delivery["pending_since"] == T0
        assert delivery["lease_owner"] is None
    assert row(engine, "#noise") is None
    stored = group_row(engine)
    assert stored is not None
    assert (stored.status, stored.episode, stored.state_hash) == (
        "firing",
        1,
        change().state_hash,
    )
    assert stored.group_key == '{}:{alertname="g1"}'
    assert stored.source == "alertmanager"
    assert stored.alerts == change().alerts
    assert stored.meta == {"receiver": "slack"}
    assert stored.received_at == T0


def test_identical_state_again_is_duplicate_and_bumps_nothing(engine: Engine) -> None:
    """The same state written again (an HA copy) is DUPLICATE and touches neither group nor row."""
    write(engine, targets=(OPS, DEV))

    again = write(engine, targets=(OPS, DEV), now=at(60))

    assert again == GroupResult("g1", WriteOutcome.DUPLICATE, 0)
    for channel in ("#ops", "#dev"):
        delivery = must(row(engine, channel))
        assert (delivery["version"], delivery["updated_at"]) == (1, T0)
    stored = group_row(engine)
    assert stored is not None
    assert stored.updated_at == T0


def test_changed_state_bumps_version_of_the_same_row(engine: Engine) -> None:
    """A new state bumps each target's version on the existing row and takes the new locale."""
    write(engine, targets=(OPS, DEV))

    result = write(engine, label="b", targets=(OPS, TargetWrite("#dev", "de_DE", True)), now=at(60))

    assert result == GroupResult("g1", WriteOutcome.QUEUED, 2)
    assert count(engine, deliveries) == 2
    assert must(row(engine, "#ops"))["version"] == 2
    dev = must(row(engine, "#dev"))
    assert (dev["version"], dev["locale"], dev["updated_at"]) == (2, "de_DE", at(60))
    assert dev["pending_since"] == T0
    stored = group_row(engine)
    assert stored is not None
    assert (stored.state_hash, stored.episode) == (change(label="b").state_hash, 1)


@pytest.mark.parametrize(
    ("status", "targets"),
    [
        pytest.param("resolved", (OPS,), id="resolved-never-posted"),
        pytest.param("firing", (NOISE,), id="firing-below-threshold"),
        pytest.param("firing", (), id="firing-no-route"),
    ],
)
def test_group_no_channel_must_hear_of_is_stored_unrouted(
    engine: Engine, status: str, targets: Sequence[TargetWrite]
) -> None:
    """A group no channel is to be told of is stored, creates no delivery, and is UNROUTED."""
    result = write(engine, status=status, targets=targets)

    assert result == GroupResult("g1", WriteOutcome.UNROUTED, 0)
    assert count(engine, deliveries) == 0
    stored = group_row(engine)
    assert stored is not None
    assert stored.status == status


def test_below_threshold_target_only_bumps_an_existing_delivery(engine: Engine) -> None:
    """Below the threshold a channel already told hears of the change; a new one is not created."""
    write(engine, targets=(OPS,))

    below = (TargetWrite("#ops", "en_US", False), TargetWrite("#dev", "en_US", False))
    result = write(engine, label="b", targets=below, now=at(60))

    assert result == GroupResult("g1", WriteOutcome.QUEUED, 1)
    assert must(row(engine, "#ops"))["version"] == 2
    assert row(engine, "#dev") is None


def test_write_that_creates_one_delivery_and_bumps_another_counts_both(engine: Engine) -> None:
    """A change that bumps an existing row and creates a new one is QUEUED for two deliveries."""
    write(engine, targets=(OPS,))

    below_ops = TargetWrite("#ops", "en_US", passes_threshold=False)
    result = write(engine, label="b", targets=(below_ops, DEV), now=at(60))

    assert result == GroupResult("g1", WriteOutcome.QUEUED, 2)
    assert (must(row(engine, "#ops"))["version"], must(row(engine, "#dev"))["version"]) == (2, 1)


def test_resolve_makes_a_delivered_row_pending_again(engine: Engine) -> None:
    """A resolve bumps the delivered row to a new pending version, and the claim carries the ts."""
    write(engine, targets=(OPS,))
    deliver(engine, now=at(1))

    result = write(engine, status="resolved", targets=(OPS,), now=at(60))

    assert result == GroupResult("g1", WriteOutcome.QUEUED, 1)
    delivery = must(row(engine))
    assert (delivery["state"], delivery["version"], delivery["delivered_version"]) == (
        DeliveryState.PENDING,
        2,
        1,
    )
    assert delivery["pending_since"] == at(60)
    (claimed,) = take(engine, now=at(61))
    assert (claimed.version, claimed.message_kind, claimed.message_channel_id) == (
        2,
        "group",
        "C0123",
    )
    assert (claimed.message_ts, claimed.message_episode) == ("1700000000.000100", 1)
    assert claimed.pending_since == at(60)


@pytest.mark.parametrize(
    ("statuses", "episode"),
    [
        (["firing"], 1),
        (["firing", "resolved"], 1),
        (["firing", "firing"], 1),
        (["firing", "resolved", "firing"], 2),
        (["firing", "resolved", "resolved", "firing"], 2),
        (["firing", "resolved", "firing", "resolved", "firing"], 3),
    ],
)
def test_episode_increments_only_when_a_resolved_group_fires_again(
    engine: Engine, statuses: list[str], episode: int
) -> None:
    """Each resolved → firing transition starts a new episode; other changes keep it."""
    for step, status in enumerate(statuses):
        write(engine, status=status, label=f"v{step}", now=at(step))

    stored = group_row(engine)
    assert stored is not None
    assert (stored.status, stored.episode) == (statuses[-1], episode)


@pytest.mark.parametrize("status", ["firing", "resolved"])
def test_new_change_revives_a_dead_delivery(engine: Engine, status: str) -> None:
    """A change to a group revives its dead delivery: pending now, attempts and error reset."""
    write(engine)
    (claimed,) = take(engine, now=at(1))
    with write_transaction(engine) as connection:
        bury(connection, [claimed.id], owner="w1", reason="channel_not_found", now=at(2))

    result = write(engine, status=status, label="b", now=at(60))

    assert result == GroupResult("g1", WriteOutcome.QUEUED, 1)
    delivery = must(row(engine))
    assert delivery["state"] == DeliveryState.PENDING
    assert (delivery["attempts"], delivery["last_error"], delivery["version"]) == (0, None, 2)
    assert delivery["available_at"] == at(60)
    with engine.connect() as connection:
        assert dead_letters(connection, ALL_TENANTS) == []
    assert [c.id for c in take(engine, now=at(60))] == [claimed.id]


def test_change_keeps_the_backoff_of_a_retrying_delivery(engine: Engine) -> None:
    """A change to a delivery waiting out a backoff bumps its version but keeps its available_at."""
    write(engine)
    (claimed,) = take(engine, now=at(1))
    with write_transaction(engine) as connection:
        release(
            connection,
            [claimed.id],
            owner="w1",
            available_at=at(120),
            count_attempt=True,
            error="timeout",
            now=at(2),
        )

    write(engine, label="b", now=at(10))

    delivery = must(row(engine))
    assert (delivery["version"], delivery["attempts"], delivery["last_error"]) == (
        2,
        1,
        "timeout",
    )
    assert delivery["available_at"] == at(120)
    assert take(engine, now=at(60)) == []


def test_merge_receives_the_stored_group(engine: Engine) -> None:
    """The merge callback gets None for a new group, then the stored group to merge into."""
    seen: list[StoredGroup | None] = []

    def merge_alerts(stored: StoredGroup | None) -> GroupChange:
        seen.append(stored)
        known = {a["fingerprint"]: a for a in (stored.alerts if stored else [])}
        known[f"f{len(seen)}"] = {"fingerprint": f"f{len(seen)}", "status": "firing"}
        alerts = sorted(known.values(), key=lambda a: a["fingerprint"])
        digest = hashlib.sha256(json.dumps(alerts, sort_keys=True).encode()).hexdigest()[:32]
        meta = {"writes": len(seen), "previous": stored.meta if stored else None}
        return GroupChange("firing", digest, alerts, meta)

    write(engine, merge=merge_alerts)
    write(engine, merge=merge_alerts, now=at(60))

    first, second = seen
    assert first is None
    assert second is not None
    assert (second.tenant_id, second.group_hash, second.status, second.episode) == (
        TENANT,
        "g1",
        "firing",
        1,
    )
    assert second.alerts == [{"fingerprint": "f1", "status": "firing"}]
    assert second.meta == {"writes": 1, "previous": None}
    assert second.received_at == T0
    stored = group_row(engine)
    assert stored is not None
    assert [a["fingerprint"] for a in stored.alerts] == ["f1", "f2"]
    assert stored.meta == {"writes": 2, "previous": {"writes": 1, "previous": None}}
    assert must(row(engine))["version"] == 2


def test_load_groups_reads_only_the_tenants_groups(engine: Engine) -> None:
    """load_groups returns the asked tenant's groups by hash, never another tenant's."""
    write(engine, group="g1")
    write(engine, group="g2", status="resolved")
    write(engine, tenant=OTHER, group="g1", label="other")
    write(engine, tenant=OTHER, group="g3")

    with engine.connect() as connection:
        found = load_groups(connection, TENANT, ["g1", "g2", "g3", "g1"])
        nothing = load_groups(connection, TENANT, [])

    assert sorted(found) == ["g1", "g2"]
    assert all(g.tenant_id == TENANT for g in found.values())
    assert found["g1"].state_hash == change().state_hash
    assert found["g2"].status == "resolved"
    assert nothing == {}


# --- HA duplicates across instances ----------------------------------------------------


def race(
    url: str, work: Callable[[Engine, int], list[WriteOutcome]], *, rounds: int
) -> list[WriteOutcome]:
    """Run ``work(engine, round)`` from two instances (engines, threads) in lockstep rounds."""
    barrier = threading.Barrier(2)
    engines = [create_engine(url), create_engine(url)]

    def instance(engine: Engine) -> list[WriteOutcome]:
        outcomes: list[WriteOutcome] = []
        for number in range(rounds):
            barrier.wait(timeout=60)
            outcomes.extend(work(engine, number))
        return outcomes

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(instance, e) for e in engines]
            return [outcome for f in futures for outcome in f.result()]
    finally:
        for engine in engines:
            engine.dispose()


def test_same_state_from_two_instances_is_queued_once(engine: Engine, database_url: str) -> None:
    """Two instances writing one group state many times at once queue it exactly once (v1)."""
    outcomes = race(database_url, lambda e, _n: [write(e, targets=(OPS, DEV)).outcome], rounds=30)

    versions = {c: must(row(engine, c))["version"] for c in ("#ops", "#dev")}
    assert (Counter(outcomes), versions) == (
        {WriteOutcome.QUEUED: 1, WriteOutcome.DUPLICATE: 59},
        {"#ops": 1, "#dev": 1},
    )
    assert count(engine, deliveries) == 2


def test_new_groups_raced_by_two_instances_are_each_queued_once(
    engine: Engine, database_url: str
) -> None:
    """Each new group both instances write at the same moment is created and queued once."""
    groups = 20

    def both_write_new_group(instance: Engine, number: int) -> list[WriteOutcome]:
        return [write(instance, group=f"g{number}").outcome for _ in range(2)]

    outcomes = race(database_url, both_write_new_group, rounds=groups)

    versions = Counter(must(row(engine, group=f"g{n}"))["version"] for n in range(groups))
    assert (Counter(outcomes), versions) == (
        {WriteOutcome.QUEUED: groups, WriteOutcome.DUPLICATE: 3 * groups},
        {1: groups},
    )
    assert count(engine, alert_groups) == groups


@pytest.mark.postgres
def test_instance_that_loses_the_first_insert_sees_a_duplicate(postgres_url: str) -> None:
    """An instance whose insert of a new group conflicts with another's re-reads it: DUPLICATE."""
    first, second = create_engine(postgres_url), create_engine(postgres_url)
    upgrade(first)
    read_nothing = threading.Event()

    def merge_after_reading(_stored: StoredGroup | None) -> GroupChange:
        read_nothing.set()  # the second instance read before the first committed
        return change()

    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            with write_transaction(first) as connection:
                winner = write_group(
                    connection,
                    tenant_id=TENANT,
                    group_hash="g1",
                    group_key="{}",
                    source="alertmanager",
                    merge=lambda _stored: change(),
                    targets=(OPS,),
                    now=T0,
                )
                loser_future = pool.submit(write, second, merge=merge_after_reading, now=at(1))
                assert read_nothing.wait(timeout=30)
            loser = loser_future.result(timeout=60)
        delivery = must(row(first))
    finally:
        first.dispose()
        second.dispose()

    assert (winner.outcome, loser, delivery["version"]) == (
        WriteOutcome.QUEUED,
        GroupResult("g1", WriteOutcome.DUPLICATE, 0),
        1,
    )


# --- claims -----------------------------------------------------------------------------


def test_leased_delivery_is_taken_over_only_after_its_lease(engine: Engine) -> None:
    """A crashed worker's claim is not claimable while leased and is taken over after it."""
    write(engine)
    (first,) = take(engine, now=at(1), owner="crashed")

    assert take(engine, now=at(10), owner="w2") == []
    assert take(engine, now=at(1) + LEASE, owner="w2") == []
    (taken,) = take(engine, now=at(32), owner="w2")

    assert (taken.id, taken.version, taken.attempts) == (first.id, 1, 0)
    delivery = must(row(engine))
    assert (delivery["lease_owner"], delivery["lease_until"]) == ("w2", at(32) + LEASE)


def test_former_owner_cannot_release_or_bury_after_takeover(engine: Engine) -> None:
    """Once another worker took a lease over, the old owner's release and bury change nothing."""
    write(engine)
    (first,) = take(engine, now=at(1), owner="old")
    take(engine, now=at(40), owner="new")

    with write_transaction(engine) as connection:
        release(
            connection,
            [first.id],
            owner="old",
            available_at=at(500),
            count_attempt=True,
            error="late",
            now=at(41),
        )
        bury(connection, [first.id], owner="old", reason="late", now=at(41))

    delivery = must(row(engine))
    assert (delivery["state"], delivery["lease_owner"], delivery["attempts"]) == (
        DeliveryState.PENDING,
        "new",
        0,
    )
    assert delivery["last_error"] is None


def test_two_claimers_never_get_the_same_row(engine: Engine, database_url: str) -> None:
    """Two workers on two engines claiming one channel at once split the rows without overlap."""
    total = 60
    for number in range(total):
        write(engine, group=f"g{number:02}", now=at(number))
    now = at(100)
    barrier = threading.Barrier(2)

    def worker(owner: str) -> list[int]:
        instance = create_engine(database_url)
        got: list[int] = []
        try:
            barrier.wait(timeout=60)
            while batch := take(instance, now=now, owner=owner, limit=3):
                got.extend(c.id for c in batch)
        finally:
            instance.dispose()
        return got

    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = (f.result() for f in [pool.submit(worker, o) for o in ("w1", "w2")])

    assert not set(first) & set(second)
    assert len(first) + len(second) == total
    with engine.connect() as connection:
        rows = connection.execute(sa.select(deliveries.c.id, deliveries.c.lease_owner)).all()
    owners = {r.id: r.lease_owner for r in rows}
    assert {i for i, o in owners.items() if o == "w1"} == set(first)
    assert {i for i, o in owners.items() if o == "w2"} == set(second)


def test_claim_takes_the_oldest_first_up_to_the_limit(engine: Engine) -> None:
    """claim leases the channel's oldest ready deliveries first, at most ``limit``."""
    for number, offset in enumerate((30, 10, 20, 0)):
        write(engine, group=f"g{number}", now=at(offset))
    write(engine, group="elsewhere", targets=(DEV,), now=at(0))

    claimed = take(engine, now=at(60), limit=3)

    assert [c.group_hash for c in claimed] == ["g3", "g1", "g2"]
    assert {c.channel for c in claimed} == {"#ops"}
    assert [c.group_hash for c in take(engine, now=at(60))] == ["g0"]


@pytest.mark.parametrize(
    ("limit", "exclude", "expected"),
    [
        pytest.param(
            10,
            (),
            [(TENANT, "#b", 2, 0), (TENANT, "#a", 1, 60), (OTHER, "#a", 1, 120)],
            id="all",
        ),
        pytest.param(10, (TENANT,), [(OTHER, "#a", 1, 120)], id="exclude-tenant"),
        pytest.param(10, (TENANT, OTHER), [], id="exclude-all"),
        pytest.param(2, (), [(TENANT, "#b", 2, 0), (TENANT, "#a", 1, 60)], id="limit"),
    ],
)
def test_ready_channels_lists_each_channel_once_oldest_first(
    engine: Engine,
    limit: int,
    exclude: tuple[str, ...],
    expected: list[tuple[str, str, int, int]],
) -> None:
    """ready_channels gives one entry per (tenant, channel) with its count, oldest first."""
    write(engine, group="g1", targets=(TargetWrite("#b", "en_US", True),), now=at(0))
    write(engine, group="g2", targets=(TargetWrite("#b", "en_US", True),), now=at(30))
    write(engine, group="g3", targets=(TargetWrite("#a", "en_US", True),), now=at(60))
    write(
        engine, tenant=OTHER, group="g1", targets=(TargetWrite("#a", "en_US", True),), now=at(120)
    )

    with engine.connect() as connection:
        ready = ready_channels(connection, at(300), limit, exclude_tenants=exclude)

    assert ready == [ChannelWork(t, c, n, at(s)) for t, c, n, s in expected]


def test_ready_channels_and_claim_skip_leased_waiting_and_finished_rows(engine: Engine) -> None:
    """Leased, not-yet-available, done and dead rows are neither ready nor claimable."""
    for group in ("leased", "waiting", "done", "dead", "ready"):
        write(engine, group=group, now=at(0))
    by_group = {c.group_hash: c for c in take(engine, now=at(1), owner="w1")}
    with write_transaction(engine) as connection:
        release(
            connection,
            [by_group["waiting"].id],
            owner="w1",
            available_at=at(600),
            count_attempt=False,
            error=None,
            now=at(1),
        )
        record_sent(connection, [sent(by_group["done"])], at(1))
        bury(connection, [by_group["dead"].id], owner="w1", reason="is_archived", now=at(1))
        release(
            connection,
            [by_group["ready"].id],
            owner="w1",
            available_at=at(1),
            count_attempt=False,
            error=None,
            now=at(1),
        )

    with engine.connect() as connection:
        ready = ready_channels(connection, at(10), 10)

    assert ready == [ChannelWork(TENANT, "#ops", 1, at(1))]
    assert [c.group_hash for c in take(engine, now=at(10), owner="w2")] == ["ready"]


def test_delivery_available_in_the_future_is_not_claimable(engine: Engine) -> None:
    """A delivery rescheduled for later is claimable from its available_at, not before."""
    write(engine)
    (claimed,) = take(engine, now=at(1))
    with write_transaction(engine) as connection:
        release(
            connection,
            [claimed.id],
            owner="w1",
            available_at=at(60),
            count_attempt=False,
            error=None,
            now=at(2),
        )

    assert take(engine, now=at(59)) == []
    with engine.connect() as connection:
        assert ready_channels(connection, at(59), 10) == []
    assert [c.id for c in take(engine, now=at(60))] == [claimed.id]


# --- record_sent, release, bury, replay -------------------------------------------------


def test_record_sent_marks_done_when_the_version_did_not_move(engine: Engine) -> None:
    """A send of the current version makes the row done with the message reference stored."""
    write(engine)
    (claimed,) = take(engine, now=at(1))

    record(engine, [sent(claimed, ts="111.222", episode=1)], at(2))

    delivery = must(row(engine))
    assert delivery["state"] == DeliveryState.DONE
    assert (delivery["delivered_version"], delivery["attempts"], delivery["last_error"]) == (
        1,
        0,
        None,
    )
    assert (delivery["lease_owner"], delivery["lease_until"], delivery["pending_since"]) == (
        None,
        None,
        None,
    )
    assert (delivery["message_kind"], delivery["message_channel_id"]) == ("group", "C0123")
    assert (delivery["message_ts"], delivery["message_episode"]) == ("111.222", 1)
    assert delivery["delivered_at"] == at(2)
    assert take(engine, now=at(100)) == []
    with engine.connect() as connection:
        assert queue_stats(connection).pending == 0


def test_record_sent_keeps_pending_when_a_change_arrived_during_the_send(engine: Engine) -> None:
    """A change written while a send was in flight leaves the row pending for the new version."""
    write(engine)
    (claimed,) = take(engine, now=at(1))
    write(engine, status="resolved", now=at(2))

    record(engine, [sent(claimed, ts="111.222")], at(3))

    delivery = must(row(engine))
    assert delivery["state"] == DeliveryState.PENDING
    assert (delivery["version"], delivery["delivered_version"]) == (2, 1)
    assert delivery["message_ts"] == "111.222"
    assert delivery["lease_owner"] is None
    (again,) = take(engine, now=at(3), owner="w2")
    assert (again.version, again.message_ts, again.message_channel_id) == (2, "111.222", "C0123")


@pytest.mark.parametrize(
    ("count_attempt", "error", "attempts", "last_error"),
    [
        (True, "timeout", 2, "timeout"),
        (True, None, 2, "first"),
        (False, None, 1, "first"),
        (False, "ratelimited", 1, "ratelimited"),
    ],
)
def test_release_counts_an_attempt_only_when_asked_and_keeps_the_last_error(
    engine: Engine, count_attempt: bool, error: str | None, attempts: int, last_error: str
) -> None:
    """release frees the lease, reschedules, counts an attempt if asked, keeps the last error."""
    write(engine)
    (claimed,) = take(engine, now=at(1))
    with write_transaction(engine) as connection:
        release(
            connection,
            [claimed.id],
            owner="w1",
            available_at=at(2),
            count_attempt=True,
            error="first",
            now=at(2),
        )
    take(engine, now=at(3))

    with write_transaction(engine) as connection:
        release(
            connection,
            [claimed.id],
            owner="w1",
            available_at=at(120),
            count_attempt=count_attempt,
            error=error,
            now=at(4),
        )

    delivery = must(row(engine))
    assert (delivery["attempts"], delivery["last_error"]) == (attempts, last_error)
    assert (delivery["lease_owner"], delivery["lease_until"]) == (None, None)
    assert (delivery["state"], delivery["available_at"]) == (DeliveryState.PENDING, at(120))
    assert take(engine, now=at(119), owner="w2") == []
    (again,) = take(engine, now=at(120), owner="w2")
    assert again.attempts == attempts


@pytest.mark.parametrize("scope", [None, ""])
def test_a_query_without_a_tenant_scope_is_refused_not_read_as_all(
    engine: Engine, scope: str | None
) -> None:
    """Logical isolation: forgetting the tenant is an error, never every tenant's rows."""
    with engine.connect() as connection, pytest.raises(ValueError, match="tenant scope"):
        dead_letters(connection, scope)  # type: ignore[arg-type]
    with write_transaction(engine) as connection, pytest.raises(ValueError, match="tenant scope"):
        replay(connection, scope, now=at(1))  # type: ignore[arg-type]


def test_bury_makes_a_dead_letter_with_its_reason(engine: Engine) -> None:
    """bury turns a claimed delivery into a dead letter listed with reason, attempts and group."""
    write(engine, targets=(OPS, DEV))
    write(engine, tenant=OTHER, group="g9")
    (ops,) = take(engine, now=at(1))
    (other,) = take(engine, now=at(1), tenant=OTHER)
    with write_transaction(engine) as connection:
        bury(connection, [ops.id], owner="w1", reason="channel_not_found", now=at(2))
        bury(connection, [other.id], owner="w1", reason="x" * 300, now=at(3))

    with engine.connect() as connection:
        everything = dead_letters(connection, ALL_TENANTS)
        mine = dead_letters(connection, TENANT)

    expected = DeadLetter(
        ops.id, TENANT, '{}:{alertname="g1"}', "#ops", "channel_not_found", 1, at(2)
    )
    assert mine == [expected]
    assert [d.id for d in everything] == [other.id, ops.id]
    assert everything[0].reason == "x" * 200
    assert take(engine, now=at(100)) == []
    assert must(row(engine))["state"] == DeliveryState.DEAD
    assert must(row(engine, "#dev"))["state"] == DeliveryState.PENDING


@pytest.mark.parametrize(
    ("selector", "replayed"),
    [
        pytest.param({"ids": ["a1"]}, {"a1"}, id="by-id"),
        pytest.param({"ids": ["a1", "b1"]}, {"a1", "b1"}, id="by-ids-across-tenants"),
        pytest.param({"ids": ["live"]}, set(), id="by-id-not-dead"),
        pytest.param({"scope": TENANT}, {"a1", "a2"}, id="by-tenant"),
        pytest.param({"ids": ["b1"], "scope": TENANT}, set(), id="id-of-other-tenant"),
        pytest.param({}, {"a1", "a2", "b1"}, id="all"),
    ],
)
def test_replay_requeues_the_selected_dead_letters(
    engine: Engine, selector: dict[str, Any], replayed: set[str]
) -> None:
    """replay by id, by tenant or all makes exactly those dead letters pending again, reset."""
    for tenant, group in ((TENANT, "a1"), (TENANT, "a2"), (OTHER, "b1"), (TENANT, "live")):
        write(engine, tenant=tenant, group=group)
    ids: dict[str, int] = {}
    for tenant in (TENANT, OTHER):
        for claimed in take(engine, now=at(1), tenant=tenant):
            ids[claimed.group_hash] = claimed.id
    with write_transaction(engine) as connection:
        dead = [ids[g] for g in ("a1", "a2", "b1")]
        bury(connection, dead, owner="w1", reason="invalid_auth", now=at(2))
    scope = selector.get("scope", ALL_TENANTS)
    chosen = [ids[g] for g in selector["ids"]] if "ids" in selector else None

    with write_transaction(engine) as connection:
        number = replay(connection, scope, now=at(100), ids=chosen)

    assert number == len(replayed)
    for group, tenant in (("a1", TENANT), ("a2", TENANT), ("b1", OTHER)):
        delivery = must(row(engine, tenant=tenant, group=group))
        if group in replayed:
            assert delivery["state"] == DeliveryState.PENDING
            assert (delivery["attempts"], delivery["last_error"]) == (0, None)
            assert delivery["available_at"] == at(100)
            assert delivery["pending_since"] == T0
        else:
            assert (delivery["state"], delivery["attempts"]) == (DeliveryState.DEAD, 1)
            assert delivery["last_error"] == "invalid_auth"
    live = must(row(engine, group="live"))
    assert (live["state"], live["lease_owner"]) == (DeliveryState.PENDING, "w1")
    with engine.connect() as connection:
        assert {d.id for d in dead_letters(connection, ALL_TENANTS)} == {
            ids[g] for g in ("a1", "a2", "b1") if g not in replayed
        }


# --- prune and stats --------------------------------------------------------------------


def test_prune_deletes_only_old_done_deliveries_of_resolved_groups(engine: Engine) -> None:
    """prune removes old done deliveries of resolved groups and groups left without any."""

    def step(group: str, status: str, now: float, *, send: bool) -> None:
        """Write a state of ``group`` to its own channel, then deliver it if asked."""
        write(
            engine,
            group=group,
            status=status,
            targets=(TargetWrite(f"#{group}", "en_US", True),),
            now=at(now),
        )
        if send:
            deliver(engine, now=at(now + 1), channel=f"#{group}", group=group)

    step("old-done", "firing", 0, send=True)  # resolved long ago, resolve delivered: both go
    step("old-done", "resolved", 2, send=True)
    write(engine, group="old-unrouted", status="resolved", now=at(0))  # never routed: group goes
    step("old-pending", "firing", 0, send=True)  # resolve not yet delivered: kept
    step("old-pending", "resolved", 2, send=False)
    step("old-dead", "firing", 0, send=False)  # dead letter: kept
    (dead,) = take(engine, now=at(1), channel="#old-dead")
    with write_transaction(engine) as connection:
        bury(connection, [dead.id], owner="w1", reason="not_in_channel", now=at(1))
    write(engine, group="old-dead", status="resolved", targets=(), now=at(2))
    step("old-firing", "firing", 0, send=True)  # firing for ages: never pruned
    step("recent", "firing", 0, send=True)  # resolved recently: kept
    step("recent", "resolved", 5000, send=True)

    with write_transaction(engine) as connection:
        deleted = prune(connection, before=at(3600))

    assert deleted == (1, 2)
    with engine.connect() as connection:
        groups = set(connection.execute(sa.select(alert_groups.c.group_hash)).scalars())
        left = set(connection.execute(sa.select(deliveries.c.group_hash)).scalars())
    assert groups == {"old-pending", "old-dead", "old-firing", "recent"}
    assert left == {"old-pending", "old-dead", "old-firing", "recent"}


def test_prune_never_deletes_a_firing_group(engine: Engine) -> None:
    """A firing group and its delivered row survive any cutoff: its message must still be edited."""
    write(engine, group="firing")
    deliver(engine, now=at(1), group="firing")
    write(engine, group="firing-unrouted", targets=(NOISE,))

    with write_transaction(engine) as connection:
        deleted = prune(connection, before=at(10**7))

    assert deleted == (0, 0)
    assert count(engine, alert_groups) == 2
    assert must(row(engine, group="firing"))["state"] == DeliveryState.DONE


def test_queue_stats_counts_pending_and_dead_per_tenant_and_oldest_pending(
    engine: Engine,
) -> None:
    """queue_stats counts pending and dead rows per tenant and reports the oldest pending time."""
    with engine.connect() as connection:
        empty = queue_stats(connection)
    assert (empty.pending_by_tenant, empty.dead_by_tenant, empty.oldest_pending_since) == (
        {},
        {},
        None,
    )

    write(engine, group="sent", now=at(0))
    deliver(engine, now=at(1), group="sent")
    write(engine, group="p1", targets=(OPS, DEV), now=at(10))
    write(engine, group="p2", now=at(20))
    write(engine, tenant=OTHER, group="p3", now=at(30))
    write(engine, tenant=OTHER, group="d1", targets=(DEV,), now=at(5))
    (dead,) = take(engine, now=at(40), tenant=OTHER, channel="#dev")
    with write_transaction(engine) as connection:
        bury(connection, [dead.id], owner="w1", reason="invalid_auth", now=at(41))

    with engine.connect() as connection:
        stats = queue_stats(connection)

    assert stats.pending_by_tenant == {TENANT: 3, OTHER: 1}
    assert stats.dead_by_tenant == {OTHER: 1}
    assert (stats.pending, stats.dead) == (4, 1)
    assert stats.oldest_pending_since == at(10)


# --- quota holds ------------------------------------------------------------------------


def test_a_held_delivery_waits_until_its_window_and_is_counted_held_once(engine: Engine) -> None:
    """Held: not claimable before ``until``; held again later, it is not new; sent, it is clear."""
    write(engine, now=at(0))
    [claimed] = take(engine, now=at(1))
    with write_transaction(engine) as connection:
        assert hold(connection, [claimed.id], owner="w1", until=at(60), now=at(1)) == 1
    assert take(engine, now=at(59)) == []
    [again] = take(engine, now=at(60))
    assert again.held_at == at(1)
    assert again.attempts == 0  # waiting for a quota is not a failed attempt
    with write_transaction(engine) as connection:
        assert hold(connection, [again.id], owner="w1", until=at(120), now=at(60)) == 0
    [last] = take(engine, now=at(120))
    record(engine, [sent(last)], at(121))
    assert must(row(engine))["held_at"] is None


def test_hold_unsent_holds_new_messages_but_never_the_update_of_a_sent_one(
    engine: Engine,
) -> None:
    """A group's resolve edits its message at once; a group never posted waits."""
    write(engine, group="sent", now=at(0))
    deliver(engine, now=at(1), group="sent")
    write(engine, group="sent", status="resolved", now=at(2))
    write(engine, group="new", now=at(2))
    with write_transaction(engine) as connection:
        held = [
            hold_unsent(connection, TENANT, group, until=at(60), now=at(2))
            for group in ("sent", "new")
        ]
    assert held == [0, 1]
    assert [c.group_hash for c in take(engine, now=at(3))] == ["sent"]
    assert must(row(engine, group="new"))["held_at"] == at(2)


def test_a_delivery_being_posted_is_not_held_so_its_resolve_goes_at_once(engine: Engine) -> None:
    """Over quota while the first post is in flight: the resolve that follows is an update."""
    write(engine, now=at(0))
    [posting] = take(engine, now=at(1))
    write(engine, status="resolved", now=at(2))
    with write_transaction(engine) as connection:
        assert hold_unsent(connection, TENANT, "g1", until=at(3600), now=at(2)) == 0
    record(engine, [sent(posting)], at(3))
    [resolve] = take(engine, now=at(3))
    assert resolve.message_ts is not None
    assert resolve.held_at is None
