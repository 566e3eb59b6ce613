"""Processes for the benchmarks: the service, the Slack fake, a baseline server, wrk."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def floor_database(path: Path) -> sqlite3.Connection:
    """The floor's table of request bodies: SQLite in WAL mode with synchronous NORMAL,
    as the service's default; transactions are the caller's (autocommit otherwise)."""
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("CREATE TABLE IF NOT EXISTS received (id INTEGER PRIMARY KEY, body BLOB)")
    return connection


def insert_bodies(connection: sqlite3.Connection, bodies: Sequence[bytes]) -> None:
    """The floor's job for a batch: each body a row, one transaction."""
    connection.execute("BEGIN")
    try:
        connection.executemany("INSERT INTO received (body) VALUES (?)", [(b,) for b in bodies])
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_TOOLS")}
    env.update(extra)
    return env


def wait_until_up(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{what} did not come up")


@dataclass
class Running:
    url: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        found = re.search(r"VmHWM:\s+(\d+) kB", status)
        return int(found.group(1)) / 1024 if found else float("nan")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the process and its descendants so far.

        The benchmarks share a small machine with whatever else runs on it; the CPU a
        request costs is steadier than the rate it reaches.
        """
        total = 0.0
        pending = [self.process.pid]
        tick = os.sysconf("SC_CLK_TCK")
        while pending:
            pid = pending.pop()
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                fields = stat.rpartition(")")[2].split()
                total += (int(fields[11]) + int(fields[12])) / tick
                for task in Path(f"/proc/{pid}/task").iterdir():
                    pending += [int(c) for c in (task / "children").read_text().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
        return total

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


@contextmanager
def fake_slack(*options: str) -> Iterator[Running]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "slack_tools.slack.fake",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-page",
            *options,
        ],
        env=environment({}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    running = Running(f"http://127.0.0.1:{port}", process, {})
    wait_until_up(f"{running.url}/fake/requests", process, "the Slack fake")
    try:
        yield running
    finally:
        running.stop()


@contextmanager
def service(slack_api: str, extra: Mapping[str, str] | None = None) -> Iterator[Running]:
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        env = environment(
            {
                "SLACK_TOOLS_DATA_DIR": data,
                "SLACK_TOOLS__SERVER__PORT": str(port),
                "SLACK_TOOLS__SLACK__MOCK": "false",
                "SLACK_TOOLS__SLACK__BASE_URL": slack_api,
                "SLACK_TOOLS__MONITORING__LOG_LEVEL": "WARNING",
                "SLACK_TOOLS__MONITORING__LOG_FORMAT": "json",
                "SLACK_TOOLS__SERVER__ACCESS_LOG": "false",
                "SLACK_TOOLS__INGEST__FLOOD_REQUESTS_PER_SECOND": "1000000",
                "SLACK_TOOLS__INGEST__FLOOD_BURST": "1000000",
                **(extra or {}),
            }
        )
        log = Path(data) / "service.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "slack_tools", "serve"], env=env, stdout=out, stderr=out
            )
        running = Running(f"http://127.0.0.1:{port}", process, env)
        wait_until_up(f"{running.url}/health/ready", process, "the service")
        try:
            yield running
        finally:
            running.stop()


# A tenant's quotas out of the way: the benchmarks measure the pipeline, not the plan defaults.
UNLIMITED_QUOTAS = ("quotas.alerts_per_minute=1000000000", "quotas.messages_per_hour=1000000000")


def create_tenant(running: Running, tenant: str, channel: str, token: str, *settings: str) -> str:
    """Create a tenant with the CLI; ``settings`` (``key=value``) are applied after."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "slack_tools",
            "tenant",
            "create",
            tenant,
            "--channel",
            channel,
            "--token-stdin",
            "--skip-slack-check",
        ],
        env=running.env,
        input=token,
        capture_output=True,
        text=True,
        check=True,
    )
    if settings:
        subprocess.run(
            [sys.executable, "-m", "slack_tools", "tenant", "update", tenant, *settings],
            env=running.env,
            capture_output=True,
            check=True,
        )
    return next(word for word in result.stdout.split() if word.startswith("stk_"))


@contextmanager
def profiler(
    running: Running, output: Path | None, seconds: int, *, gil_only: bool = False
) -> Iterator[None]:
    """Sample ``running`` (and its worker processes) with py-spy while the block runs.

    ``gil_only`` keeps the samples of the thread holding the GIL: where the Python
    time goes, without the waits of a machine busy with other work.
    """
    if output is None:
        yield
        return
    spy = Path(sys.executable).parent / "py-spy"
    process = subprocess.Popen(
        [
            str(spy),
            "record",
            "--pid",
            str(running.process.pid),
            "--subprocesses",
            "--threads",
            "--format",
            "raw",
            "--duration",
            str(seconds),
            "--output",
            str(output),
            "--nonblocking",
            *(["--gil"] if gil_only else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.wait(timeout=seconds + 30)


@contextmanager
def baseline() -> Iterator[Running]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "baseline_app:app",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--loop",
            "auto",
            "--http",
            "auto",
        ],
        cwd=Path(__file__).parent,
        env=environment({}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    running = Running(f"http://127.0.0.1:{port}", process, {})
    wait_until_up(f"{running.url}/docs", process, "the baseline")
    try:
        yield running
    finally:
        running.stop()


WRK_SCRIPT = """
local bodies = {}
local count = 0
%(bodies)s
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
request = function()
  count = count + 1
  return wrk.format(nil, "%(path)s", nil, bodies[(count %% #bodies) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%f %%f %%f %%f %%f\\n",
    summary.requests, summary.errors.status, summary.duration,
    latency.mean / 1000, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
"""


@dataclass
class Load:
    requests: int
    non_2xx: int
    seconds: float
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def wrk(
    url: str,
    path: str,
    bodies: list[str],
    key: str,
    *,
    seconds: int,
    connections: int,
    threads: int = 1,
) -> Load:
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is not installed (Debian: apt-get install wrk)")
    lua_bodies = "\n".join(f"bodies[{i + 1}] = {json.dumps(body)}" for i, body in enumerate(bodies))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"bodies": lua_bodies, "key": key, "path": path})
    try:
        output = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", script.name, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        Path(script.name).unlink()
    line = next(line for line in output.splitlines() if line.startswith("RESULT"))
    parts = line.split()[1:]
    return Load(int(parts[0]), int(parts[1]), int(parts[2]) / 1e6, *map(float, parts[3:]))
