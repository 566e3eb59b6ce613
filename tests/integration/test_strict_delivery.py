"""Strict isolation in the running service: alerts stored, delivered and kept in the tenant's
own database.

A strict tenant (``acme``) and a logical one (``globex``) share one service. The
service runs in process (its app over httpx's ASGI transport, its writer threads and
dispatcher for real) and delivers to the Slack fake running as its own server. Each
test runs with a SQLite shared database (the strict tenant in its own file under the
data directory) and with PostgreSQL (the strict tenant in a database of its own on
the same server, dropped afterwards).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from slack_tools.alerts import sources
from slack_tools.alerts.models import Source
from slack_tools.alerts.routing import route_group
from slack_tools.configs import ConfigRuntime
from slack_tools.configs.tenant_manager import TenantManager
from slack_tools.service import ingest, retention
from slack_tools.service.app import create_app
from slack_tools.service.container import Service, build_service
from slack_tools.storage import delivery
from slack_tools.storage.database import write_transaction
from slack_tools.storage.tables import alert_groups, audit_entries, deliveries, usage_daily
from tests.conftest import POSTGRES_URL
from tests.e2e.harness import FAST_DELIVERY, FakeSlackServer, alertmanager_payload, start_fake
from tests.helpers import JWT_SECRET_VARIABLE, TEST_JWT_SECRET
from tests.integration.test_ingest_http import eventually
from tests.slack_signing import INTERACTIONS, SIGNING_SECRET, acknowledge_payload, form, signed

MakeRuntime = Callable[..., ConfigRuntime]
StrictUrl = Callable[[str], "str | None"]

STRICT = "acme"
LOGICAL = "globex"
ACME_TOKEN = "xoxb-acme-strict-token"  # nosec B105 - the fake's workspace token
GLOBEX_TOKEN = "xoxb-globex-logical-token"  # nosec B105 - the fake's workspace token
ALERTMANAGER = "/api/v1/alerts/alertmanager"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeSlackServer]:
    server = start_fake(
        tmp_path, "--workspace", f"acme={ACME_TOKEN}", "--workspace", f"globex={GLOBEX_TOKEN}"
    )
    yield server
    server.process.kill()


@dataclass
class Stack:
    """The service, an HTTP client on its app, and each tenant's API key."""

    runtime: ConfigRuntime
    service: Service
    client: httpx.AsyncClient
    elsewhere: ConfigRuntime  # another process on the same databases
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def shared(self) -> Engine:
        return self.runtime.databases.shared.engine

    def own(self, tenant_id: str) -> Engine:
        return self.runtime.database_for(tenant_id).engine

    async def post(self, tenant_id: str, payload: Any, *, key: str | None = None) -> httpx.Response:
        return await self.client.post(
            ALERTMANAGER,
            json=payload,
            headers={"Authorization": f"Bearer {key or self.keys[tenant_id]}"},
        )


def settings(fake: FakeSlackServer) -> dict[str, str]:
    return {
        "SLACK_TOOLS__SLACK__MOCK": "false",
        "SLACK_TOOLS__SLACK__BASE_URL": fake.api,
        "SLACK_TOOLS__SLACK__SIGNING_SECRET": SIGNING_SECRET,
        JWT_SECRET_VARIABLE: TEST_JWT_SECRET,
        **FAST_DELIVERY,
    }


def create_tenant(
    runtime: ConfigRuntime, tenant_id: str, token: str, strict_url: StrictUrl | None
) -> str:
    """Create a tenant (strict when ``strict_url`` is given); its API key."""
    config = {"slack_channel": "#alerts", "slack_bot_token": token}
    if strict_url is not None:
        config["isolation"] = "strict"
    _, issued = TenantManager.create(
        tenant_id,
        config=config,
        runtime=runtime,
        database_url=strict_url(tenant_id) if strict_url is not None else None,
    )
    return issued.key


@pytest.fixture
async def stack(
    make_runtime: MakeRuntime, database_url: str, strict_url: StrictUrl, fake: FakeSlackServer
) -> AsyncIterator[Stack]:
    """A running service with strict tenant acme and logical tenant globex."""
    runtime = make_runtime(database_url=database_url, extra=settings(fake))
    elsewhere = make_runtime(database_url=database_url, extra=settings(fake))
    keys = {
        STRICT: create_tenant(runtime, STRICT, ACME_TOKEN, strict_url),
        LOGICAL: create_tenant(runtime, LOGICAL, GLOBEX_TOKEN, None),
    }
    service = build_service(runtime, port=1)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(service)), base_url="http://test"
    )
    await service.start()
    try:
        yield Stack(runtime, service, client, elsewhere, keys)
    finally:
        await service.close(1.0)
        await client.aclose()


def rows(engine: Engine, table: sa.Table, tenant_id: str) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(sa.select(table).where(table.c.tenant_id == tenant_id)))


async def delivered(stack: Stack, tenant_id: str) -> list[Any]:
    """The tenant's deliveries once all are done (in its own database), else []."""
    found = rows(stack.own(tenant_id), deliveries, tenant_id)
    return found if found and all(r.state == "done" for r in found) else []


async def test_each_tenant_is_stored_and_delivered_from_its_own_database(
    stack: Stack, fake: FakeSlackServer
) -> None:
    """The strict tenant's alert lives only in its database, the logical one's in the
    shared one; both reach Slack and both deliveries are recorded where they live."""
    assert stack.own(STRICT) is not stack.shared
    assert stack.own(LOGICAL) is stack.shared
    strict = await stack.post(STRICT, alertmanager_payload("StrictDiskFull"))
    logical = await stack.post(LOGICAL, alertmanager_payload("LogicalDiskFull"))
    assert strict.status_code == 202, strict.text
    assert logical.status_code == 202, logical.text
    assert strict.json()["groups"][0]["outcome"] == "queued"

    # Committed before the answer, each in its tenant's database, nowhere else.
    assert len(rows(stack.own(STRICT), alert_groups, STRICT)) == 1
    assert rows(stack.shared, alert_groups, STRICT) == []
    assert rows(stack.shared, deliveries, STRICT) == []
    assert rows(stack.shared, usage_daily, STRICT) == []
    assert rows(stack.own(STRICT), usage_daily, STRICT)
    assert len(rows(stack.shared, alert_groups, LOGICAL)) == 1
    assert rows(stack.own(STRICT), alert_groups, LOGICAL) == []

    def both() -> bool:
        texts = [str(m["attachments"]) for m in fake.messages()]
        return any("StrictDiskFull" in t for t in texts) and any(
            "LogicalDiskFull" in t for t in texts
        )

    await eventually(lambda: _sync(both), "both messages in Slack")
    strict_rows = await eventually(lambda: delivered(stack, STRICT), "acme's delivery recorded")
    logical_rows = await eventually(lambda: delivered(stack, LOGICAL), "globex's delivery")
    assert strict_rows[0].message_ts is not None
    assert logical_rows[0].message_ts is not None
    # Each message went to its own workspace's channel.
    by_text = {
        ("strict" if "StrictDiskFull" in str(m["attachments"]) else "logical"): m
        for m in fake.messages()
    }
    assert by_text["strict"]["ts"] == strict_rows[0].message_ts
    assert by_text["strict"]["team_id"] == fake.team_id("acme")
    assert by_text["logical"]["ts"] == logical_rows[0].message_ts
    assert by_text["logical"]["team_id"] == fake.team_id("globex")
    # What Slack accepted is counted in the tenant's own database.
    sent = sum(r.messages_sent for r in rows(stack.own(STRICT), usage_daily, STRICT))
    assert sent == 1
    assert rows(stack.shared, usage_daily, STRICT) == []


async def test_a_strict_tenants_key_posts_only_for_its_tenant(stack: Stack) -> None:
    """The key decides the tenant: acme's key stores into acme's database, never globex's."""
    response = await stack.post(LOGICAL, alertmanager_payload("Sneaky"), key=stack.keys[STRICT])
    assert response.status_code == 202
    assert response.json()["tenant"] == STRICT
    assert rows(stack.shared, alert_groups, LOGICAL) == []
    assert [r.group_key for r in rows(stack.own(STRICT), alert_groups, STRICT)] == [
        '{}:{alertname="Sneaky"}'
    ]


async def test_an_acknowledgement_lands_in_the_strict_tenants_database(
    stack: Stack, fake: FakeSlackServer
) -> None:
    """The button's tenant decides the database: the ack, and its audit entry, are there."""
    await stack.post(STRICT, alertmanager_payload("AckMe"))
    first = (await eventually(lambda: delivered(stack, STRICT), "acme's message"))[0]
    body = form(acknowledge_payload(STRICT, first.message_channel_id, first.message_ts))
    response = await stack.client.post(INTERACTIONS, content=body, headers=signed(body))
    assert response.status_code == 200, response.text
    assert response.json() == {"outcome": "recorded"}

    acked = rows(stack.own(STRICT), deliveries, STRICT)[0]
    assert acked.acked_ts == first.message_ts
    assert acked.acked_by == "U0ACKER01"
    entries = rows(stack.own(STRICT), audit_entries, STRICT)
    assert "alert.acknowledge" in [e.action for e in entries]
    with stack.shared.connect() as connection:
        shared_acks = connection.execute(
            sa.select(audit_entries.c.id).where(audit_entries.c.action == "alert.acknowledge")
        ).all()
    assert shared_acks == []

    # The dispatcher then edits the message in Slack, from the tenant's database.
    def edited() -> bool:
        return any(r["ok"] for r in fake.requests("chat.update"))

    await eventually(lambda: _sync(edited), "the acknowledged message edited")
    await eventually(lambda: delivered(stack, STRICT), "the edit recorded")


async def test_prune_and_retention_act_on_the_strict_tenants_database(
    stack: Stack, fake: FakeSlackServer
) -> None:
    """Housekeeping of delivered, resolved groups and retention both reach the tenant's
    own database."""
    for tenant in (STRICT, LOGICAL):
        await stack.post(tenant, alertmanager_payload(f"Old{tenant}"))
        await eventually(functools.partial(delivered, stack, tenant), f"{tenant}'s message")
        await stack.post(tenant, alertmanager_payload(f"Old{tenant}", "resolved"))
        await eventually(functools.partial(_resolved_done, stack, tenant), f"{tenant}'s resolve")
    await stack.post(STRICT, alertmanager_payload("StillFiring"))
    await eventually(lambda: _count_done(stack, STRICT, 2), "acme's second group delivered")
    # Make everything old: older than delivery.retention_hours.
    past = datetime.now(UTC) - timedelta(days=30)
    for engine, tenant in ((stack.own(STRICT), STRICT), (stack.shared, LOGICAL)):
        with write_transaction(engine) as connection:
            for table in (alert_groups, deliveries):
                connection.execute(
                    table.update().where(table.c.tenant_id == tenant).values(updated_at=past)
                )

    stack.service._prune()

    # The resolved, delivered group is gone from each database; the firing one stays.
    left = [r.group_key for r in rows(stack.own(STRICT), alert_groups, STRICT)]
    assert left == ['{}:{alertname="StillFiring"}']
    assert rows(stack.shared, alert_groups, LOGICAL) == []

    # Retention (past acme's retention_days) removes the rest, in acme's database.
    later = datetime.now(UTC) + timedelta(days=3650)
    deleted = retention.run_once(stack.runtime, now=lambda: later)
    assert deleted[STRICT]["groups"] == 1
    assert rows(stack.own(STRICT), alert_groups, STRICT) == []
    assert rows(stack.own(STRICT), deliveries, STRICT) == []


async def test_a_strict_tenant_made_by_another_process_is_delivered(
    stack: Stack, strict_url: StrictUrl, fake: FakeSlackServer
) -> None:
    """Created elsewhere after the service started: its alerts are stored in its own
    database and, once the service has read the registry again, delivered."""
    key = create_tenant(stack.elsewhere, "initech", ACME_TOKEN, strict_url)
    response = await stack.post("initech", alertmanager_payload("LateComer"), key=key)
    assert response.status_code == 202, response.text
    assert rows(stack.shared, alert_groups, "initech") == []
    assert len(rows(stack.own("initech"), alert_groups, "initech")) == 1

    await eventually(lambda: delivered(stack, "initech"), "the late tenant's delivery")
    assert any("LateComer" in str(m["attachments"]) for m in fake.messages())


async def test_one_strict_tenants_database_away_stops_no_other(
    stack: Stack, fake: FakeSlackServer, database_url: str
) -> None:
    """acme's database breaks: globex is still delivered, readiness stays up and says
    which tenant database is down, and acme's alerts are refused (not lost)."""
    await stack.post(STRICT, alertmanager_payload("BeforeOutage"))
    await eventually(lambda: delivered(stack, STRICT), "acme's first message")
    _break(stack.runtime.database_for(STRICT).engine, database_url)

    response = await stack.post(LOGICAL, alertmanager_payload("DuringOutage"))
    assert response.status_code == 202
    await eventually(lambda: delivered(stack, LOGICAL), "globex delivered during the outage")
    assert any("DuringOutage" in str(m["attachments"]) for m in fake.messages())

    async def reported_down() -> dict[str, Any] | None:
        # As the maintenance loop finds it (every few seconds), not queried per probe.
        ready = await stack.client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        checks: dict[str, Any] = ready.json()["checks"]
        return checks if checks["tenant_databases"][STRICT]["status"] == "down" else None

    checks = await eventually(reported_down, "readiness reports acme's database down")
    assert checks["database"]["status"] == "ok"

    refused = await stack.post(STRICT, alertmanager_payload("Lost?"))
    assert refused.status_code == 503  # the sender retries; nothing was accepted
    assert refused.headers["retry-after"] == "5"
    assert refused.json()["detail"] == "The alerts could not be stored now; retry later."


def _break(engine: Engine, database_url: str) -> None:
    """Make a tenant's database unreadable: its PostgreSQL database dropped, or its
    SQLite file overwritten with something that is not a database."""
    engine.dispose()
    if database_url.startswith("sqlite"):
        path = Path(str(engine.url.database))
        for name in (path.name + "-wal", path.name + "-shm"):
            path.with_name(name).unlink(missing_ok=True)
        path.write_bytes(b"this is not a database" * 512)
        return
    name = str(engine.url.database)
    server = sa.create_engine(
        make_url(POSTGRES_URL).set(database="postgres", query={}),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.NullPool,
    )
    with server.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    server.dispose()


async def _sync(check: Callable[[], bool]) -> bool:
    return check()


async def _resolved_done(stack: Stack, tenant_id: str) -> bool:
    engine = stack.own(tenant_id)
    groups = rows(engine, alert_groups, tenant_id)
    return (
        bool(groups)
        and all(g.status == "resolved" for g in groups)
        and bool(await delivered(stack, tenant_id))
    )


async def _count_done(stack: Stack, tenant_id: str, count: int) -> bool:
    found = await delivered(stack, tenant_id)
    return len(found) == count


async def test_a_deleted_strict_tenants_writer_is_retired(stack: Stack) -> None:
    response = await stack.post(STRICT, alertmanager_payload("BeforeDelete"))
    assert response.status_code == 202, response.text
    writers = stack.service.writer
    assert len(writers.writers()) == 2  # the shared database's and acme's
    own = stack.own(STRICT)
    own_file = Path(own.url.database or "") if own.url.get_backend_name() == "sqlite" else None

    TenantManager(STRICT, stack.runtime).delete()
    stack.service._retire_writers()  # what the maintenance loop does every few seconds

    assert writers.writers() == [writers.shared]
    # Its key may still be in the key cache for a while: what it posts then is refused
    # (the sender retries until the key stops working), never written among the shared
    # tenants' data nor where its database was (a removed SQLite file is not made again).
    late = await stack.post(STRICT, alertmanager_payload("AfterDelete"))
    assert late.status_code in (401, 503), late.text
    assert rows(stack.shared, alert_groups, STRICT) == []
    assert rows(stack.shared, deliveries, STRICT) == []
    if own_file is not None:
        assert not own_file.exists()


async def test_work_queued_in_a_strict_database_by_another_instance_is_delivered(
    stack: Stack, fake: FakeSlackServer
) -> None:
    """What another instance queued in a strict tenant's database, waking nobody here,
    goes out (the database is read again when woken for, while busy, or once a second)."""
    await stack.post(STRICT, alertmanager_payload("First"))
    await eventually(lambda: delivered(stack, STRICT), "acme's first message")
    # Past the wake-up the channel's pacing schedules after a post: from here on only
    # the once-a-second read of an idle database can find what the other instance adds.
    await asyncio.sleep(1.5)

    other = stack.elsewhere  # another instance: its writes wake nothing in this one
    tenant = other.effective(STRICT).tenant
    groups = sources.parse(Source.ALERTMANAGER, orjson.dumps(alertmanager_payload("Elsewhere")))
    writes = [
        (
            group,
            tuple(
                delivery.TargetWrite(t.channel, t.locale, t.passes_threshold)
                for t in route_group(group, tenant)
            ),
        )
        for group in groups
    ]
    with write_transaction(other.database_for(STRICT).engine) as connection:
        ingest._store(STRICT, Source.ALERTMANAGER, writes, datetime.now(UTC))(connection)

    async def sent() -> bool:
        return any("Elsewhere" in str(m["attachments"]) for m in fake.messages())

    await eventually(sent, "the message queued by the other instance")


async def test_an_idle_strict_database_is_read_when_woken_for_or_when_due(stack: Stack) -> None:
    idle = build_service(stack.elsewhere)  # a dispatcher that is not running: no cycles
    dispatcher = idle.dispatcher
    try:
        tenants = [STRICT, "initech"]
        assert dispatcher._strict_due(tenants) == tenants  # never read yet: both due
        later = time.monotonic() + 100
        dispatcher._next_scan.update({STRICT: later, "initech": later})  # both found idle

        assert dispatcher._strict_due(tenants) == []
        dispatcher.wake(STRICT)  # this instance queued work for acme
        assert dispatcher._strict_due(tenants) == [STRICT]
        assert dispatcher._strict_due(tenants) == []  # a wake-up is used once
        dispatcher.wake()  # queued for a tenant not named (a replay of every tenant's)
        assert dispatcher._strict_due(tenants) == tenants
        dispatcher._next_scan["initech"] = time.monotonic() - 1  # its second is up
        assert dispatcher._strict_due(tenants) == ["initech"]
    finally:
        await idle.slack.close()
        idle.cache.close()
