"""Templates and catalogs in a running service: tenant templates, fallback, hot reload."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from slack_tools.configs.localization import packaged_catalogs
from tests.e2e.harness import (
    FakeSlackServer,
    Service,
    alertmanager_payload,
    start_fake,
    start_service,
    wait_for,
)

TOKEN = "xoxb-acme-l10n-token"
TENANT_GROUP = """\
{
  "text": {{ ("Tenant says " ~ group.name|mrkdwn)|tojson }},
  "blocks": [
    {"type": "section",
     "text": {"type": "mrkdwn", "text": {{ ("Tenant says " ~ group.name|mrkdwn)|tojson }}}}
  ]
}
"""
# Valid Jinja2 that would run for 10^12 iterations: the sandbox's work budget stops it.
ENDLESS = "{% for a in range(10**6) %}{% for b in range(10**6) %}{% endfor %}{% endfor %}"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeSlackServer]:
    server = start_fake(tmp_path, "--workspace", f"acme={TOKEN}")
    yield server
    server.process.kill()


def set_templates(service: Service, templates: dict[str, str]) -> None:
    result = service.cli("config", "set", "templates", json.dumps(templates), "--tenant", "acme")
    assert result.returncode == 0, result.stdout + result.stderr


def texts(fake: FakeSlackServer) -> str:
    return json.dumps(fake.messages(), ensure_ascii=False)


def test_a_tenant_template_is_used_and_one_that_is_stopped_falls_back(
    tmp_path: Path, fake: FakeSlackServer
) -> None:
    service = start_service(tmp_path, fake)
    try:
        service.create_tenant("acme", "#alerts", TOKEN, "--locale", "en_US")

        def templates_applied(templates: dict[str, str], times: int) -> None:
            set_templates(service, templates)
            wait_for(
                lambda: service.process.log().count("tenant acme") >= times,
                "the service to see the tenant's new templates",
            )

        def post(name: str) -> str:
            response = service.post(
                "/api/v1/alerts/alertmanager", alertmanager_payload(name), tenant="acme"
            )
            assert response.status_code == 202, response.text
            wait_for(lambda: name in texts(fake), f"the message of {name}")
            return json.dumps(next(m for m in fake.messages() if name in json.dumps(m)))

        # The creation is seen first, so that its log line is not taken for the templates'.
        wait_for(
            lambda: "tenant acme" in service.process.log(), "the service to see the new tenant"
        )
        seen = service.process.log().count("tenant acme")
        templates_applied({"group": TENANT_GROUP}, seen + 1)
        assert "Tenant says DiskFull" in post("DiskFull")

        templates_applied({"group": ENDLESS + TENANT_GROUP}, seen + 2)
        message = post("CpuHot")
        assert "Tenant says" not in message  # the default template rendered it
        assert "CpuHot" in message
        fallbacks = service.metric(
            "slack_tools_template_fallbacks_total", tenant="acme", origin="tenant", reason="budget"
        )
        assert fallbacks == 1
        assert logged(service, "templates.fallback", tenant="acme", reason="budget")
    finally:
        service.process.kill()


def test_a_broken_template_is_refused_when_saved(tmp_path: Path, fake: FakeSlackServer) -> None:
    service = start_service(tmp_path, fake)
    try:
        service.create_tenant("acme", "#alerts", TOKEN)
        result = service.cli(
            "config",
            "set",
            "templates",
            json.dumps({"group": '{\n"text": {{ group.name }\n}'}),
            "--tenant",
            "acme",
        )
        assert result.returncode == 1
        assert "templates.group" in result.stderr
        assert "template line 2" in result.stderr
        result = service.cli(
            "config", "set", "templates", json.dumps({"gruop": "{}"}), "--tenant", "acme"
        )
        assert result.returncode == 1
        assert "unknown template name" in result.stderr
    finally:
        service.process.kill()


def logged(service: Service, event: str, **fields: object) -> bool:
    """Whether the service logged ``event`` with ``fields`` (JSON lines)."""
    for line in service.process.log().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("event") == event and all(entry.get(k) == v for k, v in fields.items()):
            return True
    return False


def test_edited_catalogs_and_templates_apply_without_a_restart(
    tmp_path: Path, fake: FakeSlackServer
) -> None:
    """An edit is used by the next message; a broken file is refused and the last good serves."""
    catalogs = tmp_path / "locales"
    shutil.copytree(packaged_catalogs(), catalogs, ignore=shutil.ignore_patterns("templates"))
    templates = tmp_path / "templates"
    templates.mkdir()
    service = start_service(
        tmp_path,
        fake,
        extra={
            "SLACK_TOOLS__LOCALIZATION__HOT_RELOAD": "true",
            "SLACK_TOOLS__LOCALIZATION__CATALOGS_DIRECTORY": str(catalogs),
            "SLACK_TOOLS__LOCALIZATION__TEMPLATES_DIRECTORY": str(templates),
            "SLACK_TOOLS__RELOAD__DEBOUNCE_SECONDS": "0.1",
        },
    )
    try:
        service.create_tenant("acme", "#alertes", TOKEN, "--locale", "fr_FR")
        french = catalogs / "fr_FR" / "LC_MESSAGES" / "messages.po"

        def post(name: str) -> str:
            response = service.post(
                "/api/v1/alerts/alertmanager", alertmanager_payload(name), tenant="acme"
            )
            assert response.status_code == 202, response.text
            wait_for(lambda: name in texts(fake), f"the message of {name}")
            found = next(m for m in fake.messages() if name in json.dumps(m))
            return json.dumps(found, ensure_ascii=False)

        assert "Critique" in post("Before")

        text = french.read_text(encoding="utf-8")
        old, new = 'msgid "Critical"\nmsgstr "Critique"', 'msgid "Critical"\nmsgstr "Grave"'
        french.write_text(text.replace(old, new), encoding="utf-8")
        wait_for(lambda: logged(service, "reload.done", what="catalogs"), "the catalogs reload")
        assert "Grave" in post("AfterEdit")

        broken = french.read_text(encoding="utf-8") + '\nmsgid "Orphan"\n\nmsgid "x"\nmsgstr "y"\n'
        french.write_text(broken, encoding="utf-8")
        orphan_line = broken.splitlines().index('msgid "Orphan"') + 1
        wait_for(
            lambda: logged(service, "localization.catalog_rejected", line=orphan_line),
            "the refusal, with the line",
        )
        assert "Grave" in post("AfterBreak")  # the last good catalog still serves

        (templates / "group.j2").write_text(TENANT_GROUP.replace("Tenant", "Operator"))
        wait_for(lambda: logged(service, "reload.done", what="templates"), "the templates reload")
        assert "Operator says TemplateEdit" in post("TemplateEdit")

        (templates / "group.j2").write_text('{"text": {{ group.name }\n')
        wait_for(lambda: logged(service, "templates.rejected", line=1), "the template refused")
        assert "Operator says TemplateBreak" in post("TemplateBreak")
    finally:
        service.process.kill()
