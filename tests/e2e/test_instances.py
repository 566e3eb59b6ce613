"""Two instances on one PostgreSQL: no duplicate posts, both work, one dying loses nothing."""

from __future__ import annotations

import threading
import time
from collections import Counter
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

TOKEN = "xoxb-instances-e2e-token"
TENANTS = ("north", "south", "east", "west")
SETTINGS = {
    "SLACK_TOOLS__DELIVERY__CHANNEL_POSTS_PER_SECOND": "50",
    "SLACK_TOOLS__DELIVERY__WORKSPACE_POSTS_PER_SECOND": "200",
    "SLACK_TOOLS__DELIVERY__DIGEST_AFTER_SECONDS": "100",
}


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeSlackServer]:
    """The fake without rate limits; the services pace themselves."""
    server = start_fake(tmp_path, "--workspace", f"acme={TOKEN}", "--no-rate-limits")
    yield server
    server.process.kill()


@pytest.fixture
def pair(
    tmp_path: Path, fake: FakeSlackServer, postgres_url: str
) -> Iterator[tuple[Service, Service]]:
    """Two instances sharing one PostgreSQL schema, each with its own data directory."""
    shared = {"DATABASE_URL": postgres_url, **SETTINGS}
    first = start_service(tmp_path, fake, name="a", extra=shared, data_dir=tmp_path / "a")
    second = start_service(tmp_path, fake, name="b", extra=shared, data_dir=tmp_path / "b")
    for tenant in TENANTS:
        key = first.create_tenant(tenant, f"#{tenant}", TOKEN)
        second.keys[tenant] = key
    yield first, second
    first.process.kill()
    second.process.kill()


def posts_per_group(fake: FakeSlackServer, prefix: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for message in fake.messages():
        if message.get("thread_ts"):
            continue
        for word in str(message["attachments"]).replace("'", " ").split():
            if word.startswith(prefix):
                counts[word] += 1
                break
    return counts


def test_both_instances_deliver_each_group_once(
    fake: FakeSlackServer, pair: tuple[Service, Service]
) -> None:
    """Groups sent to either instance are each posted once, and both instances send."""
    first, second = pair
    names = [f"Shared{n}" for n in range(40)]
    for n, name in enumerate(names):
        target = first if n % 2 else second
        response = target.post(
            "/api/v1/alerts/alertmanager",
            alertmanager_payload(name),
            tenant=TENANTS[n % len(TENANTS)],
        )
        assert response.status_code == 202
    wait_for(lambda: set(names) <= set(posts_per_group(fake, "Shared")), "every group")
    counts = posts_per_group(fake, "Shared")
    assert all(counts[name] == 1 for name in names), counts
    sent = [service.metric("slack_tools_messages_sent_total") for service in pair]
    assert sum(sent) == len(names)
    assert all(count > 0 for count in sent), sent


def test_alertmanager_ha_copies_to_two_instances_post_once(
    fake: FakeSlackServer, pair: tuple[Service, Service]
) -> None:
    """The same notification reaching both instances at once posts one message."""
    payload = alertmanager_payload("HaCopy")
    outcomes: list[str] = []

    def send(service: Service) -> None:
        response = service.post("/api/v1/alerts/alertmanager", payload, tenant="north")
        outcomes.append(response.json()["groups"][0]["outcome"])

    threads = [threading.Thread(target=send, args=(s,)) for s in (*pair, *pair)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["duplicate", "duplicate", "duplicate", "queued"]
    wait_for(lambda: posts_per_group(fake, "HaCopy")["HaCopy"] == 1, "the message")
    assert len(fake.requests("chat.postMessage")) == 1


def test_killing_one_instance_loses_nothing(
    fake: FakeSlackServer, pair: tuple[Service, Service]
) -> None:
    """An instance killed while it holds claims: the other takes them over after the lease."""
    first, second = pair
    fake.faults(method="chat.postMessage", latency=3.0)  # every send stays in flight a while
    names = [f"Orphan{n}" for n in range(8)]
    for n, name in enumerate(names):
        first.post(
            "/api/v1/alerts/alertmanager",
            alertmanager_payload(name),
            tenant=TENANTS[n % len(TENANTS)],
        )
    time.sleep(1.0)  # the first instance claims and starts sending
    first.process.kill()
    fake.clear_faults()
    wait_for(lambda: set(names) <= set(posts_per_group(fake, "Orphan")), "every group", deadline=90)
    wait_for(lambda: second.metric("slack_tools_outbox_depth") == 0, "the outbox to drain")
