"""Slack's interactive callbacks: someone pressed "Acknowledge" under an alert message.

``POST /api/v1/slack/interactions`` is the Request URL of the Slack app's interactivity
settings. Only requests signed by Slack are read: the v0 signature over the timestamp
and the raw body, with the app's signing secret, compared in constant time by
slack_sdk's :class:`SignatureVerifier`, and refused when the timestamp is more than five
minutes away (replays). The body is then ``payload=<JSON>``, form-encoded.

The button's value names the tenant; the acknowledgement counts only if that tenant's
current message of a group is the one at (channel, ts) the payload names, so a value
changed on the way cannot reach another tenant's data. The acknowledgement and its audit
entry commit together, and the group's delivery is made pending again: the dispatcher
edits the message to say who acknowledged it, in the message's language, with the
reader's own time (Slack's date token), through the usual pacing and retries.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import orjson
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, ValidationError
from slack_sdk.signature import Clock, SignatureVerifier

from slack_tools.alerts.render import ACKNOWLEDGE_ACTION
from slack_tools.configs.security.actors import Actor
from slack_tools.configs.security.audit import AuditLog
from slack_tools.service import problems
from slack_tools.service.admin_auth import service_of
from slack_tools.service.bodies import TooLarge, read_body
from slack_tools.service.container import Service
from slack_tools.storage import delivery as outbox
from slack_tools.storage.database import write_transaction

log = structlog.get_logger(__name__)

INTERACTIONS_PATH = "/api/v1/slack/interactions"
# Slack's interaction payloads are small; a whole message's blocks come back in them.
_BODY_LIMIT = 1024 * 1024
_FORM = "application/x-www-form-urlencoded"

router = APIRouter()


class _Named(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str


class _Container(BaseModel):
    model_config = ConfigDict(extra="ignore")
    channel_id: str
    message_ts: str


class _Action(BaseModel):
    model_config = ConfigDict(extra="ignore")
    action_id: str
    value: str = ""


class _BlockActions(BaseModel):
    """The parts of a ``block_actions`` payload an acknowledgement needs."""

    model_config = ConfigDict(extra="ignore")
    type: str
    user: _Named
    container: _Container
    actions: list[_Action]


def _signed_by_slack(request: Request, body: bytes, secret: str, now: float) -> bool:
    timestamp = request.headers.get("x-slack-request-timestamp", "")
    signature = request.headers.get("x-slack-signature", "")
    if not timestamp.isdigit() or not signature:
        return False
    try:
        # slack_sdk signs the decoded text; Slack only ever sends UTF-8.
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    verifier = SignatureVerifier(secret, clock=_FixedClock(now))
    return verifier.is_valid(text, timestamp, signature)


class _FixedClock(Clock):
    """slack_sdk's clock interface, at the moment the request arrived."""

    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


class MalformedInteractionError(ValueError):
    """The body is not Slack's ``payload=<JSON object>`` form; the message says how."""


def _payload(body: bytes) -> dict[str, Any]:
    """The JSON object in the form field ``payload``."""
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=16)
    except (UnicodeDecodeError, ValueError):
        raise MalformedInteractionError(
            "The body is not a form (application/x-www-form-urlencoded)."
        ) from None
    values = form.get("payload", [])
    if len(values) != 1:
        raise MalformedInteractionError("The form must hold exactly one 'payload' field.")
    try:
        payload = orjson.loads(values[0])
    except orjson.JSONDecodeError as exc:
        raise MalformedInteractionError(f"The payload is not JSON: {exc}.") from None
    if not isinstance(payload, dict):
        raise MalformedInteractionError("The payload must be a JSON object.")
    return payload


@router.post(INTERACTIONS_PATH)
async def interactions(request: Request) -> Response:
    """Receive a Slack interaction; an "Acknowledge" press is recorded and shown."""
    service = service_of(request)
    arrived = time.time()
    secret = service.runtime.config.slack.signing_secret
    if secret is None:
        return problems.problem(
            404,
            "Slack interactivity is off",
            "Set slack.signing_secret to receive Slack's interactive callbacks.",
        )
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != _FORM:
        return problems.problem(
            415, "Unsupported Media Type", f"Slack sends interactions as {_FORM}."
        )
    try:
        body = await read_body(request, _BODY_LIMIT)
    except TooLarge as exc:
        return problems.problem(413, "Payload Too Large", f"The limit is {exc.limit} bytes.")
    if not _signed_by_slack(request, body, secret.get_secret_value(), arrived):
        log.warning("slack.interaction_refused", reason="signature")
        return problems.problem(
            401,
            "Not signed by Slack",
            "The X-Slack-Signature does not match the body and timestamp, or the "
            "X-Slack-Request-Timestamp is more than five minutes away.",
        )
    try:
        payload = _payload(body)
    except MalformedInteractionError as exc:
        return problems.problem(400, "Malformed interaction", str(exc))
    if payload.get("type") != "block_actions":
        return problems.problem(
            422,
            "Unsupported interaction",
            f"Only block_actions are handled, not {str(payload.get('type'))[:40]!r}.",
        )
    try:
        actions = _BlockActions.model_validate(payload)
    except ValidationError as exc:
        return problems.problem(
            422,
            "Unprocessable interaction",
            "The block_actions payload lacks what an acknowledgement needs.",
            errors=[
                {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in exc.errors()
            ],
        )
    pressed = [a for a in actions.actions if a.action_id == ACKNOWLEDGE_ACTION]
    if not pressed or not pressed[0].value:
        return problems.problem(
            422, "Unknown action", f"No {ACKNOWLEDGE_ACTION} action with a tenant in its value."
        )
    result = await asyncio.to_thread(
        _acknowledge, service, pressed[0].value, actions.container, actions.user.id
    )
    if result.outcome is outbox.AckOutcome.RECORDED:
        service.dispatcher.wake(pressed[0].value)
    log.info("slack.acknowledged", tenant=pressed[0].value, outcome=result.outcome.value)
    # Slack only needs a quick 200; the message itself is edited by the dispatcher.
    return JSONResponse({"outcome": result.outcome.value}, status_code=HTTPStatus.OK)


def _acknowledge(
    service: Service, tenant_id: str, container: _Container, user: str
) -> outbox.Acknowledged:
    now = datetime.now(UTC)
    audit = AuditLog.of(service.runtime)
    actor = Actor(user, tenants=frozenset({tenant_id}), kind="slack")
    # In the tenant's database (its own under strict isolation), with its audit entry.
    database = service.runtime.database_for(tenant_id)
    with write_transaction(database.engine) as connection:
        result = outbox.acknowledge(
            connection, tenant_id, container.channel_id, container.message_ts, user, now
        )
        if result.outcome is outbox.AckOutcome.RECORDED:
            audit.record(
                "alert.acknowledge",
                target=f"{container.channel_id}/{container.message_ts}",
                tenant=tenant_id,
                actor=actor,
                diff={"group": result.group_hash},
                connection=connection,
            )
    return result
