"""The audit and GDPR admin routes in process: permissions, list, verify, export, erase."""

from __future__ import annotations

import pytest

from slack_tools.configs import ConfigManager
from slack_tools.configs.security.actors import Actor, acting_as
from slack_tools.configs.security.audit import AuditLog
from tests.helpers import bearer, issue_test_token
from tests.integration.test_ingest_http import (
    ADMIN_TOKEN,
    PROBLEM_JSON,
    Harness,
    harness,
    open_service,
)

__all__ = ["harness", "open_service"]  # fixtures, used by name

ADMIN = bearer(ADMIN_TOKEN)
VIEWER = bearer(issue_test_token("viewer", ("acme",), subject="vera"))


def add_user(harness: Harness) -> None:
    with acting_as(Actor("root", roles=frozenset({"admin"}), all_tenants=True)):
        ConfigManager(harness.runtime).update_user_config("acme", "dave", {"locale": "de_DE"})


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v1/audit/verify"),
        ("GET", "/api/v1/gdpr/users/dave"),
        ("DELETE", "/api/v1/gdpr/users/dave"),
    ],
)
async def test_routes_need_their_permission(harness: Harness, method: str, path: str) -> None:
    """Without a token 401; a viewer lacks audit and GDPR permissions: 403 problem."""
    assert (await harness.client.request(method, path)).status_code == 401
    refused = await harness.client.request(method, path, headers=VIEWER)
    assert refused.status_code == 403
    assert refused.headers["content-type"].split(";")[0] == PROBLEM_JSON


async def test_list_and_verify(harness: Harness) -> None:
    """The list shows entries with their actor; verify answers ok, or 409 naming the entry."""
    add_user(harness)
    listed = await harness.client.get(
        "/api/v1/audit", params={"tenant": "acme", "action": "config"}, headers=ADMIN
    )
    assert listed.status_code == 200, listed.text
    assert listed.json()["entries"][0]["actor"] == "root"
    verified = await harness.client.get("/api/v1/audit/verify", headers=ADMIN)
    assert verified.json()["ok"] is True
    bad = await harness.client.get("/api/v1/audit", params={"since": "soon"}, headers=ADMIN)
    assert bad.status_code == 422


async def test_export_and_erase(harness: Harness) -> None:
    """Export returns the person's data; erase removes it and the chain still verifies."""
    add_user(harness)
    exported = await harness.client.get("/api/v1/gdpr/users/dave", headers=ADMIN)
    assert exported.status_code == 200, exported.text
    assert exported.json()["configuration"][0]["tenant"] == "acme"
    erased = await harness.client.delete("/api/v1/gdpr/users/dave", headers=ADMIN)
    assert erased.status_code == 200, erased.text
    assert erased.json()["removed"]["user_documents"] == 1
    assert AuditLog.of(harness.runtime).verify().ok
    again = await harness.client.get("/api/v1/gdpr/users/dave", headers=ADMIN)
    assert again.json()["configuration"] == []
