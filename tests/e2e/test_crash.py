"""Crash safety: a service killed with SIGKILL loses nothing it accepted (202 means durable)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
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

TOKEN = "xoxb-crash-e2e-token"
CONCURRENCY = 4
FAST_CHANNEL = {
    # Slack's real pace would make this test minutes long; the fake is told the same.
    "SLACK_TOOLS__DELIVERY__CHANNEL_POSTS_PER_SECOND": "200",
    "SLACK_TOOLS__DELIVERY__WORKSPACE_POSTS_PER_SECOND": "200",
    "SLACK_TOOLS__DELIVERY__DIGEST_AFTER_SECONDS": "100",
    "SLACK_TOOLS__DELIVERY__CONCURRENCY": str(CONCURRENCY),
}


def group_counts(fake: FakeSlackServer) -> Counter[str]:
    """How many top-level messages each group got."""
    counts: Counter[str] = Counter()
    for message in fake.messages():
        if message.get("thread_ts"):
            continue
        text = str(message["attachments"])
        for word in text.replace("'", " ").split():
            if word.startswith("Crash") and word[5:].isdigit():
                counts[word] += 1
                break
    return counts


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeSlackServer]:
    """The fake without rate limits (the service is told the same pace)."""
    server = start_fake(tmp_path, "--workspace", f"acme={TOKEN}", "--no-rate-limits")
    yield server
    server.process.kill()


def test_sigkill_under_load_loses_nothing_accepted(tmp_path: Path, fake: FakeSlackServer) -> None:
    """Killed mid-load and restarted, the service delivers every group it answered 202 for."""
    service = start_service(tmp_path, fake, extra=FAST_CHANNEL)
    try:
        service.create_tenant("acme", "#alerts", TOKEN)
        accepted: list[str] = []

        def load() -> None:
            with httpx.Client(base_url=service.url, timeout=10) as client:
                for n in range(400):
                    name = f"Crash{n}"
                    try:
                        response = client.post(
                            "/api/v1/alerts/alertmanager",
                            json=alertmanager_payload(name),
                            headers={"Authorization": f"Bearer {service.keys['acme']}"},
                        )
                    except httpx.TransportError:
                        return  # the service died: what was not answered was not accepted
                    if response.status_code == 202:
                        accepted.append(name)

        sender = threading.Thread(target=load)
        sender.start()
        wait_for(lambda: len(accepted) >= 80, "some load to be accepted")
        service.process.kill()
        sender.join(timeout=30)
        assert 80 <= len(accepted) < 400

        restart(service)
        wait_for(
            lambda: set(accepted) <= set(group_counts(fake)), "every accepted group", deadline=120
        )
        counts = group_counts(fake)
        repeated = [name for name, count in counts.items() if count > 1]
        # At-least-once: only sends in flight at the kill (at most the concurrency) may repeat.
        assert len(repeated) <= CONCURRENCY, repeated
    finally:
        service.process.kill()


def test_kill_between_slack_ok_and_the_record(tmp_path: Path, fake: FakeSlackServer) -> None:
    """Killed after Slack took the message but before it was recorded: sent once or twice,
    never lost — the documented at-least-once window."""
    service: Service = start_service(tmp_path, fake, extra=FAST_CHANNEL)
    try:
        service.create_tenant("acme", "#alerts", TOKEN)
        # Slack (the fake) will take two seconds to answer this post: the send is in flight.
        fake.faults(method="chat.postMessage", latency=2.0, times=1)
        assert (
            service.post(
                "/api/v1/alerts/alertmanager", alertmanager_payload("Crash1"), tenant="acme"
            ).status_code
            == 202
        )
        time.sleep(0.7)  # the dispatcher has claimed and is waiting for Slack's answer
        service.process.kill()
        wait_for(lambda: group_counts(fake)["Crash1"] >= 1, "the fake to finish the post")
        restart(service)
        wait_for(
            lambda: (
                service.metric("slack_tools_outbox_depth", tenant="acme") == 0
                and service.metric(
                    "slack_tools_messages_sent_total", tenant="acme", status="posted"
                )
                >= 1
            ),
            "the restarted service to settle",
            deadline=60,
        )
        assert group_counts(fake)["Crash1"] in (1, 2)
    finally:
        service.process.kill()
