"""The suite's secret guard sees secrets in logs, responses and CLI output (tests/leaks.py)."""

from __future__ import annotations

import logging

import httpx
import pytest
import sqlalchemy as sa
import structlog
import typer
from starlette.types import Receive, Scope, Send
from typer.testing import CliRunner

from tests.leaks import SecretGuard

SECRET = "guarded-secret-value-1234"


def test_untracked_values_are_not_leaks(secret_guard: SecretGuard) -> None:
    """Only what was tracked counts; short values are never tracked."""
    secret_guard.track("abc", None, "")
    logging.getLogger("test").warning("abc and %s", SECRET)
    assert secret_guard.leaks == []


def test_standard_logging_records_are_seen(secret_guard: SecretGuard) -> None:
    """A record's formatted message and its exception both count."""
    secret_guard.track(SECRET)
    logging.getLogger("test").warning("token is %s", SECRET)
    try:
        int(SECRET)
    except ValueError:
        logging.getLogger("test").exception("failed")
    found, secret_guard.leaks = secret_guard.leaks, []
    assert len(found) == 2
    assert all(SECRET not in leak for leak in found), "the report itself must not show it"


def test_structlog_events_are_seen_before_any_scrubbing(secret_guard: SecretGuard) -> None:
    """A secret passed to structlog is a leak even if a renderer would have masked it."""
    secret_guard.track(SECRET)
    structlog.get_logger("test").info("login", password=SECRET)
    found, secret_guard.leaks = secret_guard.leaks, []
    assert [leak.split(":")[0] for leak in found] == ["structlog event"]


async def test_http_responses_are_seen(secret_guard: SecretGuard) -> None:
    """Bodies and headers of responses read through httpx."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": f"here: {SECRET}".encode()})

    secret_guard.track(SECRET)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        await client.get("/leaky")
    found, secret_guard.leaks = secret_guard.leaks, []
    assert len(found) == 1
    assert found[0].startswith("HTTP response to GET /leaky")


def test_cli_output_is_seen(secret_guard: SecretGuard) -> None:
    """What a command prints counts."""
    command = typer.Typer()

    @command.command()
    def show() -> None:
        typer.echo(SECRET)

    secret_guard.track(SECRET)
    CliRunner().invoke(command, [])
    found, secret_guard.leaks = secret_guard.leaks, []
    assert len(found) == 1
    assert found[0].startswith("CLI output")


def test_audit_entries_are_seen(secret_guard: SecretGuard) -> None:
    """What goes into the trail counts, whoever appends it."""
    from slack_tools.storage import audit as audit_store  # noqa: PLC0415 - patched by the guard

    secret_guard.track(SECRET)
    draft = audit_store.Draft(
        action="test.leak",
        actor="system",
        actor_kind="system",
        target=f"token {SECRET}",
        tenant_id="",
        subject="",
        outcome=audit_store.Outcome.SUCCESS,
        error="",
        correlation_id="",
        diff={},
        identities={},
    )
    engine = sa.create_engine("sqlite://")
    with pytest.raises(sa.exc.SQLAlchemyError), engine.begin() as connection:
        audit_store.append(connection, draft)  # no such table: only the check matters here
    found, secret_guard.leaks = secret_guard.leaks, []
    assert [leak.split(":")[0] for leak in found] == ["audit entry test.leak"]
