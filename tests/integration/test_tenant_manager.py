"""TenantManager on real databases: the specification's API, registry, keys, deletion."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from slack_tools.alerts.models import Alert, AlertGroup, Source, Status
from slack_tools.alerts.routing import route_group
from slack_tools.configs import (
    ConfigManager,
    ConfigRuntime,
    ConfigValidationError,
    set_default_runtime,
)
from slack_tools.configs.tenant_manager import TenantManager, TenantStatus
from slack_tools.errors import ConflictError, NotFoundError
from slack_tools.storage import DocumentKey
from slack_tools.storage.database import write_transaction
from slack_tools.storage.tables import (
    alert_groups,
    api_keys,
    config_documents,
    config_versions,
    deliveries,
    tenants,
    usage_daily,
)
from slack_tools.storage.tenants import TenantStore
from slack_tools.storage.usage import note_usage, usage_noted
from tests.helpers import assert_no_secret

MakeRuntime = Callable[..., ConfigRuntime]
TOKEN = "xoxb-3333333333-tenant-manager-secret-token"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def runtime(make_runtime: MakeRuntime, database_url: str, master_keys: str) -> ConfigRuntime:
    """A started runtime on each backend, with a master key."""
    return make_runtime(database_url=database_url, extra={"SLACK_TOOLS_MASTER_KEYS": master_keys})


def create(runtime: ConfigRuntime, tenant_id: str, **config: Any) -> TenantManager:
    manager, _ = TenantManager.create(
        tenant_id,
        config={"slack_channel": f"#{tenant_id}-alerts", **config},
        author="test",
        runtime=runtime,
    )
    return manager


def group(severity: str) -> AlertGroup:
    alert = Alert(
        fingerprint="f1",
        status=Status.FIRING,
        labels={"alertname": "DiskFull", "severity": severity},
        annotations={},
        starts_at=NOW,
        ends_at=None,
    )
    return AlertGroup(
        source=Source.GENERIC,
        group_key="g",
        status=Status.FIRING,
        alerts=(alert,),
        common_labels=dict(alert.labels),
    )


def channels(manager: TenantManager, severity: str) -> list[str]:
    """Where the service would post a group of this severity for the tenant, as it is now."""
    config = manager.runtime.effective(manager.tenant_id).tenant
    return [t.channel for t in route_group(group(severity), config) if t.passes_threshold]


# --- the specification's API -------------------------------------------------------------


def test_the_specifications_example_changes_routing_at_once_and_is_versioned(
    runtime: ConfigRuntime,
) -> None:
    """update_config is validated, versioned with its author, and routes the next alert."""
    create(runtime, "tenant_spotify_premium")
    set_default_runtime(runtime)

    tenant_mgr = TenantManager("tenant_spotify_premium")
    config = tenant_mgr.get_config()
    assert config.slack_channel == "#tenant_spotify_premium-alerts"
    assert channels(tenant_mgr, "warning") == ["#tenant_spotify_premium-alerts"]

    version = tenant_mgr.update_config(
        {"slack_channel": "#premium-alerts", "alert_threshold": "critical_only"},
        author="alice",
        comment="premium routing",
    )

    assert tenant_mgr.get_config().slack_channel == "#premium-alerts"
    assert channels(tenant_mgr, "warning") == []
    assert channels(tenant_mgr, "critical") == ["#premium-alerts"]
    history = tenant_mgr.history()
    assert [v.version for v in history] == [2, 1]
    assert (history[0].author, history[0].comment) == ("alice", "premium routing")
    assert version.version == tenant_mgr.config_version == 2


def test_an_invalid_update_is_refused_whole_and_nothing_changes(runtime: ConfigRuntime) -> None:
    """Every issue is reported; the previous configuration and history stay as they were."""
    manager = create(runtime, "acme")
    with pytest.raises(ConfigValidationError) as refused:
        manager.update_config(
            {"slack_channel": "#ok-channel", "alert_threshold": "loud", "locale": "xx_XX"}
        )
    paths = {issue.path for issue in refused.value.issues}
    assert {("alert_threshold",), ("locale",)} <= paths
    assert manager.get_config().slack_channel == "#acme-alerts"
    assert [v.version for v in manager.history()] == [1]


def test_of_two_concurrent_updates_one_wins_and_the_other_is_a_conflict(
    runtime: ConfigRuntime,
) -> None:
    """Both read version 1 and write at once: one becomes version 2, the other is refused."""
    create(runtime, "acme")
    first, second = TenantManager("acme", runtime), TenantManager("acme", runtime)
    read = first.config_version
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def update(manager: TenantManager, channel: str) -> None:
        barrier.wait()
        try:
            manager.update_config({"slack_channel": channel}, expected_version=read)
            outcomes.append(channel)
        except ConflictError:
            outcomes.append("conflict")

    threads = [
        threading.Thread(target=update, args=(first, "#first")),
        threading.Thread(target=update, args=(second, "#second")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes.count("conflict") == 1
    winner = next(o for o in outcomes if o != "conflict")
    assert [v.version for v in first.history()] == [2, 1]
    assert first.get_config().slack_channel == winner


def test_an_unknown_tenant_is_not_found_and_not_created_by_reading(
    runtime: ConfigRuntime,
) -> None:
    """Reading or changing a tenant that is not registered names it; nothing is written."""
    manager = TenantManager("nobody", runtime)
    for call in (
        manager.get_config,
        manager.info,
        manager.api_keys,
        lambda: manager.update_config({"slack_channel": "#x"}),
    ):
        with pytest.raises(NotFoundError, match="nobody"):
            call()
    assert runtime.store.current(DocumentKey.for_scope("nobody")) is None


def test_creating_twice_or_with_an_invalid_configuration_leaves_one_tenant(
    runtime: ConfigRuntime,
) -> None:
    """A duplicate is a conflict; an invalid configuration creates nothing, so a retry works."""
    with pytest.raises(ConfigValidationError):
        TenantManager.create("acme", config={"slack_channel": "no-hash"}, runtime=runtime)
    assert not TenantManager("acme", runtime).exists()
    create(runtime, "acme")
    with pytest.raises(ConflictError):
        create(runtime, "acme")
    assert [t.id for t in TenantManager.all(runtime)] == ["acme"]


def test_an_invalid_id_is_refused_before_anything_is_stored(runtime: ConfigRuntime) -> None:
    with pytest.raises(ValueError, match="invalid tenant id"):
        TenantManager("Acme Corp", runtime)


# --- registry and keys -------------------------------------------------------------------


def test_keys_are_shown_once_listed_by_prefix_and_revoked(runtime: ConfigRuntime) -> None:
    """A key is returned once; the list has its prefix, label and last use, never the key."""
    manager, first = TenantManager.create(
        "acme", config={"slack_channel": "#acme"}, runtime=runtime
    )
    second = manager.create_key("rotation")
    TenantStore(runtime.database.engine).touch_keys({first.record.id: NOW})

    listed = manager.api_keys()
    assert [(k.id, k.label) for k in listed] == [
        (first.record.id, "created with tenant"),
        (second.record.id, "rotation"),
    ]
    assert listed[0].last_used_at == NOW
    assert listed[1].last_used_at is None
    assert all(first.key.startswith(k.prefix) or second.key.startswith(k.prefix) for k in listed)
    assert_no_secret(repr(listed), first.key, second.key)

    manager.revoke_key(first.record.id)
    assert manager.api_keys()[0].revoked_at is not None
    with pytest.raises(NotFoundError):
        manager.revoke_key(first.record.id)
    with pytest.raises(NotFoundError):  # another tenant's key is not this tenant's to revoke
        create(runtime, "globex").revoke_key(second.record.id)
    assert manager.api_keys()[1].revoked_at is None


def test_disable_enable_and_rename(runtime: ConfigRuntime) -> None:
    manager = create(runtime, "acme")
    manager.disable()
    assert manager.info().status is TenantStatus.DISABLED
    manager.enable()
    manager.rename("Acme Corporation")
    assert (manager.info().status, manager.info().name) == (
        TenantStatus.ACTIVE,
        "Acme Corporation",
    )


def test_secrets_are_stored_encrypted_and_never_shown(runtime: ConfigRuntime) -> None:
    manager = create(runtime, "acme", slack_bot_token=TOKEN)
    assert manager.get_config().slack_bot_token is not None
    assert manager.get_config().slack_bot_token.get_secret_value() == TOKEN  # type: ignore[union-attr]
    assert_no_secret(repr(manager.show_config()), TOKEN)
    assert_no_secret(repr([v.content for v in manager.history()]), TOKEN)


# --- deletion ----------------------------------------------------------------------------


def _store_alert_rows(runtime: ConfigRuntime, tenant_id: str) -> None:
    with runtime.database.engine.begin() as connection:
        connection.execute(
            alert_groups.insert().values(
                tenant_id=tenant_id,
                group_hash="h1",
                group_key="g",
                source="generic",
                status="firing",
                state_hash="s",
                episode=1,
                alerts=[],
                meta={},
                received_at=NOW,
                updated_at=NOW,
            )
        )
        connection.execute(
            deliveries.insert().values(
                tenant_id=tenant_id,
                group_hash="h1",
                channel="#c",
                locale="fr_FR",
                state="pending",
                version=1,
                delivered_version=0,
                attempts=0,
                available_at=NOW,
                updated_at=NOW,
            )
        )


def _rows(runtime: ConfigRuntime, tenant_id: str) -> dict[str, int]:
    documents = sa.select(config_documents.c.id).where(config_documents.c.tenant_id == tenant_id)
    counted = {
        "tenants": sa.select(sa.func.count()).where(tenants.c.id == tenant_id),
        "api_keys": sa.select(sa.func.count()).where(api_keys.c.tenant_id == tenant_id),
        "config_documents": sa.select(sa.func.count()).where(
            config_documents.c.tenant_id == tenant_id
        ),
        "config_versions": sa.select(sa.func.count()).where(
            config_versions.c.document_id.in_(documents)
        ),
        "alert_groups": sa.select(sa.func.count()).where(alert_groups.c.tenant_id == tenant_id),
        "deliveries": sa.select(sa.func.count()).where(deliveries.c.tenant_id == tenant_id),
        "usage_days": sa.select(sa.func.count()).where(usage_daily.c.tenant_id == tenant_id),
    }
    with runtime.database.engine.connect() as connection:
        return {
            name: int(connection.execute(query).scalar_one()) for name, query in counted.items()
        }


def test_delete_removes_everything_of_the_tenant_and_nothing_of_another(
    runtime: ConfigRuntime,
) -> None:
    """Keys, documents (users' too), versions, alert groups and deliveries go; globex stays."""
    for tenant_id in ("acme", "globex"):
        manager = create(runtime, tenant_id)
        manager.update_config({"locale": "de_DE"})
        manager.create_key("second")
        ConfigManager(runtime).update_user_config(tenant_id, "alice", {"locale": "it_IT"})
        _store_alert_rows(runtime, tenant_id)
        with write_transaction(runtime.database.engine) as connection, usage_noted(connection):
            note_usage(connection, tenant_id, NOW, alerts_received=3)
    globex_before = _rows(runtime, "globex")
    assert all(globex_before.values())

    removed = TenantManager("acme", runtime).delete()

    assert removed == {
        "deliveries": 1,
        "alert_groups": 1,
        "config_versions": 3,
        "config_documents": 2,
        "api_keys": 2,
        "usage_days": 1,
        "data_keys": 0,
    }
    left = _rows(runtime, "acme")
    assert left.pop("config_documents") == 2  # tombstones: no content, no versions
    assert set(left.values()) == {0}
    assert _rows(runtime, "globex") == globex_before
    with pytest.raises(NotFoundError):
        TenantManager("acme", runtime).get_config()
    with pytest.raises(NotFoundError):
        TenantManager("acme", runtime).delete()
    # The id is free again, with none of the old configuration.
    recreated = create(runtime, "acme")
    assert recreated.get_config().locale != "de_DE"
    assert len(recreated.history()) == 1


def test_another_instance_sees_a_deletion_and_a_tenant_created_again(
    make_runtime: MakeRuntime, database_url: str, master_keys: str
) -> None:
    """Version numbers are never reused, so a poll cannot mistake the new tenant for the old."""
    extra = {"SLACK_TOOLS_MASTER_KEYS": master_keys}
    here = make_runtime(database_url=database_url, extra=extra)
    other = make_runtime(database_url=database_url, extra=extra)
    create(here, "kappa", slack_channel="#kappa-old")
    other.refresh_from_database()
    assert other.effective("kappa").tenant.slack_channel == "#kappa-old"

    TenantManager("kappa", here).delete()
    other.refresh_from_database()
    assert other.effective("kappa").tenant.slack_channel != "#kappa-old"

    create(here, "kappa", slack_channel="#kappa-new")
    other.refresh_from_database()
    assert other.effective("kappa").tenant.slack_channel == "#kappa-new"


def test_of_two_creations_of_one_id_the_second_writes_nothing(runtime: ConfigRuntime) -> None:
    create(runtime, "acme", locale="de_DE")
    with pytest.raises(ConflictError):
        create(runtime, "acme", locale="it_IT")
    manager = TenantManager("acme", runtime)
    assert manager.get_config().locale == "de_DE"
    assert len(manager.history()) == 1


def test_a_creation_refused_keeps_what_was_written_for_the_id_beforehand(
    runtime: ConfigRuntime,
) -> None:
    ConfigManager(runtime).update_tenant_config("newco", {"slack_channel": "#ahead"})
    with pytest.raises(ConfigValidationError):
        TenantManager.create("newco", config={"locale": "xx_XX"}, runtime=runtime)
    assert not TenantManager("newco", runtime).exists()
    assert runtime.effective("newco").tenant.slack_channel == "#ahead"
    assert len(ConfigManager(runtime).history(DocumentKey.for_scope("newco"))) == 1
