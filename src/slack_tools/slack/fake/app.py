"""The fake over HTTP: create_app, ``/api/<method>`` and the ``/fake/...`` controls."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from slack_tools.slack.fake.api import FakeSlack
from slack_tools.slack.fake.model import HTTP_BAD_REQUEST, JSONDict
from slack_tools.slack.fake.page import render_page


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
