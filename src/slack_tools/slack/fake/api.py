"""FakeSlack: the Web API calls auth.test, chat.postMessage, chat.update, conversations.list."""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from slack_tools.slack.fake.limits import bool_arg, parse_content, str_arg
from slack_tools.slack.fake.model import (
    API_METHODS,
    DEV_CHANNEL,
    DEV_TOKEN,
    HTTP_OK,
    HTTP_TOO_MANY_REQUESTS,
    ApiResult,
    Channel,
    Clock,
    Edit,
    FakeApiError,
    JSONDict,
    Message,
    RateLimits,
    RequestRecord,
    Sleep,
    Workspace,
)
from slack_tools.slack.fake.state import CHANNEL_ID, CHANNEL_NAME, SlackState

_MAX_PAGE = 1000
_DEFAULT_PAGE = 100


class FakeSlack(SlackState):
    """Workspaces, channels, messages and faults behind the fake Web API.

    Args:
        clock: monotonic seconds for rate limits, edit windows, outages and the request log.
        wall_clock: Unix seconds for message ``ts`` values.
        sleep: how injected latency waits (tests pass a recorder).
        auto_create_channels: a post to an unknown channel *name* creates it, bot a member.
    """

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
        if CHANNEL_ID.match(ref):
            channel = self._channels.get(ref)
        elif not by_name:
            channel = None
        else:
            name = ref.removeprefix("#").lower()
            channel = self._channel_named(workspace.team_id, name)
            if channel is None and self.auto_create_channels and CHANNEL_NAME.match(name):
                channel = self.add_channel(name, team_id=workspace.team_id)
        if channel is None or channel.team_id != workspace.team_id:
            raise FakeApiError("channel_not_found")
        if channel.is_archived:
            raise FakeApiError("is_archived")
        if not channel.is_member:
            raise FakeApiError("not_in_channel")
        return channel

    def _post_message(self, workspace: Workspace, args: Mapping[str, Any]) -> JSONDict:
        channel = self._resolve_channel(workspace, str_arg(args, "channel"), by_name=True)
        now = self.clock()
        last = self._last_post.get(channel.id)
        if self.rate_limits.enabled and last is not None:
            wait = self.rate_limits.post_interval - (now - last)
            if wait > 0:
                raise _rate_limited(wait)
        content = parse_content(args)
        if content.is_empty:
            raise FakeApiError("no_text")
        parent = self._thread_parent(channel, str_arg(args, "thread_ts"))
        message = Message(
            ts=self._next_ts(),
            channel=channel,
            text=content.text or "",
            blocks=content.blocks,
            attachments=content.attachments,
            posted_at=now,
            thread_ts=parent.ts if parent else None,
            reply_broadcast=parent is not None and bool_arg(args, "reply_broadcast"),
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
        channel = self._resolve_channel(workspace, str_arg(args, "channel"), by_name=False)
        now = self.clock()
        window = self._updates.setdefault(workspace.team_id, deque())
        limits = self.rate_limits
        while window and window[0] <= now - limits.update_window:
            window.popleft()
        if limits.enabled and len(window) >= limits.update_limit:
            raise _rate_limited(window[0] + limits.update_window - now)
        message = self._by_ts.get((channel.id, str_arg(args, "ts") or ""))
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
        start = _decode_cursor(str_arg(args, "cursor"))
        channels = [
            c
            for c in self.channels(workspace.team_id)
            if not (c.is_archived and bool_arg(args, "exclude_archived"))
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
