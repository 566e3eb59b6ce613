"""A real Alertmanager (Debian's prometheus-alertmanager) notifying the service."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import unavailable
from tests.e2e.harness import (
    FakeSlackServer,
    Process,
    Service,
    clean_environment,
    free_port,
    start_fake,
    start_service,
    wait_for,
)

TOKEN = "xoxb-alertmanager-e2e-token"
BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

CONFIG = """\
route:
  receiver: slack-tools
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: slack-tools
    webhook_configs:
      - url: {url}/api/v1/alerts/alertmanager
        send_resolved: true
        http_config:
          authorization:
            credentials: {key}
"""


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[FakeSlackServer, Service, str]]:
    """The fake, the service with a tenant, and an Alertmanager pointed at the service."""
    if BINARY is None:
        unavailable("Alertmanager", "prometheus-alertmanager missing (.ci/run installs it)")
    fake = start_fake(tmp_path, "--workspace", f"acme={TOKEN}")
    service = start_service(tmp_path, fake)
    key = service.create_tenant("acme", "#alerts", TOKEN)
    config = tmp_path / "alertmanager.yml"
    config.write_text(CONFIG.format(url=service.url, key=key))
    port = free_port()
    alertmanager = Process(
        [
            str(BINARY),
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        clean_environment(),
        tmp_path / "alertmanager.log",
    )
    alertmanager.start()
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if not alertmanager.running:
            pytest.fail(f"Alertmanager exited:\n{alertmanager.log()}")
        try:
            return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, "Alertmanager to be ready")
    yield fake, service, url
    alertmanager.kill()
    service.process.kill()
    fake.process.kill()


def push(alertmanager: str, *, ends: datetime | None = None) -> None:
    """Send one alert to Alertmanager through its API, as Prometheus does."""
    now = datetime.now(UTC)
    alert = {
        "labels": {"alertname": "AlertmanagerE2E", "severity": "critical", "job": "api"},
        "annotations": {"summary": "Real Alertmanager notified slack-tools"},
        "startsAt": (now - timedelta(minutes=1)).isoformat(),
        "generatorURL": "http://prometheus.example.org/graph",
    }
    if ends is not None:
        alert["endsAt"] = ends.isoformat()
    httpx.post(f"{alertmanager}/api/v2/alerts", json=[alert], timeout=10).raise_for_status()


def test_alertmanager_notifications_arrive_as_slack_messages(
    stack: tuple[FakeSlackServer, Service, str],
) -> None:
    """Alertmanager's webhook (with its bearer credentials) posts; its resolve edits the post."""
    fake, service, alertmanager = stack
    push(alertmanager)
    posted = wait_for(fake.messages, "Alertmanager's notification in Slack")
    assert "AlertmanagerE2E" in str(posted[0]["attachments"])
    assert (
        service.metric("slack_tools_alerts_received_total", tenant="acme", source="alertmanager")
        >= 1
    )

    push(alertmanager, ends=datetime.now(UTC) - timedelta(seconds=1))
    wait_for(
        lambda: any(r["ok"] for r in fake.requests("chat.update")),
        "the resolve to edit the message",
    )
    top = [m for m in fake.messages() if not m.get("thread_ts")]
    assert len(top) == 1
    assert "#12B76A" in str(top[0]["attachments"])
