"""Quotas never cost an alert: over-quota messages wait for the window and say so."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import (
    FakeSlackServer,
    Service,
    alertmanager_payload,
    start_fake,
    start_service,
    wait_for,
)

TOKEN = "xoxb-acme-quota-token"
AM = "/api/v1/alerts/alertmanager"
HELD = "held back by this team's quota"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeSlackServer]:
    server = start_fake(tmp_path, "--workspace", f"acme={TOKEN}")
    for name in ("team-a", "team-b", "team-c"):
        server.channel(name, "acme")
    yield server
    server.process.kill()


@pytest.fixture
def service(tmp_path: Path, fake: FakeSlackServer) -> Iterator[Service]:
    running = start_service(tmp_path, fake)
    running.create_tenant("acme", "#alerts", TOKEN, "--locale", "en_US")
    yield running
    running.process.kill()


def update(service: Service, *settings: str) -> None:
    result = service.cli("tenant", "update", "acme", *settings)
    assert result.returncode == 0, result.stdout + result.stderr


def usage(service: Service) -> dict[str, int]:
    response = service.admin("GET", "/api/v1/tenants/acme/usage")
    assert response.status_code == 200, response.text
    totals: dict[str, int] = response.json()["totals"]
    return totals


def text_of(message: dict[str, object]) -> str:
    return json.dumps(message, ensure_ascii=False)


def test_messages_over_quota_wait_for_the_next_window_and_say_they_waited(
    fake: FakeSlackServer, service: Service
) -> None:
    """Three groups for three channels at once, one message a second: all arrive, in turn."""
    routes = [{"matchers": [f"team={t}"], "channel": f"#team-{t}"} for t in "abc"]
    update(service, "quotas.messages_per_second=1", f"routes={json.dumps(routes)}")
    time.sleep(1.0)  # the service picks the change up from the database

    for team in "abc":
        payload = alertmanager_payload(f"Disk{team}", extra_labels={"team": team})
        assert service.post(AM, payload, tenant="acme").status_code == 202

    posted = wait_for(lambda: len(fake.messages()) == 3 and fake.messages(), "three messages")
    noted = [m for m in posted if HELD in text_of(m)]
    assert noted, "at least one message waited for the quota's next second"
    counts = usage(service)
    assert counts["messages_sent"] == 3
    assert counts["messages_held"] == len(noted)
    assert service.metric("slack_tools_quota_exceeded_total", quota="messages_per_second") >= 1


def test_alerts_over_quota_are_accepted_and_held_while_a_resolve_goes_through(
    fake: FakeSlackServer, service: Service
) -> None:
    """202 for every alert; the new group waits; the notified group's resolve edits at once."""
    update(service, "quotas.alerts_per_minute=2")
    time.sleep(1.0)
    while time.time() % 60 > 45:  # the three posts must fall in one minute
        time.sleep(0.5)

    first = service.post(AM, alertmanager_payload("DiskFull", alerts=2), tenant="acme")
    assert first.status_code == 202
    wait_for(lambda: len(fake.messages()) == 1, "the first group's message")
    second = service.post(AM, alertmanager_payload("CpuHigh"), tenant="acme")
    assert second.status_code == 202
    assert second.json()["groups"][0]["outcome"] == "queued"
    resolve = service.post(
        AM, alertmanager_payload("DiskFull", "resolved", alerts=2), tenant="acme"
    )
    assert resolve.status_code == 202

    wait_for(lambda: any(r["ok"] for r in fake.requests("chat.update")), "the resolve's edit")
    time.sleep(1.5)  # CpuHigh would have been posted by now if it were not held
    top_level = [m for m in fake.messages() if not m.get("thread_ts")]
    assert ["DiskFull" in text_of(m) for m in top_level] == [True]
    assert usage(service)["messages_held"] == 1
    assert usage(service)["alerts_received"] == 5
    assert service.metric("slack_tools_quota_exceeded_total", quota="alerts_per_minute") >= 1
