"""Who may call the admin routes: ``Authorization: Bearer <security.admin_token>``.

The interim admin credential of DESIGN "Decisions" until JWT and roles replace it;
the routes depend on :func:`require_admin` only, so that swap happens here.
"""

from __future__ import annotations

import hmac
from http import HTTPStatus
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from slack_tools.service import problems
from slack_tools.service.container import Service

# Versions written through the admin API are attributed to this author.
ADMIN_AUTHOR = "admin-api"


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(service_of)]


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


async def admin_denied(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AdminDenied)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == HTTPStatus.UNAUTHORIZED else None
    return problems.problem(exc.status, "Admin access refused", exc.detail, headers=headers)
