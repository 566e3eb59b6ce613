"""The fake's data: workspaces, channels, messages, faults, the request log and API answers."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
JSONDict = dict[str, Any]

DEV_TOKEN = "xoxb-dev-token"  # noqa: S105 - the fake's published dev token, not a secret  # nosec B105
DEV_CHANNEL = "alerts"
API_METHODS = ("auth.test", "chat.postMessage", "chat.update", "conversations.list")
HTTP_OK = 200
HTTP_BAD_REQUEST = 400
HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVICE_UNAVAILABLE = 503
_STATUS_ERRORS = {
    HTTP_TOO_MANY_REQUESTS: "ratelimited",
    HTTP_SERVICE_UNAVAILABLE: "service_unavailable",
}


@dataclass(frozen=True)
class RateLimits:
    """Slack's limits as the fake enforces them; ``enabled=False`` turns them all off."""

    enabled: bool = True
    post_interval: float = 1.0  # seconds between accepted posts in one channel
    update_limit: int = 50  # accepted chat.update calls per workspace ...
    update_window: float = 60.0  # ... in this rolling window (seconds)


@dataclass
class Workspace:
    """A Slack team: its bot identity and the tokens that act as it."""

    team_id: str
    name: str
    domain: str
    bot_user_id: str
    bot_id: str
    bot_name: str = "slack-tools"
    tokens: set[str] = field(default_factory=set)
    revoked: set[str] = field(default_factory=set)

    def to_json(self) -> JSONDict:
        """Describe the workspace without its tokens."""
        return {
            "team_id": self.team_id,
            "name": self.name,
            "url": f"https://{self.domain}.slack.com/",
            "bot_user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "tokens": len(self.tokens),
            "revoked_tokens": len(self.revoked),
        }


@dataclass
class Channel:
    """A public channel of one workspace, and whether the bot may post there."""

    id: str
    name: str
    team_id: str
    is_member: bool = True
    is_archived: bool = False
    created: int = 0

    def to_json(self) -> JSONDict:
        """Render the channel as conversations.list does."""
        return {
            "id": self.id,
            "name": self.name,
            "name_normalized": self.name,
            "is_channel": True,
            "is_private": False,
            "is_member": self.is_member,
            "is_archived": self.is_archived,
            "created": self.created,
            "context_team_id": self.team_id,
        }


@dataclass(frozen=True)
class Edit:
    """One chat.update of a message: when, and the version it replaced."""

    at: float
    ts: str
    text: str
    blocks: list[JSONDict] | None
    attachments: list[JSONDict] | None


@dataclass
class Message:
    """A message as posted, with its thread replies and its edit history."""

    ts: str
    channel: Channel
    text: str
    blocks: list[JSONDict] | None
    attachments: list[JSONDict] | None
    posted_at: float
    thread_ts: str | None = None
    reply_broadcast: bool = False
    replies: list[str] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)

    def to_api(self, workspace: Workspace) -> JSONDict:
        """Render the message as Slack returns it from chat.postMessage and chat.update."""
        body: JSONDict = {
            "type": "message",
            "user": workspace.bot_user_id,
            "bot_id": workspace.bot_id,
            "team": workspace.team_id,
            "text": self.text,
            "ts": self.ts,
        }
        for key, value in (("blocks", self.blocks), ("attachments", self.attachments)):
            if value is not None:
                body[key] = value
        if self.thread_ts is not None:
            body["thread_ts"] = self.thread_ts
        if self.edits:
            body["edited"] = {"user": workspace.bot_user_id, "ts": self.edits[-1].ts}
        return body

    def to_json(self) -> JSONDict:
        """Render everything a test or the page may want to see."""
        return {
            "ts": self.ts,
            "channel": self.channel.id,
            "channel_name": self.channel.name,
            "team_id": self.channel.team_id,
            "text": self.text,
            "blocks": self.blocks,
            "attachments": self.attachments,
            "thread_ts": self.thread_ts,
            "reply_broadcast": self.reply_broadcast,
            "replies": list(self.replies),
            "posted_at": self.posted_at,
            "edits": [
                {
                    "at": e.at,
                    "ts": e.ts,
                    "text": e.text,
                    "blocks": e.blocks,
                    "attachments": e.attachments,
                }
                for e in self.edits
            ],
        }


@dataclass(frozen=True)
class RequestRecord:
    """One Web API call as the fake received and answered it."""

    method: str
    at: float
    status: int
    error: str | None
    channel: str | None
    team_id: str | None
    ts: str | None = None
    retry_after: int | None = None

    def to_json(self) -> JSONDict:
        """Render the record for GET /fake/requests."""
        return {
            "method": self.method,
            "at": self.at,
            "status": self.status,
            "ok": self.error is None,
            "error": self.error,
            "channel": self.channel,
            "team_id": self.team_id,
            "ts": self.ts,
            "retry_after": self.retry_after,
        }


@dataclass
class Fault:
    """An injected misbehaviour for one method (or all when ``method`` is None).

    A fault with neither ``error`` nor ``status`` only adds latency. It applies to
    ``remaining`` more calls (None: unlimited) while the clock is before ``until``,
    each call with probability ``rate`` (None: always).
    """

    method: str | None = None
    error: str | None = None
    status: int | None = None
    remaining: int | None = None
    until: float | None = None
    rate: float | None = None
    latency: float = 0.0
    retry_after: int = 1
    rng: random.Random = field(default_factory=random.Random, repr=False)

    @property
    def is_failure(self) -> bool:
        """Tell whether the fault answers instead of the fake."""
        return self.error is not None or self.status is not None

    def is_live(self, now: float) -> bool:
        """Tell whether the fault has calls and time left."""
        has_calls = self.remaining is None or self.remaining > 0
        return has_calls and (self.until is None or now < self.until)

    def fires(self, method: str) -> bool:
        """Tell whether the fault applies to this call, drawing the seeded random if needed."""
        if self.method is not None and self.method != method:
            return False
        return self.rate is None or self.rng.random() < self.rate

    def consume(self) -> None:
        """Count one call the fault applied to."""
        if self.remaining is not None:
            self.remaining -= 1

    def refusal(self) -> FakeApiError:
        """Build the answer this fault gives."""
        status = self.status or HTTP_OK
        error = self.error or _STATUS_ERRORS.get(status, "internal_error")
        retry_after = self.retry_after if status == HTTP_TOO_MANY_REQUESTS else None
        return FakeApiError(error, status=status, retry_after=retry_after)

    def to_json(self) -> JSONDict:
        """Render the fault for GET /fake/faults."""
        return {
            "method": self.method,
            "error": self.error,
            "status": self.status,
            "remaining": self.remaining,
            "until": self.until,
            "rate": self.rate,
            "latency": self.latency,
            "retry_after": self.retry_after,
        }


class FakeApiError(Exception):
    """An ``{"ok": false}`` answer, raised inside the fake and turned into a response."""

    def __init__(
        self,
        code: str,
        *,
        status: int = HTTP_OK,
        retry_after: int | None = None,
        problems: Sequence[str] = (),
    ) -> None:
        super().__init__(code)
        self.code = code
        self.status = status
        self.retry_after = retry_after
        self.problems = list(problems)

    def result(self) -> ApiResult:
        """Render the answer Slack would give."""
        body: JSONDict = {"ok": False, "error": self.code}
        if self.problems:
            body["errors"] = self.problems
            body["response_metadata"] = {"messages": [f"[ERROR] {p}" for p in self.problems]}
        headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
        return ApiResult(self.status, body, headers)


@dataclass(frozen=True)
class ApiResult:
    """The HTTP answer to one Web API call."""

    status: int
    body: JSONDict
    headers: dict[str, str]
