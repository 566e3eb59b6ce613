"""Who calls the admin routes: a verified JWT becomes the actor of the whole request.

:func:`authenticate` is the dependency of every admin router. It verifies
``Authorization: Bearer <JWT>`` (``configs.security.tokens``) and sets the actor
with ``acting_as`` around the rest of the request: it is an ``async`` generator
dependency on purpose, since FastAPI runs a sync dependency in a worker thread
whose context variables the endpoint would never see. The endpoints then declare
their permission with ``require_permission`` (``configs.security.rbac``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from slack_tools.configs.security.actors import Actor, acting_as
from slack_tools.configs.security.tokens import TokenVerifier, build_verifier
from slack_tools.errors import ConfigError, InvalidToken, PermissionDenied
from slack_tools.service import problems
from slack_tools.service.container import Service


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(service_of)]


class AdminDenied(Exception):  # noqa: N818 - an HTTP outcome, not an error of ours
    def __init__(self, status: int, detail: str, *, challenge: str = "Bearer") -> None:
        self.status, self.detail, self.challenge = status, detail, challenge


class _Verifiers:
    """The verifier of the security section in force, rebuilt when a reload changes it."""

    def __init__(self) -> None:
        self.section: object = None
        self.verifier: TokenVerifier | None = None

    def of(self, service: Service) -> TokenVerifier | None:
        config = service.runtime.config
        if self.section != config.security:
            # The JWKS client keeps its fetched keys: only a changed section builds a new one.
            self.verifier = build_verifier(config)
            self.section = config.security
        return self.verifier


def _verifiers(request: Request) -> _Verifiers:
    state = request.app.state
    if not hasattr(state, "token_verifiers"):
        state.token_verifiers = _Verifiers()
    found: _Verifiers = state.token_verifiers
    return found


async def verify_request(request: Request, service: Service) -> Actor:
    """The actor of the request's bearer token.

    Raises:
        AdminDenied: 403 when the admin API is off or has no key, 401 for a missing or
            invalid token.
    """
    if not service.runtime.config.security.admin_api:
        raise AdminDenied(403, "The admin API is off (security.admin_api).")
    try:
        verifier = _verifiers(request).of(service)
    except ConfigError as exc:
        raise AdminDenied(503, f"The admin API cannot verify tokens: {exc}") from None
    if verifier is None:
        raise AdminDenied(403, "The admin API has no token key: configure security.jwt.")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AdminDenied(401, "Send Authorization: Bearer <token> (slack-tools token issue).")
    try:
        if verifier.fetches:  # a JWKS fetch blocks: keep it off the event loop
            return await asyncio.to_thread(verifier.verify, token)
        return verifier.verify(token)
    except InvalidToken as exc:
        raise AdminDenied(401, str(exc), challenge='Bearer error="invalid_token"') from None


async def authenticate(request: Request, service: ServiceDep) -> AsyncIterator[Actor]:
    """Admin routes act as the verified caller from here to the end of the request."""
    actor = await verify_request(request, service)
    request.state.actor = actor
    with acting_as(actor):
        yield actor


# Routers written against the interim admin token keep working; each of their routes
# still has to declare a permission (tests/integration/test_admin_auth.py checks).
require_admin = authenticate
ADMIN_AUTHOR = "admin-api"


def author_of(actor: Actor | None) -> str:
    """The author a version written through the admin API is attributed to."""
    return f"api:{actor.id}" if actor is not None else ADMIN_AUTHOR


async def admin_denied(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AdminDenied)
    unauthorized = exc.status == HTTPStatus.UNAUTHORIZED
    headers = {"WWW-Authenticate": exc.challenge} if unauthorized else None
    return problems.problem(exc.status, "Admin access refused", exc.detail, headers=headers)


async def permission_denied(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PermissionDenied)
    return problems.problem(403, "Forbidden", str(exc))
