"""How Slack's answers and network failures are classified (retry, wait, give up)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError

from slack_tools.slack import client as client_module
from slack_tools.slack.client import (
    KNOWN_CODES,
    Outcome,
    SlackClient,
    classify,
    reason_label,
    workspace_of,
)


class Answer:
    """A slack_sdk response as the client sees it."""

    def __init__(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.data = data
        self.headers = headers or {}


def api_error(status: int, data: Any, headers: dict[str, str] | None = None) -> SlackApiError:
    return SlackApiError("failed", Answer(status, data, headers))  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    ("status", "code", "outcome", "reason"),
    [
        (429, "ratelimited", Outcome.RATE_LIMITED, "ratelimited"),
        (200, "ratelimited", Outcome.RATE_LIMITED, "ratelimited"),
        (200, "channel_not_found", Outcome.PERMANENT, "channel_not_found"),
        (200, "not_in_channel", Outcome.PERMANENT, "not_in_channel"),
        (200, "invalid_auth", Outcome.PERMANENT, "invalid_auth"),
        (200, "invalid_blocks", Outcome.PERMANENT, "invalid_blocks"),
        (200, "message_not_found", Outcome.NOT_EDITABLE, "message_not_found"),
        (200, "edit_window_closed", Outcome.NOT_EDITABLE, "edit_window_closed"),
        (200, "internal_error", Outcome.TRANSIENT, "internal_error"),
        (200, "service_unavailable", Outcome.TRANSIENT, "service_unavailable"),
        (200, "some_new_code_from_slack", Outcome.PERMANENT, "other"),
        (404, None, Outcome.PERMANENT, "other"),
        (500, None, Outcome.TRANSIENT, "other"),
        (503, "service_unavailable", Outcome.TRANSIENT, "service_unavailable"),
    ],
)
def test_slack_answers_are_classified(
    status: int, code: str | None, outcome: Outcome, reason: str
) -> None:
    """Server-side failures retry, refusals become dead letters, 429 waits; labels stay bounded."""
    data = {"ok": False, "error": code} if code else "<html>oops</html>"
    error = classify(api_error(status, data, {"Retry-After": "7"}), "chat.postMessage")
    assert (error.outcome, error.reason) == (outcome, reason)
    assert error.retryable is (outcome in (Outcome.TRANSIENT, Outcome.RATE_LIMITED))
    if outcome is Outcome.RATE_LIMITED:
        assert error.retry_after == 7.0


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (TimeoutError(), "timeout"),
        (aiohttp.ClientConnectionError("refused"), "network"),
        (ConnectionResetError(), "network"),
        (RuntimeError("bug"), "other"),
    ],
)
def test_network_failures_are_transient(failure: BaseException, reason: str) -> None:
    """Timeouts and connection failures are retried later."""
    error = classify(failure, "chat.update")
    assert (error.outcome, error.reason) == (Outcome.TRANSIENT, reason)


def test_missing_or_bad_retry_after_waits_a_second() -> None:
    """A 429 without a usable Retry-After waits one second."""
    for headers in ({}, {"Retry-After": "soon"}):
        assert classify(api_error(429, {}, headers), "x").retry_after == 1.0


def test_reason_labels_are_bounded_and_tokens_never_named() -> None:
    """Unknown codes share one label; workspaces are digests, never the token."""
    assert reason_label("made_up_by_a_server") == "other"
    assert all(reason_label(code) == code for code in KNOWN_CODES)
    token = "xoxb-123456-secret"
    assert token not in workspace_of(token)
    assert workspace_of(token) == workspace_of(token)


async def test_clients_per_token_are_bounded_and_the_busiest_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rotated tokens age out; a token in steady use keeps its client."""
    monkeypatch.setattr(client_module, "MAX_TOKEN_CLIENTS", 3)
    slack = SlackClient("http://127.0.0.1:9/api/", timeout=1.0)
    try:
        steady = slack._client("xoxb-steady")
        for n in range(10):
            slack._client(f"xoxb-rotated-{n}")
            assert slack._client("xoxb-steady") is steady
        assert len(slack._clients) == 3
        assert "xoxb-rotated-0" not in slack._clients
    finally:
        await slack.close()
