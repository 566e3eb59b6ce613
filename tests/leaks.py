"""The suite-wide secret guard: no secret a test uses may reach a log, an error or a response.

Every test runs under a :class:`SecretGuard` (an autouse fixture in ``tests/conftest.py``).
Secrets are tracked automatically for every runtime a test builds (master keys, the Slack
token and signing secret, the JWT secret, database and Redis passwords: the same list the
service hands its log scrubber) and by hand with ``secret_guard.track(value)``. While the
test runs, the guard looks at:

- every log line, both structlog events (before any scrubbing: code must not log a secret
  in the first place) and standard-library records with their arguments and tracebacks;
- every HTTP response read through httpx — the ASGI test clients and the real servers of
  the end-to-end tests alike — headers and body;
- every CLI run through Typer's ``CliRunner``: its output and the exception it ended with;
- every audit entry appended to the trail (its fields, diff and error included).

A test that shows a secret on purpose (``config decrypt`` prints the value it was asked
for) says so with ``@pytest.mark.reveals_secrets("why")``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, MutableMapping
from typing import Any

import httpx
import pytest
import structlog
from typer.testing import CliRunner

from slack_tools.storage import audit as audit_store

_SHORTEST = 6  # shorter values would match ordinary words; no real secret is this short


class SecretLeakError(AssertionError):
    """A tracked secret was found where nobody may see it."""


class SecretGuard:
    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self.leaks: list[str] = []
        self.enabled = True

    def track(self, *values: str | None) -> None:
        self._secrets.update(v for v in values if v and len(v) >= _SHORTEST)

    def check(self, text: str, where: str) -> None:
        if not self.enabled:
            return
        for secret in self._secrets:
            if secret in text:
                self.leaks.append(f"{where}: …{_around(text, secret)}…")

    def check_value(self, value: Any, where: str) -> None:
        self.check(repr(value) if not isinstance(value, str) else value, where)


def _around(text: str, secret: str) -> str:
    start = text.index(secret)
    before = text[max(0, start - 40) : start]
    after = text[start + len(secret) : start + len(secret) + 40]
    return f"{before}<secret>{after}"


class _RecordWatcher(logging.Handler):
    def __init__(self, guard: SecretGuard) -> None:
        super().__init__(logging.DEBUG)
        self.guard = guard

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except (TypeError, ValueError):
            text = f"{record.msg} {record.args!r}"
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {record.exc_info[1]!r}"
        self.guard.check(text, f"log record of {record.name}")


def _event_watcher(guard: SecretGuard) -> Any:
    def watch(
        _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        guard.check_value(dict(event_dict), "structlog event")
        return event_dict

    return watch


def _watch_structlog(guard: SecretGuard, monkeypatch: pytest.MonkeyPatch) -> None:
    """Watch structlog events whatever configuration a test installs, first in line."""
    original_configure = structlog.configure

    def configure(*args: Any, **kwargs: Any) -> None:
        processors = kwargs.get("processors")
        if processors is not None:
            kwargs["processors"] = [_event_watcher(guard), *processors]
        original_configure(*args, **kwargs)

    monkeypatch.setattr(structlog, "configure", configure)
    structlog.configure(processors=list(structlog.get_config()["processors"]))


def _watch_http(guard: SecretGuard, monkeypatch: pytest.MonkeyPatch) -> None:
    def seen(response: httpx.Response) -> None:
        where = f"HTTP response to {response.request.method} {response.request.url.path}"
        guard.check(str(dict(response.headers)), where)
        try:
            body = response.content
        except httpx.ResponseNotRead:  # a streamed response: its reader checks what it reads
            return
        guard.check(body.decode("utf-8", "replace"), where)

    original_send = httpx.Client.send
    original_async_send = httpx.AsyncClient.send

    def send(self: httpx.Client, *args: Any, **kwargs: Any) -> httpx.Response:
        response = original_send(self, *args, **kwargs)
        seen(response)
        return response

    async def async_send(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> httpx.Response:
        response = await original_async_send(self, *args, **kwargs)
        seen(response)
        return response

    monkeypatch.setattr(httpx.Client, "send", send)
    monkeypatch.setattr(httpx.AsyncClient, "send", async_send)


def _watch_cli(guard: SecretGuard, monkeypatch: pytest.MonkeyPatch) -> None:
    original_invoke = CliRunner.invoke

    def invoke(self: CliRunner, *args: Any, **kwargs: Any) -> Any:
        result = original_invoke(self, *args, **kwargs)
        guard.check(result.output, f"CLI output of {args[1:2]!r}")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            guard.check(repr(result.exception), f"CLI error of {args[1:2]!r}")
        return result

    monkeypatch.setattr(CliRunner, "invoke", invoke)


def _watch_audit(guard: SecretGuard, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every writer of the audit trail appends through this one function."""
    original_append = audit_store.append

    def append(connection: Any, draft: audit_store.Draft, **kwargs: Any) -> Any:
        entry = dataclasses.replace(draft, identities={})  # the erasable mapping, not the entry
        guard.check(repr(entry), f"audit entry {draft.action}")
        return original_append(connection, draft, **kwargs)

    monkeypatch.setattr(audit_store, "append", append)


@pytest.fixture(autouse=True)
def secret_guard(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SecretGuard]:
    """Fail the test if any tracked secret reached a log, a response, CLI output or the audit."""
    guard = SecretGuard()
    guard.enabled = request.node.get_closest_marker("reveals_secrets") is None
    watcher = _RecordWatcher(guard)
    logging.getLogger().addHandler(watcher)
    saved = structlog.get_config()
    _watch_structlog(guard, monkeypatch)
    _watch_http(guard, monkeypatch)
    _watch_cli(guard, monkeypatch)
    _watch_audit(guard, monkeypatch)
    try:
        yield guard
    finally:
        logging.getLogger().removeHandler(watcher)
        monkeypatch.undo()  # structlog.configure is the library's own again before restoring
        structlog.configure(**saved)
    if guard.leaks:
        raise SecretLeakError("a secret leaked:\n" + "\n".join(guard.leaks[:5]))
