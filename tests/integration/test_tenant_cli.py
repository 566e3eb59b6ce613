"""``slack-tools tenant …``: show, update, disable, enable, keys, delete."""

from __future__ import annotations

import re

import pytest

from tests.helpers import assert_no_secret
from tests.integration.test_cli import clean_environment, cli, keys

__all__ = ["clean_environment", "keys"]  # fixtures, used by name

TOKEN = "xoxb-5555555555-tenant-cli-secret-token"


def created(capsys: pytest.CaptureFixture[str], tenant_id: str = "acme") -> str:
    """Create ``tenant_id`` and return its API key (printed once)."""
    code, out, err = cli(
        capsys, "tenant", "create", tenant_id, "--channel", f"#{tenant_id}", "--skip-slack-check"
    )
    assert code == 0, err
    found = re.search(r"^(stk_\S+)$", out, re.MULTILINE)
    assert found, out
    return found.group(1)


def test_show_prints_status_configuration_and_keys_without_secrets(
    capsys: pytest.CaptureFixture[str], keys: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = created(capsys)
    code, _, err = cli(capsys, "tenant", "update", "acme", f"slack_bot_token={TOKEN}")
    assert code == 0, err

    code, out, err = cli(capsys, "tenant", "show", "acme")

    assert code == 0, err
    assert "# tenant acme: acme, active" in out
    assert "configuration version 2" in out
    assert "slack_channel: '#acme'" in out
    assert key[:12] in out  # the prefix
    assert_no_secret(out + err, TOKEN, key)


def test_update_applies_all_pairs_as_one_version_or_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    created(capsys)
    code, out, err = cli(
        capsys,
        "tenant",
        "update",
        "acme",
        "alert_threshold=critical_only",
        "quotas.alerts_per_minute=100",
        "--name",
        "Acme Corp",
        "--comment",
        "quieter",
    )
    assert code == 0, err
    assert "tenant acme: version 2" in out
    code, out, _ = cli(capsys, "tenant", "show", "acme")
    assert "alert_threshold: critical_only" in out
    assert "alerts_per_minute: 100" in out
    assert "# tenant acme: Acme Corp, active" in out

    code, _, err = cli(capsys, "tenant", "update", "acme", "locale=xx_XX", "slack_channel=#ok")
    assert code == 1
    assert "locale" in err
    code, out, _ = cli(capsys, "config", "history", "--tenant", "acme")
    assert re.findall(r"^\S (\d+)\s+\S \d{4}-", out, re.MULTILINE) == ["2", "1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("tenant", "update", "acme"), "nothing to change"),
        (("tenant", "update", "acme", "no-equals-sign"), "key=value"),
        (("tenant", "update", "acme", "=value"), "key=value"),
        (("tenant", "show", "Not An Id"), "invalid tenant id"),
    ],
)
def test_bad_arguments_are_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    created(capsys)
    code, _, err = cli(capsys, *argv)
    assert code == 2
    assert message in err


def test_a_stale_expected_version_changes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    created(capsys)
    code, _, err = cli(capsys, "tenant", "update", "acme", "locale=de_DE", "--expect-version", "7")
    assert code == 1
    assert "version 1" in err
    _, out, _ = cli(capsys, "tenant", "show", "acme")
    assert "locale: fr_FR" in out


def test_disable_enable_keys_and_revoke(capsys: pytest.CaptureFixture[str]) -> None:
    created(capsys)
    assert cli(capsys, "tenant", "disable", "acme")[0] == 0
    _, out, _ = cli(capsys, "tenant", "list")
    assert "disabled" in out
    assert cli(capsys, "tenant", "enable", "acme")[0] == 0
    code, out, _ = cli(capsys, "tenant", "add-key", "acme", "--label", "rotation")
    assert code == 0
    new_key = re.search(r"^(stk_\S+)$", out, re.MULTILINE)
    assert new_key
    _, out, _ = cli(capsys, "tenant", "keys", "acme")
    assert "rotation" in out
    assert_no_secret(out, new_key.group(1))
    code, _, err = cli(capsys, "tenant", "revoke-key", "acme", "2")
    assert code == 0, err
    code, _, err = cli(capsys, "tenant", "revoke-key", "acme", "2")
    assert code == 1
    assert "no live key 2" in err


def test_unknown_tenants_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ("tenant", "show", "nobody"),
        ("tenant", "update", "nobody", "locale=de_DE"),
        ("tenant", "disable", "nobody"),
        ("tenant", "keys", "nobody"),
        ("tenant", "delete", "nobody", "--yes"),
    ):
        code, _, err = cli(capsys, *argv)
        assert code == 1, argv
        assert "nobody" in err


def test_delete_needs_yes_then_removes_the_tenant_only(capsys: pytest.CaptureFixture[str]) -> None:
    created(capsys, "acme")
    created(capsys, "globex")
    code, _, err = cli(capsys, "tenant", "delete", "acme")
    assert code == 2
    assert "--yes" in err
    code, _, err = cli(capsys, "tenant", "delete", "acme", "--yes")
    assert code == 0, err
    assert "tenant acme deleted" in err
    assert "1 api keys" in err
    _, out, _ = cli(capsys, "tenant", "list")
    assert "globex" in out
    assert "acme" not in out


def test_usage_prints_a_table_or_csv(capsys: pytest.CaptureFixture[str]) -> None:
    created(capsys)
    code, out, err = cli(capsys, "tenant", "usage", "acme", "--csv")
    assert code == 0, err
    assert out == "day,alerts_received,messages_sent,messages_held,dead_letters,api_calls\n"
    code, out, _ = cli(
        capsys, "tenant", "usage", "acme", "--from", "2026-01-01", "--to", "2026-01-31"
    )
    assert code == 0
    assert "usage of acme, 2026-01-01 to 2026-01-31" in out
    assert "total" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--from", "soon"), "--from: expected a date"),
        (("--from", "2026-02-01", "--to", "2026-01-01"), "before it starts"),
    ],
)
def test_a_bad_usage_period_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    created(capsys)
    code, _, err = cli(capsys, "tenant", "usage", "acme", *argv)
    assert code == 2
    assert message in err


@pytest.mark.parametrize("isolation", ["logical", "partial"])
def test_commands_for_one_tenant_never_show_or_change_another(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    keys: str,
    isolation: str,
) -> None:
    """Every tenant command about alpha leaves beta as it was, on each backend and mode."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    created(capsys, "alpha")
    beta_key = created(capsys, "beta")
    for tenant in ("alpha", "beta"):
        code, _, err = cli(
            capsys, "tenant", "update", tenant, f"isolation={isolation}", f"slack_bot_token={TOKEN}"
        )
        assert code == 0, err

    def beta() -> tuple[str, str]:
        shown = cli(capsys, "tenant", "show", "beta")[1]
        history = cli(capsys, "config", "history", "--tenant", "beta")[1]
        return shown, history

    before = beta()
    for argv in (
        ("tenant", "show", "alpha"),
        ("tenant", "update", "alpha", "locale=de_DE", "--name", "Alpha"),
        ("tenant", "add-key", "alpha"),
        ("tenant", "revoke-key", "alpha", "1"),
        ("tenant", "keys", "alpha"),
        ("tenant", "usage", "alpha", "--csv"),
        ("tenant", "disable", "alpha"),
        ("config", "rollback", "1", "--tenant", "alpha"),
        ("tenant", "delete", "alpha", "--yes"),
    ):
        code, out, err = cli(capsys, *argv)
        assert code == 0, (argv, err)
        assert "beta" not in out + err
        assert_no_secret(out + err, TOKEN, beta_key)
        assert beta() == before, argv
