"""Governance on real databases: a tenant change breaking a policy is refused with its reasons."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slack_tools.cli import run
from slack_tools.configs import ConfigManager, ConfigRuntime, ConfigValidationError
from slack_tools.configs.security import is_encrypted
from slack_tools.storage import DocumentKey
from tests.helpers import assert_no_secret

MakeRuntime = Callable[..., ConfigRuntime]

TOKEN = "xoxb-3333333333-governed-tenant-token-secret"
ACME = DocumentKey.for_scope("acme")

POLICIES = """\
governance:
  channel_patterns: ["^#alerts-.*"]
  max_quotas:
    free: {alerts_per_minute: 100}
  mentions:
    min_severity: critical
  require_encrypted_tokens: true
"""

COMPLIANT: dict[str, Any] = {
    "slack_channel": "#alerts-acme",
    "alert_threshold": "critical_only",
    "plan": "free",
    "quotas": {"alerts_per_minute": 100},
    "routes": [{"matchers": ['team="db"'], "channel": "#alerts-db"}],
    "templates": {"group": "<!here> {{ 1 }}"},
    "slack_bot_token": TOKEN,
}


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    """An operator file turning every policy on."""
    path = tmp_path / "governance.yaml"
    path.write_text(POLICIES)
    return path


@pytest.fixture
def manager(
    make_runtime: MakeRuntime, database_url: str, policies: Path, master_keys: str
) -> ConfigManager:
    """A manager on each backend, with the policies and a master key."""
    runtime = make_runtime(
        files=[policies],
        database_url=database_url,
        extra={"SLACK_TOOLS_MASTER_KEYS": master_keys},
    )
    return ConfigManager(runtime)


def tighten(manager: ConfigManager, policies: Path, pattern: str) -> None:
    """Allow only channels matching ``pattern`` from now on (the file changes, then a reload)."""
    policies.write_text(POLICIES.replace("^#alerts-.*", pattern))
    assert manager.reload().outcome == "applied"
    assert manager.config.governance.channel_patterns == (pattern,)


def refused(manager: ConfigManager, patch: dict[str, Any]) -> ConfigValidationError:
    """The error refusing ``patch`` to acme, which the test expects."""
    with pytest.raises(ConfigValidationError) as caught:
        manager.update_tenant_config("acme", patch, author="ops")
    return caught.value


def test_compliant_change_is_stored_and_applied(manager: ConfigManager) -> None:
    """A change within every policy becomes a version, with its token encrypted."""
    version = manager.update_tenant_config("acme", COMPLIANT, author="ops")
    assert version.version == 1
    assert is_encrypted(version.content["slack_bot_token"])
    config = manager.get_tenant_config("acme")
    assert config.quotas["alerts_per_minute"] == 100
    assert config.routes[0].channel == "#alerts-db"


def test_violating_change_is_refused_with_every_reason_and_nothing_applied(
    manager: ConfigManager,
) -> None:
    """A change breaking three policies is refused naming each key and why; the old one serves."""
    manager.update_tenant_config("acme", COMPLIANT, author="ops")
    before = manager.history(ACME)
    serving = manager.get_tenant_config("acme")

    error = refused(
        manager,
        {
            "routes": [
                {"matchers": ['team="db"'], "channel": "#alerts-db"},
                {"matchers": ['team="web"'], "channel": "#random", "alert_threshold": "warning"},
            ],
            "quotas": {"alerts_per_minute": 101},
        },
    )

    text = str(error)
    assert (
        "tenant acme: routes.1.channel: '#random' does not match any allowed pattern "
        "(governance.channel_patterns): ^#alerts-.*"
    ) in text
    assert re.search(
        r"quotas\.alerts_per_minute: 101 is above the maximum 100 of plan 'free'", text
    )
    assert re.search(
        r"templates\.group: contains the broadcast mention '<!here>'.*"
        r"routes\[1\]\.alert_threshold lets warning alerts through",
        text,
    )
    assert {i.path for i in error.issues} == {
        ("routes", 1, "channel"),
        ("quotas", "alerts_per_minute"),
        ("templates", "group"),
    }
    assert manager.history(ACME) == before
    assert manager.get_tenant_config("acme") == serving
    assert_no_secret(text, TOKEN)


def test_refused_first_change_leaves_no_document(manager: ConfigManager) -> None:
    """A new tenant whose first change breaks a policy is not created."""
    refused(manager, {"slack_channel": "#general"})
    assert manager.document(ACME) is None
    assert manager.history(ACME) == []


@pytest.mark.parametrize(
    ("patch", "path"),
    [
        ({"slack_channel": "#alerts"}, ("slack_channel",)),  # the pattern needs "#alerts-…"
        ({"quotas": {"alerts_per_minute": 101}}, ("quotas", "alerts_per_minute")),
        ({"plan": "standard", "quotas": None}, None),  # no maximum for that plan
        ({"alert_threshold": "error"}, ("templates", "group")),
        ({"templates": {"group": "{{ 1 }}"}, "alert_threshold": "all"}, None),
        ({"slack_channel": "#alerts-x", "quotas": {"alerts_per_minute": 100}}, None),
    ],
    ids=["channel", "quota-over", "plan-without-maximum", "threshold", "no-mention", "at-maximum"],
)
def test_each_policy_boundary_on_a_stored_tenant(
    manager: ConfigManager, patch: dict[str, Any], path: tuple[Any, ...] | None
) -> None:
    """Each policy refuses just past its boundary and accepts at it."""
    manager.update_tenant_config("acme", COMPLIANT, author="ops")
    if path is None:
        assert manager.update_tenant_config("acme", patch).version == 2
        return
    assert [i.path for i in refused(manager, patch).issues] == [path]
    assert len(manager.history(ACME)) == 1


def test_token_in_clear_is_refused_without_a_master_key(
    make_runtime: MakeRuntime, database_url: str, policies: Path
) -> None:
    """With no master key the token cannot be encrypted, so the policy refuses it."""
    manager = ConfigManager(make_runtime(files=[policies], database_url=database_url))
    error = refused(manager, {"slack_channel": "#alerts-acme", "slack_bot_token": TOKEN})
    assert [i.path for i in error.issues] == [("slack_bot_token",)]
    assert "governance.require_encrypted_tokens" in str(error)
    assert_no_secret(str(error), TOKEN)
    assert manager.document(ACME) is None
    assert manager.update_tenant_config("acme", {"slack_channel": "#alerts-acme"}).version == 1


def test_tightened_policy_is_met_at_the_next_change(manager: ConfigManager, policies: Path) -> None:
    """After a stricter policy is loaded, a tenant's next change must bring it into line."""
    manager.update_tenant_config("acme", COMPLIANT, author="ops")
    tighten(manager, policies, "^#alerts-db$")

    error = refused(manager, {"locale": "de_DE"})
    assert [i.path for i in error.issues] == [("slack_channel",)]
    fixed = manager.update_tenant_config("acme", {"locale": "de_DE", "slack_channel": None})
    assert fixed.version == 2


def test_rollback_to_a_version_now_refused_is_refused(
    manager: ConfigManager, policies: Path
) -> None:
    """Rolling back is a change like any other: it must meet today's policies."""
    manager.update_tenant_config("acme", {"slack_channel": "#alerts-old"})
    manager.update_tenant_config("acme", {"slack_channel": "#alerts-new"})
    tighten(manager, policies, "^#alerts-new$")

    with pytest.raises(ConfigValidationError, match=r"slack_channel: '#alerts-old' does not"):
        manager.rollback(ACME, 1)
    assert len(manager.history(ACME)) == 2
    assert manager.get_tenant_config("acme").slack_channel == "#alerts-new"


def test_cli_shows_the_reasons_and_exits_1(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    policies: Path,
) -> None:
    """`config apply --tenant` prints each violation at its file line and stores nothing."""
    for name in ("ENVIRONMENT", "SLACK_TOOLS_MASTER_KEYS", "DATABASE_URL", "SLACK_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith("SLACK_TOOLS__")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SLACK_TOOLS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SLACK_TOOLS_CONFIG", str(policies))
    patch = tmp_path / "acme.yaml"
    patch.write_text("slack_channel: '#alerts-acme'\nroutes:\n  - channel: '#random'\n")

    code = run(["config", "apply", "--tenant", "acme", str(patch)])
    err = capsys.readouterr().err

    assert code == 1
    assert (
        f"{patch}:3:5: routes.0.channel: '#random' does not match any allowed pattern "
        "(governance.channel_patterns): ^#alerts-.*"
    ) in err
    assert run(["config", "history", "--tenant", "acme"]) == 0
    assert not re.search(r"│ \d+ ", capsys.readouterr().out)  # no version row
