"""Strict isolation on real databases: a tenant's configuration, history and audit in its own.

Each test runs with a SQLite shared database (strict tenants in their own files
under the data directory) and with PostgreSQL (each strict tenant in a database of
its own on the same server, created by slack-tools and dropped afterwards).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from slack_tools.configs import ConfigRuntime, ConfigValidationError
from slack_tools.configs.runtime import database_status, migrate_database
from slack_tools.configs.schema import IsolationMode
from slack_tools.configs.security.audit import AuditLog
from slack_tools.configs.tenant_manager import TenantManager
from slack_tools.errors import ConflictError, StorageError
from slack_tools.storage import Database, DocumentKey, DocumentStore
from slack_tools.storage.database import _alembic_config, create_engine
from slack_tools.storage.tables import (
    api_keys,
    audit_entries,
    config_documents,
    config_versions,
    tenants,
)

MakeRuntime = Callable[..., ConfigRuntime]
StrictUrl = Callable[[str], "str | None"]


@pytest.fixture
def runtime(make_runtime: MakeRuntime, database_url: str) -> ConfigRuntime:
    return make_runtime(database_url=database_url)


def create(
    runtime: ConfigRuntime, tenant_id: str, isolation: str, strict_url: StrictUrl
) -> TenantManager:
    manager, _ = TenantManager.create(
        tenant_id,
        config={"slack_channel": f"#{tenant_id}-alerts", "isolation": isolation},
        runtime=runtime,
        database_url=strict_url(tenant_id) if isolation == "strict" else None,
    )
    return manager


def rows(database: Database, table: sa.Table, tenant_id: str) -> int:
    with database.engine.connect() as connection:
        return int(
            connection.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c.tenant_id == tenant_id)
            ).scalar_one()
        )


def test_a_strict_tenants_configuration_and_history_live_in_its_own_database(
    runtime: ConfigRuntime, strict_url: StrictUrl
) -> None:
    acme = create(runtime, "acme", "strict", strict_url)
    create(runtime, "globex", "logical", strict_url)
    acme.update_config({"alert_threshold": "critical_only"}, comment="quieter")

    own = runtime.database_for("acme")
    assert own is not runtime.database
    assert runtime.database_for("globex") is runtime.database
    key = DocumentKey.for_scope("acme")
    assert [v.version for v in DocumentStore(own.engine).history(key)] == [2, 1]
    assert DocumentStore(runtime.database.engine).history(key) == []
    assert [v.version for v in runtime.store.history(key)] == [2, 1]
    effective = runtime.effective("acme").tenant
    assert effective.isolation is IsolationMode.STRICT
    assert effective.alert_threshold == "critical_only"
    assert runtime.effective("globex").tenant.isolation is IsolationMode.LOGICAL
    # The audit entries of its changes are written with them, in its database.
    assert rows(own, audit_entries, "acme") == 2
    assert rows(runtime.database, audit_entries, "acme") == 0


def test_the_shared_database_holds_only_the_registry_of_a_strict_tenant(
    runtime: ConfigRuntime, strict_url: StrictUrl
) -> None:
    acme = create(runtime, "acme", "strict", strict_url)
    acme.update_config({"locale": "de_DE"})
    acme.create_key("second")

    shared = runtime.database
    assert rows(shared, config_documents, "acme") == 0
    assert rows(shared, api_keys, "acme") == 2
    with shared.engine.connect() as connection:
        registered = connection.execute(
            sa.select(tenants.c.database).where(tenants.c.id == "acme")
        ).scalar_one()
        versions = connection.execute(
            sa.select(sa.func.count()).select_from(config_versions)
        ).scalar_one()
    assert registered is not None
    assert "password" not in registered
    assert versions == 0
    assert TenantManager("acme", runtime).info().database == registered


def test_a_tenant_cannot_move_in_or_out_of_strict_isolation_by_a_change(
    runtime: ConfigRuntime, strict_url: StrictUrl
) -> None:
    acme = create(runtime, "acme", "strict", strict_url)
    globex = create(runtime, "globex", "logical", strict_url)

    with pytest.raises(ConfigValidationError, match="cannot leave"):
        acme.update_config({"isolation": "logical"})
    with pytest.raises(ConfigValidationError, match="chosen when a tenant is created"):
        globex.update_config({"isolation": "strict"})
    assert acme.config_version == 1
    assert globex.config_version == 1
    assert runtime.database_for("globex") is runtime.database


def test_strict_by_default_applies_to_tenants_created_afterwards(
    make_runtime: MakeRuntime, database_url: str, strict_url: StrictUrl
) -> None:
    before = make_runtime(database_url=database_url)
    create(before, "globex", "logical", strict_url)
    after = make_runtime(
        database_url=database_url,
        extra={
            "SLACK_TOOLS__TENANTS__DEFAULTS__ISOLATION": "strict",
            "SLACK_TOOLS__TENANTS__STRICT_DATABASE_URL": strict_url("acme")
            or "sqlite:///tenants/{tenant}.db",
        },
    )
    TenantManager.create("acme", config={"slack_channel": "#acme"}, runtime=after)

    assert after.databases.is_strict("acme")
    assert after.effective("acme").tenant.isolation is IsolationMode.STRICT
    # Created before the default changed: still in the shared database, and says so.
    assert after.effective("globex").tenant.isolation is IsolationMode.LOGICAL


def test_another_instance_finds_a_strict_tenant_and_its_changes(
    make_runtime: MakeRuntime, database_url: str, strict_url: StrictUrl
) -> None:
    here = make_runtime(database_url=database_url)
    there = make_runtime(database_url=database_url)
    there.effective  # noqa: B018 - started, with the registry read before acme exists
    assert there.databases.strict_ids() == []
    acme = create(here, "acme", "strict", strict_url)

    assert there.effective("acme").tenant.slack_channel == "#acme-alerts"
    acme.update_config({"slack_channel": "#acme-oncall"})
    changed = there.refresh_from_database()
    assert DocumentKey.for_scope("acme") in changed
    assert there.effective("acme").tenant.slack_channel == "#acme-oncall"
    assert there.databases.strict_ids() == ["acme"]


def test_deleting_a_strict_tenant_destroys_its_data_and_the_id_can_be_used_again(
    runtime: ConfigRuntime, strict_url: StrictUrl, database_url: str
) -> None:
    acme = create(runtime, "acme", "strict", strict_url)
    acme.update_config({"locale": "it_IT"})
    own = runtime.database_for("acme")
    files = [Path(own.engine.url.database or "")] if own.backend == "sqlite" else []
    reference = acme.info().database
    assert reference is not None

    removed = acme.delete()

    assert removed["config_versions"] == 2
    assert removed["api_keys"] == 1
    assert not TenantManager("acme", runtime).exists()
    assert not runtime.databases.is_strict("acme")
    for path in files:
        assert not path.exists()
    if not files:  # PostgreSQL: the database stays, holding nothing
        check = create_engine(reference)
        with check.connect() as connection:
            left = connection.execute(
                sa.select(sa.func.count()).select_from(config_versions)
            ).scalar_one()
        check.dispose()
        assert left == 0
    again, _ = TenantManager.create(
        "acme",
        config={"slack_channel": "#acme-new", "isolation": "strict"},
        runtime=runtime,
        database_url=reference if not files else None,
    )
    assert again.config_version == 1


def test_a_database_that_already_holds_data_is_refused_and_nothing_is_registered(
    runtime: ConfigRuntime, strict_url: StrictUrl, tmp_path: Path
) -> None:
    acme = create(runtime, "acme", "strict", strict_url)
    taken = acme.info().database
    assert taken is not None
    if taken.startswith("sqlite:///tenants/"):
        taken = f"sqlite:///{tmp_path / 'data' / 'tenants' / 'acme.db'}"

    with pytest.raises(ConflictError, match="already holds data"):
        TenantManager.create(
            "beta",
            config={"slack_channel": "#beta", "isolation": "strict"},
            runtime=runtime,
            database_url=taken,
        )
    assert not TenantManager("beta", runtime).exists()
    assert TenantManager("acme", runtime).config_version == 1


def test_creating_an_existing_strict_tenant_again_is_a_conflict_that_keeps_its_data(
    runtime: ConfigRuntime, strict_url: StrictUrl
) -> None:
    create(runtime, "acme", "strict", strict_url)
    with pytest.raises(ConflictError, match="already exists"):
        create(runtime, "acme", "strict", strict_url)
    assert TenantManager("acme", runtime).config_version == 1


def test_an_invalid_first_configuration_leaves_no_tenant_and_no_database(
    runtime: ConfigRuntime, strict_url: StrictUrl
) -> None:
    with pytest.raises(ConfigValidationError):
        TenantManager.create(
            "acme",
            config={"slack_channel": "#acme", "isolation": "strict", "locale": "xx_XX"},
            runtime=runtime,
            database_url=strict_url("acme"),
        )
    assert not TenantManager("acme", runtime).exists()
    create(runtime, "acme", "strict", strict_url)  # nothing left in the way


def test_db_upgrade_migrates_every_tenant_database(
    make_runtime: MakeRuntime, database_url: str, strict_url: StrictUrl
) -> None:
    runtime = make_runtime(extra={"SLACK_TOOLS__DATABASE__URL": database_url})
    create(runtime, "acme", "strict", strict_url)
    own = runtime.database_for("acme")
    command.downgrade(_alembic_config(own.engine), "0007")
    runtime.databases.dispose()
    config = runtime.config

    behind = {status.tenant: status for status in database_status(config)}
    assert set(behind) == {None, "acme"}
    assert behind[None].is_current
    assert behind["acme"].current == "0007"

    done = {status.tenant: (status, before) for status, before in migrate_database(config)}
    assert done["acme"][1] == "0007"
    assert all(status.is_current for status in database_status(config))


def test_a_runtime_started_after_strict_tenants_exist_reads_them(
    make_runtime: MakeRuntime, database_url: str, strict_url: StrictUrl
) -> None:
    first = make_runtime(database_url=database_url)
    acme = create(first, "acme", "strict", strict_url)
    restarted = make_runtime(database_url=database_url)

    assert restarted.effective("acme").tenant.slack_channel == "#acme-alerts"
    acme.update_config({"slack_channel": "#acme-oncall"})
    assert restarted.refresh_from_database() == (DocumentKey.for_scope("acme"),)
    assert restarted.effective("acme").tenant.slack_channel == "#acme-oncall"


def point_at(runtime: ConfigRuntime, tenant_id: str, reference: str) -> None:
    with runtime.database.transaction() as connection:
        connection.execute(
            tenants.update().where(tenants.c.id == tenant_id).values(database=reference)
        )


def test_a_tenant_database_that_does_not_answer_delays_only_its_own_changes(
    make_runtime: MakeRuntime, database_url: str, strict_url: StrictUrl
) -> None:
    here = make_runtime(database_url=database_url)
    acme = create(here, "acme", "strict", strict_url)
    globex = create(here, "globex", "logical", strict_url)
    reference = acme.info().database
    assert reference is not None
    there = make_runtime(database_url=database_url)
    point_at(here, "acme", "postgresql://127.0.0.1:1/unreachable")

    globex.update_config({"locale": "es_ES"})
    acme.update_config({"locale": "de_DE"})  # written while `there` cannot read it
    assert there.refresh_from_database() == (DocumentKey.for_scope("globex"),)

    point_at(here, "acme", reference)
    assert DocumentKey.for_scope("acme") in there.refresh_from_database()
    assert there.effective("acme").tenant.locale == "de_DE"


def test_another_instance_forgets_a_strict_tenant_deleted_and_created_again(
    make_runtime: MakeRuntime, database_url: str, strict_url: StrictUrl
) -> None:
    here = make_runtime(database_url=database_url)
    there = make_runtime(database_url=database_url)
    acme = create(here, "acme", "strict", strict_url)
    reference = acme.info().database
    assert there.effective("acme").tenant.slack_channel == "#acme-alerts"

    acme.delete()
    TenantManager.create(
        "acme",
        config={"slack_channel": "#acme-again", "isolation": "strict"},
        runtime=here,
        database_url=None if reference and reference.startswith("sqlite") else reference,
    )
    # The new tenant's document is version 1 again, in a new database: the registry's
    # creation time, not the version, tells the other instance it is another tenant.
    there.refresh_from_database()
    assert there.effective("acme").tenant.slack_channel == "#acme-again"


def test_a_delete_that_cannot_reach_the_tenants_database_keeps_the_tenant(
    runtime: ConfigRuntime, strict_url: StrictUrl
) -> None:
    acme = create(runtime, "acme", "strict", strict_url)
    reference = acme.info().database
    assert reference is not None
    point_at(runtime, "acme", "postgresql://127.0.0.1:1/unreachable")
    runtime.databases.refresh()

    with pytest.raises(StorageError, match="tenant acme's database"):
        acme.delete()
    assert acme.exists()  # registered still: deleting it again finishes the job

    point_at(runtime, "acme", reference)
    runtime.databases.refresh()
    assert acme.delete()["config_versions"] == 1
    assert not acme.exists()


def test_a_missing_sqlite_file_is_an_error_not_a_new_empty_database(
    make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    here = make_runtime(database_url=f"sqlite:///{tmp_path / 'shared.db'}")
    acme = TenantManager.create(
        "acme", config={"slack_channel": "#acme", "isolation": "strict"}, runtime=here
    )[0]
    files = [Path(here.database_for("acme").engine.url.database or "")]
    here.databases.dispose()
    for path in files:
        path.unlink()

    there = make_runtime(database_url=f"sqlite:///{tmp_path / 'shared.db'}")
    with pytest.raises(StorageError, match=r"tenant acme's database: .*is missing"):
        there.database_for("acme")
    assert not files[0].exists()
    assert acme.exists()


def test_db_status_reads_a_database_from_before_tenant_databases(
    make_runtime: MakeRuntime, database_url: str
) -> None:
    runtime = make_runtime(extra={"SLACK_TOOLS__DATABASE__URL": database_url})
    command.downgrade(_alembic_config(runtime.database.engine), "0007")

    [status] = database_status(runtime.config)
    assert (status.tenant, status.current) == (None, "0007")
    [(upgraded, before)] = migrate_database(runtime.config)
    assert (before, upgraded.is_current) == ("0007", True)


def test_an_unreachable_tenant_database_is_named_by_audit_and_db_status(
    make_runtime: MakeRuntime, database_url: str, strict_url: StrictUrl
) -> None:
    runtime = make_runtime(extra={"SLACK_TOOLS__DATABASE__URL": database_url})
    create(runtime, "acme", "strict", strict_url)
    create(runtime, "globex", "logical", strict_url)
    point_at(runtime, "acme", "postgresql://127.0.0.1:1/unreachable")
    runtime.databases.refresh()
    log = AuditLog.of(runtime)

    verification = log.verify()
    assert not verification.ok
    assert verification.breach is not None
    assert (verification.breach.chain, verification.breach.reason) == ("acme:*", "unreadable")
    assert "global" in verification.checked  # the shared chain was still checked
    # Listing every tenant's entries leaves out only what cannot be read.
    assert {e.tenant for e in log.entries()} == {"globex"}

    statuses = {status.tenant: status for status in database_status(runtime.config)}
    assert statuses[None].is_current
    assert not statuses["acme"].is_current
    assert "cannot reach" in (statuses["acme"].error or "")


def test_a_strict_tenants_failed_change_is_audited_in_its_own_database(
    runtime: ConfigRuntime, strict_url: StrictUrl
) -> None:
    acme = create(runtime, "acme", "strict", strict_url)
    with pytest.raises(ConfigValidationError):
        acme.update_config({"locale": "xx_XX"})

    own = runtime.database_for("acme")
    with own.engine.connect() as connection:
        outcomes = connection.execute(
            sa.select(audit_entries.c.action, audit_entries.c.outcome).where(
                audit_entries.c.tenant_id == "acme"
            )
        ).all()
    assert [row.outcome for row in outcomes].count("failure") == 1
    assert rows(runtime.database, audit_entries, "acme") == 0
