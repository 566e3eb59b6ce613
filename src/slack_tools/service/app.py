"""The FastAPI application: alert ingest, health, metrics, admin routes, the dev Slack fake."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Annotated, Any

import orjson
import structlog
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.routing import Route

from slack_tools import __version__
from slack_tools.alerts.models import Source
from slack_tools.configs.security.audit import (
    AmbiguousDeadLetterError,
    AuditLog,
    list_dead_letters,
    replay_dead_letters,
)
from slack_tools.configs.security.rbac import authorize, authorize_all_tenants, require_permission
from slack_tools.errors import PayloadError, PermissionDenied, StorageError
from slack_tools.service import interactions, problems, security_routes, tenant_routes
from slack_tools.service.admin_auth import (
    AdminDenied,
    ServiceDep,
    admin_denied,
    authenticate,
    permission_denied,
    service_of,
)
from slack_tools.service.bodies import TooLarge, read_body
from slack_tools.service.container import DEV_SLACK_PATH, Service
from slack_tools.service.ingest import Caller, FloodError, Forbidden, Unauthorized
from slack_tools.slack.fake import create_app as create_fake_app
from slack_tools.storage.database import describe
from slack_tools.storage.scope import ALL_TENANTS

# Alertmanager and Grafana retry only 5xx (and ignore Retry-After): a flood answer
# they would drop must be a 503. A generic sender gets the standard 429.
log = structlog.get_logger(__name__)
FLOOD_STATUS = {Source.ALERTMANAGER: 503, Source.GRAFANA: 503, Source.GENERIC: 429}
DEAD_LETTERS_MAX = 1000  # as many as one database lists


class Replay(BaseModel):
    ids: list[int] | None = Field(None, description="Dead letters to replay (default: all).")
    tenant: str | None = Field(None, min_length=1, description="Only this tenant's dead letters.")


def _status_body(service: Service) -> dict[str, Any]:
    status = service.runtime.status
    return {
        "outcome": status.outcome,
        "trigger": status.trigger,
        "at": status.at.isoformat() if status.at else None,
        "active_hash": status.active_hash,
        "errors": list(status.errors),
    }


async def ingest(request: Request, source: Source) -> Response:
    """Accept alerts from ``source``: 202 only once they and their deliveries are committed."""
    service = service_of(request)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        return problems.problem(415, "Unsupported Media Type", "Send application/json.")
    try:
        caller: Caller = await service.ingestor.authenticate(request.headers.get("authorization"))
    except Unauthorized as exc:
        return problems.problem(
            401, "Unauthorized", str(exc), headers={"WWW-Authenticate": "Bearer"}
        )
    except Forbidden as exc:
        return problems.problem(403, "Forbidden", str(exc))
    except FloodError as exc:
        status = FLOOD_STATUS[source]
        return problems.problem(
            status,
            HTTPStatus(status).phrase,
            "Too many requests for this tenant; retry later.",
            headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))},
            limit="flood",
        )
    limit = service.runtime.config.server.max_body_bytes
    try:
        body = await read_body(request, limit)
        accepted = await service.ingestor.accept(caller, source, body)
    except TooLarge as exc:
        return problems.problem(413, "Content Too Large", f"The body is over {exc.limit} bytes.")
    except PayloadError as exc:
        status = 400 if exc.malformed else 422
        return problems.problem(status, HTTPStatus(status).phrase, str(exc), errors=exc.errors)
    except (StorageError, SQLAlchemyError) as exc:
        # Nothing was accepted (a strict tenant's database away, a writer closing): the
        # senders retry a 503. The reason is logged, never answered (it names servers).
        reason = describe(exc) if isinstance(exc, SQLAlchemyError) else str(exc)
        log.warning("ingest.not_stored", tenant=caller.tenant_id, error=reason)
        return problems.problem(
            503,
            "Service Unavailable",
            "The alerts could not be stored now; retry later.",
            headers={"Retry-After": "5"},
        )
    finally:
        # After accept: the tenant's configuration (its plan) is known by then.
        request.state.tenant_class = _tenant_class(service, caller.tenant_id)
    answer = {
        "status": "accepted",
        "tenant": accepted.tenant_id,
        "alerts": accepted.alerts,
        "groups": [
            {"group": r.group_hash, "outcome": r.outcome.value, "deliveries": r.deliveries}
            for r in accepted.groups
        ],
    }
    # orjson writes what JSONResponse would (compact, UTF-8), several times faster.
    return Response(orjson.dumps(answer), status_code=202, media_type="application/json")


def _tenant_class(service: Service, tenant_id: str) -> str:
    effective = service.runtime.peek_effective(tenant_id)
    return effective.tenant.plan if effective else "unknown"


class RequestMetrics:
    """Request durations by route template, method, status and tenant class (pure ASGI)."""

    def __init__(self, app: Callable[..., Awaitable[None]], service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def watch(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or _route_of(scope.get("path", ""))
            observe_request(self.service, scope, path, status, started)


def observe_request(
    service: Service, scope: MutableMapping[str, Any], route: str, status: int, started: float
) -> None:
    state = scope.get("state") or {}
    service.metrics.request_duration_of(
        route, scope.get("method", ""), str(status), state.get("tenant_class", "none")
    ).observe(time.perf_counter() - started)


class App(FastAPI):
    """FastAPI, answering the alert endpoints before its middleware stack.

    Each layer of the stack (error pages, exception handlers, the exit stack, body
    limits, telemetry, routing) costs a little on every request, together about a
    tenth of an alert request under load (bench/ingest.py). A POST to an ingest path
    goes straight to ``ingest``, with what those layers give it done here: the
    duration metric and a problem answer for an unexpected error. Everything else,
    including an ingest path under a root path, takes the usual way.
    """

    service: Service

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            route = scope["path"]
            source = INGEST_ROUTES.get(route)
            if source is not None:
                await self._ingest(scope, receive, send, route, source)
                return
        await super().__call__(scope, receive, send)

    async def _ingest(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[..., Any],
        send: Callable[..., Any],
        route: str,
        source: Source,
    ) -> None:
        started = time.perf_counter()
        scope["app"] = self
        request = Request(scope, receive)
        try:
            response = await ingest(request, source)
        except Exception as exc:  # noqa: BLE001 - answered as the app's error handler does
            response = problems.unexpected(exc)
        try:
            await response(scope, receive, send)
        finally:
            observe_request(self.service, scope, route, response.status_code, started)


def _route_of(path: str) -> str:
    # The ingest routes are plain Starlette routes, which leave no route in the scope;
    # unmatched paths share one label, so scanners cannot grow the metric without bound.
    if path in INGEST_ROUTES:
        return path
    return DEV_SLACK_PATH if path.startswith(DEV_SLACK_PATH) else "<other>"


health = APIRouter()
admin = APIRouter(prefix="/admin", dependencies=[Depends(authenticate)])
INGEST_ROUTES = {
    "/api/v1/alerts/alertmanager": Source.ALERTMANAGER,
    "/api/v1/alerts/grafana": Source.GRAFANA,
    "/api/v1/alerts": Source.GENERIC,
}


@health.get("/health/live")
async def live() -> dict[str, str]:
    """The process is up and its event loop answers."""
    return {"status": "ok"}


@health.get("/health/ready")
async def ready(service: ServiceDep) -> JSONResponse:
    """Ready when the (shared) database answers and the dispatcher runs.

    Breaker states and each strict tenant's own database are reported, but an open
    breaker or a tenant database that is away does not fail readiness: one dead token
    or one tenant's database must not take every instance out of the load balancer.
    """
    checks: dict[str, Any] = {"config": _status_body(service)}
    healthy = True
    try:
        await asyncio.to_thread(service.database.ping)
        checks["database"] = {"status": "ok", "backend": service.database.backend}
    except StorageError:
        # Unauthenticated route: the reason (host, user) is in the logs, not here.
        checks["database"] = {"status": "down"}
        log.warning("health.database_down")
        healthy = False
    # Each strict tenant's own database, reported but not failing readiness: one
    # tenant's database being away must not take the service out for every tenant.
    # As the maintenance loop last found them: a probe does not query each database.
    tenant_databases = service.tenant_database_states()
    if tenant_databases:
        checks["tenant_databases"] = {t: {"status": state} for t, state in tenant_databases.items()}
    alive = service.dispatcher_alive()
    checks["dispatcher"] = {"status": "ok" if alive else "stopped"}
    checks["slack_workspaces"] = {
        name: {"state": snap.state.value, "failure_rate": round(snap.failure_rate, 3)}
        for name, snap in service.dispatcher.breakers.states().items()
    }
    healthy = healthy and alive
    body = {"status": "ok" if healthy else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if healthy else 503)


@health.get("/metrics")
async def metrics(service: ServiceDep) -> Response:
    """Prometheus metrics of this instance."""
    if not service.runtime.config.monitoring.metrics_enabled:
        return problems.problem(404, "Not Found", "Metrics are disabled.")
    return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)


@admin.get("/config/status")
@require_permission("config.read")
async def config_status(service: ServiceDep) -> dict[str, Any]:
    """The last reload's outcome and the active configuration's hash."""
    return _status_body(service)


@admin.post("/config/reload")
@require_permission("config.reload")
async def config_reload(service: ServiceDep) -> JSONResponse:
    """Reload files and stored overrides now; a rejected reload keeps the old configuration."""
    status = await asyncio.to_thread(service.runtime.reload, "admin")
    if status.outcome == "rejected":
        return problems.problem(
            422,
            "Configuration reload rejected",
            "The new configuration is invalid; the previous one is still serving.",
            errors=list(status.errors),
            active_hash=status.active_hash,
        )
    return JSONResponse(_status_body(service))


def _scope_of(permission: str, tenant: str | None) -> None:
    """Refuse a call about ``tenant`` (or every tenant, when None) the caller may not make."""
    if tenant is None:
        authorize_all_tenants(permission)
    else:
        authorize(permission, tenant)


@admin.get("/deadletters")
@require_permission("alerts.read")
async def dead_letters(
    service: ServiceDep, tenant: Annotated[str | None, Query(min_length=1)] = None
) -> dict[str, Any]:
    """Deliveries given up on, newest first, with the reason."""
    _scope_of("alerts.read", tenant)

    scope = ALL_TENANTS if tenant is None else tenant
    unreachable: list[str] = []
    # In the tenant's database (its own under strict isolation), or in every database;
    # a strict tenant's that cannot be read is listed as unreachable, not an error.
    letters = await asyncio.to_thread(
        list_dead_letters,
        AuditLog.of(service.runtime),
        scope,
        DEAD_LETTERS_MAX,
        unreachable=unreachable,
    )
    for tenant_id in unreachable:
        log.warning("deadletters.database_unreachable", tenant=tenant_id)
    return {
        **({"unreachable_tenants": unreachable} if unreachable else {}),
        "dead_letters": [
            {
                "id": d.id,
                "tenant": d.tenant_id,
                "group_key": d.group_key,
                "channel": d.channel,
                "reason": d.reason,
                "attempts": d.attempts,
                "at": d.updated_at.isoformat(),
            }
            for d in letters
        ],
    }


@admin.post("/deadletters/replay")
@require_permission("alerts.replay")
async def replay(service: ServiceDep, body: Replay) -> dict[str, int]:
    """Queue dead letters again (by id, by tenant, or all)."""
    _scope_of("alerts.replay", body.tenant)

    scope = ALL_TENANTS if body.tenant is None else body.tenant
    log = AuditLog.of(service.runtime)
    try:
        count = await asyncio.to_thread(replay_dead_letters, log, scope, ids=body.ids)
    except AmbiguousDeadLetterError as exc:
        raise tenant_routes.Refused(
            problems.problem(409, "Ambiguous dead letter ids", str(exc))
        ) from None
    service.dispatcher.wake(body.tenant)  # None: every tenant's database
    return {"replayed": count}


def create_app(service: Service, *, grace_seconds: float | None = None) -> FastAPI:
    """The HTTP application of ``service``; its background work runs for the app's lifetime."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            grace = grace_seconds or service.runtime.config.server.graceful_shutdown_seconds
            await service.close(grace)

    app = App(title="slack-tools", version=__version__, lifespan=lifespan)
    app.service = app.state.service = service
    problems.install(app)
    app.add_exception_handler(AdminDenied, admin_denied)
    app.add_exception_handler(PermissionDenied, permission_denied)
    app.add_exception_handler(tenant_routes.Refused, tenant_routes.answer_refused)
    app.add_middleware(RequestMetrics, service=service)
    # The alert endpoints are plain Starlette routes: they take the raw request and
    # need none of FastAPI's parameter handling, which cost a fifth of each request
    # under load (bench/ingest.py). Their contract is in docs/integrations.md.
    for path, source in INGEST_ROUTES.items():
        app.router.routes.append(
            Route(
                path,
                functools.partial(ingest, source=source),
                methods=["POST"],
                name=f"alerts_{source.value}",
            )
        )
    for router in (
        health,
        admin,
        tenant_routes.router,
        interactions.router,
        security_routes.router,
    ):
        app.include_router(router)
    if service.fake is not None:
        app.mount(DEV_SLACK_PATH, create_fake_app(service.fake, with_page=True))
    return app
