"""The slack-tools command: validation output, document editing, encryption, keys, database."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slack_tools.cli import run
from slack_tools.configs.security import ValueCipher, parse_keys
from tests.helpers import assert_no_secret

TOKEN = "xoxb-1111111111-2222222222-cli-secret-token"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Each command sees only the variables the test sets, and a private data directory."""
    for name in (
        "ENVIRONMENT",
        "SLACK_TOOLS_CONFIG",
        "SLACK_TOOLS_MASTER_KEYS",
        "SLACK_BOT_TOKEN",
        "REDIS_HOST",
        "REDIS_PORT",
        "DATABASE_URL",
        "SLACK_SIGNING_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in __import__("os").environ if n.startswith("SLACK_TOOLS__")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SLACK_TOOLS_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch, master_keys: str) -> str:
    monkeypatch.setenv("SLACK_TOOLS_MASTER_KEYS", master_keys)
    return master_keys


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_validate_reports_a_valid_dev_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    """`config validate` on the defaults exits 0 and says the configuration is valid."""
    code, out, _ = cli(capsys, "config", "validate")
    assert code == 0
    assert "valid dev configuration" in out


def test_validate_prints_every_error_with_file_line_column_and_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Each issue is one `file:line:col: key.path: message` line and the exit code is 1."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  port: 70000\n  hots: x\nmonitoring:\n  log_level: LOUD\n")
    code, _, err = cli(capsys, "config", "validate", "--env", "staging", str(bad))
    assert code == 1
    lines = err.splitlines()
    assert any(re.match(rf"{re.escape(str(bad))}:2:3: server\.port: .*65535", ln) for ln in lines)
    assert any(
        re.match(rf"{re.escape(str(bad))}:3:3: server\.hots: unknown key; did you mean 'host'", ln)
        for ln in lines
    )
    assert any(re.match(rf"{re.escape(str(bad))}:5:3: monitoring\.log_level: ", ln) for ln in lines)


def test_validate_production_lists_the_rules_it_breaks(capsys: pytest.CaptureFixture[str]) -> None:
    """Production without database URL, data directory or master key fails with each named."""
    code, _, err = cli(capsys, "config", "validate", "--env", "production")
    assert code == 1
    for key in ("database.url", "security.encryption.key_file"):
        assert f": {key}: " in err


def test_validate_syntax_error_never_prints_the_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A YAML error reports its position, not the text of the line (it may hold a secret)."""
    bad = tmp_path / "broken.yaml"
    bad.write_text(f"slack:\n  bot_token: [{TOKEN}\n")
    code, out, err = cli(capsys, "config", "validate", str(bad))
    assert code == 1
    assert f"{bad}:" in err
    assert_no_secret(out + err, TOKEN)


def test_tenant_document_lifecycle(capsys: pytest.CaptureFixture[str], keys: str) -> None:
    """set → show → history → diff → rollback → explain work on a tenant document."""
    assert (
        cli(
            capsys,
            "config",
            "set",
            "--tenant",
            "acme",
            "slack_channel",
            "#acme",
            "--author",
            "alice",
            "--comment",
            "first",
        )[0]
        == 0
    )
    assert (
        cli(
            capsys,
            "config",
            "set",
            "--tenant",
            "acme",
            "alert_threshold",
            "critical_only",
            "--author",
            "bob",
        )[0]
        == 0
    )
    code, out, _ = cli(capsys, "config", "show", "--tenant", "acme")
    assert code == 0
    assert "slack_channel: '#acme'" in out
    assert "alert_threshold: critical_only" in out
    code, out, _ = cli(capsys, "config", "history", "--tenant", "acme")
    assert "alice" in out
    assert "bob" in out
    assert "first" in out
    code, out, _ = cli(capsys, "config", "diff", "1", "2", "--tenant", "acme")
    assert out.strip() == '+ alert_threshold: "critical_only"'
    code, out, _ = cli(capsys, "config", "rollback", "1", "--tenant", "acme")
    assert code == 0
    assert "version 3 (= version 1)" in out
    code, out, _ = cli(capsys, "config", "explain", "alert_threshold", "--tenant", "acme")
    assert out.splitlines()[0] == 'alert_threshold = "all"'


def test_secrets_stay_hidden_in_every_output(capsys: pytest.CaptureFixture[str], keys: str) -> None:
    """A tenant token set in clear never shows in show, explain, diff or history output."""
    outputs = []
    for argv in (
        ("config", "set", "--tenant", "acme", "slack_bot_token", TOKEN),
        ("config", "set", "--tenant", "acme", "slack_bot_token", TOKEN + "-v2"),
        ("config", "show", "--tenant", "acme"),
        ("config", "explain", "slack_bot_token", "--tenant", "acme"),
        ("config", "diff", "1", "2", "--tenant", "acme"),
        ("config", "history", "--tenant", "acme"),
    ):
        code, out, err = cli(capsys, *argv)
        assert code == 0, err
        outputs.append(out + err)
    assert_no_secret("\n".join(outputs), TOKEN)
    assert "********" in outputs[2]


def test_invalid_value_is_refused_with_its_key(capsys: pytest.CaptureFixture[str]) -> None:
    """`config set` with a bad value exits 1, names the key, and stores nothing."""
    cli(capsys, "config", "set", "--tenant", "acme", "slack_channel", "#acme")
    code, _, err = cli(capsys, "config", "set", "--tenant", "acme", "timezone", "Mars/Base")
    assert code == 1
    assert "timezone:" in err
    assert "IANA" in err
    _, out, _ = cli(capsys, "config", "history", "--tenant", "acme")
    assert "│ 2 " not in out


def test_stale_expected_version_is_a_conflict(capsys: pytest.CaptureFixture[str]) -> None:
    """--expect-version refuses a write based on an old version."""
    cli(capsys, "config", "set", "--tenant", "acme", "slack_channel", "#acme")
    cli(capsys, "config", "set", "--tenant", "acme", "slack_channel", "#acme-2")
    code, _, err = cli(
        capsys, "config", "set", "--tenant", "acme", "slack_channel", "#x", "--expect-version", "1"
    )
    assert code == 1
    assert "version 2" in err


def test_apply_reports_patch_errors_at_their_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An invalid patch file is refused with its own file:line."""
    patch = tmp_path / "patch.yaml"
    patch.write_text("slack_channel: '#ok'\nquotas:\n  alerts_per_minute: -5\n")
    code, _, err = cli(capsys, "config", "apply", "--tenant", "acme", str(patch))
    assert code == 1
    assert f"{patch}:3:3: quotas.alerts_per_minute:" in err


def test_global_document_refuses_infrastructure_keys(capsys: pytest.CaptureFixture[str]) -> None:
    """`config set server.port` (not changeable at run time) is refused."""
    code, _, err = cli(capsys, "config", "set", "server.port", "9000")
    assert code == 1
    assert "not changeable at run time" in err


def test_rollback_to_unknown_version(capsys: pytest.CaptureFixture[str]) -> None:
    """Rolling back to a version that does not exist says so."""
    cli(capsys, "config", "set", "--tenant", "acme", "slack_channel", "#acme")
    code, _, err = cli(capsys, "config", "rollback", "7", "--tenant", "acme")
    assert code == 1
    assert "no version 7" in err


def test_encrypt_then_decrypt_round_trip(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, keys: str
) -> None:
    """`config encrypt` output decrypts with the same key path and not with another."""
    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN + "\n"))
    code, out, _ = cli(capsys, "config", "encrypt", "slack.bot_token")
    token = out.strip()
    assert code == 0
    assert token.startswith("enc:v1:k1:")
    assert_no_secret(token, TOKEN)
    assert ValueCipher(parse_keys([keys], "test")).decrypt(token, "global/slack.bot_token") == TOKEN
    monkeypatch.setattr("sys.stdin", io.StringIO(token))
    code, out, _ = cli(capsys, "config", "decrypt", "slack.bot_token")
    assert (code, out.strip()) == (0, TOKEN)
    monkeypatch.setattr("sys.stdin", io.StringIO(token))
    code, out, err = cli(capsys, "config", "decrypt", "slack.signing_secret")
    assert code == 1
    assert "global/slack.signing_secret" in err
    assert_no_secret(out + err, TOKEN)


def test_encrypt_without_a_key_says_how_to_get_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Encrypting with no master key configured explains what to set."""
    monkeypatch.setattr("sys.stdin", io.StringIO("value"))
    code, _, err = cli(capsys, "config", "encrypt", "slack.bot_token")
    assert code == 1
    assert "SLACK_TOOLS_MASTER_KEYS" in err


def test_keys_generate_prints_a_usable_key(capsys: pytest.CaptureFixture[str]) -> None:
    """`keys generate` prints one id:base64 entry that parses as an AES-256 key."""
    code, out, _ = cli(capsys, "keys", "generate", "--id", "prod2026")
    assert code == 0
    provider = parse_keys([out.strip()], "output")
    assert provider.key_ids() == ("prod2026",)


def test_keys_rotate_reencrypts_files_and_documents(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    master_keys: str,
) -> None:
    """After rotation, values in files and the database decrypt with only the new key."""
    old = ValueCipher(parse_keys([master_keys], "old"))
    config = tmp_path / "ops.yaml"
    config.write_text(
        "# operator file\nslack:\n  bot_token: "
        + old.encrypt(TOKEN, "global/slack.bot_token")
        + "  # the bot\n"
    )
    monkeypatch.setenv("SLACK_TOOLS_MASTER_KEYS", master_keys)
    monkeypatch.setenv("SLACK_TOOLS_CONFIG", str(config))
    assert cli(capsys, "config", "set", "--tenant", "acme", "slack_bot_token", TOKEN)[0] == 0
    new_key = cli(capsys, "keys", "generate", "--id", "k2")[1].strip()
    monkeypatch.setenv("SLACK_TOOLS_MASTER_KEYS", f"{new_key},{master_keys}")
    code, out, _ = cli(capsys, "keys", "rotate", str(config))
    assert code == 0
    assert "1 value(s) re-encrypted with key k2" in out
    text = config.read_text()
    assert text.startswith("# operator file\n")
    assert "# the bot" in text
    monkeypatch.setenv("SLACK_TOOLS_MASTER_KEYS", new_key)
    code, out, err = cli(capsys, "config", "show", "--tenant", "acme")
    assert code == 0, err
    assert cli(capsys, "config", "validate")[0] == 0


def test_db_upgrade_and_status(capsys: pytest.CaptureFixture[str]) -> None:
    """`db upgrade` migrates an empty database and `db status` then reports it current."""
    code, out, _ = cli(capsys, "db", "upgrade")
    assert code == 0
    assert "empty → " in out
    code, out, _ = cli(capsys, "db", "status")
    assert code == 0
    assert "code needs" in out


def test_user_without_tenant_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """--user without --tenant is refused before anything is read or written."""
    code, _, err = cli(capsys, "config", "show", "--user", "U123")
    assert code == 2
    assert "tenant" in err


def test_explaining_a_section_masks_the_secrets_inside_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`config explain slack` shows the section per layer with its secrets masked."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    code, out, err = cli(capsys, "config", "explain", "slack")
    assert code == 0, err
    assert '  environment: {"bot_token": "********"}' in out
    assert "********" in out
    assert_no_secret(out + err, TOKEN)


def test_set_reads_the_value_from_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, keys: str
) -> None:
    """`config set KEY -` takes the value from stdin, so a token stays out of shell history."""
    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN + "\n"))
    code, _, err = cli(capsys, "config", "set", "--tenant", "acme", "slack_bot_token", "-")
    assert code == 0, err
    code, out, _ = cli(capsys, "config", "show", "--tenant", "acme")
    assert "slack_bot_token: '********'" in out


keys_paths = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(key=keys_paths, value=st.text(max_size=30), tenant=st.sampled_from(["acme", "", "a b", "é"]))
def test_no_input_makes_a_command_crash(
    capsys: pytest.CaptureFixture[str], key: str, value: str, tenant: str
) -> None:
    """Whatever keys, values and tenant ids are given, commands answer with an exit code."""
    for argv in (
        ("config", "set", "--tenant", tenant, key, value),
        ("config", "explain", key, "--tenant", tenant),
        ("config", "set", key, value),
    ):
        code = run(list(argv))
        capsys.readouterr()
        assert code in (0, 1, 2), argv


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(content=st.binary(max_size=200))
def test_no_patch_file_makes_apply_crash(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes
) -> None:
    """Any bytes in a patch file give a clear outcome, never a traceback."""
    patch = tmp_path / "patch.yaml"
    patch.write_bytes(content)
    for argv in (
        ("config", "apply", "--tenant", "acme", str(patch)),
        ("config", "validate", str(patch)),
    ):
        code = run(list(argv))
        capsys.readouterr()
        assert code in (0, 1, 2), argv


def test_tenant_create_needs_a_channel_and_leaves_nothing_when_invalid(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without --channel it is refused; with a bad locale nothing is created, so a retry works."""
    code, _, err = cli(capsys, "tenant", "create", "acme", "--skip-slack-check")
    assert code == 2
    assert "--channel" in err
    code, _, err = cli(
        capsys,
        "tenant",
        "create",
        "acme",
        "--channel",
        "#acme",
        "--locale",
        "xx_XX",
        "--skip-slack-check",
    )
    assert code == 1
    assert "locale" in err
    code, out, err = cli(
        capsys, "tenant", "create", "acme", "--channel", "#acme", "--skip-slack-check"
    )
    assert code == 0, err
    assert "stk_" in out
    code, out, _ = cli(capsys, "tenant", "list")
    assert "acme" in out


def test_a_document_for_an_unregistered_tenant_is_kept_with_a_note(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = cli(capsys, "config", "set", "--tenant", "ghost", "locale", "de_DE")
    assert code == 0
    assert "tenant ghost is not registered" in err
    assert "slack-tools tenant create ghost" in err
    cli(capsys, "tenant", "create", "ghost", "--channel", "#ghost", "--skip-slack-check")
    code, out, err = cli(capsys, "config", "set", "--tenant", "ghost", "timezone", "UTC")
    assert code == 0
    assert "not registered" not in err
    _, out, _ = cli(capsys, "tenant", "show", "ghost")
    assert "locale: de_DE" in out
