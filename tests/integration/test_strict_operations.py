"""Operator tools over strictly isolated tenants, on real databases.

A strict tenant's data lives in its own database (a SQLite file under the data
directory by default, or a PostgreSQL database): the tenant commands, dead letter
listing and replay, the audit trail, GDPR export and erasure and the admin API must
read and write it there, and never show it to another tenant's administrator.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.engine import Engine, make_url

from slack_tools.configs import ConfigManager, ConfigRuntime
from slack_tools.configs.quotas import Quota, RedisQuotaCounter, tenant_key_prefix
from slack_tools.configs.security import gdpr
from slack_tools.configs.security.actors import Actor, acting_as
from slack_tools.configs.security.audit import (
    AmbiguousDeadLetterError,
    AuditLog,
    list_dead_letters,
    replay_dead_letters,
)
from slack_tools.configs.tenant_manager import TenantManager
from slack_tools.storage.scope import ALL_TENANTS
from slack_tools.storage.tables import audit_entries, config_documents, deliveries
from tests.conftest import POSTGRES_URL, REDIS_URL
from tests.helpers import bearer, issue_test_token
from tests.integration.test_cli import clean_environment, cli
from tests.integration.test_ingest_http import (
    ADMIN_TOKEN,
    PROBLEM_JSON,
    Harness,
    OpenService,
    add_dead_letter,
    assert_problem,
    error_fields,
    harness,
    open_service,
)

__all__ = ["clean_environment", "harness", "open_service"]  # fixtures, used by name

MakeRuntime = Callable[..., ConfigRuntime]
ROOT = Actor("root", roles=frozenset({"admin"}), all_tenants=True)
DAVE = Actor("dave", roles=frozenset({"admin"}), all_tenants=True)
PASSWORD = "s3cret-strict-password-9f2c"  # nosec B105 - a test value that must never show


@dataclass(frozen=True)
class Backend:
    """The shared database, and the URL of a strict tenant's own (None: the default file)."""

    kind: str
    shared: str
    strict: str | None


def _server_url(database: str) -> str:
    """A URL of the test PostgreSQL server's ``database``, without password or options."""
    url = make_url(POSTGRES_URL).set(database=database, password=None, query={})
    return url.render_as_string(hide_password=False)


def _drop(name: str) -> None:
    admin = sa.create_engine(
        _server_url("postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    )
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """SQLite files, or a PostgreSQL schema with a PostgreSQL database for the strict tenant."""
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'shared.db'}", None)
        return
    shared: str = request.getfixturevalue("postgres_url")  # skips (fails under CI) if down
    name = f"st_strict_{uuid.uuid4().hex[:16]}"
    try:
        yield Backend("postgres", shared, _server_url(name))
    finally:
        _drop(name)


@pytest.fixture
def runtime(make_runtime: MakeRuntime, backend: Backend) -> ConfigRuntime:
    return make_runtime(database_url=backend.shared)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, backend: Backend, runtime: ConfigRuntime) -> Backend:
    """The command line sees the same databases as ``runtime`` (which migrated them)."""
    monkeypatch.setenv("SLACK_TOOLS__DATABASE__URL", backend.shared)
    return backend


def create_strict(runtime: ConfigRuntime, backend: Backend, tenant_id: str = "acme") -> None:
    with acting_as(ROOT):
        TenantManager.create(
            tenant_id,
            config={"isolation": "strict", "slack_channel": f"#{tenant_id}"},
            runtime=runtime,
            database_url=backend.strict,
        )


def create_logical(runtime: ConfigRuntime, tenant_id: str = "globex") -> None:
    with acting_as(ROOT):
        TenantManager.create(tenant_id, config={"slack_channel": f"#{tenant_id}"}, runtime=runtime)


def documents_of(engine: Engine, tenant_id: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                sa.select(sa.func.count())
                .select_from(config_documents)
                .where(config_documents.c.tenant_id == tenant_id)
            ).scalar_one()
        )


def state_of(engine: Engine, delivery_id: int) -> str:
    with engine.connect() as connection:
        state: str = connection.execute(
            sa.select(deliveries.c.state).where(deliveries.c.id == delivery_id)
        ).scalar_one()
    return state


# --- tenant create / list / show / delete ---------------------------------------------------


def test_cli_creates_a_strict_tenant_in_its_own_database_and_deletes_it(
    capsys: pytest.CaptureFixture[str],
    cli_env: Backend,
    runtime: ConfigRuntime,
    tmp_path: Path,
) -> None:
    own = ["--database-url", cli_env.strict] if cli_env.strict else []
    code, out, err = cli(
        capsys,
        "tenant",
        "create",
        "acme",
        "--channel",
        "#acme",
        "--isolation",
        "strict",
        "--skip-slack-check",
        *own,
    )
    assert code == 0, err
    assert "strict isolation: its data is in its own database" in out
    code, _, err = cli(
        capsys, "tenant", "create", "globex", "--channel", "#globex", "--skip-slack-check"
    )
    assert code == 0, err

    runtime.refresh_from_database()  # the registry as the command left it
    shared = runtime.database.engine
    own_database = runtime.database_for("acme")
    assert own_database is not runtime.database
    assert documents_of(shared, "acme") == 0  # the document is in the tenant's own database
    assert documents_of(own_database.engine, "acme") == 1
    assert documents_of(shared, "globex") == 1
    if cli_env.kind == "sqlite":
        assert (tmp_path / "data" / "tenants" / "acme.db").is_file()
    current = runtime.store.current(TenantManager("acme", runtime)._document)
    assert current is not None
    assert current.content["isolation"] == "strict"

    code, out, err = cli(capsys, "tenant", "list")
    assert code == 0, err
    acme = next(line for line in out.splitlines() if "acme" in line)
    assert "strict" in acme
    globex = next(line for line in out.splitlines() if "globex" in line)
    assert "logical" in globex
    assert "shared" in globex

    code, out, err = cli(capsys, "tenant", "show", "acme")
    assert code == 0, err
    assert "# isolation strict; data in its own" in out
    code, out, err = cli(capsys, "tenant", "show", "globex")
    assert "# isolation logical; data in the shared database" in out

    code, out, err = cli(capsys, "tenant", "delete", "acme", "--yes")
    assert code == 0, err
    assert "tenant acme deleted" in err
    assert "its own database" in err
    assert "emptied" in err
    if cli_env.kind == "sqlite":
        assert "file removed" in err
        assert not (tmp_path / "data" / "tenants" / "acme.db").exists()
    else:
        assert "DROP DATABASE" in err


def test_cli_refuses_a_database_url_with_a_password_or_without_strict_isolation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = cli(
        capsys,
        "tenant",
        "create",
        "acme",
        "--channel",
        "#acme",
        "--isolation",
        "strict",
        "--skip-slack-check",
        "--database-url",
        f"postgresql://acme:{PASSWORD}@db.internal/acme",
    )
    assert code == 2
    assert "must not hold a password" in err
    assert PASSWORD not in out + err

    code, _, err = cli(
        capsys,
        "tenant",
        "create",
        "acme",
        "--channel",
        "#acme",
        "--skip-slack-check",
        "--database-url",
        "postgresql://db.internal/acme",
    )
    assert code == 2
    assert "strict isolation only" in err
    code, _, err = cli(capsys, "tenant", "list")
    assert "acme" not in err  # nothing was created
    code, _, err = cli(
        capsys, "tenant", "create", "acme", "--channel", "#a", "--isolation", "separate"
    )
    assert code == 2


def test_a_runtime_starts_when_a_strict_tenant_exists(
    make_runtime: MakeRuntime, backend: Backend
) -> None:
    """What every command does: start a runtime over a registry that has a strict tenant."""
    first = make_runtime(database_url=backend.shared)
    create_strict(first, backend)
    second = make_runtime(database_url=backend.shared)
    assert second.databases.strict_ids() == ["acme"]
    assert second.effective("acme").tenant.slack_channel == "#acme"


# --- dead letters ----------------------------------------------------------------------------


def test_dead_letters_of_a_strict_tenant_are_listed_and_replayed_in_its_database(
    runtime: ConfigRuntime, backend: Backend
) -> None:
    create_strict(runtime, backend)
    create_logical(runtime)
    own = runtime.database_for("acme").engine
    shared = runtime.database.engine
    strict_letter = add_dead_letter(own, "acme", "StrictDead", "channel_not_found")
    logical_letter = add_dead_letter(shared, "globex", "LogicalDead", "is_archived")
    log = AuditLog.of(runtime)

    letters = list_dead_letters(log, ALL_TENANTS)
    assert {(d.tenant_id, d.reason) for d in letters} == {
        ("acme", "channel_not_found"),
        ("globex", "is_archived"),
    }
    assert [(d.tenant_id, d.id) for d in list_dead_letters(log, "acme")] == [
        ("acme", strict_letter)
    ]
    assert [d.tenant_id for d in list_dead_letters(log, "globex")] == ["globex"]

    assert replay_dead_letters(log, "acme") == 1
    assert state_of(own, strict_letter) != "dead"
    assert state_of(shared, logical_letter) == "dead"  # the shared database is untouched
    [entry] = log.list(action="deadletters.replay")
    assert (entry.chain, entry.tenant, entry.diff["replayed"]) == ("acme:global", "acme", 1)
    with own.connect() as connection:  # audited where the change is, with it
        actions = connection.execute(sa.select(audit_entries.c.action)).scalars().all()
    assert "deadletters.replay" in actions

    assert replay_dead_letters(log, ALL_TENANTS) == 1  # every database in turn
    assert state_of(shared, logical_letter) != "dead"
    assert list_dead_letters(log, ALL_TENANTS) == []
    everything = log.list(action="deadletters.replay")
    assert [(e.chain, e.tenant) for e in everything] == [("global", ""), ("acme:global", "acme")]
    assert log.verify().ok


def test_deadletters_commands_list_both_kinds_and_replay_in_the_tenants_database(
    capsys: pytest.CaptureFixture[str], cli_env: Backend, runtime: ConfigRuntime
) -> None:
    create_strict(runtime, cli_env)
    create_logical(runtime)
    own = runtime.database_for("acme").engine
    shared = runtime.database.engine
    strict_letter = add_dead_letter(own, "acme", "StrictDead", "channel_not_found")
    logical_letter = add_dead_letter(shared, "globex", "LogicalDead", "is_archived")

    code, out, err = cli(capsys, "deadletters", "list")
    assert code == 0, err
    assert "acme (own database)" in out
    assert "globex" in out
    assert "channel_not_found" in out
    assert "is_archived" in out
    code, out, err = cli(capsys, "deadletters", "list", "--tenant", "acme")
    assert code == 0, err
    assert "channel_not_found" in out
    assert "globex" not in out

    assert strict_letter == logical_letter  # ids are per database: this one is in both
    code, _, err = cli(capsys, "deadletters", "replay", str(strict_letter))
    assert code == 1
    assert "name the tenant" in err
    assert state_of(own, strict_letter) == "dead"
    assert state_of(shared, logical_letter) == "dead"

    code, out, err = cli(capsys, "deadletters", "replay", "--tenant", "acme")
    assert code == 0, err
    assert "1 dead letter(s) queued again" in out
    assert state_of(own, strict_letter) != "dead"
    assert state_of(shared, logical_letter) == "dead"
    code, out, err = cli(capsys, "deadletters", "replay", "--all")
    assert code == 0, err
    assert "1 dead letter(s) queued again" in out
    assert state_of(shared, logical_letter) != "dead"


def test_replaying_ids_without_a_tenant_finds_their_database_or_refuses_ambiguity(
    runtime: ConfigRuntime, backend: Backend
) -> None:
    create_strict(runtime, backend)
    create_logical(runtime)
    own = runtime.database_for("acme").engine
    shared = runtime.database.engine
    log = AuditLog.of(runtime)
    first = add_dead_letter(own, "acme", "One", "invalid_auth")
    second = add_dead_letter(own, "acme", "Two", "invalid_auth")
    logical = add_dead_letter(shared, "globex", "Three", "invalid_auth")
    assert first == logical  # each database numbers its own from 1

    with pytest.raises(AmbiguousDeadLetterError, match="name the tenant"):
        replay_dead_letters(log, ALL_TENANTS, ids=[first])
    assert replay_dead_letters(log, ALL_TENANTS, ids=[second]) == 1  # only acme has it
    assert state_of(own, second) != "dead"
    assert state_of(own, first) == "dead"
    assert replay_dead_letters(log, "globex", ids=[logical]) == 1
    assert state_of(own, first) == "dead"


# --- the audit trail -------------------------------------------------------------------------


def test_audit_verify_covers_the_strict_tenants_chain_and_finds_tampering_there(
    runtime: ConfigRuntime, backend: Backend
) -> None:
    create_strict(runtime, backend)
    create_logical(runtime)
    with acting_as(ROOT):
        TenantManager("acme", runtime).update_config({"alert_threshold": "critical_only"})
        TenantManager("acme", runtime).rename("Acme Corp")  # a registry change: shared

    log = AuditLog.of(runtime)
    result = log.verify()
    assert result.ok, result.breach
    assert result.checked["acme:global"] >= 2  # created, then updated
    assert result.checked["global"] >= 1
    assert "acme:global" in result.heads

    listed = log.list(tenant="acme")
    chains = {(e.action, e.chain) for e in listed}
    assert ("tenant.create", "acme:global") in chains  # written with its first version
    assert ("tenant.rename", "global") in chains  # the shared database's, for the same tenant
    assert all(e.tenant == "acme" for e in listed)
    assert all(e.actor == "root" for e in listed)  # identities read beside their entries
    assert not any(e.tenant == "acme" for e in log.list(tenant="globex"))

    own = runtime.database_for("acme").engine
    with own.begin() as connection:
        connection.execute(
            audit_entries.update().where(audit_entries.c.seq == 1).values(target="tenant:evil")
        )
    broken = log.verify()
    assert broken.breach is not None
    assert (broken.breach.chain, broken.breach.seq, broken.breach.reason) == (
        "acme:global",
        1,
        "modified",
    )
    assert log.verify("global").ok  # the shared chain is intact
    assert not log.verify("acme:global").ok


def test_audit_commands_show_the_strict_tenants_chain(
    capsys: pytest.CaptureFixture[str], cli_env: Backend, runtime: ConfigRuntime
) -> None:
    create_strict(runtime, cli_env)
    code, out, err = cli(capsys, "audit", "verify")
    assert code == 0, err
    assert "chain acme:global:" in out
    assert "audit trail intact" in out
    code, out, err = cli(capsys, "audit", "list", "--tenant", "acme", "--json")
    assert code == 0, err
    assert '"chain": "acme:global"' in out

    with runtime.database_for("acme").engine.begin() as connection:
        connection.execute(
            audit_entries.update().where(audit_entries.c.seq == 1).values(target="tenant:evil")
        )
    code, out, err = cli(capsys, "audit", "verify")
    assert code == 1
    assert "chain acme:global: entry 1 modified" in err


# --- GDPR ------------------------------------------------------------------------------------


def test_gdpr_export_and_erase_reach_a_user_in_a_strict_tenants_database(
    runtime: ConfigRuntime, backend: Backend
) -> None:
    create_strict(runtime, backend)
    create_logical(runtime)
    with acting_as(ROOT):
        ConfigManager(runtime).update_user_config("acme", "dave", {"locale": "de_DE"})
    with acting_as(DAVE):  # dave himself changes the strict tenant: audited in its database
        TenantManager("acme", runtime).update_config(
            {"alert_threshold": "critical_only"}, author="dave"
        )
    own = runtime.database_for("acme").engine
    assert documents_of(runtime.database.engine, "acme") == 0
    assert documents_of(own, "acme") == 2  # the tenant's and dave's

    for scope in (None, "acme"):
        exported = gdpr.export_user(runtime, "dave", scope)
        assert [d["tenant"] for d in exported["configuration"]] == ["acme"]
        assert exported["configuration"][0]["versions"][0]["content"]["locale"] == "de_DE"
        assert [v["document"] for v in exported["versions_authored"]]
        by = exported["audit"]["by"]
        assert by
        assert {e["chain"] for e in by} == {"acme:global"}
        assert all(e["actor"] == "dave" for e in by)
    assert gdpr.export_user(runtime, "dave", "globex")["configuration"] == []

    erasure = gdpr.erase_user(runtime, "dave")
    assert erasure.removed["user_documents"] == 1
    assert erasure.removed["versions_reattributed"] >= 1
    assert erasure.removed["pseudonyms"] >= 1
    assert documents_of(own, "acme") == 1  # the tenant's document stays
    log = AuditLog.of(runtime)
    assert log.verify().ok  # every chain still verifies
    again = gdpr.export_user(runtime, "dave")
    assert again["configuration"] == []
    assert again["versions_authored"] == []
    assert again["audit"]["by"] == []  # the entries stay, naming only the pseudonym
    entries = log.list(tenant="acme", action="tenant.update") + log.list(
        tenant="acme", action="config"
    )
    assert erasure.pseudonym in {e.actor for e in entries}
    erased = log.list(tenant="acme", action="gdpr.erase")
    assert {e.chain for e in erased} == {"acme:global"}


# --- the admin API ---------------------------------------------------------------------------


@pytest.fixture
async def served(open_service: OpenService, backend: Backend) -> tuple[Harness, Backend]:
    """A service on ``backend`` with logical tenant acme (the harness's) and strict initech."""
    harness = await open_service(database_url=backend.shared)
    create_strict(harness.runtime, backend, "initech")
    return harness, backend


async def test_a_tenant_admin_gets_nothing_of_a_strict_tenant(
    served: tuple[Harness, Backend],
) -> None:
    harness, _ = served
    runtime = harness.runtime
    add_dead_letter(runtime.database_for("initech").engine, "initech", "Dead", "invalid_auth")
    with acting_as(ROOT):
        ConfigManager(runtime).update_user_config("initech", "dave", {"locale": "de_DE"})
    acme_admin = bearer(issue_test_token("admin", ("acme",), subject="alice"))
    client = harness.client

    refused = [
        await client.get("/admin/deadletters", params={"tenant": "initech"}, headers=acme_admin),
        await client.get("/admin/deadletters", headers=acme_admin),
        await client.post(
            "/admin/deadletters/replay", json={"tenant": "initech"}, headers=acme_admin
        ),
        await client.post("/admin/deadletters/replay", json={}, headers=acme_admin),
        await client.get("/api/v1/audit", params={"tenant": "initech"}, headers=acme_admin),
        await client.get("/api/v1/audit", headers=acme_admin),
        await client.get("/api/v1/audit/verify", headers=acme_admin),
        await client.get("/api/v1/tenants/initech/usage", headers=acme_admin),
        await client.get("/api/v1/tenants/initech", headers=acme_admin),
        await client.get(
            "/api/v1/gdpr/users/dave", params={"tenant": "initech"}, headers=acme_admin
        ),
        await client.get("/api/v1/gdpr/users/dave", headers=acme_admin),
        await client.delete(
            "/api/v1/gdpr/users/dave", params={"tenant": "initech"}, headers=acme_admin
        ),
    ]
    for response in refused:
        assert response.status_code == 403, (response.request.url, response.text)
        assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON
        assert "Dead" not in response.text
        assert "de_DE" not in response.text

    mine = await client.get("/api/v1/audit", params={"tenant": "acme"}, headers=acme_admin)
    assert mine.status_code == 200, mine.text
    assert all(e["tenant"] == "acme" for e in mine.json()["entries"])
    assert "initech" not in mine.text
    listed = await client.get("/api/v1/tenants", headers=acme_admin)
    assert [t["id"] for t in listed.json()["tenants"]] == ["acme"]
    # Still there, for whom may see it.
    gdpr_export = await client.get(
        "/api/v1/gdpr/users/dave", params={"tenant": "initech"}, headers=bearer(ADMIN_TOKEN)
    )
    assert gdpr_export.json()["configuration"][0]["tenant"] == "initech"


async def test_the_admin_api_replays_and_audits_a_strict_tenants_dead_letters(
    served: tuple[Harness, Backend],
) -> None:
    harness, _ = served
    own = harness.runtime.database_for("initech").engine
    dead = add_dead_letter(own, "initech", "Dead", "invalid_auth")
    shared_dead = add_dead_letter(harness.engine, "acme", "Dead", "invalid_auth")
    admin = bearer(ADMIN_TOKEN)

    replayed = await harness.client.post(
        "/admin/deadletters/replay", json={"tenant": "initech"}, headers=admin
    )
    assert (replayed.status_code, replayed.json()) == (200, {"replayed": 1})
    assert state_of(own, dead) != "dead"
    assert state_of(harness.engine, shared_dead) == "dead"
    audit = await harness.client.get(
        "/api/v1/audit", params={"tenant": "initech", "action": "deadletters"}, headers=admin
    )
    [entry] = audit.json()["entries"]
    assert (entry["chain"], entry["diff"]["replayed"]) == ("initech:global", 1)
    verified = await harness.client.get("/api/v1/audit/verify", headers=admin)
    assert verified.status_code == 200, verified.text
    assert "initech:global" in verified.json()["checked"]


async def test_the_admin_api_lists_every_databases_dead_letters_and_refuses_ambiguous_ids(
    served: tuple[Harness, Backend],
) -> None:
    harness, _ = served
    own = harness.runtime.database_for("initech").engine
    strict_dead = add_dead_letter(own, "initech", "Own", "invalid_auth")
    shared_dead = add_dead_letter(harness.engine, "acme", "Shared", "channel_not_found")
    assert strict_dead == shared_dead  # each database numbers its own
    admin = bearer(ADMIN_TOKEN)

    listed = await harness.client.get("/admin/deadletters", headers=admin)
    assert listed.status_code == 200, listed.text
    assert {(d["tenant"], d["reason"]) for d in listed.json()["dead_letters"]} == {
        ("initech", "invalid_auth"),
        ("acme", "channel_not_found"),
    }
    refused = await harness.client.post(
        "/admin/deadletters/replay", json={"ids": [strict_dead]}, headers=admin
    )
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].split(";")[0] == PROBLEM_JSON
    assert "name the tenant" in refused.json()["detail"]
    assert state_of(own, strict_dead) == "dead"
    assert state_of(harness.engine, shared_dead) == "dead"


async def test_the_tenant_api_creates_a_strict_tenant_and_shows_where_its_data_is(
    open_service: OpenService, backend: Backend
) -> None:
    harness = await open_service(database_url=backend.shared)
    body: dict[str, object] = {
        "id": "initech",
        "config": {"isolation": "strict", "slack_channel": "#initech"},
    }
    if backend.strict:
        body["database_url"] = backend.strict
    created = await harness.client.post("/api/v1/tenants", json=body, headers=bearer(ADMIN_TOKEN))
    assert created.status_code == 201, created.text
    tenant = created.json()["tenant"]
    expected = backend.strict or "sqlite:///tenants/initech.db"
    assert (tenant["isolation"], tenant["database"]) == ("strict", expected)
    assert documents_of(harness.engine, "initech") == 0
    assert documents_of(harness.runtime.database_for("initech").engine, "initech") == 1

    listed = await harness.client.get("/api/v1/tenants", headers=bearer(ADMIN_TOKEN))
    by_id = {t["id"]: t for t in listed.json()["tenants"]}
    assert by_id["initech"]["isolation"] == "strict"
    assert "database" not in by_id["acme"]  # in the shared database
    shown = await harness.client.get("/api/v1/tenants/initech", headers=bearer(ADMIN_TOKEN))
    assert shown.json()["tenant"]["database"] == expected
    assert shown.json()["config"]["isolation"] == "strict"


async def test_only_an_admin_of_every_tenant_may_choose_a_tenants_database(
    harness: Harness, tmp_path: Path
) -> None:
    """Where the service connects, with its own database password, is not a tenant's
    choice: a tenant admin may create its tenant strict, but not name its database."""
    body = {
        "id": "initech",
        "config": {"isolation": "strict", "slack_channel": "#initech"},
        "database_url": f"sqlite:///{tmp_path / 'elsewhere.db'}",
    }
    tenant_admin = bearer(issue_test_token("tenant_admin", ("initech",), subject="alice"))
    refused = await harness.client.post("/api/v1/tenants", json=body, headers=tenant_admin)
    assert refused.status_code == 403, refused.text
    assert not (tmp_path / "elsewhere.db").exists()
    assert not TenantManager("initech", harness.runtime).exists()

    del body["database_url"]
    created = await harness.client.post("/api/v1/tenants", json=body, headers=tenant_admin)
    assert created.status_code == 201, created.text
    assert created.json()["tenant"]["isolation"] == "strict"


@pytest.mark.parametrize(
    ("database_url", "isolation", "says"),
    [
        (5, "strict", "non-empty string"),
        ("", "strict", "non-empty string"),
        ("   ", "strict", "non-empty string"),
        (["postgresql://db/x"], "strict", "non-empty string"),
        ({"url": "postgresql://db/x"}, "strict", "non-empty string"),
        (f"postgresql://acme:{PASSWORD}@db.internal/acme", "strict", "password"),
        ("not a url at all", "strict", "database URL"),
        ("mysql://db.internal/acme", "strict", "SQLite or PostgreSQL"),
        ("sqlite://", "strict", "in-memory"),
        ("postgresql://db.internal/acme?password=x", "strict", "not password"),
        ("postgresql://db.internal/acme", "logical", "strict isolation only"),
        ("postgresql://db.internal/acme", None, "strict isolation only"),
    ],
)
async def test_a_malformed_database_url_is_a_422_naming_the_field(
    harness: Harness, database_url: object, isolation: str | None, says: str
) -> None:
    config: dict[str, object] = {"slack_channel": "#initech"}
    if isolation is not None:
        config["isolation"] = isolation
    response = await harness.client.post(
        "/api/v1/tenants",
        json={"id": "initech", "config": config, "database_url": database_url},
        headers=bearer(ADMIN_TOKEN),
    )
    body = assert_problem(response, 422)
    assert error_fields(body) == ["database_url"]
    assert says in response.text
    assert PASSWORD not in response.text
    assert TenantManager("initech", harness.runtime).exists() is False


async def test_a_null_database_url_is_the_default(harness: Harness) -> None:
    response = await harness.client.post(
        "/api/v1/tenants",
        json={
            "id": "initech",
            "config": {"isolation": "strict", "slack_channel": "#initech"},
            "database_url": None,
        },
        headers=bearer(ADMIN_TOKEN),
    )
    assert response.status_code == 201, response.text
    assert response.json()["tenant"]["database"] == "sqlite:///tenants/initech.db"


# --- Redis -----------------------------------------------------------------------------------


QUOTA = Quota.named("alerts_per_minute", 100)


async def test_a_strict_tenants_quota_keys_are_under_its_own_prefix(
    make_runtime: MakeRuntime, tmp_path: Path, prefix: str
) -> None:
    runtime = make_runtime(database_url=f"sqlite:///{tmp_path / 'shared.db'}")
    create_strict(runtime, Backend("sqlite", "", None))
    create_logical(runtime)
    client = Redis.from_url(REDIS_URL)
    try:
        counter = RedisQuotaCounter(client, prefix, strict=runtime.databases.is_known_strict)
        assert (await counter.take("acme", QUOTA, 3)).used == 3
        assert (await counter.take("globex", QUOTA, 2)).used == 2
        assert (await counter.peek("acme", QUOTA)).used == 3

        keys = sorted([k.decode() async for k in client.scan_iter(match=f"{prefix}*")])
        own = tenant_key_prefix(prefix, "acme")
        assert own == f"{prefix}tenant:acme:"
        assert [k for k in keys if k.startswith(own)] == [
            k for k in keys if k.startswith(f"{own}quota:alerts_per_minute:")
        ]
        assert len([k for k in keys if k.startswith(own)]) == 1
        assert not [k for k in keys if k.startswith(f"{prefix}quota:acme:")]
        # A logical tenant's keys are where they always were.
        assert (
            len([k for k in keys if k.startswith(f"{prefix}quota:globex:alerts_per_minute:")]) == 1
        )
        # Without the strictness answer (as before), every key is under the shared layout.
        plain = RedisQuotaCounter(client, prefix)
        window = QUOTA.window(0)
        assert plain.key("acme", QUOTA, window) == f"{prefix}quota:acme:alerts_per_minute:{window}"
    finally:
        await client.aclose()
