"""Retention on real databases: old data of one tenant goes, pending stays, runs are audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from slack_tools.configs import ConfigRuntime
from slack_tools.configs.metrics import ServiceMetrics
from slack_tools.configs.security.audit import AuditLog
from slack_tools.configs.tenant_manager import TenantManager
from slack_tools.service import retention
from slack_tools.storage.database import write_transaction
from slack_tools.storage.tables import alert_groups, deliveries

MakeRuntime = Callable[..., ConfigRuntime]
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=5)


@pytest.fixture
def runtime(make_runtime: MakeRuntime, database_url: str) -> ConfigRuntime:
    runtime = make_runtime(database_url=database_url)
    TenantManager.create("acme", config={"slack_channel": "#acme"}, runtime=runtime)
    TenantManager.create(
        "beta", config={"slack_channel": "#beta", "retention_days": 90}, runtime=runtime
    )
    return runtime


def add_group(runtime: ConfigRuntime, tenant: str, name: str, at: datetime, state: str) -> None:
    with write_transaction(runtime.database.engine) as connection:
        connection.execute(
            alert_groups.insert().values(
                tenant_id=tenant,
                group_hash=name,
                group_key=name,
                source="generic",
                status="resolved",
                state_hash="s",
                episode=1,
                alerts=[],
                meta={},
                received_at=at,
                updated_at=at,
            )
        )
        connection.execute(
            deliveries.insert().values(
                tenant_id=tenant,
                group_hash=name,
                channel="#c",
                locale="en_US",
                state=state,
                version=1,
                delivered_version=1 if state == "done" else 0,
                attempts=0,
                available_at=at,
                held_at=at if name.startswith("held") else None,
                updated_at=at,
            )
        )


def groups(runtime: ConfigRuntime) -> set[tuple[str, str]]:
    with runtime.database.engine.connect() as connection:
        return {
            (r.tenant_id, r.group_hash)
            for r in connection.execute(
                sa.select(alert_groups.c.tenant_id, alert_groups.c.group_hash)
            )
        }


def test_retention_deletes_old_data_of_that_tenant_only_and_keeps_pending(
    runtime: ConfigRuntime,
) -> None:
    """After 30 days acme loses delivered and dead groups; pending and held stay; beta keeps 90."""
    add_group(runtime, "acme", "old-done", OLD, "done")
    add_group(runtime, "acme", "old-dead", OLD, "dead")
    add_group(runtime, "acme", "old-pending", OLD, "pending")
    add_group(runtime, "acme", "held-old", OLD, "pending")
    add_group(runtime, "acme", "recent", RECENT, "done")
    add_group(runtime, "beta", "old-done", OLD, "done")
    registry = CollectorRegistry()
    metrics = ServiceMetrics(registry)
    deleted = retention.run_once(runtime, metrics=metrics, now=lambda: NOW)
    assert deleted == {"acme": {"groups": 2, "deliveries": 2}}
    assert groups(runtime) == {
        ("acme", "old-pending"),
        ("acme", "held-old"),
        ("acme", "recent"),
        ("beta", "old-done"),
    }
    assert (
        registry.get_sample_value(
            "slack_tools_retention_deleted_total", {"tenant": "acme", "kind": "groups"}
        )
        == 2
    )
    assert (
        registry.get_sample_value("slack_tools_retention_runs_total", {"outcome": "success"}) == 1
    )


def test_each_run_is_audited_as_the_system(runtime: ConfigRuntime) -> None:
    """A run leaves one retention.run entry by ``system`` with the counts per tenant."""
    add_group(runtime, "acme", "old-done", OLD, "done")
    retention.run_once(runtime, now=lambda: NOW)
    retention.run_once(runtime, now=lambda: NOW)
    second, first = AuditLog.of(runtime).list(action="retention.run")
    assert (first.actor, first.actor_kind, first.outcome) == ("system", "system", "success")
    assert first.diff["deleted"] == {"acme": {"groups": 1, "deliveries": 1}}
    assert second.diff["deleted"] == {}
    assert AuditLog.of(runtime).verify().ok


def test_batches_delete_everything_old(
    runtime: ConfigRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More old groups than a batch are all deleted, in several transactions."""
    for number in range(5):
        add_group(runtime, "acme", f"old-{number}", OLD, "done")
    counts = retention.expire_tenant(runtime, "acme", NOW, batch=2)
    assert counts == {"groups": 5, "deliveries": 5}
