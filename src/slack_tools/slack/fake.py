"""A fake of the Slack Web API that answers over HTTP exactly as Slack does, for dev mode and tests.

Hand-written: no maintained library fakes Slack's Web API with its limits, 429s
and error codes. Choices where Slack leaves room, so clients can rely on them:

- ``thread_ts`` naming a reply posts into that reply's parent thread (what
  Slack does); a ``thread_ts`` matching no message answers ``thread_not_found``
  so a client bug shows instead of silently posting at the top level.
- Rate limits count accepted calls only: a refused post does not move its
  channel's 1-per-second window, and only accepted edits spend the workspace's
  ``chat.update`` budget. A 429 is decided before the message is validated.
- ``chat.update`` needs the channel ID (a name answers ``channel_not_found``);
  fields it does not send keep their value, as on Slack.
- Faults are decided before authentication: an outage answers 503 to anyone.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import itertools
import json
import math
import random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from slack_tools.slack.fake_page import render_page

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
JSONDict = dict[str, Any]

DEV_TOKEN = "xoxb-dev-token"  # noqa: S105 - the fake's published dev token, not a secret
DEV_CHANNEL = "alerts"
API_METHODS = ("auth.test", "chat.postMessage", "chat.update", "conversations.list")
MAX_BLOCKS = 50
MAX_ATTACHMENTS = 100
MAX_TEXT = 40_000
MAX_HEADER_TEXT = 150
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_BLOCK_ID = 255
HTTP_OK = 200
HTTP_BAD_REQUEST = 400
HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVICE_UNAVAILABLE = 503
_STATUS_ERRORS = {
    HTTP_TOO_MANY_REQUESTS: "ratelimited",
    HTTP_SERVICE_UNAVAILABLE: "service_unavailable",
}
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{8,}$")
_CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
_MAX_PAGE = 1000
_DEFAULT_PAGE = 100
_TRUE = frozenset({"1", "true", "yes", "on"})


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


@dataclass(frozen=True)
class Content:
    """The text, blocks and attachments of a chat.* call; None where the call sent nothing."""

    text: str | None
    blocks: list[JSONDict] | None
    attachments: list[JSONDict] | None

    @property
    def is_empty(self) -> bool:
        """Tell whether Slack would answer ``no_text``."""
        return not self.text and not self.blocks and not self.attachments


def parse_content(args: Mapping[str, Any]) -> Content:
    """Read and check text, blocks and attachments as Slack does; raise its error codes."""
    text = _str_arg(args, "text")
    if text is not None and len(text) > MAX_TEXT:
        text = text[:MAX_TEXT]  # Slack truncates; str slicing counts characters, not bytes
    blocks = _json_list(args.get("blocks"), "invalid_blocks_format")
    attachments = _json_list(args.get("attachments"), "invalid_attachments")
    if blocks is not None and not all(_is_block(b) for b in blocks):
        raise FakeApiError("invalid_blocks_format")
    problems = _block_problems(blocks or [], "/blocks")
    count = len(blocks or [])
    if attachments is not None:
        if len(attachments) > MAX_ATTACHMENTS:
            raise FakeApiError("too_many_attachments")
        for index, attachment in enumerate(attachments):
            if not isinstance(attachment, dict):
                raise FakeApiError("invalid_attachments")
            inner = _json_list(attachment.get("blocks"), "invalid_blocks_format") or []
            if not all(_is_block(b) for b in inner):
                raise FakeApiError("invalid_blocks_format")
            problems += _block_problems(inner, f"/attachments/{index}/blocks")
            count += len(inner)
    if count > MAX_BLOCKS:
        problems.insert(0, f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    if problems:
        raise FakeApiError("invalid_blocks", problems=problems)
    return Content(text, blocks, attachments)


def _is_block(block: object) -> bool:
    return isinstance(block, dict) and isinstance(block.get("type"), str)


def _block_problems(blocks: Sequence[JSONDict], pointer: str) -> list[str]:
    """List what Slack would reject in these blocks, each with its JSON pointer."""
    problems: list[str] = []
    for index, block in enumerate(blocks):
        here = f"{pointer}/{index}"
        if "block_id" in block:
            problems += _length_problems(block["block_id"], MAX_BLOCK_ID, f"{here}/block_id")
        if block["type"] == "header":
            problems += _header_problems(block.get("text"), here)
        elif block["type"] == "section":
            problems += _section_problems(block, here)
    return problems


def _length_problems(value: object, limit: int, where: str) -> list[str]:
    if not isinstance(value, str):
        return [f"must be a string [json-pointer:{where}]"]
    if len(value) > limit:
        return [f"must be less than {limit + 1} characters [json-pointer:{where}]"]
    return []


def _text_of(obj: object) -> object:
    return obj.get("text") if isinstance(obj, dict) else None


def _header_problems(text: object, here: str) -> list[str]:
    if not isinstance(text, dict) or text.get("type") != "plain_text":
        return [f"must be a plain_text object [json-pointer:{here}/text]"]
    return _length_problems(text.get("text"), MAX_HEADER_TEXT, f"{here}/text/text")


def _section_problems(block: JSONDict, here: str) -> list[str]:
    text, fields = block.get("text"), block.get("fields")
    if text is None and fields is None:
        return [f"must provide text or fields [json-pointer:{here}]"]
    problems = []
    if text is not None:
        problems += _length_problems(_text_of(text), MAX_SECTION_TEXT, f"{here}/text/text")
    if fields is not None:
        if not isinstance(fields, list) or len(fields) > MAX_FIELDS:
            too_many = f"no more than {MAX_FIELDS} items allowed [json-pointer:{here}/fields]"
            return [*problems, too_many]
        for number, item in enumerate(fields):
            where = f"{here}/fields/{number}/text"
            problems += _length_problems(_text_of(item), MAX_FIELD_TEXT, where)
    return problems


def _json_list(value: object, error: str) -> list[Any] | None:
    """Accept a list, or a JSON string holding one (form-encoded calls send those)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise FakeApiError(error) from None
    if not isinstance(value, list):
        raise FakeApiError(error)
    return value


def _str_arg(args: Mapping[str, Any], key: str) -> str | None:
    value = args.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise FakeApiError("invalid_arguments")


def _bool_arg(args: Mapping[str, Any], key: str) -> bool:
    value = args.get(key)
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return bool(value)


class FakeSlack:
    """Workspaces, channels, messages and faults behind the fake Web API.

    Args:
        clock: monotonic seconds for rate limits, edit windows, outages and the request log.
        wall_clock: Unix seconds for message ``ts`` values.
        sleep: how injected latency waits (tests pass a recorder).
        auto_create_channels: a post to an unknown channel *name* creates it, bot a member.
    """

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        rate_limits: RateLimits | None = None,
        edit_window: float | None = None,
        auto_create_channels: bool = False,
        seed: int = 0,
    ) -> None:
        self.clock = clock
        self.wall_clock = wall_clock
        self.sleep = sleep
        self.rate_limits = rate_limits or RateLimits()
        self.edit_window = edit_window
        self.auto_create_channels = auto_create_channels
        self.seed = seed
        self._random = random.Random(seed)  # noqa: S311 - seeded chaos, not crypto
        self._ids = itertools.count(1)
        self._workspaces: dict[str, Workspace] = {}
        self._channels: dict[str, Channel] = {}
        self._faults: list[Fault] = []
        self._messages: list[Message] = []
        self._by_ts: dict[tuple[str, str], Message] = {}
        self._requests: list[RequestRecord] = []
        self._last_post: dict[str, float] = {}
        self._updates: dict[str, deque[float]] = {}
        self._last_micros = 0

    @classmethod
    def dev(
        cls,
        *,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        rate_limits: RateLimits | None = None,
        edit_window: float | None = None,
        seed: int = 0,
    ) -> FakeSlack:
        """Build the dev-mode fake: token ``xoxb-dev-token``, ``#alerts``, channels auto-created."""
        fake = cls(
            clock=clock,
            wall_clock=wall_clock,
            sleep=sleep,
            rate_limits=rate_limits,
            edit_window=edit_window,
            auto_create_channels=True,
            seed=seed,
        )
        fake.add_workspace("Dev Workspace", domain="dev", tokens=[DEV_TOKEN])
        fake.add_channel(DEV_CHANNEL)
        return fake

    # -- workspaces and channels ------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}0{next(self._ids):09d}"

    def add_workspace(
        self,
        name: str,
        *,
        team_id: str | None = None,
        domain: str | None = None,
        tokens: Iterable[str] = (),
        revoked_tokens: Iterable[str] = (),
    ) -> Workspace:
        """Add a workspace (or tokens to the one with this ``team_id``) and return it.

        ``revoked_tokens`` belong to the workspace but answer ``token_revoked``.
        """
        tokens, revoked_tokens = list(tokens), list(revoked_tokens)
        if any(self._owner(token) is not None for token in [*tokens, *revoked_tokens]):
            raise ValueError("a token given already belongs to a workspace")
        workspace = self._workspaces.get(team_id or "")
        if workspace is None:
            team_id = team_id or self._new_id("T")
            slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or team_id.lower()
            workspace = Workspace(
                team_id=team_id,
                name=name,
                domain=domain or slug,
                bot_user_id=self._new_id("U"),
                bot_id=self._new_id("B"),
            )
            self._workspaces[team_id] = workspace
        workspace.tokens.update(tokens)
        workspace.revoked.update(revoked_tokens)
        return workspace

    def add_token(self, token: str, *, team_id: str | None = None) -> Workspace:
        """Make ``token`` a valid bot token of a workspace (default: the first one)."""
        if self._owner(token) is not None:
            raise ValueError("that token already belongs to a workspace")
        workspace = self._workspace(team_id)
        workspace.tokens.add(token)
        return workspace

    def revoke_token(self, token: str) -> None:
        """Make a valid token answer ``token_revoked`` from now on."""
        workspace = self._owner(token)
        if workspace is None:
            raise ValueError("cannot revoke a token no workspace has")
        workspace.tokens.discard(token)
        workspace.revoked.add(token)

    def _owner(self, token: str) -> Workspace | None:
        """Find the workspace a token (valid or revoked) belongs to."""
        return next(
            (w for w in self._workspaces.values() if token in w.tokens or token in w.revoked), None
        )

    def _workspace(self, team_id: str | None) -> Workspace:
        if team_id is None:
            if not self._workspaces:
                raise ValueError("the fake has no workspace yet: add one first")
            return next(iter(self._workspaces.values()))
        if team_id not in self._workspaces:
            raise ValueError(f"unknown team_id: {team_id!r}")
        return self._workspaces[team_id]

    @property
    def workspaces(self) -> list[Workspace]:
        """The workspaces, oldest first."""
        return list(self._workspaces.values())

    def add_channel(
        self,
        name: str,
        *,
        team_id: str | None = None,
        channel_id: str | None = None,
        is_member: bool = True,
        is_archived: bool = False,
    ) -> Channel:
        """Add a channel to a workspace (default: the first), or update the one of that name."""
        workspace = self._workspace(team_id)
        name = name.removeprefix("#").lower()
        if not _CHANNEL_NAME.match(name):
            raise ValueError(f"not a Slack channel name: {name!r} (lowercase, digits, - and _)")
        channel = self._channel_named(workspace.team_id, name)
        if channel is None:
            taken = channel_id in self._channels
            if channel_id is not None and (taken or not _CHANNEL_ID.match(channel_id)):
                raise ValueError(f"channel_id taken or not like C0123456789: {channel_id!r}")
            channel = Channel(
                channel_id or self._new_id("C"),
                name,
                workspace.team_id,
                created=int(self.wall_clock()),
            )
            self._channels[channel.id] = channel
        channel.is_member, channel.is_archived = is_member, is_archived
        return channel

    def channels(self, team_id: str | None = None) -> list[Channel]:
        """The channels, of one workspace or all, in creation order."""
        return [c for c in self._channels.values() if team_id in (None, c.team_id)]

    def find_channel(self, ref: str) -> Channel | None:
        """Find a channel by ID, ``#name`` or name, in any workspace."""
        if ref in self._channels:
            return self._channels[ref]
        name = ref.removeprefix("#").lower()
        return next((c for c in self._channels.values() if c.name == name), None)

    def _channel_named(self, team_id: str, name: str) -> Channel | None:
        return next(
            (c for c in self._channels.values() if c.team_id == team_id and c.name == name), None
        )

    # -- inspection and faults --------------------------------------------------------

    def messages(self, channel: str | None = None) -> list[Message]:
        """Messages and replies in posting order, of one channel (ID or name) or all."""
        if channel is None:
            return list(self._messages)
        found = self.find_channel(channel)
        return [m for m in self._messages if m.channel is found]

    def requests(self, method: str | None = None) -> list[RequestRecord]:
        """Every Web API call received, oldest first, of one method or all."""
        return [r for r in self._requests if method in (None, r.method)]

    @property
    def faults(self) -> list[Fault]:
        """The faults still live."""
        now = self.clock()
        return [f for f in self._faults if f.is_live(now)]

    def inject(
        self,
        *,
        method: str | None = None,
        error: str | None = None,
        status: int | None = None,
        times: int | None = None,
        duration: float | None = None,
        rate: float | None = None,
        latency: float = 0.0,
        retry_after: int = 1,
        seed: int | None = None,
    ) -> Fault:
        """Make calls of ``method`` (None: every method) fail or slow down.

        ``error`` answers HTTP 200 ``{"ok": false, "error": error}``; ``status``
        answers that HTTP status (429 with ``Retry-After: retry_after``). With
        neither, the fault only adds ``latency`` seconds. ``times`` limits it to
        the next N calls, ``duration`` to the next seconds of the clock, ``rate``
        to that share of calls (seeded: ``seed``, else the fake's own random).
        """
        if method is not None and method not in API_METHODS:
            raise ValueError(f"unknown method {method!r}; expected one of {', '.join(API_METHODS)}")
        if status is not None and not 400 <= status <= 599:  # noqa: PLR2004 - HTTP error range
            raise ValueError(f"status must be an HTTP error status, got {status}")
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, got {rate}")
        if (times is not None and times < 1) or latency < 0 or retry_after < 1:
            raise ValueError("times and retry_after must be at least 1, latency not negative")
        fault = Fault(
            method=method,
            error=error,
            status=status,
            remaining=times,
            rate=rate,
            until=None if duration is None else self.clock() + duration,
            latency=latency,
            retry_after=retry_after,
            rng=self._random if seed is None else random.Random(seed),  # noqa: S311 - chaos
        )
        self._faults.append(fault)
        return fault

    def outage(self, seconds: float, *, method: str | None = None) -> Fault:
        """Answer every call (of ``method``, or all) with HTTP 503 for the next ``seconds``."""
        return self.inject(method=method, status=HTTP_SERVICE_UNAVAILABLE, duration=seconds)

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self._faults.clear()

    def reset(self) -> None:
        """Forget messages, requests, faults and rate history; keep workspaces and channels."""
        self._faults.clear()
        self._messages.clear()
        self._by_ts.clear()
        self._requests.clear()
        self._last_post.clear()
        self._updates.clear()
        self._random.seed(self.seed)

    def page_view(self) -> list[JSONDict]:
        """Each channel with its workspace and messages, most recently active first."""
        view = []
        for channel in self._channels.values():
            workspace = self._workspaces[channel.team_id]
            messages = [m.to_json() for m in self._messages if m.channel is channel]
            view.append(
                {
                    **channel.to_json(),
                    "team_name": workspace.name,
                    "bot_name": workspace.bot_name,
                    "messages": messages,
                }
            )
        view.sort(key=lambda c: -max((m["posted_at"] for m in c["messages"]), default=-math.inf))
        return view

    # -- the Web API --------------------------------------------------------------------

    async def handle(
        self,
        method: str,
        args: Mapping[str, Any],
        token: str | None,
        *,
        body_error: str | None = None,
    ) -> ApiResult:
        """Answer one Web API call as Slack would, and log it.

        ``body_error`` is the Slack error code for a body the HTTP layer could not read.
        """
        received = self.clock()
        channel = args.get("channel") if isinstance(args.get("channel"), str) else None
        answered: list[Workspace] = []
        try:
            body = await self._answer(method, args, token, body_error, answered)
            result = ApiResult(HTTP_OK, {"ok": True, **body}, {})
            channel = body.get("channel", channel)
        except FakeApiError as refusal:
            result = refusal.result()
        self._requests.append(
            RequestRecord(
                method=method,
                at=received,
                status=result.status,
                error=result.body.get("error"),
                channel=channel,
                team_id=answered[0].team_id if answered else None,
                ts=result.body.get("ts"),
                retry_after=int(result.headers.get("Retry-After", 0)) or None,
            )
        )
        return result

    async def _answer(
        self,
        method: str,
        args: Mapping[str, Any],
        token: str | None,
        body_error: str | None,
        answered: list[Workspace],
    ) -> JSONDict:
        await self._apply_faults(method)
        if body_error is not None:
            raise FakeApiError(body_error)
        if method not in API_METHODS:
            raise FakeApiError("unknown_method")
        workspace = self._authenticate(token)
        answered.append(workspace)
        if method == "chat.postMessage":
            return self._post_message(workspace, args)
        if method == "chat.update":
            return self._update(workspace, args)
        if method == "conversations.list":
            return self._list_conversations(workspace, args)
        return {
            "url": f"https://{workspace.domain}.slack.com/",
            "team": workspace.name,
            "user": workspace.bot_name,
            "team_id": workspace.team_id,
            "user_id": workspace.bot_user_id,
            "bot_id": workspace.bot_id,
            "is_enterprise_install": False,
        }

    async def _apply_faults(self, method: str) -> None:
        now = self.clock()
        self._faults = [f for f in self._faults if f.is_live(now)]
        latency, failure = 0.0, None
        for fault in self._faults:
            if (fault.is_failure and failure is not None) or not fault.fires(method):
                continue
            fault.consume()
            latency += fault.latency
            failure = fault if fault.is_failure else failure
        if latency > 0:
            await self.sleep(latency)
        if failure is not None:
            raise failure.refusal()

    def _authenticate(self, token: str | None) -> Workspace:
        if not token:
            raise FakeApiError("not_authed")
        workspace = self._owner(token)
        if workspace is None:
            raise FakeApiError("invalid_auth")
        if token in workspace.revoked:
            raise FakeApiError("token_revoked")
        return workspace

    def _resolve_channel(self, workspace: Workspace, ref: str | None, *, by_name: bool) -> Channel:
        if not ref:
            raise FakeApiError("channel_not_found")
        if _CHANNEL_ID.match(ref):
            channel = self._channels.get(ref)
        elif not by_name:
            channel = None
        else:
            name = ref.removeprefix("#").lower()
            channel = self._channel_named(workspace.team_id, name)
            if channel is None and self.auto_create_channels and _CHANNEL_NAME.match(name):
                channel = self.add_channel(name, team_id=workspace.team_id)
        if channel is None or channel.team_id != workspace.team_id:
            raise FakeApiError("channel_not_found")
        if channel.is_archived:
            raise FakeApiError("is_archived")
        if not channel.is_member:
            raise FakeApiError("not_in_channel")
        return channel

    def _post_message(self, workspace: Workspace, args: Mapping[str, Any]) -> JSONDict:
        channel = self._resolve_channel(workspace, _str_arg(args, "channel"), by_name=True)
        now = self.clock()
        last = self._last_post.get(channel.id)
        if self.rate_limits.enabled and last is not None:
            wait = self.rate_limits.post_interval - (now - last)
            if wait > 0:
                raise _rate_limited(wait)
        content = parse_content(args)
        if content.is_empty:
            raise FakeApiError("no_text")
        parent = self._thread_parent(channel, _str_arg(args, "thread_ts"))
        message = Message(
            ts=self._next_ts(),
            channel=channel,
            text=content.text or "",
            blocks=content.blocks,
            attachments=content.attachments,
            posted_at=now,
            thread_ts=parent.ts if parent else None,
            reply_broadcast=parent is not None and _bool_arg(args, "reply_broadcast"),
        )
        if parent is not None:
            parent.replies.append(message.ts)
        self._messages.append(message)
        self._by_ts[channel.id, message.ts] = message
        self._last_post[channel.id] = now
        return {"channel": channel.id, "ts": message.ts, "message": message.to_api(workspace)}

    def _thread_parent(self, channel: Channel, thread_ts: str | None) -> Message | None:
        if not thread_ts:
            return None
        target = self._by_ts.get((channel.id, thread_ts))
        if target is None:
            raise FakeApiError("thread_not_found")
        if target.thread_ts is not None:  # a reply's ts: Slack posts into its parent's thread
            return self._by_ts[channel.id, target.thread_ts]
        return target

    def _update(self, workspace: Workspace, args: Mapping[str, Any]) -> JSONDict:
        channel = self._resolve_channel(workspace, _str_arg(args, "channel"), by_name=False)
        now = self.clock()
        window = self._updates.setdefault(workspace.team_id, deque())
        limits = self.rate_limits
        while window and window[0] <= now - limits.update_window:
            window.popleft()
        if limits.enabled and len(window) >= limits.update_limit:
            raise _rate_limited(window[0] + limits.update_window - now)
        message = self._by_ts.get((channel.id, _str_arg(args, "ts") or ""))
        if message is None:
            raise FakeApiError("message_not_found")
        if self.edit_window is not None and now - message.posted_at > self.edit_window:
            raise FakeApiError("edit_window_closed")
        content = parse_content(args)
        if content.is_empty:
            raise FakeApiError("no_text")
        message.edits.append(
            Edit(
                at=now,
                ts=self._next_ts(),
                text=message.text,
                blocks=message.blocks,
                attachments=message.attachments,
            )
        )
        if content.text is not None:
            message.text = content.text
        if content.blocks is not None or "blocks" in args:
            message.blocks = content.blocks
        if content.attachments is not None or "attachments" in args:
            message.attachments = content.attachments
        window.append(now)
        return {
            "channel": channel.id,
            "ts": message.ts,
            "text": message.text,
            "message": message.to_api(workspace),
        }

    def _list_conversations(self, workspace: Workspace, args: Mapping[str, Any]) -> JSONDict:
        try:
            limit = min(max(int(args.get("limit") or _DEFAULT_PAGE), 1), _MAX_PAGE)
        except (TypeError, ValueError):
            raise FakeApiError("invalid_limit") from None
        start = _decode_cursor(_str_arg(args, "cursor"))
        channels = [
            c
            for c in self.channels(workspace.team_id)
            if not (c.is_archived and _bool_arg(args, "exclude_archived"))
        ]
        page = channels[start : start + limit]
        end = start + len(page)
        next_cursor = _encode_cursor(end) if end < len(channels) else ""
        return {
            "channels": [c.to_json() for c in page],
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _next_ts(self) -> str:
        """Return a Slack ``ts`` from the wall clock, unique and increasing."""
        micros = max(int(self.wall_clock() * 1_000_000), self._last_micros + 1)
        self._last_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _encode_cursor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(base64.b64decode(cursor, validate=True).decode().removeprefix("offset:"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise FakeApiError("invalid_cursor") from None


def _rate_limited(wait: float) -> FakeApiError:
    return FakeApiError(
        "ratelimited", status=HTTP_TOO_MANY_REQUESTS, retry_after=max(1, math.ceil(wait))
    )


# -- HTTP ---------------------------------------------------------------------------------


class FaultSpec(BaseModel):
    """Body of POST /fake/faults: the arguments of :meth:`FakeSlack.inject`, or ``outage``."""

    model_config = ConfigDict(extra="forbid")

    method: str | None = None
    error: str | None = None
    status: int | None = None
    times: int | None = None
    duration: float | None = None
    rate: float | None = None
    latency: float = 0.0
    retry_after: int = 1
    seed: int | None = None
    outage: float | None = Field(default=None, description="seconds of HTTP 503 for every call")


class FaultList(BaseModel):
    """Several faults at once: ``{"faults": [...]}``."""

    model_config = ConfigDict(extra="forbid")

    faults: list[FaultSpec]


class WorkspaceSpec(BaseModel):
    """Body of POST /fake/workspaces."""

    model_config = ConfigDict(extra="forbid")

    name: str = "Workspace"
    team_id: str | None = None
    domain: str | None = None
    tokens: list[str] = []
    revoked_tokens: list[str] = []


class ChannelSpec(BaseModel):
    """Body of POST /fake/channels."""

    model_config = ConfigDict(extra="forbid")

    name: str
    team_id: str | None = None
    id: str | None = None
    is_member: bool = True
    is_archived: bool = False


class SettingsSpec(BaseModel):
    """Body of POST /fake/settings; absent keys keep their value."""

    model_config = ConfigDict(extra="forbid")

    rate_limits_enabled: bool | None = None
    post_interval: float | None = None
    update_limit: int | None = None
    update_window: float | None = None
    edit_window: float | None = None
    no_edit_window: bool = False
    auto_create_channels: bool | None = None


def _bad_request(detail: str) -> JSONResponse:
    body = {"ok": False, "error": "invalid_request", "detail": detail}
    return JSONResponse(body, HTTP_BAD_REQUEST)


async def _read_json(request: Request) -> Any:
    body = await request.body()
    return json.loads(body) if body.strip() else {}


def _parse_body(body: bytes, media_type: str) -> tuple[dict[str, Any], str | None]:
    """Read a JSON or form-encoded body; name Slack's error code when it cannot be read."""
    if not body.strip():
        return {}, None
    if media_type == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            return {}, "invalid_json"
        return (data, None) if isinstance(data, dict) else ({}, "invalid_json")
    if media_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)), None
    return {}, "invalid_form_data"


async def _read_api_call(request: Request) -> tuple[dict[str, Any], str | None, str | None]:
    """Read a Web API call's arguments, token, and the error code of an unreadable body."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields, body_error = _parse_body(await request.body(), media_type)
    args: dict[str, Any] = {**request.query_params, **fields}
    authorization = request.headers.get("authorization", "")
    bearer = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
    field_token = args.pop("token", None)
    token = bearer or (field_token if isinstance(field_token, str) else None)
    return args, token, body_error


@dataclass(frozen=True)
class _Endpoints:
    """The HTTP endpoints, each a thin translation to a :class:`FakeSlack` call."""

    fake: FakeSlack

    async def api(self, request: Request) -> Response:
        args, token, body_error = await _read_api_call(request)
        method = request.path_params["method"]
        result = await self.fake.handle(method, args, token, body_error=body_error)
        return JSONResponse(result.body, result.status, headers=result.headers)

    async def messages(self, request: Request) -> Response:
        found = self.fake.messages(request.query_params.get("channel"))
        return JSONResponse({"ok": True, "messages": [m.to_json() for m in found]})

    async def requests(self, request: Request) -> Response:
        records = self.fake.requests(request.query_params.get("method"))
        return JSONResponse({"ok": True, "requests": [r.to_json() for r in records]})

    async def faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.fake.clear_faults()
        elif request.method == "POST":
            try:
                data = await _read_json(request)
                if isinstance(data, dict) and "faults" in data:
                    specs = FaultList.model_validate(data).faults
                else:
                    specs = [FaultSpec.model_validate(data)]
                for spec in specs:
                    _inject(self.fake, spec)
            except ValueError as exc:  # also pydantic's ValidationError
                return _bad_request(str(exc))
        return JSONResponse({"ok": True, "faults": [f.to_json() for f in self.fake.faults]})

    async def reset(self, _: Request) -> Response:
        self.fake.reset()
        return JSONResponse({"ok": True})

    async def workspaces(self, request: Request) -> Response:
        if request.method == "GET":
            found = [w.to_json() for w in self.fake.workspaces]
            return JSONResponse({"ok": True, "workspaces": found})
        try:
            spec = WorkspaceSpec.model_validate(await _read_json(request))
            workspace = self.fake.add_workspace(
                spec.name,
                team_id=spec.team_id,
                domain=spec.domain,
                tokens=spec.tokens,
                revoked_tokens=spec.revoked_tokens,
            )
        except ValueError as exc:
            return _bad_request(str(exc))
        return JSONResponse({"ok": True, "workspace": workspace.to_json()})

    async def channels(self, request: Request) -> Response:
        if request.method == "GET":
            found = [c.to_json() for c in self.fake.channels()]
            return JSONResponse({"ok": True, "channels": found})
        try:
            spec = ChannelSpec.model_validate(await _read_json(request))
            channel = self.fake.add_channel(
                spec.name,
                team_id=spec.team_id,
                channel_id=spec.id,
                is_member=spec.is_member,
                is_archived=spec.is_archived,
            )
        except ValueError as exc:
            return _bad_request(str(exc))
        return JSONResponse({"ok": True, "channel": channel.to_json()})

    async def settings(self, request: Request) -> Response:
        try:
            spec = SettingsSpec.model_validate(await _read_json(request))
        except ValueError as exc:
            return _bad_request(str(exc))
        _apply_settings(self.fake, spec)
        return JSONResponse({"ok": True, **_settings_json(self.fake)})

    async def page(self, _: Request) -> Response:
        return HTMLResponse(render_page(self.fake.page_view()))


def create_app(fake: FakeSlack, *, with_page: bool = True) -> Starlette:
    """Build the ASGI app: ``/api/<method>``, the ``/fake/...`` controls, and the page at ``/``."""
    endpoints = _Endpoints(fake)
    routes = [
        Route("/api/{method}", endpoints.api, methods=["GET", "POST"]),
        Route("/fake/messages", endpoints.messages, methods=["GET"]),
        Route("/fake/requests", endpoints.requests, methods=["GET"]),
        Route("/fake/faults", endpoints.faults, methods=["GET", "POST", "DELETE"]),
        Route("/fake/reset", endpoints.reset, methods=["POST"]),
        Route("/fake/workspaces", endpoints.workspaces, methods=["GET", "POST"]),
        Route("/fake/channels", endpoints.channels, methods=["GET", "POST"]),
        Route("/fake/settings", endpoints.settings, methods=["GET", "POST"]),
    ]
    if with_page:
        routes.append(Route("/", endpoints.page, methods=["GET"]))
    app = Starlette(routes=routes)
    app.state.fake = fake
    return app


def _inject(fake: FakeSlack, spec: FaultSpec) -> None:
    if spec.outage is not None:
        fake.outage(spec.outage, method=spec.method)
        return
    fake.inject(**spec.model_dump(exclude={"outage"}))


def _apply_settings(fake: FakeSlack, spec: SettingsSpec) -> None:
    changes: dict[str, Any] = {
        "enabled": spec.rate_limits_enabled,
        "post_interval": spec.post_interval,
        "update_limit": spec.update_limit,
        "update_window": spec.update_window,
    }
    fake.rate_limits = replace(
        fake.rate_limits, **{key: value for key, value in changes.items() if value is not None}
    )
    if spec.edit_window is not None or spec.no_edit_window:
        fake.edit_window = None if spec.no_edit_window else spec.edit_window
    if spec.auto_create_channels is not None:
        fake.auto_create_channels = spec.auto_create_channels


def _settings_json(fake: FakeSlack) -> JSONDict:
    limits = fake.rate_limits
    return {
        "rate_limits_enabled": limits.enabled,
        "post_interval": limits.post_interval,
        "update_limit": limits.update_limit,
        "update_window": limits.update_window,
        "edit_window": fake.edit_window,
        "auto_create_channels": fake.auto_create_channels,
    }


# -- standalone server --------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Read the standalone server's options."""
    parser = argparse.ArgumentParser(
        prog="python -m slack_tools.slack.fake",
        description=f"A fake Slack Web API. Dev token {DEV_TOKEN!r}, channel #{DEV_CHANNEL}.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--no-rate-limits", action="store_true", help="never answer 429")
    parser.add_argument(
        "--post-interval", type=float, default=1.0, help="seconds between posts in one channel"
    )
    parser.add_argument(
        "--update-limit", type=int, default=50, help="chat.update calls per window and workspace"
    )
    parser.add_argument("--update-window", type=float, default=60.0, help="seconds")
    parser.add_argument(
        "--edit-window",
        type=float,
        default=None,
        help="seconds after which chat.update answers edit_window_closed",
    )
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        help="another valid token for the dev workspace (repeatable)",
    )
    parser.add_argument(
        "--workspace",
        action="append",
        default=[],
        metavar="NAME=TOKEN",
        help="another workspace with its token and #alerts (repeatable)",
    )
    parser.add_argument(
        "--channel",
        action="append",
        default=[],
        metavar="NAME[:archived|:not-member]",
        help="a channel in the dev workspace (repeatable)",
    )
    parser.add_argument(
        "--no-auto-create",
        action="store_true",
        help="posting to an unknown channel name answers channel_not_found",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random failure rates")
    parser.add_argument("--no-page", action="store_true", help="do not serve the HTML page at /")
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def fake_from_args(options: argparse.Namespace) -> FakeSlack:
    """Build the fake the standalone server's options describe."""
    fake = FakeSlack.dev(
        rate_limits=RateLimits(
            enabled=not options.no_rate_limits,
            post_interval=options.post_interval,
            update_limit=options.update_limit,
            update_window=options.update_window,
        ),
        edit_window=options.edit_window,
        seed=options.seed,
    )
    fake.auto_create_channels = not options.no_auto_create
    for token in options.token:
        fake.add_token(token)
    for item in options.workspace:
        name, _, token = item.partition("=")
        if not token:
            raise SystemExit(f"--workspace expects NAME=TOKEN, got {item!r}")
        team = fake.add_workspace(name, tokens=[token])
        fake.add_channel(DEV_CHANNEL, team_id=team.team_id)
    for item in options.channel:
        name, _, flag = item.partition(":")
        if flag not in ("", "archived", "not-member"):
            raise SystemExit(f"--channel flag must be archived or not-member, got {flag!r}")
        fake.add_channel(name, is_archived=flag == "archived", is_member=flag != "not-member")
    return fake


def main(argv: Sequence[str] | None = None) -> None:
    """Run the fake as an HTTP server until interrupted."""
    import uvicorn  # noqa: PLC0415 - only the standalone server needs it

    options = parse_args(argv)
    app = create_app(fake_from_args(options), with_page=not options.no_page)
    uvicorn.run(app, host=options.host, port=options.port, log_level=options.log_level)


if __name__ == "__main__":
    main()
