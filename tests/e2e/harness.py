"""Real processes for end-to-end tests: the service, the Slack fake, the command line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import JWT_SECRET_VARIABLE, TEST_JWT_SECRET, issue_test_token

DEADLINE = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], object], what: str, deadline: float = DEADLINE) -> Any:
    """Poll until ``condition`` returns something truthy; fail naming ``what`` after a deadline."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def clean_environment() -> dict[str, str]:
    """This process's environment without anything that configures slack-tools."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SLACK_TOOLS")
        and key
        not in (
            "ENVIRONMENT",
            "SLACK_BOT_TOKEN",
            "DATABASE_URL",
            "REDIS_HOST",
            "REDIS_PORT",
        )
    }


@dataclass
class Process:
    """A child process with its log file; stopped (killed if need be) at the end of the test."""

    args: list[str]
    env: dict[str, str]
    log_file: Path
    handle: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_file.open("ab") as log:
            self.handle = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=log)

    @property
    def running(self) -> bool:
        return self.handle is not None and self.handle.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as in a crash."""
        if self.handle is not None and self.running:
            self.handle.send_signal(signal.SIGKILL)
            self.handle.wait(timeout=30)

    def terminate(self, timeout: float = 60) -> int:
        assert self.handle is not None
        self.handle.send_signal(signal.SIGTERM)
        return self.handle.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


@dataclass
class FakeSlackServer:
    """The Slack fake, as a separate server, driven over HTTP like a test would drive Slack."""

    process: Process
    url: str

    @property
    def api(self) -> str:
        return f"{self.url}/api/"

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        params = {"channel": channel} if channel else {}
        response = httpx.get(f"{self.url}/fake/messages", params=params, timeout=10)
        response.raise_for_status()
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages

    def requests(self, method: str | None = None) -> list[dict[str, Any]]:
        params = {"method": method} if method else {}
        response = httpx.get(f"{self.url}/fake/requests", params=params, timeout=10)
        response.raise_for_status()
        requests: list[dict[str, Any]] = response.json()["requests"]
        return requests

    def faults(self, **fault: Any) -> None:
        httpx.post(f"{self.url}/fake/faults", json=fault, timeout=10).raise_for_status()

    def clear_faults(self) -> None:
        httpx.delete(f"{self.url}/fake/faults", timeout=10).raise_for_status()

    def team_id(self, workspace: str) -> str:
        found = httpx.get(f"{self.url}/fake/workspaces", timeout=10).json()["workspaces"]
        return str(next(w["team_id"] for w in found if w["name"] == workspace))

    def channel(self, name: str, workspace: str, **flags: Any) -> None:
        """Create or change a channel of ``workspace`` (is_member, is_archived)."""
        body = {"name": name, "team_id": self.team_id(workspace), **flags}
        httpx.post(f"{self.url}/fake/channels", json=body, timeout=10).raise_for_status()


def start_fake(tmp_path: Path, *extra: str) -> FakeSlackServer:
    port = free_port()
    process = Process(
        [sys.executable, "-m", "slack_tools.slack.fake", "--port", str(port), *extra],
        clean_environment(),
        tmp_path / f"fake-{port}.log",
    )
    process.start()
    server = FakeSlackServer(process, f"http://127.0.0.1:{port}")

    def up() -> bool:
        if not process.running:
            pytest.fail(f"the Slack fake exited:\n{process.log()}")
        try:
            return httpx.get(f"{server.url}/fake/requests", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, "the Slack fake to answer")
    return server


@dataclass
class Service:
    """A ``slack-tools serve`` process and how to talk to it."""

    process: Process
    url: str
    env: dict[str, str]
    admin_token: str
    keys: dict[str, str] = field(default_factory=dict)

    def post(
        self, path: str, payload: Any, tenant: str | None = None, key: str | None = None
    ) -> httpx.Response:
        token = key or (self.keys[tenant] if tenant else None)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(self.url + path, json=payload, headers=headers, timeout=30)

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` in /metrics whose labels include ``labels``."""
        text = httpx.get(self.url + "/metrics", timeout=10).text
        wanted = {f'{k}="{v}"' for k, v in labels.items()}
        total = 0.0
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            metric, _, inner = series.partition("{")
            if metric != name:
                continue
            if wanted <= set(inner.rstrip("}").split(",")):
                total += float(value)
        return total

    def cli(self, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "slack_tools", *argv],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def create_tenant(self, tenant_id: str, channel: str, token: str, *extra: str) -> str:
        """Create a tenant with the CLI (as an operator would) and keep its API key."""
        result = self.cli(
            "tenant",
            "create",
            tenant_id,
            "--channel",
            channel,
            "--token-stdin",
            "--skip-slack-check",
            *extra,
            stdin=token,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        key = next(line for line in result.stdout.split() if line.startswith("stk_"))
        self.keys[tenant_id] = key
        return key

    def ready(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(self.url + "/health/ready", timeout=10).json()
        return body


FAST_DELIVERY = {
    # Quick retries and breaker decisions, so tests see them in seconds.
    "SLACK_TOOLS__RESILIENCE__BACKOFF_BASE_SECONDS": "0.2",
    "SLACK_TOOLS__RESILIENCE__BACKOFF_MAX_SECONDS": "1",
    "SLACK_TOOLS__RESILIENCE__MAX_ATTEMPTS": "50",
    "SLACK_TOOLS__RESILIENCE__BREAKER__MINIMUM_CALLS": "3",
    "SLACK_TOOLS__RESILIENCE__BREAKER__WINDOW_SECONDS": "10",
    "SLACK_TOOLS__RESILIENCE__BREAKER__OPEN_SECONDS": "1",
    "SLACK_TOOLS__RESILIENCE__BREAKER__HALF_OPEN_PROBES": "1",
    "SLACK_TOOLS__DELIVERY__POLL_SECONDS": "0.05",
    "SLACK_TOOLS__DELIVERY__LEASE_SECONDS": "3",
    "SLACK_TOOLS__RELOAD__POLL_DATABASE_SECONDS": "0.5",
}


def start_service(
    tmp_path: Path,
    fake: FakeSlackServer,
    *,
    name: str = "service",
    extra: Mapping[str, str] | None = None,
    data_dir: Path | None = None,
) -> Service:
    port = free_port()
    admin_token = issue_test_token(subject=f"e2e-{name}", ttl=24 * 3600)
    env = clean_environment()
    env.update(
        {
            "SLACK_TOOLS_DATA_DIR": str(data_dir or tmp_path / "data"),
            "SLACK_TOOLS__SERVER__PORT": str(port),
            "SLACK_TOOLS__SLACK__MOCK": "false",
            "SLACK_TOOLS__SLACK__BASE_URL": fake.api,
            JWT_SECRET_VARIABLE: TEST_JWT_SECRET,
            "SLACK_TOOLS__MONITORING__LOG_FORMAT": "json",
            "SLACK_TOOLS__MONITORING__LOG_LEVEL": "INFO",
            "SLACK_TOOLS__SERVER__ACCESS_LOG": "false",
            **FAST_DELIVERY,
            **(extra or {}),
        }
    )
    process = Process(
        [sys.executable, "-m", "slack_tools", "serve"], env, tmp_path / f"{name}-{port}.log"
    )
    service = Service(process, f"http://127.0.0.1:{port}", env, admin_token)
    restart(service)
    return service


def restart(service: Service) -> None:
    """Start (or start again) the service process and wait until it is ready."""
    service.process.start()

    def ready() -> bool:
        if not service.process.running:
            pytest.fail(f"the service exited:\n{service.process.log()}")
        try:
            return httpx.get(service.url + "/health/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, "the service to be ready")


def alertmanager_payload(
    group: str,
    status: str = "firing",
    *,
    alerts: int = 1,
    severity: str = "critical",
    extra_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An Alertmanager v4 notification for group ``group``."""
    labels = {"alertname": group, "severity": severity, **(extra_labels or {})}
    ends = "2026-11-26T15:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z"
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{group}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "slack-tools",
        "groupLabels": {"alertname": group},
        "commonLabels": labels,
        "commonAnnotations": {"summary": f"{group} is failing"},
        "externalURL": "http://alertmanager.example.org:9093",
        "alerts": [
            {
                "status": status,
                "labels": {**labels, "instance": f"host-{n}"},
                "annotations": {"description": f"instance {n}"},
                "startsAt": "2026-11-26T14:00:00Z",
                "endsAt": ends,
                "generatorURL": "http://prometheus.example.org/graph",
                "fingerprint": f"{group}-{n}",
            }
            for n in range(alerts)
        ],
    }
