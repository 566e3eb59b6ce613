"""`slack-tools serve` as a user runs it: a real process, real HTTP, real signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers import TEST_JWT_SECRET, assert_no_secret, issue_test_token

ADMIN_TOKEN = issue_test_token(subject="e2e-serve", ttl=24 * 3600)
DEADLINE = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll until ``condition`` holds; fail with ``what`` after a generous deadline."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@dataclass
class Running:
    process: subprocess.Popen[str]
    base: str
    config_file: Path
    log_file: Path

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return httpx.get(self.base + path, timeout=5, **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, **kwargs: object) -> httpx.Response:
        return httpx.post(self.base + path, timeout=5, **kwargs)  # type: ignore[arg-type]

    def status(self) -> dict[str, object]:
        response = self.get(
            "/admin/config/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert response.status_code == 200
        body: dict[str, object] = response.json()
        return body


def operator_config(channel: str) -> str:
    return (
        "security:\n"
        "  jwt:\n"
        f"    secret: {TEST_JWT_SECRET}\n"
        "reload:\n"
        "  debounce_seconds: 0.05\n"
        "  poll_database_seconds: 0.5\n"
        "slack:\n"
        f"  default_channel: '{channel}'\n"
    )


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Running]:
    """The service on a free port with an operator configuration directory and its own data."""
    config_dir = tmp_path / "conf.d"
    config_dir.mkdir()
    config_file = config_dir / "ops.yaml"
    config_file.write_text(operator_config("#alerts"))
    port = free_port()
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SLACK_TOOLS") and key not in ("ENVIRONMENT", "SLACK_BOT_TOKEN")
    }
    environment.update(
        {
            "SLACK_TOOLS_CONFIG": str(config_dir),
            "SLACK_TOOLS_DATA_DIR": str(tmp_path / "data"),
            "SLACK_TOOLS__SERVER__PORT": str(port),
            "SLACK_TOOLS__MONITORING__LOG_FORMAT": "json",
        }
    )
    log_file = tmp_path / "service.log"
    with log_file.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "slack_tools", "serve"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    running = Running(process, f"http://127.0.0.1:{port}", config_file, log_file)

    def answers() -> bool:
        if process.poll() is not None:
            pytest.fail(f"service exited early:\n{log_file.read_text()}")
        try:
            return running.get("/health/live").status_code == 200
        except httpx.TransportError:
            return False

    wait_for(answers, "the service to answer /health/live")
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_health_and_metrics_answer(service: Running) -> None:
    """Liveness, readiness (database checked) and Prometheus metrics are served."""
    assert service.get("/health/live").json() == {"status": "ok"}
    ready = service.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == {"status": "ok", "backend": "sqlite"}
    metrics = service.get("/metrics").text
    assert 'slack_tools_config_reloads_total{outcome="applied",trigger="start"} 1.0' in metrics
    assert "slack_tools_config_last_reload_success 1.0" in metrics


def test_file_change_reloads_and_invalid_file_keeps_old_config(service: Running) -> None:
    """A valid edit is applied; an invalid one is rejected with file:line and the old one serves."""
    first = service.status()["active_hash"]
    service.config_file.write_text(operator_config("#changed"))
    wait_for(lambda: service.status()["active_hash"] != first, "the edit to be applied")
    applied = service.status()
    assert applied["outcome"] == "applied"
    assert applied["trigger"] == "file"

    service.config_file.write_text(operator_config("#changed") + "monitoring:\n  log_level: LOUD\n")
    wait_for(lambda: service.status()["outcome"] == "rejected", "the invalid edit to be rejected")
    rejected = service.status()
    assert rejected["active_hash"] == applied["active_hash"]
    errors = rejected["errors"]
    assert isinstance(errors, list)
    assert any(f"{service.config_file}:10:3: monitoring.log_level:" in e for e in errors)
    assert service.get("/health/ready").status_code == 200
    assert "slack_tools_config_last_reload_success 0.0" in service.get("/metrics").text


def test_sighup_reloads(service: Running) -> None:
    """SIGHUP re-reads the configuration (an unchanged one is reported as such)."""
    service.process.send_signal(signal.SIGHUP)
    wait_for(lambda: service.status()["trigger"] == "signal", "the SIGHUP reload")
    assert service.status()["outcome"] == "unchanged"


def test_admin_reload_requires_an_admin_token(service: Running) -> None:
    """No token or an invalid one → 401 as problem+json; a valid admin JWT reloads."""
    missing = service.post("/admin/config/reload")
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = service.post("/admin/config/reload", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert_no_secret(wrong.text, ADMIN_TOKEN, TEST_JWT_SECRET)
    ok = service.post("/admin/config/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert ok.status_code == 200
    assert ok.json()["trigger"] == "admin"


def test_admin_reload_of_invalid_configuration_is_422(service: Running) -> None:
    """An admin reload of a broken file answers 422 with the errors; the old config serves."""
    service.config_file.write_text("server: [unclosed\n")
    response = service.post(
        "/admin/config/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["title"] == "Configuration reload rejected"
    assert any(str(service.config_file) in error for error in body["errors"])


def test_sigterm_stops_cleanly_and_logs_hold_no_secret(service: Running) -> None:
    """SIGTERM exits 0, and neither the admin token nor its secret appears in the log."""
    service.post("/admin/config/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=DEADLINE) == 0
    log = service.log_file.read_text()
    assert "service.starting" in log
    assert_no_secret(log, ADMIN_TOKEN, TEST_JWT_SECRET)
