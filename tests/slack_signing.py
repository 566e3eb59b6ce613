"""Requests signed as Slack signs them (v0), for the interaction endpoint's tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # Slack's documented example shape
INTERACTIONS = "/api/v1/slack/interactions"


def signed(
    body: bytes, *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """Headers Slack would send with ``body``: timestamp and v0 signature."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def form(payload: Any) -> bytes:
    """The body of an interaction: ``payload=<JSON>``, form-encoded."""
    return urlencode({"payload": json.dumps(payload)}).encode()


def acknowledge_payload(
    tenant: str, channel_id: str, ts: str, user: str = "U0ACKER01"
) -> dict[str, Any]:
    """A ``block_actions`` payload for a press of the "Acknowledge" button."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "ada", "team_id": "T0TEAM001"},
        "team": {"id": "T0TEAM001", "domain": "acme"},
        "container": {"type": "message", "channel_id": channel_id, "message_ts": ts},
        "channel": {"id": channel_id, "name": "alerts"},
        "message": {"ts": ts, "type": "message"},
        "response_url": "https://hooks.slack.com/actions/T0TEAM001/1/abc",
        "actions": [
            {
                "type": "button",
                "action_id": "slack_tools.acknowledge",
                "block_id": "b1",
                "value": tenant,
                "action_ts": str(time.time()),
            }
        ],
    }
