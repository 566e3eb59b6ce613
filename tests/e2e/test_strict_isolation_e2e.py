"""Strict isolation over real HTTP: a strict and a logical tenant side by side in one service.

The service (``slack-tools serve``) and the Slack fake run as their own processes.
Tenant globex shares the service's database (logical isolation); tenant acme,
created over the admin API with ``isolation: strict``, has its own SQLite file under
the data directory. Both post Alertmanager notifications; both are delivered.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from slack_tools.storage.tables import alert_groups, deliveries
from tests.e2e.harness import (
    FakeSlackServer,
    Service,
    alertmanager_payload,
    start_fake,
    start_service,
    wait_for,
)

ACME_TOKEN = "xoxb-acme-strict-e2e-token"  # nosec B105 - the fake's workspace token
GLOBEX_TOKEN = "xoxb-globex-logical-e2e-token"  # nosec B105 - the fake's workspace token
ALERTMANAGER = "/api/v1/alerts/alertmanager"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeSlackServer]:
    server = start_fake(
        tmp_path, "--workspace", f"acme={ACME_TOKEN}", "--workspace", f"globex={GLOBEX_TOKEN}"
    )
    yield server
    server.process.kill()


@pytest.fixture
def service(tmp_path: Path, fake: FakeSlackServer) -> Iterator[Service]:
    """The service with logical tenant globex (CLI) and strict tenant acme (admin API)."""
    running = start_service(tmp_path, fake)
    try:
        running.create_tenant("globex", "#alerts", GLOBEX_TOKEN)
        created = running.admin(
            "POST",
            "/api/v1/tenants",
            json={
                "id": "acme",
                "config": {
                    "isolation": "strict",
                    "slack_channel": "#alerts",
                    "slack_bot_token": ACME_TOKEN,
                },
            },
        )
        assert created.status_code == 201, created.text
        running.keys["acme"] = created.json()["api_key"]["key"]
        yield running
    finally:
        running.process.kill()


def count(path: Path, table: sa.Table, tenant_id: str) -> int:
    """Rows of ``tenant_id`` in ``table`` of the SQLite database at ``path``."""
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    sa.select(sa.func.count())
                    .select_from(table)
                    .where(table.c.tenant_id == tenant_id)
                ).scalar_one()
            )
    finally:
        engine.dispose()


def messages_with(fake: FakeSlackServer, text: str) -> list[dict[str, Any]]:
    return [m for m in fake.messages() if text in str(m["attachments"])]


def test_strict_and_logical_tenants_are_both_delivered(
    tmp_path: Path, fake: FakeSlackServer, service: Service
) -> None:
    """Each tenant's notification reaches its workspace; acme's is stored only in its own
    database file, globex's only in the shared one."""
    strict = service.post(ALERTMANAGER, alertmanager_payload("StrictCpuHigh"), tenant="acme")
    logical = service.post(ALERTMANAGER, alertmanager_payload("LogicalCpuHigh"), tenant="globex")
    assert strict.status_code == 202, strict.text
    assert logical.status_code == 202, logical.text
    assert strict.json()["tenant"] == "acme"
    assert logical.json()["tenant"] == "globex"

    acme_message = wait_for(lambda: messages_with(fake, "StrictCpuHigh"), "acme's message")
    globex_message = wait_for(lambda: messages_with(fake, "LogicalCpuHigh"), "globex's message")
    assert acme_message[0]["team_id"] == fake.team_id("acme")
    assert globex_message[0]["team_id"] == fake.team_id("globex")

    shared = tmp_path / "data" / "slack-tools.db"
    own = tmp_path / "data" / "tenants" / "acme.db"
    assert own.exists()
    assert count(own, alert_groups, "acme") == 1
    assert count(shared, alert_groups, "acme") == 0
    assert count(shared, deliveries, "acme") == 0
    assert count(shared, alert_groups, "globex") == 1
    assert count(own, alert_groups, "globex") == 0

    def recorded() -> bool:
        engine = sa.create_engine(f"sqlite:///{own}", poolclass=sa.NullPool)
        try:
            with engine.connect() as connection:
                states = connection.execute(
                    sa.select(deliveries.c.state, deliveries.c.message_ts)
                ).all()
        finally:
            engine.dispose()
        return bool(states) and all(s.state == "done" and s.message_ts for s in states)

    wait_for(recorded, "acme's delivery recorded in its own database")

    ready = service.ready()
    assert ready["status"] == "ok"
    assert ready["checks"]["tenant_databases"]["acme"]["status"] == "ok"


def test_a_strict_tenants_key_posts_only_as_that_tenant(
    tmp_path: Path, fake: FakeSlackServer, service: Service
) -> None:
    """acme's key is acme wherever it posts: the alert is acme's, in acme's database and
    workspace, and globex gets nothing; a key that is no tenant's is refused."""
    response = service.post(
        ALERTMANAGER, alertmanager_payload("Intruder"), key=service.keys["acme"]
    )
    assert response.status_code == 202, response.text
    assert response.json()["tenant"] == "acme"
    posted = wait_for(lambda: messages_with(fake, "Intruder"), "the message")
    assert [m["team_id"] for m in posted] == [fake.team_id("acme")]
    assert count(tmp_path / "data" / "slack-tools.db", alert_groups, "globex") == 0

    forged = service.post(ALERTMANAGER, alertmanager_payload("Forged"), key="stk_not-a-real-key")
    assert forged.status_code == 401
    # globex's own key still posts as globex, into the shared database.
    own = service.post(ALERTMANAGER, alertmanager_payload("Legit"), tenant="globex")
    assert own.json()["tenant"] == "globex"
    wait_for(lambda: messages_with(fake, "Legit"), "globex's message")
    assert count(tmp_path / "data" / "tenants" / "acme.db", alert_groups, "globex") == 0
