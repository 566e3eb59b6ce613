"""The FastAPI application: health, metrics and the admin routes of the configuration."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from slack_tools import __version__
from slack_tools.errors import StorageError
from slack_tools.service import problems
from slack_tools.service.container import Service


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(_service)]


class AdminDenied(Exception):  # noqa: N818 - an HTTP outcome, not an error of ours
    def __init__(self, status: int, detail: str) -> None:
        self.status, self.detail = status, detail


def require_admin(request: Request, service: ServiceDep) -> None:
    """Admin routes need ``Authorization: Bearer <security.admin_token>``."""
    token = service.runtime.config.security.admin_token
    if token is None:
        raise AdminDenied(403, "The admin API is disabled: set security.admin_token.")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise AdminDenied(401, "Send Authorization: Bearer <admin token>.")
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise AdminDenied(403, "This token is not the admin token.")


def _status_body(service: Service) -> dict[str, Any]:
    status = service.runtime.status
    return {
        "outcome": status.outcome,
        "trigger": status.trigger,
        "at": status.at.isoformat() if status.at else None,
        "active_hash": status.active_hash,
        "errors": list(status.errors),
    }


def create_app(service: Service) -> FastAPI:
    """The HTTP application of ``service``; the watcher runs for the app's lifetime."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        watcher = asyncio.create_task(service.watcher.run(service.stop))
        try:
            yield
        finally:
            service.stop.set()
            await watcher

    app = FastAPI(title="slack-tools", version=__version__, lifespan=lifespan)
    app.state.service = service
    problems.install(app)

    @app.exception_handler(AdminDenied)
    async def _denied(_: Request, exc: AdminDenied) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == HTTPStatus.UNAUTHORIZED else None
        return problems.problem(exc.status, "Admin access refused", exc.detail, headers=headers)

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        """The process is up and its event loop answers."""
        return {"status": "ok"}

    @app.get("/health/ready")
    async def ready(service: ServiceDep) -> JSONResponse:
        """Ready when the database answers; reports the configuration's reload state."""
        checks: dict[str, Any] = {"config": _status_body(service)}
        try:
            await asyncio.to_thread(service.database.ping)
            checks["database"] = {"status": "ok", "backend": service.database.backend}
            healthy = True
        except StorageError as exc:
            checks["database"] = {"status": "down", "error": str(exc)}
            healthy = False
        body = {"status": "ok" if healthy else "unavailable", "checks": checks}
        return JSONResponse(body, status_code=200 if healthy else 503)

    @app.get("/metrics")
    async def metrics(service: ServiceDep) -> Response:
        if not service.runtime.config.monitoring.metrics_enabled:
            return problems.problem(404, "Not Found", "Metrics are disabled.")
        return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/admin/config/status", dependencies=[Depends(require_admin)])
    async def config_status(service: ServiceDep) -> dict[str, Any]:
        """The last reload's outcome and the active configuration's hash."""
        return _status_body(service)

    @app.post("/admin/config/reload", dependencies=[Depends(require_admin)])
    async def config_reload(service: ServiceDep) -> JSONResponse:
        """Reload files and stored overrides now; a rejected reload keeps the old configuration."""
        status = await asyncio.to_thread(service.runtime.reload, "admin")
        body = _status_body(service)
        if status.outcome == "rejected":
            return problems.problem(
                422,
                "Configuration reload rejected",
                "The new configuration is invalid; the previous one is still serving.",
                errors=list(status.errors),
                active_hash=status.active_hash,
            )
        return JSONResponse(body)

    return app
