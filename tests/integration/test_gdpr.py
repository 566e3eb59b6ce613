"""GDPR on real databases: export, erasure that keeps the chain verifying, the register, logs."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
import structlog
from typer.testing import CliRunner

from slack_tools.cli import app as cli_app
from slack_tools.configs import ConfigManager, ConfigRuntime
from slack_tools.configs.security import gdpr
from slack_tools.configs.security.actors import Actor, acting_as
from slack_tools.configs.security.audit import AuditLog
from slack_tools.configs.tenant_manager import TenantManager
from slack_tools.storage.tables import audit_pseudonyms, config_documents, config_versions

MakeRuntime = Callable[..., ConfigRuntime]
ADMIN = Actor("root-admin", roles=frozenset({"admin"}), all_tenants=True)


@pytest.fixture
def runtime(make_runtime: MakeRuntime, database_url: str) -> ConfigRuntime:
    runtime = make_runtime(database_url=database_url)
    with acting_as(ADMIN):
        TenantManager.create("acme", config={"slack_channel": "#acme"}, runtime=runtime)
        TenantManager.create("beta", config={"slack_channel": "#beta"}, runtime=runtime)
        config = ConfigManager(runtime)
        config.update_user_config("acme", "dave", {"locale": "de_DE"})
        config.update_user_config("beta", "dave", {"timezone": "Europe/Berlin"})
        config.update_user_config("acme", "erin", {"locale": "fr_FR"})
    with acting_as(Actor("dave", roles=frozenset({"admin"}), all_tenants=True)):
        TenantManager("acme", runtime).rename("ACME by Dave")
    return runtime


def test_export_holds_configuration_history_and_audit(runtime: ConfigRuntime) -> None:
    """An export has the person's documents with history and the entries about and by them."""
    data = gdpr.export_user(runtime, "dave")
    assert json.loads(json.dumps(data)) == data  # JSON-ready
    assert {d["tenant"] for d in data["configuration"]} == {"acme", "beta"}
    acme = next(d for d in data["configuration"] if d["tenant"] == "acme")
    assert acme["versions"][0]["content"] == {"locale": "de_DE"}
    assert {e["action"] for e in data["audit"]["about"]} == {"config.update"}
    assert all(e["subject"] == "dave" for e in data["audit"]["about"])
    assert [e["action"] for e in data["audit"]["by"]] == ["tenant.rename"]
    assert "erin" not in json.dumps(data)


def test_export_can_stay_within_one_tenant(runtime: ConfigRuntime) -> None:
    """With a tenant, only that tenant's data is exported."""
    data = gdpr.export_user(runtime, "dave", "beta")
    assert [d["tenant"] for d in data["configuration"]] == ["beta"]
    assert {e["tenant"] for e in data["audit"]["about"]} == {"beta"}


def test_an_export_is_audited(runtime: ConfigRuntime) -> None:
    """Exporting someone's data is itself recorded, naming the person as its subject."""
    with acting_as(ADMIN):
        gdpr.export_user(runtime, "dave")
    entry = AuditLog.of(runtime).list(action="gdpr.export")[0]
    assert (entry.actor, entry.subject) == ("root-admin", "dave")


def test_erasure_removes_the_person_and_keeps_the_chain(runtime: ConfigRuntime) -> None:
    """Erasure deletes documents and the pseudonym mapping; the chain still verifies."""
    log = AuditLog.of(runtime)
    pseudonym = log.pseudonym("dave")
    with acting_as(ADMIN):
        erasure = gdpr.erase_user(runtime, "dave")
    assert erasure.removed["user_documents"] == 2
    assert erasure.removed["pseudonyms"] == 1
    assert log.verify().ok
    engine = runtime.database.engine
    with engine.connect() as connection:
        assert not connection.execute(
            sa.select(config_documents).where(config_documents.c.user_id == "dave")
        ).all()
        assert not connection.execute(
            sa.select(config_versions).where(config_versions.c.author == "dave")
        ).all()
        identities = connection.execute(sa.select(audit_pseudonyms.c.identity)).scalars().all()
    assert "dave" not in identities
    shown = json.dumps([e.as_dict() for e in log.list()])
    assert '"dave"' not in shown
    assert pseudonym in shown  # the trail still says something happened, to someone
    assert log.list(action="gdpr.erase")[0].subject == pseudonym
    # Another person's data is untouched.
    assert ConfigManager(runtime).get_user_config("acme", "erin").locale == "fr_FR"


def test_erasure_within_one_tenant_keeps_the_others(runtime: ConfigRuntime) -> None:
    """Erasing in one tenant leaves the person's documents elsewhere, and their mapping."""
    erasure = gdpr.erase_user(runtime, "dave", "acme")
    assert erasure.removed["user_documents"] == 1
    assert erasure.removed["pseudonyms"] == 0
    assert ConfigManager(runtime).get_user_config("beta", "dave").timezone == "Europe/Berlin"
    assert AuditLog.of(runtime).verify().ok


def test_the_register_lists_declared_activities() -> None:
    """Bare and configured declarations both land in the register with their personal args."""

    @gdpr.gdpr_compliant
    def handle_user_data(user_id: str, note: str) -> str:
        """Handle a person's data."""
        return user_id

    @gdpr.gdpr_compliant(
        purpose="Mention on-call", categories=("slack id",), personal_args=("who",)
    )
    def mention(who: str) -> str:
        return who

    # Keyed by full name: other modules may declare functions of the same short name.
    found = {a.name.rsplit(".", 1)[-1]: a for a in gdpr.register() if "test_the_register" in a.name}
    assert found["handle_user_data"].personal_args == ("user_id",)
    assert found["handle_user_data"].purpose == "Handle a person's data."
    assert (found["mention"].purpose, found["mention"].categories) == (
        "Mention on-call",
        ("slack id",),
    )
    assert handle_user_data("u1", "n") == "u1"


def test_personal_arguments_are_masked_in_real_log_output() -> None:
    """While a declared function runs, its personal values never reach the rendered log."""
    stream = io.StringIO()
    structlog.configure(
        processors=[gdpr.mask_personal_data, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    log = structlog.get_logger()

    @gdpr.gdpr_compliant
    def handle(user_id: str, email: str, count: int) -> None:
        log.info("handling", who=user_id, detail=f"mail to {email}", count=count)

    try:
        handle("U0123456", "dave@example.com", 3)
        log.info("after", who="U0123456")
    finally:
        structlog.reset_defaults()
    during, after = (json.loads(line) for line in stream.getvalue().splitlines())
    assert "U0123456" not in json.dumps(during)
    assert "dave@example.com" not in json.dumps(during)
    assert during["count"] == 3
    assert after["who"] == "U0123456"  # outside the call nothing is masked


def test_async_functions_mask_too() -> None:
    """An async declared function masks its personal values while it runs."""
    import asyncio  # noqa: PLC0415

    seen: list[object] = []

    @gdpr.gdpr_compliant
    async def handle(username: str) -> None:
        seen.append(gdpr.mask_personal_data(None, "info", {"event": f"hi {username}"}))

    asyncio.run(handle("dave-the-user"))
    assert seen == [{"event": "hi [personal]"}]


def test_cli_gdpr_and_audit_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """register, export, erase and audit verify/list work from the command line."""
    monkeypatch.setenv("SLACK_TOOLS_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    assert (
        runner.invoke(cli_app, ["tenant", "create", "acme", "--channel", "#acme"]).exit_code == 0
    ), "create"
    set_user = runner.invoke(
        cli_app, ["config", "set", "locale", "de_DE", "--tenant", "acme", "--user", "dave"]
    )
    assert set_user.exit_code == 0, set_user.output
    register = runner.invoke(cli_app, ["gdpr", "register"])
    assert register.exit_code == 0
    assert "update_user_config" in register.output
    exported = runner.invoke(cli_app, ["gdpr", "export", "dave"])
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.output)["configuration"][0]["tenant"] == "acme"
    assert runner.invoke(cli_app, ["gdpr", "erase", "dave"]).exit_code != 0  # needs --yes
    assert runner.invoke(cli_app, ["gdpr", "erase", "dave", "--yes"]).exit_code == 0
    verify = runner.invoke(cli_app, ["audit", "verify"])
    assert verify.exit_code == 0, verify.output
    assert "intact" in verify.output
    listed = runner.invoke(
        cli_app, ["audit", "list", "--action", "gdpr", "--json", "--since", "1h"]
    )
    assert [json.loads(line)["action"] for line in listed.output.splitlines()] == [
        "gdpr.erase",
        "gdpr.export",
    ]
    bad = runner.invoke(cli_app, ["audit", "list", "--since", "yesterday"])
    assert bad.exit_code != 0
