"""The tenant admin API (/api/v1/tenants) in process: registry, configuration, keys, errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slack_tools.configs.quotas import MemoryQuotaCounter
from tests.helpers import assert_no_secret
from tests.integration.test_ingest_http import (
    ADMIN_TOKEN,
    ALERTMANAGER,
    PROBLEM_JSON,
    Harness,
    OpenService,
    assert_problem,
    harness,
    open_service,
)

__all__ = ["harness", "open_service"]  # fixtures, used by name

TENANTS = "/api/v1/tenants"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TOKEN = "xoxb-4444444444-tenant-api-secret-token"


async def create(harness: Harness, tenant_id: str, **config: Any) -> dict[str, Any]:
    response = await harness.client.post(
        TENANTS,
        json={
            "id": tenant_id,
            "name": tenant_id.title(),
            "config": {"slack_channel": f"#{tenant_id}", **config},
        },
        headers=ADMIN,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def patch_config(
    harness: Harness, tenant_id: str, patch: Any, *, if_match: str | None = None
) -> httpx.Response:
    headers = {**ADMIN, "Content-Type": "application/merge-patch+json"}
    if if_match is not None:
        headers["If-Match"] = if_match
    content = patch if isinstance(patch, bytes) else json.dumps(patch).encode()
    return await harness.client.patch(
        f"{TENANTS}/{tenant_id}/config", content=content, headers=headers
    )


# --- access ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", TENANTS),
        ("POST", TENANTS),
        ("GET", f"{TENANTS}/acme"),
        ("PATCH", f"{TENANTS}/acme"),
        ("DELETE", f"{TENANTS}/acme"),
        ("GET", f"{TENANTS}/acme/config"),
        ("PATCH", f"{TENANTS}/acme/config"),
        ("GET", f"{TENANTS}/acme/config/history"),
        ("GET", f"{TENANTS}/acme/keys"),
        ("POST", f"{TENANTS}/acme/keys"),
        ("DELETE", f"{TENANTS}/acme/keys/1"),
    ],
)
async def test_every_route_needs_an_admin_token(harness: Harness, method: str, path: str) -> None:
    """No token and a tenant's own API key are 401; nothing is changed either way."""
    response = await harness.client.request(method, path, content=b"{}")
    assert_problem(response, 401)
    response = await harness.client.request(
        method, path, content=b"{}", headers={"Authorization": f"Bearer {harness.key}"}
    )
    assert_problem(response, 401)
    assert harness.tenants.require("acme").is_active
    assert harness.tenants.keys("acme")[0].revoked_at is None


# --- create, read, change, delete --------------------------------------------------------


async def test_a_created_tenant_gets_a_working_key_shown_once(harness: Harness) -> None:
    """201 with the key and Location; the key posts alerts; reads never show it again."""
    response = await harness.client.post(
        TENANTS,
        json={"id": "initech", "config": {"slack_channel": "#initech", "locale": "de_DE"}},
        headers=ADMIN,
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"{TENANTS}/initech"
    body = response.json()
    key = body["api_key"]["key"]
    assert body["tenant"]["status"] == "active"
    assert body["config_version"] == 1
    assert key.startswith(body["api_key"]["prefix"])

    posted = await harness.post(ALERTMANAGER, ALERTMANAGER.firing("DiskFull"), key=key)
    assert posted.status_code == 202, posted.text
    assert posted.json()["tenant"] == "initech"

    shown = await harness.client.get(f"{TENANTS}/initech", headers=ADMIN)
    assert shown.status_code == 200
    assert shown.headers["etag"] == '"1"'
    assert shown.json()["config"]["locale"] == "de_DE"
    assert [k["prefix"] for k in shown.json()["api_keys"]] == [body["api_key"]["prefix"]]
    for read in (shown, await harness.client.get(f"{TENANTS}/initech/keys", headers=ADMIN)):
        assert_no_secret(read.text, key)
    listed = await harness.client.get(TENANTS, headers=ADMIN)
    assert [t["id"] for t in listed.json()["tenants"]] == ["acme", "initech"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{not json", 400, None),
        (b"[]", 422, None),
        (b'{"name": "no id"}', 422, "id"),
        (b'{"id": "Acme Corp"}', 422, "id"),
        (b'{"id": 7}', 422, "id"),
        (b'{"id": "initech", "config": []}', 422, "config"),
        (b'{"id": "initech", "config": {"slack_channel": "no-hash"}}', 422, "slack_channel"),
        (b'{"id": "initech", "config": {"alert_threshold": "loud"}}', 422, "alert_threshold"),
        (b'{"id": "acme", "config": {"slack_channel": "#x"}}', 409, None),
    ],
)
async def test_a_bad_creation_is_a_problem_and_creates_nothing(
    harness: Harness, body: bytes, status: int, field: str | None
) -> None:
    response = await harness.client.post(
        TENANTS, content=body, headers={**ADMIN, "Content-Type": "application/json"}
    )
    problem = assert_problem(response, status)
    if field is not None:
        assert field in [e["field"] for e in problem["errors"]]
    assert [t.id for t in harness.tenants.all()] == ["acme"]


async def test_a_body_over_the_limit_is_413(open_service: OpenService) -> None:
    harness = await open_service(SERVER__MAX_BODY_BYTES="1024")
    response = await harness.client.post(
        TENANTS, json={"id": "initech", "name": "x" * 2000}, headers=ADMIN
    )
    assert_problem(response, 413)
    assert harness.tenants.get("initech") is None


async def test_of_two_updates_based_on_one_version_the_second_is_412(harness: Harness) -> None:
    """The ETag of a read is the version; a stale If-Match is refused and applies nothing."""
    await create(harness, "initech")
    etag = (await harness.client.get(f"{TENANTS}/initech/config", headers=ADMIN)).headers["etag"]

    first = await patch_config(harness, "initech", {"slack_channel": "#first"}, if_match=etag)
    second = await patch_config(harness, "initech", {"slack_channel": "#second"}, if_match=etag)

    assert first.status_code == 200, first.text
    assert first.headers["etag"] == '"2"'
    problem = assert_problem(second, 412)
    assert problem["current_version"] == 2
    config = (await harness.client.get(f"{TENANTS}/initech/config", headers=ADMIN)).json()
    assert config["config"]["slack_channel"] == "#first"
    history = (await harness.client.get(f"{TENANTS}/initech/config/history", headers=ADMIN)).json()
    assert [v["version"] for v in history["versions"]] == [2, 1]
    assert history["versions"][0]["author"] == "api:ingest-tests"


async def test_concurrent_updates_without_if_match_all_land_in_order(harness: Harness) -> None:
    """Without If-Match each patch is applied on top of the last: none is lost or refused."""
    await create(harness, "initech")
    patches = [{"routes": None, "locale": locale} for locale in ("de_DE", "es_ES", "it_IT")]
    answers = await asyncio.gather(*(patch_config(harness, "initech", p) for p in patches))
    assert all(a.status_code in (200, 409) for a in answers), [a.text for a in answers]
    applied = [a for a in answers if a.status_code == 200]
    history = (await harness.client.get(f"{TENANTS}/initech/config/history", headers=ADMIN)).json()
    assert len(history["versions"]) == 1 + len(applied)


@pytest.mark.parametrize(
    ("patch", "status", "field"),
    [
        (b"{oops", 400, None),
        (b'"text"', 422, None),
        (b'{"alert_threshold": "loud"}', 422, "alert_threshold"),
        (b'{"slack_channel": 5}', 422, "slack_channel"),
        (b'{"routes": [{"channel": "#x", "matchers": ["severity=~("]}]}', 422, None),
        (b'{"no_such_key": 1}', 422, "no_such_key"),
    ],
)
async def test_a_bad_patch_is_a_problem_and_changes_nothing(
    harness: Harness, patch: bytes, status: int, field: str | None
) -> None:
    await create(harness, "initech")
    response = await patch_config(harness, "initech", patch)
    problem = assert_problem(response, status)
    if field is not None:
        assert any(e["field"].startswith(field) for e in problem["errors"]), problem
    config = (await harness.client.get(f"{TENANTS}/initech/config", headers=ADMIN)).json()
    assert (config["version"], config["config"]["slack_channel"]) == (1, "#initech")


async def test_a_bad_if_match_is_400(harness: Harness) -> None:
    await create(harness, "initech")
    response = await patch_config(harness, "initech", {"locale": "de_DE"}, if_match="yesterday")
    assert_problem(response, 400)


async def test_a_token_in_a_patch_is_stored_and_never_answered(harness: Harness) -> None:
    await create(harness, "initech")
    response = await patch_config(harness, "initech", {"slack_bot_token": TOKEN})
    assert response.status_code == 200, response.text
    assert_no_secret(response.text, TOKEN)
    for path in ("", "/config", "/config/history"):
        read = await harness.client.get(f"{TENANTS}/initech{path}", headers=ADMIN)
        assert read.status_code == 200
        assert_no_secret(read.text, TOKEN)
    effective = harness.runtime.effective("initech").tenant.slack_bot_token
    assert effective is not None
    assert effective.get_secret_value() == TOKEN


async def test_disabling_refuses_the_tenants_alerts_and_enabling_accepts_them(
    open_service: OpenService,
) -> None:
    harness = await open_service(INGEST__KEY_CACHE_SECONDS="0.001")
    answer = await harness.client.patch(
        f"{TENANTS}/acme", json={"status": "disabled"}, headers=ADMIN
    )
    assert answer.json()["tenant"]["status"] == "disabled"
    await asyncio.sleep(0.01)
    assert_problem(await harness.post(ALERTMANAGER, ALERTMANAGER.firing("A")), 403)

    await harness.client.patch(
        f"{TENANTS}/acme", json={"status": "active", "name": "Acme Corp"}, headers=ADMIN
    )
    await asyncio.sleep(0.01)
    assert (await harness.post(ALERTMANAGER, ALERTMANAGER.firing("A"))).status_code == 202
    assert harness.tenants.require("acme").name == "Acme Corp"


@pytest.mark.parametrize(
    "body",
    [b"{}", b'{"status": "paused"}', b'{"config": {}}', b'{"name": ""}', b"[1]"],
)
async def test_a_bad_tenant_change_is_refused(harness: Harness, body: bytes) -> None:
    response = await harness.client.patch(
        f"{TENANTS}/acme", content=body, headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422)
    assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON
    assert harness.tenants.require("acme").is_active


async def test_unknown_tenants_are_404(harness: Harness) -> None:
    for method, path in (
        ("GET", "/nobody"),
        ("GET", "/nobody/config"),
        ("GET", "/nobody/config/history"),
        ("GET", "/nobody/keys"),
        ("DELETE", "/nobody"),
        ("DELETE", "/nobody/keys/1"),
        ("GET", "/Not%20An%20Id"),
    ):
        response = await harness.client.request(method, f"{TENANTS}{path}", headers=ADMIN)
        assert_problem(response, 404)
    response = await patch_config(harness, "nobody", {"locale": "de_DE"})
    assert_problem(response, 404)


async def test_delete_removes_the_tenant_and_its_keys_stop_working(
    open_service: OpenService,
) -> None:
    harness = await open_service(INGEST__KEY_CACHE_SECONDS="0.001")
    initech = await create(harness, "initech")
    deleted = await harness.client.delete(f"{TENANTS}/initech", headers=ADMIN)
    assert deleted.status_code == 200
    assert deleted.json()["removed"]["api_keys"] == 1
    await asyncio.sleep(0.01)
    refused = await harness.post(
        ALERTMANAGER, ALERTMANAGER.firing("A"), key=initech["api_key"]["key"]
    )
    assert_problem(refused, 401)
    assert_problem(await harness.client.get(f"{TENANTS}/initech", headers=ADMIN), 404)
    assert (await harness.post(ALERTMANAGER, ALERTMANAGER.firing("A"))).status_code == 202


# --- keys --------------------------------------------------------------------------------


async def test_keys_are_created_listed_and_revoked(open_service: OpenService) -> None:
    harness = await open_service(INGEST__KEY_CACHE_SECONDS="0.001")
    created = await harness.client.post(
        f"{TENANTS}/acme/keys", json={"label": "rotation"}, headers=ADMIN
    )
    assert created.status_code == 201
    new = created.json()["api_key"]
    assert (
        await harness.post(ALERTMANAGER, ALERTMANAGER.firing("A"), key=new["key"])
    ).status_code == 202

    listed = (await harness.client.get(f"{TENANTS}/acme/keys", headers=ADMIN)).json()["api_keys"]
    assert [k["label"] for k in listed] == ["test", "rotation"]
    assert_no_secret(json.dumps(listed), new["key"], harness.key)

    revoked = await harness.client.delete(f"{TENANTS}/acme/keys/{new['id']}", headers=ADMIN)
    assert revoked.status_code == 204
    await asyncio.sleep(0.01)
    assert_problem(await harness.post(ALERTMANAGER, ALERTMANAGER.firing("B"), key=new["key"]), 401)
    again = await harness.client.delete(f"{TENANTS}/acme/keys/{new['id']}", headers=ADMIN)
    assert_problem(again, 404)


async def test_a_tenants_key_cannot_be_revoked_through_another_tenant(harness: Harness) -> None:
    await create(harness, "initech")
    acme_key = harness.tenants.keys("acme")[0]
    response = await harness.client.delete(f"{TENANTS}/initech/keys/{acme_key.id}", headers=ADMIN)
    assert_problem(response, 404)
    assert harness.tenants.keys("acme")[0].revoked_at is None


# --- any body ----------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(patch=JSON_VALUES)
async def test_any_patch_is_applied_or_refused_never_an_error_of_ours(
    harness: Harness, patch: Any
) -> None:
    """Whatever the body, the answer is 200 or a 4xx problem; the stored version is valid."""
    response = await patch_config(harness, "acme", patch)
    assert response.status_code in (200, 400, 404, 409, 422), response.text
    if response.status_code != 200:
        assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON
    harness.runtime.effective("acme")  # whatever was stored still validates


# --- usage -------------------------------------------------------------------------------


async def test_usage_counts_accepted_alerts_and_not_an_ha_copy(harness: Harness) -> None:
    """Each accepted request is a call; its alerts count once, a replica's copy not again."""
    payload = ALERTMANAGER.firing("DiskFull")
    alerts = len(payload["alerts"])
    for _ in range(2):  # the second is the other Alertmanager replica's copy
        assert (await harness.post(ALERTMANAGER, payload)).status_code == 202
    assert (await harness.post(ALERTMANAGER, ALERTMANAGER.firing("CpuHigh"))).status_code == 202

    response = await harness.client.get(f"{TENANTS}/acme/usage", headers=ADMIN)

    assert response.status_code == 200, response.text
    body = response.json()
    today = body["to"]
    assert body["days"] == [
        {
            "day": today,
            "alerts_received": 2 * alerts,
            "messages_sent": 0,
            "messages_held": 0,
            "dead_letters": 0,
            "api_calls": 3,
        }
    ]
    assert body["totals"]["api_calls"] == 3
    assert body["from"] == today[:8] + "01"


async def test_usage_of_a_past_period_is_empty_and_other_tenants_are_apart(
    harness: Harness,
) -> None:
    await create(harness, "initech")
    assert (await harness.post(ALERTMANAGER, ALERTMANAGER.firing("A"))).status_code == 202
    past = await harness.client.get(
        f"{TENANTS}/acme/usage", params={"from": "2020-01-01", "to": "2020-01-31"}, headers=ADMIN
    )
    assert past.json()["days"] == []
    other = await harness.client.get(f"{TENANTS}/initech/usage", headers=ADMIN)
    assert other.json()["days"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"from": "yesterday"},
        {"to": "2026-13-01"},
        {"from": "2026-11-10", "to": "2026-11-01"},
        {"from": "2020-01-01", "to": "2026-01-01"},
    ],
)
async def test_a_bad_usage_period_is_422(harness: Harness, params: dict[str, str]) -> None:
    response = await harness.client.get(f"{TENANTS}/acme/usage", params=params, headers=ADMIN)
    assert_problem(response, 422)


async def test_usage_of_an_unknown_tenant_is_404(harness: Harness) -> None:
    assert_problem(await harness.client.get(f"{TENANTS}/nobody/usage", headers=ADMIN), 404)


async def test_usage_of_a_priced_plan_has_amounts_in_the_tenants_currency_and_locale(
    open_service: OpenService,
) -> None:
    prices = {"standard": {"currency": "EUR", "unit_prices": {"alerts_received": "0.25"}}}
    harness = await open_service(TENANTS__PRICES=json.dumps(prices))
    await create(harness, "initech", locale="en_US")
    initech_key, _ = harness.new_key("initech")
    payload = ALERTMANAGER.firing("DiskFull")
    assert (await harness.post(ALERTMANAGER, payload, key=initech_key)).status_code == 202

    body = (await harness.client.get(f"{TENANTS}/initech/usage", headers=ADMIN)).json()

    alerts = len(payload["alerts"])
    assert body["amounts"]["currency"] == "EUR"
    assert body["amounts"]["lines"] == [
        {
            "metric": "alerts_received",
            "count": alerts,
            "unit_price": "0.25",
            "amount": f"{alerts * 0.25:.2f}",
            "formatted": f"€{alerts * 0.25:.2f}",
        }
    ]
    assert body["amounts"]["total_formatted"] == f"€{alerts * 0.25:.2f}"
    unpriced = await open_service()
    assert (
        "amounts" not in (await unpriced.client.get(f"{TENANTS}/acme/usage", headers=ADMIN)).json()
    )


async def test_admin_calls_about_a_tenant_beyond_its_quota_are_429(
    open_service: OpenService,
) -> None:
    """The quota's call is refused with its name and Retry-After; other tenants go on."""
    harness = await open_service(TENANTS__DEFAULTS__QUOTAS='{"admin_calls_per_minute": 3}')
    minute_start = 1_795_701_780.0
    harness.service.quotas = MemoryQuotaCounter(lambda: minute_start + 45)
    await create(harness, "initech")
    for _ in range(3):
        assert (await harness.client.get(f"{TENANTS}/acme", headers=ADMIN)).status_code == 200

    refused = await harness.client.get(f"{TENANTS}/acme/keys", headers=ADMIN)

    problem = assert_problem(refused, 429)
    assert problem["quota"] == "admin_calls_per_minute"
    assert refused.headers["retry-after"] == "15"
    assert (await harness.client.get(f"{TENANTS}/initech", headers=ADMIN)).status_code == 200
    assert (await harness.client.get(TENANTS, headers=ADMIN)).status_code == 200
    exceeded = (await harness.metrics())["slack_tools_quota_exceeded_total"]
    assert ({"tenant": "acme", "quota": "admin_calls_per_minute"}, 1.0) in exceeded


# --- isolation sweep ---------------------------------------------------------------------

ALPHA_TOKEN = "xoxb-8888888888-alpha-tenant-token"
BETA_TOKEN = "xoxb-9999999999-beta-tenant-token"


def _without_last_use(body: dict[str, Any]) -> dict[str, Any]:
    """A tenant's state, less the last-use times (recorded in batches, on their own)."""
    for key in body.get("api_keys", []):
        key.pop("last_used_at", None)
    return body


@pytest.mark.parametrize("isolation", ["logical", "partial"])
async def test_calls_for_one_tenant_never_show_or_change_another(
    database_url: str, master_keys: str, open_service: OpenService, isolation: str
) -> None:
    """Every admin call about alpha, on each backend and mode, leaves beta exactly as it was."""
    harness = await open_service(
        database_url=database_url, environ={"SLACK_TOOLS_MASTER_KEYS": master_keys}
    )
    keys = {}
    for tenant, token in (("alpha", ALPHA_TOKEN), ("beta", BETA_TOKEN)):
        body = await create(harness, tenant, isolation=isolation, slack_bot_token=token)
        keys[tenant] = body["api_key"]["key"]
        posted = await harness.post(ALERTMANAGER, ALERTMANAGER.firing(tenant), key=keys[tenant])
        assert posted.status_code == 202

    async def beta() -> list[dict[str, Any]]:
        return [
            _without_last_use(
                (await harness.client.get(f"{TENANTS}/beta{path}", headers=ADMIN)).json()
            )
            for path in ("", "/config", "/config/history", "/keys", "/usage")
        ]

    before = await beta()
    alpha_key_id = (await harness.client.get(f"{TENANTS}/alpha/keys", headers=ADMIN)).json()[
        "api_keys"
    ][0]["id"]
    calls: list[tuple[str, str, dict[str, str] | None]] = [
        ("GET", "", None),
        ("GET", "/config", None),
        ("PATCH", "/config", {"locale": "de_DE", "slack_bot_token": ALPHA_TOKEN + "-2"}),
        ("GET", "/config/history", None),
        ("POST", "/keys", {"label": "more"}),
        ("DELETE", f"/keys/{alpha_key_id}", None),
        ("GET", "/keys", None),
        ("GET", "/usage", None),
        ("PATCH", "", {"status": "disabled"}),
        ("DELETE", "", None),
    ]
    for method, path, payload in calls:
        response = await harness.client.request(
            method, f"{TENANTS}/alpha{path}", json=payload, headers=ADMIN
        )
        assert response.status_code < 300, (method, path, response.text)
        assert "beta" not in response.text
        assert_no_secret(response.text, BETA_TOKEN, keys["beta"], ALPHA_TOKEN)
        assert await beta() == before, (method, path)
    beta_token = harness.runtime.effective("beta").tenant.slack_bot_token
    assert beta_token is not None
    assert beta_token.get_secret_value() == BETA_TOKEN
