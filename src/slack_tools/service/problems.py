"""Errors as RFC 9457 problem documents (``application/problem+json``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem response: ``type``, ``title``, ``status``, ``detail`` and any extra members."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    return problem(exc.status_code, _title(exc.status_code), detail, headers=exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": ".".join(str(p) for p in error.get("loc", ())), "message": error.get("msg", "")}
        for error in exc.errors()
    ]
    return problem(422, "Invalid request", "The request does not match the schema.", errors=errors)


def _title(status: int) -> str:
    from http import HTTPStatus  # noqa: PLC0415 - only needed here

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    return unexpected(exc)


def unexpected(exc: Exception) -> JSONResponse:
    """The answer to an error of ours, logged with its traceback."""
    # A bug, not the sender's fault: 503 with Retry-After, which Alertmanager and Grafana
    # retry, and never the exception's text (it may hold anything).
    log.error("http.unexpected_error", error=type(exc).__name__, exc_info=exc)
    return problem(
        503,
        "Service Unavailable",
        "An unexpected error; retry later.",
        headers={"Retry-After": "5"},
    )


def install(app: FastAPI) -> None:
    """Make every error the app returns a problem document."""
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
