"""Posting and editing messages with slack_sdk, and classifying what goes wrong.

slack_sdk's own retry handlers are off: retries happen in one place only, the
outbox, which reschedules instead of sleeping. Every failure becomes a
:class:`SlackCallError` that says whether it is worth retrying, whether Slack
asked us to slow down (and for how long), and a short reason for metrics.
Tokens never appear in errors: workspaces are named by a digest of their token.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from slack_tools.alerts.models import SlackMessage
from slack_tools.errors import DeliveryError

# Errors that will not go away by trying again (SLACK-API-FACTS "Errors").
PERMANENT = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "no_permission",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "too_many_attachments",
        "invalid_arguments",
        "invalid_attachments",
        "restricted_action",
        "channel_is_archived",
        "ekm_access_denied",
        "team_access_not_granted",
    }
)
# chat.update cannot edit this message: post a new one instead.
NOT_EDITABLE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
# Failures on Slack's side, worth trying again later.
TRANSIENT = frozenset({"internal_error", "service_unavailable", "fatal_error", "request_timeout"})
KNOWN_CODES = PERMANENT | NOT_EDITABLE | TRANSIENT | {"ratelimited", "timeout", "network"}
HTTP_OK = 200
HTTP_SERVER_ERROR = 500
HTTP_TOO_MANY = 429
DEFAULT_RETRY_AFTER = 1.0
MAX_TOKEN_CLIENTS = 1024  # distinct bot tokens in use at once; far above real tenant counts


class Outcome(StrEnum):
    RATE_LIMITED = "rate_limited"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    NOT_EDITABLE = "not_editable"


class SlackCallError(DeliveryError):
    """A Slack call that failed, classified."""

    def __init__(
        self, message: str, *, outcome: Outcome, reason: str, retry_after: float | None = None
    ) -> None:
        super().__init__(
            message, retryable=outcome in (Outcome.TRANSIENT, Outcome.RATE_LIMITED), reason=reason
        )
        self.outcome = outcome
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    id: str
    name: str
    is_member: bool
    is_archived: bool


_MAX_PAGES = 50  # 50 000 channels: far beyond any workspace we need to search


@dataclass(frozen=True, slots=True)
class Posted:
    channel_id: str
    ts: str


def workspace_of(token: str) -> str:
    """A stable name for a token's workspace that reveals nothing of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


def reason_label(code: str) -> str:
    """A bounded metrics label for a Slack error code (Slack's own codes, else "other")."""
    return code if code in KNOWN_CODES else "other"


def classify(exc: BaseException, method: str) -> SlackCallError:
    """Turn what slack_sdk or the network raised into a classified error.

    Slack's 5xx and its few server-side codes are worth retrying; every other refusal
    (a known permanent code, an unknown code, a 4xx) will be the same next time, so it
    becomes a dead letter at once instead of spending attempts and the breaker's budget.
    """
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = int(getattr(response, "status_code", HTTP_OK) or HTTP_OK)
        data: Mapping[str, Any] = response.data if isinstance(response.data, Mapping) else {}
        code = str(data.get("error") or (f"http_{status}" if status != HTTP_OK else "no_error"))
        if status == HTTP_TOO_MANY or code == "ratelimited":
            retry_after = _retry_after(response.headers)
            return SlackCallError(
                f"{method}: Slack asked to wait {retry_after:g}s (rate limited)",
                outcome=Outcome.RATE_LIMITED,
                reason="ratelimited",
                retry_after=retry_after,
            )
        if code in NOT_EDITABLE:
            return SlackCallError(f"{method}: {code}", outcome=Outcome.NOT_EDITABLE, reason=code)
        if status >= HTTP_SERVER_ERROR or code in TRANSIENT:
            return SlackCallError(
                f"{method}: Slack failed: {code}",
                outcome=Outcome.TRANSIENT,
                reason=reason_label(code),
            )
        return SlackCallError(
            f"{method}: Slack refused: {code}", outcome=Outcome.PERMANENT, reason=reason_label(code)
        )
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return SlackCallError(f"{method}: timed out", outcome=Outcome.TRANSIENT, reason="timeout")
    if isinstance(exc, aiohttp.ClientError | OSError | SlackClientError):
        return SlackCallError(
            f"{method}: cannot reach Slack ({type(exc).__name__})",
            outcome=Outcome.TRANSIENT,
            reason="network",
        )
    return SlackCallError(
        f"{method}: unexpected {type(exc).__name__}", outcome=Outcome.TRANSIENT, reason="other"
    )


def _retry_after(headers: Mapping[str, Any] | None) -> float:
    raw = None
    if headers:
        raw = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        return max(float(raw), 0.0) if raw is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        return DEFAULT_RETRY_AFTER


class SlackClient:
    """chat.postMessage / chat.update / auth.test over one shared HTTP session."""

    def __init__(self, base_url: str, *, timeout: float) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        # One client per bot token; rotated tokens age out rather than pile up.
        self._clients: OrderedDict[str, AsyncWebClient] = OrderedDict()

    def _client(self, token: str) -> AsyncWebClient:
        client = self._clients.get(token)
        if client is not None:
            self._clients.move_to_end(token)
        else:
            if self._session is None:
                self._session = aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=self.timeout)
                )
            client = AsyncWebClient(
                token=token,
                base_url=self.base_url,
                timeout=int(max(self.timeout, 1)),
                session=self._session,
                retry_handlers=[],
            )
            self._clients[token] = client
            if len(self._clients) > MAX_TOKEN_CLIENTS:
                self._clients.popitem(last=False)
        return client

    async def _call(self, method: str, token: str, **arguments: Any) -> Mapping[str, Any]:
        try:
            response = await self._client(token).api_call(method, json=arguments)
        except Exception as exc:  # noqa: BLE001 - classified: every failure is a SlackCallError
            raise classify(exc, method) from None
        return response.data if isinstance(response.data, Mapping) else {}

    async def post(
        self, token: str, channel: str, message: SlackMessage, *, thread_ts: str | None = None
    ) -> Posted:
        arguments: dict[str, Any] = {"channel": channel, **message.payload()}
        if thread_ts:
            arguments["thread_ts"] = thread_ts
        data = await self._call("chat.postMessage", token, **arguments)
        # Slack said ok: the message exists even if no ts came back (then it cannot be edited
        # later, and an edit falls back to a new post); never treat it as a failure to resend.
        return Posted(str(data.get("channel", channel)), str(data.get("ts", "")))

    async def update(self, token: str, channel_id: str, ts: str, message: SlackMessage) -> Posted:
        data = await self._call(
            "chat.update", token, channel=channel_id, ts=ts, **message.payload()
        )
        return Posted(str(data.get("channel", channel_id)), str(data.get("ts", ts)))

    async def auth_test(self, token: str) -> Mapping[str, Any]:
        return await self._call("auth.test", token)

    async def find_channel(self, token: str, channel: str) -> ChannelInfo | None:
        """The channel named ``#name``, ``name`` or by ID, as the bot sees it; None if absent."""
        wanted = channel.lstrip("#")
        cursor = ""
        for _ in range(_MAX_PAGES):
            data = await self._call(
                "conversations.list",
                token,
                types="public_channel,private_channel",
                exclude_archived=False,
                limit=1000,
                cursor=cursor,
            )
            for item in data.get("channels", []):
                if wanted in (item.get("id"), item.get("name")):
                    return ChannelInfo(
                        str(item["id"]),
                        str(item.get("name", "")),
                        bool(item.get("is_member")),
                        bool(item.get("is_archived")),
                    )
            cursor = str((data.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                return None
        return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._clients.clear()
