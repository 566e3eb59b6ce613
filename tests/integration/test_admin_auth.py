"""Admin API authentication and authorisation over the real app: JWTs, roles, tenants, routes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount, Route

from slack_tools.configs.security.actors import current_actor
from slack_tools.configs.security.rbac import requirement_of
from slack_tools.service.admin_auth import authenticate
from slack_tools.service.app import INGEST_ROUTES, create_app
from slack_tools.service.container import DEV_SLACK_PATH
from tests.helpers import TEST_JWT_SECRET, assert_no_secret, bearer, issue_test_token
from tests.integration.test_ingest_http import (
    Harness,
    OpenService,
    add_dead_letter,
    assert_problem,
    harness,
    open_service,
)

__all__ = ["harness", "open_service"]  # fixtures, used by name

TENANTS = "/api/v1/tenants"
# Routes anyone may call: health and metrics, alert ingest (tenant API keys), the API's
# own documentation, Slack's signed callbacks. Everything else is an admin route.
PUBLIC_ROUTES = {
    "/health/live",
    "/health/ready",
    "/metrics",
    *INGEST_ROUTES,
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/api/v1/slack/interactions",
}
PUBLIC_MOUNTS = {DEV_SLACK_PATH}  # the dev Slack fake


def admin_routes(app: FastAPI) -> list[APIRoute]:
    """The app's routes that are not public; fails on a route of an unexpected kind."""
    found: list[APIRoute] = []
    # Included routers stay routers in app.routes: their routes are reached through them.
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = context.path or getattr(route, "path", "")
        if isinstance(route, Mount):
            assert path in PUBLIC_MOUNTS, f"unexpected mount {path}"
            continue
        assert isinstance(route, APIRoute | Route), f"unexpected route {route!r}"
        if path in PUBLIC_ROUTES:
            continue
        assert isinstance(route, APIRoute), f"{path}: an admin route must be a FastAPI route"
        found.append(route)
    return found


def methods(route: APIRoute) -> list[str]:
    return sorted(route.methods or ())


def concrete(path: str) -> str:
    """``path`` with its parameters filled in (tenant acme, ids 1)."""
    return re.sub(r"\{(\w+)\}", lambda m: "acme" if m.group(1) == "tenant_id" else "1", path)


# --- every route -------------------------------------------------------------------------------


def test_every_admin_route_authenticates_and_declares_a_permission(harness: Harness) -> None:
    """Each non-public route depends on authenticate and carries require_permission."""
    routes = admin_routes(create_app(harness.service))
    assert len(routes) >= 16  # the /admin and tenant routes known today
    missing = [
        f"{methods(r)} {r.path}"
        for r in routes
        if requirement_of(r.endpoint) is None
        or not any(d.call is authenticate for d in r.dependant.dependencies)
    ]
    assert missing == [], f"admin routes without authentication or permission: {missing}"


async def test_every_admin_route_refuses_no_token_and_a_token_without_roles(
    harness: Harness,
) -> None:
    """No token is 401 with a Bearer challenge; a valid token with no role is 403."""
    roleless = issue_test_token(roles=[], tenants=["*"])
    for route in admin_routes(create_app(harness.service)):
        for method in methods(route):
            path = concrete(route.path)
            anonymous = await harness.client.request(method, path, json={})
            assert_problem(anonymous, 401)
            assert anonymous.headers["www-authenticate"].startswith("Bearer")
            refused = await harness.client.request(method, path, json={}, headers=bearer(roleless))
            if refused.status_code == 422:  # a declared body is checked first: send a valid one
                refused = await harness.client.request(
                    method, path, json={"ids": []}, headers=bearer(roleless)
                )
            assert_problem(refused, 403)
    assert harness.tenants.require("acme").is_active


# --- token checks over HTTP --------------------------------------------------------------------


async def test_an_expired_token_is_401_and_never_echoed(harness: Harness) -> None:
    """An expired token answers 401 with error=invalid_token; the body does not repeat it."""
    token = issue_test_token()
    payload = jwt.decode(token, options={"verify_signature": False})
    payload["exp"] = payload["iat"] - 120  # beyond the 30 s leeway
    expired = jwt.encode(payload, TEST_JWT_SECRET, algorithm="HS256")
    response = await harness.client.get("/admin/config/status", headers=bearer(expired))
    body = assert_problem(response, 401)
    assert "expired" in body["detail"]
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert_no_secret(response.text, expired, token, TEST_JWT_SECRET)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_a_jwks_service_takes_rs256_and_refuses_hs256_confusion(
    open_service: OpenService, tmp_path: Path
) -> None:
    """With a JWKS file, RS256 tokens pass; HS256 keyed with the public key or a secret do not."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.get_algorithm_by_name("RS256").to_jwk(key.public_key(), as_dict=True)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "idp-1"}]}))
    harness = await open_service(jwt_secret=None, SECURITY__JWT__JWKS_FILE=str(jwks))
    claims = jwt.decode(issue_test_token(), options={"verify_signature": False})

    good = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "idp-1"})
    assert (
        await harness.client.get("/admin/config/status", headers=bearer(good))
    ).status_code == 200

    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "idp-1"}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(public, f"{header}.{body}".encode(), hashlib.sha256).digest()
    for forged in (f"{header}.{body}.{_b64(mac)}", issue_test_token()):
        response = await harness.client.get("/admin/config/status", headers=bearer(forged))
        assert_problem(response, 401)
        assert_no_secret(response.text, forged)


# --- the actor of a request --------------------------------------------------------------------


async def test_the_actor_reaches_the_endpoint_and_its_threads(harness: Harness) -> None:
    """authenticate's actor is current in async endpoints, their to_thread calls, sync endpoints."""
    app = create_app(harness.service)

    @app.get("/admin/test-actor/async", dependencies=[Depends(authenticate)])
    async def in_async() -> dict[str, Any]:
        here = current_actor()
        there = await asyncio.to_thread(current_actor)
        return {"here": here and here.id, "thread": there and there.id}

    @app.get("/admin/test-actor/sync", dependencies=[Depends(authenticate)])
    def in_sync() -> dict[str, Any]:
        here = current_actor()
        return {"here": here and here.id}

    token = issue_test_token(roles=["viewer"], tenants=["acme"], subject="grace")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answers = await asyncio.gather(
            client.get("/admin/test-actor/async", headers=bearer(token)),
            client.get("/admin/test-actor/sync", headers=bearer(token)),
            client.get("/admin/test-actor/async", headers=bearer(issue_test_token(subject="hal"))),
        )
    assert [a.json() for a in answers] == [
        {"here": "grace", "thread": "grace"},
        {"here": "grace"},
        {"here": "hal", "thread": "hal"},
    ]
    assert current_actor() is None


async def test_changes_are_attributed_to_the_token_subject(harness: Harness) -> None:
    """A version written through the API names the token's subject as its author."""
    token = issue_test_token(roles=["tenant_admin"], tenants=["acme"], subject="ivy")
    patched = await harness.client.patch(
        f"{TENANTS}/acme/config", json={"locale": "de_DE"}, headers=bearer(token)
    )
    assert patched.status_code == 200, patched.text
    history = await harness.client.get(f"{TENANTS}/acme/config/history", headers=bearer(token))
    assert history.json()["versions"][0]["author"] == "api:ivy"


# --- roles ------------------------------------------------------------------------------------


async def test_a_viewer_reads_but_does_not_write(harness: Harness) -> None:
    """viewer: config.read yes; config.write, key creation, reload and replay no."""
    token = bearer(issue_test_token(roles=["viewer"], tenants=["acme"]))
    client = harness.client
    assert (await client.get(f"{TENANTS}/acme/config", headers=token)).status_code == 200
    assert (await client.get("/admin/config/status", headers=token)).status_code == 200
    refused = [
        await client.patch(f"{TENANTS}/acme/config", json={"locale": "de_DE"}, headers=token),
        await client.post(f"{TENANTS}/acme/keys", json={}, headers=token),
        await client.post("/admin/config/reload", headers=token),
        await client.post("/admin/deadletters/replay", json={"tenant": "acme"}, headers=token),
    ]
    for response in refused:
        assert_problem(response, 403)
    assert len(harness.tenants.keys("acme")) == 1


async def test_an_operator_replays_its_tenants_dead_letters(harness: Harness) -> None:
    """operator: alerts.replay for its tenant; every tenant at once needs an unlimited token."""
    add_dead_letter(harness.engine, "acme", "DiskFull", "channel_not_found")
    token = bearer(issue_test_token(roles=["operator"], tenants=["acme"]))
    listed = await harness.client.get("/admin/deadletters?tenant=acme", headers=token)
    assert listed.status_code == 200
    assert len(listed.json()["dead_letters"]) == 1
    replayed = await harness.client.post(
        "/admin/deadletters/replay", json={"tenant": "acme"}, headers=token
    )
    assert replayed.json() == {"replayed": 1}
    for response in (
        await harness.client.get("/admin/deadletters", headers=token),
        await harness.client.post("/admin/deadletters/replay", json={}, headers=token),
    ):
        assert_problem(response, 403)
    admin = bearer(issue_test_token(roles=["operator"], tenants=["*"]))
    assert (await harness.client.get("/admin/deadletters", headers=admin)).status_code == 200


# --- tenant escalation -------------------------------------------------------------------------

TENANT_ROUTES = [
    ("GET", "", None),
    ("PATCH", "", {"name": "Taken"}),
    ("DELETE", "", None),
    ("GET", "/config", None),
    ("PATCH", "/config", {"slack_channel": "#stolen"}),
    ("GET", "/config/history", None),
    ("GET", "/keys", None),
    ("POST", "/keys", {"label": "mine now"}),
    ("DELETE", "/keys/{key}", None),
    ("GET", "/usage", None),
]


async def test_a_tenant_admin_cannot_touch_another_tenant(harness: Harness) -> None:
    """Every tenant route about globex refuses acme's tenant admin (403) and changes nothing."""
    root = bearer(issue_test_token())
    created = await harness.client.post(
        TENANTS, json={"id": "globex", "config": {"slack_channel": "#globex"}}, headers=root
    )
    assert created.status_code == 201, created.text
    key_id = created.json()["api_key"]["id"]
    before = (await harness.client.get(f"{TENANTS}/globex", headers=root)).json()

    token = issue_test_token(roles=["tenant_admin"], tenants=["acme"], subject="mallory")
    covered = set()
    for method, suffix, body in TENANT_ROUTES:
        path = f"{TENANTS}/globex{suffix.replace('{key}', str(key_id))}"
        response = await harness.client.request(method, path, json=body, headers=bearer(token))
        problem = assert_problem(response, 403)
        assert "globex" in problem["detail"]
        assert_no_secret(response.text, token)
        covered.add((method, f"{TENANTS}/{{tenant_id}}{suffix.replace('{key}', '{key_id}')}"))

    after = (await harness.client.get(f"{TENANTS}/globex", headers=root)).json()
    assert after == before
    tenant_routes = {
        (method, route.path)
        for route in admin_routes(create_app(harness.service))
        if route.path.startswith(f"{TENANTS}/{{tenant_id}}")
        for method in methods(route)
    }
    assert tenant_routes == covered  # a new tenant route must join this sweep


async def test_a_tenant_admin_lists_and_creates_only_its_own_tenants(harness: Harness) -> None:
    """The list shows only the token's tenants; creation outside them is refused."""
    root = bearer(issue_test_token())
    await harness.client.post(TENANTS, json={"id": "globex"}, headers=root)
    token = bearer(issue_test_token(roles=["tenant_admin"], tenants=["acme", "initech"]))

    listed = await harness.client.get(TENANTS, headers=token)
    assert [t["id"] for t in listed.json()["tenants"]] == ["acme"]
    outside = await harness.client.post(TENANTS, json={"id": "umbrella"}, headers=token)
    assert_problem(outside, 403)
    assert harness.tenants.get("umbrella") is None
    inside = await harness.client.post(
        TENANTS, json={"id": "initech", "config": {"slack_channel": "#initech"}}, headers=token
    )
    assert inside.status_code == 201, inside.text
    listed = await harness.client.get(TENANTS, headers=token)
    assert [t["id"] for t in listed.json()["tenants"]] == ["acme", "initech"]


async def test_a_tenant_label_in_the_body_cannot_widen_a_token(harness: Harness) -> None:
    """Dead-letter calls naming another tenant in the query or body are refused."""
    token = bearer(issue_test_token(roles=["tenant_admin"], tenants=["acme"]))
    for response in (
        await harness.client.get("/admin/deadletters?tenant=globex", headers=token),
        await harness.client.post(
            "/admin/deadletters/replay", json={"tenant": "globex"}, headers=token
        ),
    ):
        assert_problem(response, 403)


@pytest.mark.parametrize("tenants", [["*"], ["acme", "globex"]])
async def test_platform_tokens_reach_every_tenant_they_list(
    harness: Harness, tenants: list[str]
) -> None:
    """A token listing several tenants (or '*') reaches each of them."""
    root = bearer(issue_test_token())
    await harness.client.post(TENANTS, json={"id": "globex"}, headers=root)
    token = bearer(issue_test_token(roles=["viewer"], tenants=tenants))
    for tenant in ("acme", "globex"):
        assert (await harness.client.get(f"{TENANTS}/{tenant}", headers=token)).status_code == 200
