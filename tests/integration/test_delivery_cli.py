"""``slack-tools routes test`` and ``deadletters``: routing dry runs and dead letter handling."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from slack_tools.alerts import sources
from slack_tools.alerts.models import Source
from slack_tools.cli import run
from slack_tools.cli.common import open_runtime
from slack_tools.service.ingest import group_merger
from slack_tools.storage.database import write_transaction
from slack_tools.storage.delivery import TargetWrite, bury, claim, write_group

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.fixture(autouse=True)
def private_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ENVIRONMENT", "SLACK_TOOLS_CONFIG", "DATABASE_URL", "SLACK_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLACK_TOOLS_DATA_DIR", str(tmp_path / "data"))


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def generic(name: str, **labels: str) -> dict[str, Any]:
    return {
        "alerts": [
            {
                "labels": {"alertname": name, "severity": "critical", **labels},
                "annotations": {"summary": f"{name} :fire: on api"},
                "startsAt": "2026-11-26T14:03:12Z",
            }
        ]
    }


@pytest.fixture
def tenant(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> str:
    """A tenant in en_US: critical alerts go to #oncall, and DiskFull also to #storage."""
    code, _, err = cli(
        capsys,
        "tenant",
        "create",
        "acme",
        "--channel",
        "#alerts",
        "--locale",
        "en_US",
        "--skip-slack-check",
    )
    assert code == 0, err
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        yaml.safe_dump(
            {
                "routes": [
                    {"matchers": ['severity="critical"'], "channel": "#oncall", "continue": True},
                    {"matchers": ['alertname="DiskFull"'], "channel": "#storage"},
                ]
            }
        )
    )
    code, _, err = cli(capsys, "config", "apply", str(routes), "--tenant", "acme")
    assert code == 0, err
    return "acme"


def test_routes_test_names_every_channel_and_renders_in_the_tenants_language(
    capsys: pytest.CaptureFixture[str], tenant: str, tmp_path: Path
) -> None:
    payload = tmp_path / "alert.json"
    payload.write_text(json.dumps(generic("DiskFull")))

    code, out, err = cli(capsys, "routes", "test", str(payload), "--tenant", tenant)

    assert code == 0, err
    assert "(generic, firing, severity critical)" in out
    assert "→ #oncall [route 1] locale en_US: sent" in out
    assert "→ #storage [route 2] locale en_US: sent" in out
    assert "#alerts" not in out
    assert "DiskFull" in out


def test_routes_test_json_is_the_block_kit_payload_untouched(
    capsys: pytest.CaptureFixture[str], tenant: str, tmp_path: Path
) -> None:
    """Slack's :emoji: codes stay as text: Slack turns them into pictures, not the CLI."""
    payload = tmp_path / "alert.json"
    payload.write_text(json.dumps(generic("DiskFull", team=":fire:")))

    code, out, err = cli(capsys, "routes", "test", str(payload), "--tenant", tenant, "--json")

    assert code == 0, err
    message, _ = json.JSONDecoder().raw_decode(out, out.index("\n{") + 1)
    assert message["attachments"][0]["blocks"]
    assert ":fire:" in json.dumps(message)
    assert "🔥" not in out


def test_routes_test_detects_alertmanager(capsys: pytest.CaptureFixture[str], tenant: str) -> None:
    fixture = FIXTURES / "alertmanager-webhook-v4.json"

    code, out, err = cli(capsys, "routes", "test", str(fixture), "--tenant", tenant)

    assert code == 0, err
    assert "(alertmanager, firing" in out


def test_routes_test_refuses_an_unknown_tenant(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    payload = tmp_path / "alert.json"
    payload.write_text(json.dumps(generic("DiskFull")))

    code, _, err = cli(capsys, "routes", "test", str(payload), "--tenant", "nobody")

    assert code == 1
    assert "nobody" in err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"{not json", "alert.json"),
        (b'{"alerts": [{"labels": {}}]}', "alerts.0.labels"),
        (b"\xff\xfe", "alert.json"),
    ],
    ids=["syntax", "schema", "encoding"],
)
def test_routes_test_names_the_file_and_field_of_a_bad_payload(
    capsys: pytest.CaptureFixture[str], tenant: str, tmp_path: Path, content: bytes, expected: str
) -> None:
    payload = tmp_path / "alert.json"
    payload.write_bytes(content)

    code, _, err = cli(capsys, "routes", "test", str(payload), "--tenant", tenant)

    assert code == 1
    assert expected in err
    assert "Traceback" not in err


def test_routes_test_says_when_the_file_cannot_be_read(
    capsys: pytest.CaptureFixture[str], tenant: str, tmp_path: Path
) -> None:
    code, _, err = cli(capsys, "routes", "test", str(tmp_path / "missing.json"), "-t", tenant)

    assert code == 1
    assert "missing.json: cannot read" in err


def bury_one(tenant: str, name: str, reason: str) -> int:
    """Store a group as ingest does, then claim and bury its delivery."""
    [group] = sources.parse(Source.GENERIC, json.dumps(generic(name)).encode())
    now = datetime.now(UTC)
    runtime = open_runtime()
    with write_transaction(runtime.database.engine) as connection:
        write_group(
            connection,
            tenant_id=tenant,
            group_hash=group.group_hash,
            group_key=group.group_key,
            source=Source.GENERIC.value,
            merge=group_merger(group),
            targets=(TargetWrite("#dead", "en_US", passes_threshold=True),),
            now=now,
        )
        [claimed] = claim(
            connection,
            tenant_id=tenant,
            channel="#dead",
            now=now,
            owner="test",
            lease_until=now + timedelta(seconds=30),
            limit=10,
        )
        bury(connection, [claimed.id], owner="test", reason=reason, now=now)
    return claimed.id


def test_dead_letters_are_listed_then_replayed(
    capsys: pytest.CaptureFixture[str], tenant: str
) -> None:
    first = bury_one(tenant, "Gone", "channel_not_found")
    bury_one(tenant, "Lost", "is_archived")

    code, out, err = cli(capsys, "deadletters", "list", "--tenant", tenant)
    assert code == 0, err
    assert "channel_not_found" in out
    assert "is_archived" in out

    code, out, err = cli(capsys, "deadletters", "replay", str(first))
    assert code == 0, err
    assert "1 dead letter(s) queued again" in out

    code, out, _ = cli(capsys, "deadletters", "list")
    assert "channel_not_found" not in out
    assert "is_archived" in out

    code, out, err = cli(capsys, "deadletters", "replay", "--all")
    assert code == 0, err
    code, out, _ = cli(capsys, "deadletters", "list")
    assert "no dead letters" in out


def test_replay_without_a_choice_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "deadletters", "replay")

    assert code == 2
    assert "--all" in err


@pytest.mark.parametrize("command", [["list"], ["replay"]])
def test_an_empty_tenant_is_a_usage_error_not_every_tenant(
    capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    code, _, err = cli(capsys, "deadletters", *command, "--tenant", "")
    assert code == 2
    assert "give a tenant id" in err
