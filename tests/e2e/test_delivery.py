"""Alerts over real HTTP into the service, and out to the Slack fake running as its own server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import (
    FakeSlackServer,
    Service,
    alertmanager_payload,
    restart,
    start_fake,
    start_service,
    wait_for,
)

ACME_TOKEN = "xoxb-acme-e2e-token"
GLOBEX_TOKEN = "xoxb-globex-e2e-token"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeSlackServer]:
    """The fake with two workspaces, 1 post per second per channel like Slack."""
    server = start_fake(
        tmp_path, "--workspace", f"acme={ACME_TOKEN}", "--workspace", f"globex={GLOBEX_TOKEN}"
    )
    yield server
    server.process.kill()


@pytest.fixture
def service(tmp_path: Path, fake: FakeSlackServer) -> Iterator[Service]:
    """The service delivering to the fake, with tenants acme and globex."""
    running = start_service(tmp_path, fake)
    running.create_tenant("acme", "#alerts", ACME_TOKEN)
    running.create_tenant("globex", "#alerts", GLOBEX_TOKEN)
    yield running
    running.process.kill()


def test_alertmanager_notification_becomes_a_message_and_its_resolve_edits_it(
    fake: FakeSlackServer, service: Service
) -> None:
    """Firing posts one message; the resolve edits that same message (same ts)."""
    response = service.post(
        "/api/v1/alerts/alertmanager", alertmanager_payload("DiskFull", alerts=2), tenant="acme"
    )
    assert response.status_code == 202, response.text
    assert response.json()["groups"][0]["outcome"] == "queued"
    posted = wait_for(fake.messages, "the message in Slack")
    assert len(posted) == 1
    first = posted[0]
    assert "DiskFull" in str(first["attachments"])
    assert first["channel_name"] == "alerts"

    service.post(
        "/api/v1/alerts/alertmanager",
        alertmanager_payload("DiskFull", "resolved", alerts=2),
        tenant="acme",
    )

    def edited() -> bool:
        updates = fake.requests("chat.update")
        return any(u["ok"] for u in updates)

    wait_for(edited, "the edit of the message")
    messages = [m for m in fake.messages() if not m.get("thread_ts")]
    assert [m["ts"] for m in messages] == [first["ts"]]
    assert "#12B76A" in str(messages[0]["attachments"])  # green: resolved


def test_duplicate_notification_posts_once(fake: FakeSlackServer, service: Service) -> None:
    """The same group state sent twice (Alertmanager HA) gives one Slack message."""
    payload = alertmanager_payload("HaCopy")
    outcomes = [
        service.post("/api/v1/alerts/alertmanager", payload, tenant="acme").json()["groups"][0]
        for _ in range(3)
    ]
    assert [o["outcome"] for o in outcomes] == ["queued", "duplicate", "duplicate"]
    wait_for(fake.messages, "the message")
    wait_for(
        lambda: service.metric("slack_tools_outbox_depth", tenant="acme") == 0,
        "the outbox to drain",
    )
    assert len(fake.requests("chat.postMessage")) == 1


def test_retry_after_is_obeyed(tmp_path: Path) -> None:
    """After a 429, nothing is sent to that channel before Retry-After has passed."""
    strict = start_fake(tmp_path, "--workspace", f"acme={ACME_TOKEN}", "--post-interval", "3")
    running = start_service(tmp_path, strict)
    try:
        running.create_tenant("acme", "#alerts", ACME_TOKEN)
        for n in range(4):
            running.post(
                "/api/v1/alerts/alertmanager", alertmanager_payload(f"Group{n}"), tenant="acme"
            )
        wait_for(
            lambda: len([m for m in strict.messages() if not m.get("thread_ts")]) >= 4,
            "every group to be posted",
            deadline=90,
        )
        requests = strict.requests("chat.postMessage")
        limited = [r for r in requests if r["status"] == 429]
        assert limited, "the fake should have rate-limited the service at least once"
        # One channel only here (the fake logs refused posts by name, accepted ones by ID).
        for refused in limited:
            after = [r for r in requests if r["at"] > refused["at"]]
            assert after, "the refused post was never sent again"
            assert after[0]["at"] - refused["at"] >= refused["retry_after"] - 0.05
        assert running.metric("slack_tools_slack_rate_limited_total", tenant="acme") >= 1
        assert running.metric("slack_tools_dead_letters", tenant="acme") == 0
    finally:
        running.process.kill()
        strict.process.kill()


def test_outage_opens_the_breaker_and_nothing_is_lost(
    fake: FakeSlackServer, service: Service
) -> None:
    """During an outage the breaker opens; afterwards every queued group is delivered."""
    fake.faults(outage=4)
    for n in range(6):
        service.post(
            "/api/v1/alerts/alertmanager",
            alertmanager_payload(f"Outage{n}", extra_labels={"team": f"t{n}"}),
            tenant="acme",
        )
    wait_for(
        lambda: any(
            w["state"] == "open" for w in service.ready()["checks"]["slack_workspaces"].values()
        ),
        "the breaker to open",
    )
    ready = service.ready()
    assert ready["status"] == "ok"  # an open breaker does not fail readiness

    def all_visible() -> bool:
        # One channel behind by six groups gets a digest: every group must show somewhere.
        shown = " ".join(str(m["attachments"]) for m in fake.messages())
        return all(f"Outage{n}" in shown for n in range(6))

    wait_for(all_visible, "every group after the outage", deadline=90)
    assert service.metric("slack_tools_dead_letters", tenant="acme") == 0


def test_permanent_error_becomes_a_dead_letter_that_can_be_replayed(
    fake: FakeSlackServer, service: Service
) -> None:
    """not_in_channel dead-letters at once with its reason; after the fix, replay delivers."""
    fake.channel("private-ops", "acme", is_member=False)
    service.create_tenant("initech", "#private-ops", ACME_TOKEN)
    service.post("/api/v1/alerts/alertmanager", alertmanager_payload("Dead"), tenant="initech")

    def dead() -> list[dict[str, object]]:
        letters: list[dict[str, object]] = service.admin("GET", "/admin/deadletters").json()[
            "dead_letters"
        ]
        return letters

    letters = wait_for(dead, "the dead letter")
    assert letters[0]["reason"] == "not_in_channel"
    assert letters[0]["channel"] == "#private-ops"
    assert service.cli("deadletters", "list").stdout.count("not_in_channel") == 1

    fake.channel("private-ops", "acme", is_member=True)
    replayed = service.admin("POST", "/admin/deadletters/replay", json={"tenant": "initech"})
    assert replayed.json() == {"replayed": 1}
    wait_for(lambda: fake.messages("private-ops"), "the replayed message")


def test_a_tenant_key_posts_only_for_its_tenant(fake: FakeSlackServer, service: Service) -> None:
    """A tenant label in the payload is data: acme's key always delivers to acme's workspace."""
    payload = alertmanager_payload("Spoof", extra_labels={"tenant": "globex"})
    assert service.post("/api/v1/alerts/alertmanager", payload, tenant="acme").status_code == 202
    posted = wait_for(fake.messages, "the message")
    assert {m["team_id"] for m in posted} == {fake.team_id("acme")}
    globex = service.cli("deadletters", "list", "--tenant", "globex")
    assert "no dead letters" in globex.stdout
    assert (
        service.metric("slack_tools_alerts_received_total", tenant="globex", source="alertmanager")
        == 0
    )


def test_wrong_or_missing_key_is_refused(service: Service) -> None:
    """No key is 401, an unknown key is 401, both as problem+json."""
    payload = alertmanager_payload("NoKey")
    missing = service.post("/api/v1/alerts/alertmanager", payload)
    wrong = service.post("/api/v1/alerts/alertmanager", payload, key="stk_not-a-key")
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"


def test_sigterm_finishes_the_send_in_flight(fake: FakeSlackServer, service: Service) -> None:
    """SIGTERM during a slow send: the send completes and is recorded, and the exit is 0."""
    fake.faults(method="chat.postMessage", latency=2.0, times=1)
    service.post("/api/v1/alerts/alertmanager", alertmanager_payload("Shutdown"), tenant="acme")
    time.sleep(0.7)  # claimed, waiting for Slack's answer
    assert service.process.terminate(timeout=60) == 0
    assert len(fake.messages()) == 1
    restart(service)
    time.sleep(2)  # a send that was not recorded would be repeated within this time
    assert len(fake.requests("chat.postMessage")) == 1
    assert service.metric("slack_tools_outbox_depth", tenant="acme") == 0
