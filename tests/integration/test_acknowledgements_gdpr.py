"""A person's acknowledgements are in their GDPR export and leave with their erasure."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from slack_tools.configs import ConfigManager, ConfigRuntime
from slack_tools.configs.security import gdpr
from slack_tools.configs.security.actors import Actor, acting_as
from slack_tools.configs.security.audit import AuditLog
from slack_tools.configs.tenant_manager import TenantManager
from slack_tools.storage.database import write_transaction
from slack_tools.storage.delivery import AckOutcome, acknowledge, acknowledgements_by
from tests.integration.test_delivery_store import at, deliver, write

ADMIN = Actor("root-admin", roles=frozenset({"admin"}), all_tenants=True)
SLACK_ID = "U0DAVE001"


@pytest.fixture
def runtime(make_runtime: Callable[..., ConfigRuntime], database_url: str) -> ConfigRuntime:
    """Tenant acme; dave's preferences name his Slack id; he acknowledged one message."""
    runtime = make_runtime(database_url=database_url)
    with acting_as(ADMIN):
        TenantManager.create("acme", config={"slack_channel": "#acme"}, runtime=runtime)
        ConfigManager(runtime).update_user_config("acme", "dave", {"slack_user_id": SLACK_ID})
    engine = runtime.database.engine
    write(engine, now=at(0))  # test_delivery_store's tenant is acme
    deliver(engine, now=at(1))
    with write_transaction(engine) as connection:
        pressed = acknowledge(
            connection, "acme", "C0123", "1700000000.000100", SLACK_ID, datetime.now(UTC)
        )
    assert pressed.outcome is AckOutcome.RECORDED
    return runtime


def test_export_lists_the_acknowledgements_made_with_the_persons_slack_id(
    runtime: ConfigRuntime,
) -> None:
    data = gdpr.export_user(runtime, "dave")
    assert json.loads(json.dumps(data)) == data
    [ack] = data["acknowledgements"]
    assert (ack["tenant"], ack["channel"], ack["message_ts"]) == (
        "acme",
        "C0123",
        "1700000000.000100",
    )
    assert gdpr.export_user(runtime, "dave", "other")["acknowledgements"] == []


def test_erasure_forgets_who_acknowledged_and_the_chain_still_verifies(
    runtime: ConfigRuntime,
) -> None:
    with acting_as(ADMIN):
        erasure = gdpr.erase_user(runtime, "dave")
    assert erasure.removed["acknowledgements"] == 1
    with runtime.database.engine.connect() as connection:
        assert acknowledgements_by(connection, SLACK_ID) == []
    assert AuditLog.of(runtime).verify().ok
