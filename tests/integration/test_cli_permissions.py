"""CLI permissions: one table covers every command; token issue signs, verifies and is audited."""

from __future__ import annotations

import os
from pathlib import Path

import jwt
import pytest
import typer
from typer.testing import CliRunner

from slack_tools.cli import app, run
from slack_tools.cli.permissions import COMMAND_PERMISSIONS, PUBLIC, check_command, commands_of
from slack_tools.configs import ConfigRuntime
from slack_tools.configs.config_loader import read_environment
from slack_tools.configs.security.actors import Actor, acting_as, local_admin
from slack_tools.configs.security.audit import AuditLog
from slack_tools.configs.security.rbac import PERMISSIONS
from slack_tools.configs.security.tokens import build_verifier
from slack_tools.errors import PermissionDenied


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Each command sees only the variables the test sets, and a private data directory."""
    for name in ("ENVIRONMENT", "SLACK_TOOLS_CONFIG", "SLACK_TOOLS_MASTER_KEYS", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith("SLACK_TOOLS__")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SLACK_TOOLS_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def leaf_paths(command: object, prefix: tuple[str, ...] = ()) -> list[str]:
    """Every runnable command under ``command`` (a click group or command), as 'group name'."""
    children = getattr(command, "commands", None)
    if children is None:
        return [" ".join(prefix)]
    return [p for name, child in children.items() for p in leaf_paths(child, (*prefix, name))]


def test_every_command_is_in_the_permission_table() -> None:
    """Walking the command tree finds no command the table forgets (add it there)."""
    paths = leaf_paths(typer.main.get_command(app))
    assert "token issue" in paths
    assert "tenant create" in paths
    missing = sorted(set(paths) - set(COMMAND_PERMISSIONS))
    assert missing == [], f"commands without a permission in cli/permissions.py: {missing}"
    assert sorted(paths) == sorted(path for path, _ in commands_of(app))


def test_the_table_names_only_catalogue_permissions() -> None:
    """Each entry is a catalogue permission or explicitly public."""
    unknown = {p: n for p, n in COMMAND_PERMISSIONS.items() if n != PUBLIC and n not in PERMISSIONS}
    assert unknown == {}


@pytest.mark.parametrize(
    "path",
    [
        "config set",
        "config apply",
        "config rollback",
        "tenant create",
        "tenant delete",
        "tenant add-key",
        "tenant revoke-key",
        "deadletters replay",
        "keys rotate",
        "db upgrade",
        "token issue",
    ],
)
def test_commands_that_change_state_need_a_permission(path: str) -> None:
    """State-changing commands are never public."""
    assert COMMAND_PERMISSIONS[path] != PUBLIC


def test_the_local_administrator_passes_and_others_are_checked() -> None:
    """The local admin runs anything; a viewer reads but cannot create a tenant."""
    viewer = Actor("vic", roles=frozenset({"viewer"}), tenants=frozenset({"acme"}))
    with acting_as(local_admin("ops")):
        check_command("tenant create")
        check_command("some future command")
    with acting_as(viewer):
        check_command("tenant list")
        check_command("version")
        with pytest.raises(PermissionDenied):
            check_command("tenant create")
        with pytest.raises(PermissionDenied):  # unlisted: every permission needed
            check_command("some future command")


def test_a_command_refuses_an_actor_without_its_permission(tmp_path: Path) -> None:
    """Driven in-process as a viewer, 'tenant create' is refused before it writes anything."""
    viewer = Actor("vic", roles=frozenset({"viewer"}), tenants=frozenset({"acme"}))
    with acting_as(viewer):
        result = CliRunner().invoke(app, ["tenant", "create", "acme", "--channel", "#acme"])
    assert isinstance(result.exception, PermissionDenied)
    assert "tenants.write" in str(result.exception)
    with acting_as(viewer):
        listed = CliRunner().invoke(app, ["tenant", "list"])
    assert listed.exit_code == 0, listed.output


def test_token_issue_prints_a_token_the_service_accepts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The printed token verifies with the service's configuration and carries what was asked."""
    code = run(["token", "issue", "--role", "tenant_admin", "--tenant", "acme", "--ttl", "2h"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    token = printed.out.strip()
    runtime = ConfigRuntime(read_environment())
    runtime.start()
    try:
        verifier = build_verifier(runtime.config)
        assert verifier is not None
        actor = verifier.verify(token)
        assert actor.roles == frozenset({"tenant_admin"})
        assert actor.tenants == frozenset({"acme"})
        assert actor.claims["exp"] == int(str(actor.claims["iat"])) + 7200
        [entry] = AuditLog.of(runtime).entries(action="token.issue")
        assert entry.diff["roles"] == ["tenant_admin"]
        assert entry.diff["tenants"] == ["acme"]
        assert entry.actor_kind == "local"
        assert token not in str(entry.as_dict())
    finally:
        runtime.database.dispose()


def test_token_issue_for_every_tenant_and_another_subject(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--all-tenants writes '*'; --subject names who the token is for."""
    argv = ["-r", "operator", "-r", "viewer", "--all-tenants", "--subject", "ci-bot"]
    code = run(["token", "issue", *argv, "--ttl", "15m"])
    assert code == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), options={"verify_signature": False})
    assert claims["sub"] == "ci-bot"
    assert claims["tenants"] == ["*"]
    assert sorted(claims["roles"]) == ["operator", "viewer"]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--role", "admin"], "--tenant"),
        (["--role", "admin", "--all-tenants", "--tenant", "acme"], "not both"),
        (["--role", "wizard", "--all-tenants"], "unknown role"),
        (["--role", "admin", "--all-tenants", "--ttl", "soon"], "duration"),
        (["--role", "admin", "--all-tenants", "--ttl", "0s"], "duration"),
        (["--role", "admin", "--all-tenants", "--ttl", "400d"], "at most"),
    ],
)
def test_token_issue_refuses_unclear_requests(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    """Missing scope, unknown roles and bad lifetimes are usage errors that say what to fix."""
    code = run(["token", "issue", *argv])
    captured = capsys.readouterr()
    assert code == 2
    assert fragment in captured.err
    assert captured.out == ""
