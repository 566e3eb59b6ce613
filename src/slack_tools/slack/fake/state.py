"""The fake's state: workspaces, tokens, channels, messages, the request log and faults."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import re
import time
from collections import deque
from collections.abc import Iterable

from slack_tools.slack.fake.model import (
    API_METHODS,
    HTTP_SERVICE_UNAVAILABLE,
    Channel,
    Clock,
    Fault,
    JSONDict,
    Message,
    RateLimits,
    RequestRecord,
    Sleep,
    Workspace,
)

CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{8,}$")
CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")


class SlackState:
    """Workspaces, channels, messages and faults, and the calls tests and the page use on them.

    :class:`~slack_tools.slack.fake.api.FakeSlack` adds the Web API on top; its
    docstring describes the arguments.
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
        self._random = random.Random(seed)  # noqa: S311 - seeded chaos, not crypto  # nosec B311
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
        if not CHANNEL_NAME.match(name):
            raise ValueError(f"not a Slack channel name: {name!r} (lowercase, digits, - and _)")
        channel = self._channel_named(workspace.team_id, name)
        if channel is None:
            taken = channel_id in self._channels
            if channel_id is not None and (taken or not CHANNEL_ID.match(channel_id)):
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
            rng=self._random if seed is None else random.Random(seed),  # noqa: S311 - chaos  # nosec B311
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
