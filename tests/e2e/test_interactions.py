"""Pressing "Acknowledge" in Slack: signed callback → recorded, audited, message edited."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import (
    FakeSlackServer,
    Service,
    alertmanager_payload,
    start_service,
    wait_for,
)
from tests.e2e.test_delivery import ACME_TOKEN, GLOBEX_TOKEN, fake
from tests.slack_signing import (
    INTERACTIONS,
    SIGNING_SECRET,
    acknowledge_payload,
    form,
    signed,
)

__all__ = ["fake"]  # the fixture: the fake with workspaces acme and globex


@pytest.fixture
def service(tmp_path: Path, fake: FakeSlackServer) -> Iterator[Service]:
    """The service with Slack's signing secret, so messages carry the button."""
    running = start_service(
        tmp_path, fake, extra={"SLACK_TOOLS__SLACK__SIGNING_SECRET": SIGNING_SECRET}
    )
    running.create_tenant("acme", "#alerts", ACME_TOKEN)
    running.create_tenant("globex", "#alerts", GLOBEX_TOKEN)
    yield running
    running.process.kill()


def _buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = [b for a in message.get("attachments", []) for b in a.get("blocks", [])]
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def _press(service: Service, payload: dict[str, Any], **signing: Any) -> httpx.Response:
    body = form(payload)
    return httpx.post(
        service.url + INTERACTIONS, content=body, headers=signed(body, **signing), timeout=30
    )


def test_acknowledge_button_records_audits_and_edits_the_message(
    fake: FakeSlackServer, service: Service
) -> None:
    """The firing message carries the button; a press shows who acknowledged, once."""
    response = service.post(
        "/api/v1/alerts/alertmanager", alertmanager_payload("AckMe"), tenant="acme"
    )
    assert response.status_code == 202, response.text
    message = wait_for(fake.messages, "the alert message")[0]
    [button] = [b for b in _buttons(message) if b["action_id"] == "slack_tools.acknowledge"]
    assert button["value"] == "acme"
    assert button["text"]["text"] == "Acquitter"  # the tenant's default locale, fr_FR

    pressed = _press(service, acknowledge_payload("acme", message["channel"], message["ts"]))
    assert pressed.status_code == 200, pressed.text
    assert pressed.json() == {"outcome": "recorded"}

    def acknowledged() -> dict[str, Any] | None:
        for shown in fake.messages():
            if shown["ts"] == message["ts"] and "<@U0ACKER01>" in str(shown["attachments"]):
                return shown
        return None

    edited = wait_for(acknowledged, "the message saying who acknowledged it")
    assert "Acquittée par <@U0ACKER01>" in str(edited["attachments"])
    assert "<!date^" in str(edited["attachments"])  # each reader sees their own time
    assert not any(b["action_id"] == "slack_tools.acknowledge" for b in _buttons(edited))
    assert len([m for m in fake.messages() if not m.get("thread_ts")]) == 1

    again = _press(service, acknowledge_payload("acme", message["channel"], message["ts"], "U2"))
    assert again.json() == {"outcome": "already"}

    listed = service.cli("audit", "list", "--action", "alert.acknowledge", "--tenant", "acme")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("alert.acknowledge") == 1
    assert "U0ACKER01" in listed.stdout


def test_refused_presses_change_nothing(fake: FakeSlackServer, service: Service) -> None:
    """Wrong secret, a replayed old request, an altered body, another tenant's value."""
    service.post("/api/v1/alerts/alertmanager", alertmanager_payload("Guarded"), tenant="acme")
    message = wait_for(fake.messages, "the alert message")[0]
    payload = acknowledge_payload("acme", message["channel"], message["ts"])

    assert _press(service, payload, secret="not-the-signing-secret").status_code == 401
    stale = int(time.time()) - 6 * 60
    assert _press(service, payload, timestamp=stale).status_code == 401
    body = form(payload)
    altered = body.replace(b"U0ACKER01", b"U0ATTACKR")
    response = httpx.post(
        service.url + INTERACTIONS, content=altered, headers=signed(body), timeout=30
    )
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")

    other = _press(service, acknowledge_payload("globex", message["channel"], message["ts"]))
    assert other.json() == {"outcome": "unknown"}

    time.sleep(1.0)  # would an edit have been made, the dispatcher polls every 50 ms
    assert fake.requests("chat.update") == []
    listed = service.cli("audit", "list", "--action", "alert.acknowledge")
    assert "alert.acknowledge" not in listed.stdout
