"""Every state change leaves exactly one audit entry, written with the change."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from typer.testing import CliRunner

from slack_tools.cli import app as cli_app
from slack_tools.configs import ConfigManager, ConfigRuntime, ConfigValidationError
from slack_tools.configs.security import generate_key
from slack_tools.configs.security.actors import Actor, acting_as
from slack_tools.configs.security.audit import AuditEntry, AuditLog, replay_dead_letters
from slack_tools.configs.tenant_manager import TenantManager
from slack_tools.storage import DocumentKey
from slack_tools.storage.scope import ALL_TENANTS
from tests.helpers import assert_no_secret
from tests.integration.test_ingest_http import add_dead_letter

MakeRuntime = Callable[..., ConfigRuntime]
TOKEN = "xoxb-2222222222-audit-wiring-secret-token"
CAROL = Actor("carol", roles=frozenset({"admin"}), all_tenants=True)
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def runtime(make_runtime: MakeRuntime, database_url: str, master_keys: str) -> ConfigRuntime:
    return make_runtime(database_url=database_url, extra={"SLACK_TOOLS_MASTER_KEYS": master_keys})


def entries(runtime: ConfigRuntime) -> list[AuditEntry]:
    return list(reversed(AuditLog.of(runtime).list()))


def only_new(runtime: ConfigRuntime, before: int) -> AuditEntry:
    """The one entry written since ``before`` entries existed."""
    found = entries(runtime)[before:]
    assert len(found) == 1, [e.action for e in found]
    assert AuditLog.of(runtime).verify().ok
    assert_no_secret(json.dumps([e.as_dict() for e in entries(runtime)]), TOKEN)
    return found[0]


def made(runtime: ConfigRuntime, tenant_id: str = "acme") -> TenantManager:
    with acting_as(CAROL):
        manager, _ = TenantManager.create(
            tenant_id, config={"slack_channel": "#acme-alerts"}, runtime=runtime
        )
    return manager


def test_tenant_creation_is_one_entry(runtime: ConfigRuntime) -> None:
    """Creating a tenant records tenant.create once, with its first configuration."""
    made(runtime)
    (entry,) = entries(runtime)
    assert (entry.action, entry.actor, entry.target, entry.tenant) == (
        "tenant.create",
        "carol",
        "tenant:acme",
        "acme",
    )
    assert {
        "path": "slack_channel",
        "kind": "added",
        "old": None,
        "new": "#acme-alerts",
    } in entry.diff["changes"]


def test_a_refused_tenant_creation_is_a_failure_entry(runtime: ConfigRuntime) -> None:
    """An invalid configuration refuses the creation; the trail says so once."""
    with acting_as(CAROL), pytest.raises(ConfigValidationError):
        TenantManager.create("acme", config={"alert_threshold": "loud"}, runtime=runtime)
    (entry,) = entries(runtime)
    assert (entry.action, entry.outcome, entry.error) == (
        "tenant.create",
        "failure",
        "ConfigValidationError",
    )


@pytest.mark.parametrize(
    ("change", "action", "diff_key"),
    [
        (lambda m: m.rename("ACME Inc"), "tenant.rename", "name"),
        (lambda m: m.disable(), "tenant.disable", "status"),
        (lambda m: m.enable(), "tenant.enable", "status"),
        (lambda m: m.create_key("ci"), "tenant.key.create", "prefix"),
        (lambda m: m.revoke_key(m.api_keys()[0].id), "tenant.key.revoke", "key_id"),
        (lambda m: m.delete(), "tenant.delete", "removed"),
    ],
)
def test_tenant_changes_are_one_entry_each(
    runtime: ConfigRuntime, change: Callable[[TenantManager], Any], action: str, diff_key: str
) -> None:
    """Rename, disable, enable, key creation and revocation, deletion: one entry each."""
    manager = made(runtime)
    before = len(entries(runtime))
    with acting_as(CAROL):
        change(manager)
    entry = only_new(runtime, before)
    assert (entry.action, entry.actor, entry.target, entry.tenant, entry.outcome) == (
        action,
        "carol",
        "tenant:acme",
        "acme",
        "success",
    )
    assert diff_key in entry.diff


def test_a_secret_written_to_a_tenant_is_masked_in_its_entry(runtime: ConfigRuntime) -> None:
    """A tenant token change is audited as changed, never in clear or encrypted."""
    manager = made(runtime)
    before = len(entries(runtime))
    with acting_as(CAROL):
        manager.update_config({"slack_bot_token": TOKEN, "alert_threshold": "critical_only"})
    entry = only_new(runtime, before)
    assert entry.action == "config.update"
    changes = {c["path"]: c for c in entry.diff["changes"]}
    assert changes["slack_bot_token"]["new"] == "********"
    assert changes["alert_threshold"]["new"] == "critical_only"
    assert "enc:" not in json.dumps(entry.as_dict())


def test_global_and_user_writes_and_rollback_are_audited(runtime: ConfigRuntime) -> None:
    """Global overrides, a user's document and a rollback: one entry each."""
    made(runtime)
    config = ConfigManager(runtime)
    with acting_as(CAROL):
        before = len(entries(runtime))
        config.update_global({"tenants": {"defaults": {"alert_threshold": "critical_only"}}})
        assert only_new(runtime, before).target == "config:global"

        before = len(entries(runtime))
        config.update_user_config("acme", "dave", {"locale": "de_DE"})
        user_entry = only_new(runtime, before)
        assert (user_entry.target, user_entry.subject) == ("config:user/acme", "dave")
        assert user_entry.diff["changes"] == [{"path": "locale", "kind": "added"}]

        before = len(entries(runtime))
        config.rollback(DocumentKey.for_scope("acme"), 1)
        rolled = only_new(runtime, before)
        assert (rolled.action, rolled.diff["based_on"]) == ("config.rollback", 1)


def test_an_unchanged_write_leaves_no_entry(runtime: ConfigRuntime) -> None:
    """Writing what is already there changes nothing and records nothing."""
    manager = made(runtime)
    before = len(entries(runtime))
    manager.update_config({"slack_channel": "#acme-alerts"})
    assert len(entries(runtime)) == before


def test_dead_letter_replay_is_audited_with_the_count(runtime: ConfigRuntime) -> None:
    """A replay and its entry commit together; the entry holds how many were queued."""
    made(runtime)
    add_dead_letter(runtime.database.engine, "acme", "Dead", "invalid_auth")
    before = len(entries(runtime))
    with acting_as(CAROL):
        assert replay_dead_letters(AuditLog.of(runtime), ALL_TENANTS) == 1
    entry = only_new(runtime, before)
    assert (entry.action, entry.target, entry.diff["replayed"]) == (
        "deadletters.replay",
        "deadletters:all",
        1,
    )


def test_key_rotation_from_the_cli_is_audited(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, master_keys: str
) -> None:
    """``keys rotate`` records one keys.rotate entry with its counts."""
    data = tmp_path / "data"
    monkeypatch.setenv("SLACK_TOOLS_DATA_DIR", str(data))
    monkeypatch.setenv("SLACK_TOOLS_MASTER_KEYS", master_keys)
    runner = CliRunner()
    written = runner.invoke(
        cli_app, ["config", "set", "slack_bot_token", TOKEN, "--tenant", "acme"]
    )
    assert written.exit_code == 0, written.output
    monkeypatch.setenv("SLACK_TOOLS_MASTER_KEYS", f"k2:{generate_key()},{master_keys}")
    result = runner.invoke(cli_app, ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    runtime = ConfigRuntime.from_environ()
    runtime.start()
    try:
        rotations = AuditLog.of(runtime).list(action="keys.rotate")
        assert len(rotations) == 1
        assert rotations[0].target == "master-key:k2"
        assert rotations[0].diff["audit_key"] == 1
        assert AuditLog.of(runtime).verify().ok
    finally:
        runtime.database.dispose()
