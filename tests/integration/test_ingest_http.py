"""The HTTP API in process over httpx's ASGI transport: ingest, errors, flood, health, admin.

The service runs for real (writer thread, dispatcher, SQLite outbox); only the
lifespan is driven by hand, because the ASGI transport does not run it. In dev
the dispatcher sends to an unreachable fake, so these tests never look at
delivery: they pin what the ingest answers and what it committed.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from slack_tools.alerts import sources
from slack_tools.alerts.models import Source
from slack_tools.configs import ConfigRuntime
from slack_tools.configs.security import new_api_key
from slack_tools.configs.security.audit import AuditLog
from slack_tools.service.app import create_app
from slack_tools.service.container import Service, build_service
from slack_tools.service.ingest import group_merger
from slack_tools.storage.database import write_transaction
from slack_tools.storage.delivery import TargetWrite, bury, claim, write_group
from slack_tools.storage.tables import alert_groups, deliveries
from slack_tools.storage.tenants import TenantStatus, TenantStore
from tests.helpers import JWT_SECRET_VARIABLE, TEST_JWT_SECRET, assert_no_secret, issue_test_token

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ADMIN_TOKEN = issue_test_token(subject="ingest-tests")
TENANT = "acme"
OTHER = "globex"
PROBLEM_JSON = "application/problem+json"
JSON = "application/json"
DEADLINE = 15.0
# Secret-looking strings placed in payloads: no answer may repeat them.
PAYLOAD_SECRETS = (
    "xoxb-2911223344-5566778899-AbCdEfGhIjKlMnOpQrStUvWx",
    "stk_c2VjcmV0LXNob3VsZC1uZXZlci1iZS1lY2hvZWQ",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl",
)


# --- payloads, one table row per endpoint ------------------------------------------------


def _sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


def _webhook(sample: str, group: str, *, resolved: bool) -> dict[str, Any]:
    """A sample webhook turned into group ``group``, firing or resolved."""
    payload = _sample(sample)
    status = "resolved" if resolved else "firing"
    payload["groupKey"] = f'{{}}:{{alertname="{group}"}}'
    payload["groupLabels"] = {"alertname": group}
    payload["commonLabels"] = {**payload["commonLabels"], "alertname": group}
    payload["status"] = status
    for alert in payload["alerts"]:
        alert["status"] = status
        alert["labels"] = {**alert["labels"], "alertname": group}
        if resolved:
            alert["endsAt"] = "2026-11-26T15:00:00Z"
    return payload


def _generic(group: str, *, resolved: bool) -> dict[str, Any]:
    """A generic notification of one alert named ``group``."""
    return {
        "alerts": [
            {
                "labels": {"alertname": group, "severity": "critical", "service": "api"},
                "annotations": {"summary": f"{group} on api"},
                "status": "resolved" if resolved else "firing",
                "startsAt": "2026-11-26T14:03:12Z",
                **({"endsAt": "2026-11-26T15:00:00Z"} if resolved else {}),
            }
        ]
    }


@dataclass(frozen=True)
class Endpoint:
    """One alert endpoint: where it is, what a valid body looks like, how it refuses a flood."""

    name: str
    path: str
    source: Source
    flood_status: int
    build: Callable[[str, bool], Any]

    def firing(self, group: str) -> Any:
        return self.build(group, False)

    def resolved(self, group: str) -> Any:
        return self.build(group, True)

    def __str__(self) -> str:
        return self.name


ALERTMANAGER = Endpoint(
    "alertmanager",
    "/api/v1/alerts/alertmanager",
    Source.ALERTMANAGER,
    503,
    lambda group, resolved: _webhook("alertmanager-webhook-v4.json", group, resolved=resolved),
)
GRAFANA = Endpoint(
    "grafana",
    "/api/v1/alerts/grafana",
    Source.GRAFANA,
    503,
    lambda group, resolved: _webhook("grafana-webhook-v1.json", group, resolved=resolved),
)
GENERIC = Endpoint(
    "generic",
    "/api/v1/alerts",
    Source.GENERIC,
    429,
    lambda group, resolved: _generic(group, resolved=resolved),
)
ENDPOINTS = [pytest.param(e, id=e.name) for e in (ALERTMANAGER, GRAFANA, GENERIC)]


def encode(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


# --- the service under test --------------------------------------------------------------


@dataclass
class Harness:
    """A started service, an HTTP client on its app, and tenant ``acme`` with one API key."""

    service: Service
    runtime: ConfigRuntime
    client: httpx.AsyncClient
    tenants: TenantStore
    key: str
    closed: bool = False

    @property
    def engine(self) -> Engine:
        return self.runtime.database.engine

    @property
    def secrets(self) -> tuple[str, ...]:
        return (*PAYLOAD_SECRETS, self.key, ADMIN_TOKEN)

    def new_key(self, tenant: str = TENANT) -> tuple[str, int]:
        """A fresh API key of ``tenant`` (creating the tenant if needed) and its id."""
        if self.tenants.get(tenant) is None:
            self.tenants.create(tenant, tenant.title())
        key = new_api_key()
        record = self.tenants.add_key(tenant, digest=key.digest, prefix=key.prefix, label="test")
        return key.key, record.id

    async def post(
        self,
        endpoint: Endpoint | str,
        body: Any,
        *,
        key: str | None = None,
        content_type: str | None = JSON,
        authorization: str | None = None,
    ) -> httpx.Response:
        """POST ``body`` (bytes, an async iterator, or JSON) as tenant ``acme`` unless told."""
        headers: dict[str, str] = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if authorization is not None:
            headers["Authorization"] = authorization
        else:
            headers["Authorization"] = f"Bearer {key or self.key}"
        path = endpoint.path if isinstance(endpoint, Endpoint) else endpoint
        content = body if hasattr(body, "__aiter__") else encode(body)
        return await self.client.post(path, content=content, headers=headers)

    async def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """Every sample of /metrics by sample name."""
        response = await self.client.get("/metrics")
        assert response.status_code == 200
        found: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                found.setdefault(sample.name, []).append((sample.labels, sample.value))
        return found

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self.service.close(1.0)
        await self.client.aclose()


OpenService = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def open_service(
    make_runtime: Callable[..., ConfigRuntime],
) -> AsyncIterator[OpenService]:
    """Start services with given settings (``INGEST__FLOOD_BURST="2"``…); closed afterwards."""
    opened: list[Harness] = []

    async def start(
        *,
        jwt_secret: str | None = TEST_JWT_SECRET,
        database_url: str | None = None,
        environ: dict[str, str] | None = None,
        **settings: str,
    ) -> Harness:
        extra = {f"SLACK_TOOLS__{name}": value for name, value in settings.items()}
        extra.update(environ or {})
        if jwt_secret is not None:
            extra[JWT_SECRET_VARIABLE] = jwt_secret
        runtime = make_runtime(extra=extra, database_url=database_url)
        service = build_service(runtime, port=1)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(service)), base_url="http://test"
        )
        tenants = TenantStore(runtime.database.engine)
        harness = Harness(service, runtime, client, tenants, key="")
        harness.key, _ = harness.new_key(TENANT)
        await service.start()
        opened.append(harness)
        return harness

    yield start
    for harness in opened:
        await harness.close()


@pytest.fixture
async def harness(open_service: OpenService) -> Harness:
    """A service with default settings."""
    return await open_service()


# --- assertions and database reads -------------------------------------------------------


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """``response`` is a problem document of ``status`` with type, title and status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert isinstance(body["type"], str)
    assert body["type"]
    assert isinstance(body["title"], str)
    assert body["title"]
    assert body["status"] == status
    return body


def error_fields(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body.get("errors", [])]


def group_row(engine: Engine, tenant: str, group_hash: str) -> Any:
    with engine.connect() as connection:
        return connection.execute(
            sa.select(alert_groups).where(
                alert_groups.c.tenant_id == tenant, alert_groups.c.group_hash == group_hash
            )
        ).first()


def delivery_rows(engine: Engine, tenant: str, group_hash: str) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(deliveries).where(
                    deliveries.c.tenant_id == tenant, deliveries.c.group_hash == group_hash
                )
            )
        )


def outcomes(response: httpx.Response) -> list[str]:
    assert response.status_code == 202, response.text
    return [group["outcome"] for group in response.json()["groups"]]


async def eventually(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after a deadline."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while loop.time() < end:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def sample_value(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float | None:
    for found, value in samples.get(name, []):
        if all(found.get(k) == v for k, v in labels.items()):
            return value
    return None


# --- accepted: 202 once committed ----------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a_new_group_is_queued_and_committed_before_the_answer(
    harness: Harness, endpoint: Endpoint
) -> None:
    """A 202 lists the group as queued, and its row and delivery are already in the database."""
    response = await harness.post(endpoint, endpoint.firing("DiskFull"))

    assert response.status_code == 202, response.text
    assert response.headers["content-type"] == JSON
    body = response.json()
    assert body["status"] == "accepted"
    assert body["tenant"] == TENANT
    [group] = body["groups"]
    assert group["outcome"] == "queued"
    assert group["deliveries"] == 1
    row = group_row(harness.engine, TENANT, group["group"])
    assert row is not None
    assert (row.source, row.status) == (endpoint.source.value, "firing")
    assert len(row.alerts) == body["alerts"]
    [delivery] = delivery_rows(harness.engine, TENANT, group["group"])
    assert delivery.version >= 1


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_the_same_notification_again_is_a_duplicate(
    harness: Harness, endpoint: Endpoint
) -> None:
    """The same group in the same state a second time (an HA copy) is a duplicate, not queued."""
    payload = endpoint.firing("HighErrorRate")
    first = await harness.post(endpoint, payload)
    second = await harness.post(endpoint, payload)

    assert outcomes(first) == ["queued"]
    assert outcomes(second) == ["duplicate"]
    assert second.json()["groups"][0]["deliveries"] == 0
    assert first.json()["groups"][0]["group"] == second.json()["groups"][0]["group"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_the_resolve_of_a_notified_group_is_queued(
    harness: Harness, endpoint: Endpoint
) -> None:
    """A resolve of a group that was queued is queued too and stored as resolved."""
    await harness.post(endpoint, endpoint.firing("CpuHot"))
    response = await harness.post(endpoint, endpoint.resolved("CpuHot"))

    assert outcomes(response) == ["queued"]
    row = group_row(harness.engine, TENANT, response.json()["groups"][0]["group"])
    assert row.status == "resolved"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_the_resolve_of_a_never_posted_group_is_unrouted(
    harness: Harness, endpoint: Endpoint
) -> None:
    """A resolve of a group nobody was told about is stored but unrouted, with no delivery."""
    response = await harness.post(endpoint, endpoint.resolved("NeverFired"))

    assert outcomes(response) == ["unrouted"]
    group = response.json()["groups"][0]["group"]
    assert group_row(harness.engine, TENANT, group).status == "resolved"
    assert delivery_rows(harness.engine, TENANT, group) == []


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_the_key_decides_the_tenant_not_the_payload(
    harness: Harness, endpoint: Endpoint
) -> None:
    """A tenant label in the payload is data: the group is stored for the key's tenant only."""
    other_key, _ = harness.new_key(OTHER)
    payload = endpoint.firing("Shared")
    for alert in payload["alerts"]:
        alert["labels"]["tenant"] = OTHER

    mine = await harness.post(endpoint, payload)
    group = mine.json()["groups"][0]["group"]

    assert mine.json()["tenant"] == TENANT
    assert group_row(harness.engine, TENANT, group) is not None
    assert group_row(harness.engine, OTHER, group) is None
    theirs = await harness.post(endpoint, payload, key=other_key)
    assert theirs.json()["tenant"] == OTHER
    assert outcomes(theirs) == ["queued"]  # not a duplicate of the other tenant's group
    assert group_row(harness.engine, OTHER, group) is not None


async def test_generic_alerts_form_one_group_per_alertname_or_group_key(harness: Harness) -> None:
    """A generic list groups by alertname unless a group_key is given, one outcome per group."""
    body = [
        {"labels": {"alertname": "A", "instance": "1"}},
        {"labels": {"alertname": "A", "instance": "2"}},
        {"labels": {"alertname": "B"}},
        {"labels": {"alertname": "C"}, "group_key": "custom"},
    ]
    response = await harness.post(GENERIC, body)

    assert outcomes(response) == ["queued", "queued", "queued"]
    assert response.json()["alerts"] == 4
    with harness.engine.connect() as connection:
        keys = set(
            connection.execute(
                sa.select(alert_groups.c.group_key).where(alert_groups.c.tenant_id == TENANT)
            ).scalars()
        )
    assert keys == {"generic/A", "generic/B", "custom"}


@pytest.mark.parametrize(
    "content_type", [JSON, "application/json; charset=utf-8", "Application/JSON"]
)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_json_is_accepted_with_parameters_and_in_any_case(
    harness: Harness, endpoint: Endpoint, content_type: str
) -> None:
    """The media type is compared without parameters and case-insensitively."""
    response = await harness.post(endpoint, endpoint.firing("Typed"), content_type=content_type)

    assert response.status_code == 202, response.text


# --- refused: each error, as a problem document ----------------------------------------------


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a_missing_or_wrong_content_type_is_415(
    harness: Harness, endpoint: Endpoint, content_type: str | None
) -> None:
    """Only application/json is accepted: anything else, or nothing, is 415 and stores nothing."""
    response = await harness.post(endpoint, endpoint.firing("Typed"), content_type=content_type)

    assert_problem(response, 415)
    with harness.engine.connect() as connection:
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(alert_groups)).scalar() == 0
        )


BAD_AUTHORIZATION = {
    "missing": None,
    "empty": "",
    "basic scheme": "Basic dXNlcjpwYXNz",
    "bearer without key": "Bearer",
    "bearer with blanks": "Bearer    ",
    "key without scheme": "stk_abcdefghijklmnopqrstuvwxyz0123456789",
    "unknown key": "Bearer stk_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
}


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION.values(), ids=BAD_AUTHORIZATION.keys())
@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_no_or_an_unknown_key_is_401(
    harness: Harness, endpoint: Endpoint, authorization: str | None
) -> None:
    """No key, a malformed Authorization header or an unknown key is 401 with a Bearer challenge."""
    headers: dict[str, str] = {"Content-Type": JSON}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = await harness.client.post(
        endpoint.path, content=encode(endpoint.firing("Anon")), headers=headers
    )

    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert_no_secret(response.text, *harness.secrets)
    assert_no_secret(json.dumps(body), "stk_abcdefghijklmnopqrstuvwxyz0123456789")
    samples = await harness.metrics()
    assert sample_value(samples, "slack_tools_requests_rejected_total", reason="auth") == 1.0


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_the_bearer_scheme_is_case_insensitive(harness: Harness, endpoint: Endpoint) -> None:
    """``bearer`` and ``BEARER`` are the same scheme as ``Bearer`` (RFC 9110)."""
    for scheme in ("bearer", "BEARER"):
        response = await harness.post(
            endpoint, endpoint.firing(f"Scheme{scheme}"), authorization=f"{scheme} {harness.key}"
        )
        assert response.status_code == 202, response.text


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a_revoked_key_is_401_once_the_key_cache_expires(
    open_service: OpenService, endpoint: Endpoint
) -> None:
    """A key revoked after use stops working when its cached lookup expires."""
    harness = await open_service(INGEST__KEY_CACHE_SECONDS="0.2")
    key, key_id = harness.new_key()
    payload = endpoint.firing("Revoked")
    assert (await harness.post(endpoint, payload, key=key)).status_code == 202

    harness.tenants.revoke_key(TENANT, key_id)

    async def refused() -> httpx.Response | None:
        response = await harness.post(endpoint, payload, key=key)
        return response if response.status_code != 202 else None

    response = await eventually(refused, "the revoked key to be refused")
    assert_problem(response, 401)
    assert (await harness.post(endpoint, payload)).status_code == 202  # the other key still works


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a_key_revoked_before_first_use_is_401(harness: Harness, endpoint: Endpoint) -> None:
    """A revoked key is refused at once when it was never looked up before."""
    key, key_id = harness.new_key()
    harness.tenants.revoke_key(TENANT, key_id)

    response = await harness.post(endpoint, endpoint.firing("Revoked"), key=key)

    assert_problem(response, 401)
    assert_no_secret(response.text, key)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a_disabled_tenant_is_403(harness: Harness, endpoint: Endpoint) -> None:
    """A valid key of a disabled tenant is 403 and stores nothing for it."""
    key, _ = harness.new_key(OTHER)
    harness.tenants.set_status(OTHER, TenantStatus.DISABLED)

    response = await harness.post(endpoint, endpoint.firing("Disabled"), key=key)

    body = assert_problem(response, 403)
    assert_no_secret(json.dumps(body), key)
    with harness.engine.connect() as connection:
        stored = connection.execute(
            sa.select(sa.func.count())
            .select_from(alert_groups)
            .where(alert_groups.c.tenant_id == OTHER)
        ).scalar()
    assert stored == 0


BODY_LIMIT = 4096


async def chunks(body: bytes, size: int = 500) -> AsyncIterator[bytes]:
    """``body`` as a streamed request (no Content-Length: chunked transfer)."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def padded(payload: Any, length: int) -> bytes:
    """``payload`` as JSON followed by blanks up to exactly ``length`` bytes."""
    body = encode(payload)
    assert len(body) <= length
    return body + b" " * (length - len(body))


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a_body_over_the_limit_is_413(
    open_service: OpenService, endpoint: Endpoint, streamed: bool
) -> None:
    """One byte over server.max_body_bytes is 413, whether declared or streamed in chunks."""
    harness = await open_service(SERVER__MAX_BODY_BYTES=str(BODY_LIMIT))
    body = padded(endpoint.firing("Big"), BODY_LIMIT + 1)

    response = await harness.post(endpoint, chunks(body) if streamed else body)

    problem = assert_problem(response, 413)
    assert str(BODY_LIMIT) in problem["detail"]
    with harness.engine.connect() as connection:
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(alert_groups)).scalar() == 0
        )


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a_body_of_exactly_the_limit_is_accepted(
    open_service: OpenService, endpoint: Endpoint, streamed: bool
) -> None:
    """A body of exactly server.max_body_bytes is within the limit."""
    harness = await open_service(SERVER__MAX_BODY_BYTES=str(BODY_LIMIT))
    body = padded(endpoint.firing("Fits"), BODY_LIMIT)

    response = await harness.post(endpoint, chunks(body) if streamed else body)

    assert outcomes(response) == ["queued"]


MALFORMED = {
    "empty": b"",
    "truncated object": b'{"version": "4", "alerts": [',
    "trailing comma": b'{"alerts": [],}',
    "not json": b"alerts: [firing]",
    "not utf-8": b'{"status": "\xff\xfe"}',
    "bare word": b"firing",
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_malformed_json_is_400(harness: Harness, endpoint: Endpoint, body: bytes) -> None:
    """A body that is not JSON is 400, a problem document saying so."""
    response = await harness.post(endpoint, body)

    problem = assert_problem(response, 400)
    assert "JSON" in problem["detail"]


def _set(payload: Any, path: tuple[str | int, ...], value: Any) -> Any:
    changed = copy.deepcopy(payload)
    target = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return changed


def _drop(payload: Any, path: tuple[str | int, ...]) -> Any:
    changed = copy.deepcopy(payload)
    target = changed
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return changed


def _schema_cases() -> Iterator[Any]:
    for endpoint in (ALERTMANAGER, GRAFANA):
        sample = endpoint.firing("Schema")
        cases = {
            "empty labels": (_set(sample, ("alerts", 0, "labels"), {}), "alerts.0.labels"),
            "label not a string": (
                _set(sample, ("alerts", 0, "labels", "severity"), 3),
                "alerts.0.labels.severity",
            ),
            "unknown status": (_set(sample, ("status",), "burning"), "status"),
            "alert status": (_set(sample, ("alerts", 0, "status"), "x"), "alerts.0.status"),
            "no alerts": (_set(sample, ("alerts",), []), "alerts"),
            "no group key": (_drop(sample, ("groupKey",)), "groupKey"),
            "bad start time": (
                _set(sample, ("alerts", 0, "startsAt"), "yesterday"),
                "alerts.0.startsAt",
            ),
            "negative truncation": (_set(sample, ("truncatedAlerts",), -1), "truncatedAlerts"),
            "not an object": ([sample], "<body>"),
            "unsupported version": (_set(sample, ("version",), "3"), "version"),
            "future version": (_set(sample, ("version",), "99"), "version"),
            "no version": (_drop(sample, ("version",)), "version"),
        }
        for name, (payload, field) in cases.items():
            yield pytest.param(endpoint, payload, field, id=f"{endpoint.name}-{name}")
    sample = GENERIC.firing("Schema")
    alert = sample["alerts"][0]
    cases = {
        "no alertname": (
            _set(sample, ("alerts", 0, "labels"), {"severity": "critical"}),
            "alerts.0.labels",
        ),
        "empty alertname": (
            _set(sample, ("alerts", 0, "labels", "alertname"), ""),
            "alerts.0.labels",
        ),
        "no alertname in a list": ([{**alert, "labels": {"job": "api"}}], "0.labels"),
        "no labels": ([{"annotations": {"summary": "x"}}], "0.labels"),
        "unknown status": (_set(sample, ("alerts", 0, "status"), "burning"), "alerts.0.status"),
        "annotation not a string": (
            _set(sample, ("alerts", 0, "annotations", "n"), 1),
            "alerts.0.annotations.n",
        ),
        "no alerts": ([], "<body>"),
        "empty alerts": ({"alerts": []}, "alerts"),
        "no alerts member": ({"items": [alert]}, "alerts"),
        "bad end time": (_set(sample, ("alerts", 0, "endsAt"), "soon"), "alerts.0.endsAt"),
    }
    for name, (payload, field) in cases.items():
        yield pytest.param(GENERIC, payload, field, id=f"generic-{name}")


@pytest.mark.parametrize(("endpoint", "payload", "field"), list(_schema_cases()))
async def test_a_schema_error_is_422_naming_the_field(
    harness: Harness, endpoint: Endpoint, payload: Any, field: str
) -> None:
    """Valid JSON that is not a valid payload is 422, naming each bad field, storing nothing."""
    response = await harness.post(endpoint, payload)

    problem = assert_problem(response, 422)
    assert field in error_fields(problem), problem
    with harness.engine.connect() as connection:
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(alert_groups)).scalar() == 0
        )


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a_schema_error_does_not_echo_the_values(
    harness: Harness, endpoint: Endpoint
) -> None:
    """A 422 names fields, never the values that were wrong (they may be secrets)."""
    secret = PAYLOAD_SECRETS[0]
    payload = endpoint.firing("Leak")
    payload["alerts"][0]["labels"]["token"] = secret
    payload["alerts"][0]["annotations"]["token"] = secret
    payload["alerts"][0]["status"] = secret

    response = await harness.post(endpoint, payload)

    problem = assert_problem(response, 422)
    assert "alerts.0.status" in error_fields(problem)
    assert_no_secret(response.text, *harness.secrets)


# --- flood limit -------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_beyond_the_flood_burst_senders_are_told_to_retry(
    open_service: OpenService, endpoint: Endpoint
) -> None:
    """Past the burst: 503 for Alertmanager and Grafana, 429 for generic, with Retry-After."""
    harness = await open_service(INGEST__FLOOD_REQUESTS_PER_SECOND="0.01", INGEST__FLOOD_BURST="2")
    payload = endpoint.firing("Flood")
    accepted = [await harness.post(endpoint, payload) for _ in range(2)]
    refused = await harness.post(endpoint, payload)

    assert [r.status_code for r in accepted] == [202, 202]
    body = assert_problem(refused, endpoint.flood_status)
    assert body.get("limit") == "flood"
    retry_after = refused.headers["retry-after"]
    assert retry_after.isdigit()
    assert int(retry_after) >= 1
    samples = await harness.metrics()
    rejected = sample_value(
        samples, "slack_tools_requests_rejected_total", tenant=TENANT, reason="flood"
    )
    assert rejected == 1.0


async def test_the_flood_limit_is_per_tenant(open_service: OpenService) -> None:
    """One tenant over its flood limit does not refuse another tenant's requests."""
    harness = await open_service(INGEST__FLOOD_REQUESTS_PER_SECOND="0.01", INGEST__FLOOD_BURST="1")
    other_key, _ = harness.new_key(OTHER)
    assert (await harness.post(GENERIC, GENERIC.firing("A"))).status_code == 202
    assert_problem(await harness.post(GENERIC, GENERIC.firing("B")), 429)

    response = await harness.post(GENERIC, GENERIC.firing("A"), key=other_key)

    assert outcomes(response) == ["queued"]


# --- nothing accepted is lost --------------------------------------------------------------


async def test_bad_requests_among_good_ones_lose_nothing_accepted(
    open_service: OpenService,
) -> None:
    """Good and bad requests sent together: every 202 is committed, every bad one refused alone."""
    harness = await open_service(SERVER__MAX_BODY_BYTES="16384")
    good = [
        (endpoint, endpoint.firing(f"Good{endpoint.name}{n}"))
        for n in range(6)
        for endpoint in (ALERTMANAGER, GRAFANA, GENERIC)
    ]
    bad: list[tuple[Endpoint, Any, dict[str, str], int]] = []
    for endpoint in (ALERTMANAGER, GRAFANA, GENERIC):
        sample = endpoint.firing("Bad")
        bad += [
            (endpoint, b'{"alerts": [', {}, 400),
            (endpoint, _set(sample, ("alerts",), []), {}, 422),
            (endpoint, sample, {"content_type": "text/plain"}, 415),
            (endpoint, sample, {"key": "stk_nope"}, 401),
            (endpoint, padded(sample, 20000), {}, 413),
        ]
    calls: list[Awaitable[httpx.Response]] = []
    for index, (endpoint, payload) in enumerate(good):
        bad_endpoint, bad_body, options, _ = bad[index % len(bad)]
        calls.append(harness.post(endpoint, payload))
        calls.append(harness.post(bad_endpoint, bad_body, **options))
    responses = await asyncio.gather(*calls)

    good_responses = responses[0::2]
    for response in good_responses:
        assert outcomes(response) == ["queued"]
    for index, response in enumerate(responses[1::2]):
        assert_problem(response, bad[index % len(bad)][3])
    for (endpoint, _), response in zip(good, good_responses, strict=True):
        group = response.json()["groups"][0]["group"]
        row = group_row(harness.engine, TENANT, group)
        assert row is not None, f"an accepted {endpoint} group is missing"
        assert len(delivery_rows(harness.engine, TENANT, group)) == 1
    with harness.engine.connect() as connection:
        stored = connection.execute(sa.select(sa.func.count()).select_from(alert_groups)).scalar()
    assert stored == len(good)


# --- any input: 202, 400 or 422, never 500, never an echoed secret ---------------------------

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    # One service serves every example: building one per example would dominate the run.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
KNOWN_KEYS = (
    "version", "groupKey", "status", "alerts", "labels", "annotations", "alertname",
    "startsAt", "endsAt", "fingerprint", "truncatedAlerts", "group_key", "values",
)  # fmt: skip
strings = st.one_of(
    st.text(max_size=20),
    st.sampled_from(PAYLOAD_SECRETS),
    st.sampled_from(
        ("4", "1", "firing", "resolved", "2026-11-26T14:03:12Z", "0001-01-01T00:00:00Z")
    ),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | strings,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
times = st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat())


def paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every path to a member or item of ``value``."""
    found: list[tuple[str | int, ...]] = []
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in items:
        found.append((*prefix, key))
        found += paths(child, (*prefix, key))
    return found


def assert_never_an_error_of_ours(harness: Harness, response: httpx.Response) -> None:
    """202, 400 or 422; a refusal is a problem document; no secret comes back either way."""
    event(f"HTTP {response.status_code}")
    assert response.status_code in (202, 400, 422), response.text
    if response.status_code != 202:
        assert_problem(response, response.status_code)
    assert_no_secret(response.text, *harness.secrets)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@SETTINGS
@given(value=json_values)
async def test_any_json_value_is_answered_without_a_server_error(
    harness: Harness, endpoint: Endpoint, value: Any
) -> None:
    """Any JSON document gets 202, 400 or 422 — never 500 — and never has a secret echoed."""
    response = await harness.post(endpoint, value)

    assert_never_an_error_of_ours(harness, response)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@SETTINGS
@given(
    head=st.binary(max_size=64),
    secret=st.sampled_from(PAYLOAD_SECRETS),
    tail=st.binary(max_size=64),
)
async def test_any_bytes_are_answered_without_a_server_error(
    harness: Harness, endpoint: Endpoint, head: bytes, secret: str, tail: bytes
) -> None:
    """Any bytes, with a secret inside, get 202, 400 or 422 — never 500, never the secret back."""
    response = await harness.post(endpoint, head + secret.encode() + tail)

    assert_never_an_error_of_ours(harness, response)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@SETTINGS
@given(data=st.data())
async def test_a_valid_payload_with_any_member_changed_is_answered_cleanly(
    harness: Harness, endpoint: Endpoint, data: st.DataObject
) -> None:
    """A sample with one member replaced or removed gets 202, 400 or 422, never a server error."""
    sample = endpoint.firing("Mutant")
    path = data.draw(st.sampled_from(paths(sample)), label="path")
    if data.draw(st.booleans(), label="remove") and not isinstance(path[-1], int):
        payload = _drop(sample, path)
    else:
        payload = _set(sample, path, data.draw(json_values | times, label="value"))

    response = await harness.post(endpoint, payload)

    assert_never_an_error_of_ours(harness, response)
    if response.status_code == 202:
        for group in response.json()["groups"]:
            assert group_row(harness.engine, TENANT, group["group"]) is not None


# --- health ------------------------------------------------------------------------------


async def test_live_answers_ok(harness: Harness) -> None:
    """/health/live answers 200 while the process runs."""
    response = await harness.client.get("/health/live")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def ready(harness: Harness) -> httpx.Response | None:
    response = await harness.client.get("/health/ready")
    return response if response.status_code == 200 else None


async def test_ready_reports_database_dispatcher_and_workspaces(harness: Harness) -> None:
    """/health/ready is 200 with the database, the dispatcher and the Slack workspaces reported."""
    response = await eventually(lambda: ready(harness), "readiness")

    body = response.json()
    assert body["status"] == "ok"
    checks = body["checks"]
    assert checks["database"]["status"] == "ok"
    assert checks["database"]["backend"] == "sqlite"
    assert checks["dispatcher"] == {"status": "ok"}
    assert isinstance(checks["slack_workspaces"], dict)
    assert checks["config"]["outcome"] in ("applied", "unchanged")


async def test_an_open_breaker_is_reported_without_failing_readiness(harness: Harness) -> None:
    """A workspace whose breaker is open shows as open, and the instance stays ready."""
    await eventually(lambda: ready(harness), "readiness")
    breaker = harness.service.dispatcher.breakers.get("T-broken-workspace")
    while breaker.state.value != "open":
        breaker.record_failure()

    response = await harness.client.get("/health/ready")

    assert response.status_code == 200, response.text
    workspace = response.json()["checks"]["slack_workspaces"]["T-broken-workspace"]
    assert workspace["state"] == "open"
    assert workspace["failure_rate"] == 1.0


async def test_ready_fails_once_the_dispatcher_has_stopped(harness: Harness) -> None:
    """Without a running dispatcher the instance is not ready: 503 naming the dispatcher."""
    await eventually(lambda: ready(harness), "readiness")
    await harness.service.close(1.0)
    harness.closed = True

    response = await harness.client.get("/health/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["dispatcher"] == {"status": "stopped"}
    assert body["checks"]["database"]["status"] == "ok"


# --- admin -------------------------------------------------------------------------------

ADMIN_ROUTES = [
    pytest.param("GET", "/admin/config/status", None, id="config-status"),
    pytest.param("POST", "/admin/config/reload", None, id="config-reload"),
    pytest.param("GET", "/admin/deadletters", None, id="deadletters"),
    pytest.param("POST", "/admin/deadletters/replay", {}, id="deadletters-replay"),
]


async def admin(
    harness: Harness, method: str, path: str, body: Any = None, token: str | None = ADMIN_TOKEN
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await harness.client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
async def test_admin_routes_need_a_token(
    harness: Harness, method: str, path: str, body: Any
) -> None:
    """Without a bearer token every admin route is 401 with a Bearer challenge."""
    for authorization in (None, f"Basic {ADMIN_TOKEN}", "Bearer"):
        headers = {"Authorization": authorization} if authorization is not None else {}
        response = await harness.client.request(method, path, json=body, headers=headers)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
        assert_no_secret(response.text, ADMIN_TOKEN)


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
async def test_admin_routes_refuse_a_wrong_token(
    harness: Harness, method: str, path: str, body: Any
) -> None:
    """A bearer that is not a valid admin JWT (a tenant key included) is 401."""
    forged = issue_test_token(secret="another-secret-of-at-least-32-bytes-0123")
    for token in ("not-a-jwt", harness.key, ADMIN_TOKEN[:-1], forged):
        response = await admin(harness, method, path, body, token=token)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert_no_secret(response.text, ADMIN_TOKEN, harness.key, forged)


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
async def test_admin_routes_are_off_when_the_admin_api_is(
    open_service: OpenService, method: str, path: str, body: Any
) -> None:
    """With security.admin_api off, the admin API refuses everyone, a valid token too (403)."""
    harness = await open_service(SECURITY__ADMIN_API="false")

    response = await admin(harness, method, path, body)

    assert_problem(response, 403)


async def test_config_status_reports_the_active_configuration(harness: Harness) -> None:
    """The admin config status names the last reload's outcome and the active hash."""
    response = await admin(harness, "GET", "/admin/config/status")

    assert response.status_code == 200
    body = response.json()
    assert body["outcome"] in ("applied", "unchanged")
    assert body["active_hash"]
    assert body["errors"] == []
    assert_no_secret(response.text, ADMIN_TOKEN)


def add_dead_letter(engine: Engine, tenant: str, name: str, reason: str) -> int:
    """Store a group as ingest does, then claim and bury its delivery in the same transaction."""
    [group] = sources.parse(Source.GENERIC, encode(GENERIC.firing(name)))
    now = datetime.now(UTC)
    with write_transaction(engine) as connection:
        write_group(
            connection,
            tenant_id=tenant,
            group_hash=group.group_hash,
            group_key=group.group_key,
            source=Source.GENERIC.value,
            merge=group_merger(group),
            targets=(TargetWrite("#dead", "en_US", passes_threshold=True),),
            now=now,
        )
        [claimed] = claim(
            connection,
            tenant_id=tenant,
            channel="#dead",
            now=now,
            owner="test",
            lease_until=now + timedelta(seconds=30),
            limit=10,
        )
        bury(connection, [claimed.id], owner="test", reason=reason, now=now)
    return claimed.id


def delivery_state(engine: Engine, delivery_id: int) -> str:
    with engine.connect() as connection:
        state: str = connection.execute(
            sa.select(deliveries.c.state).where(deliveries.c.id == delivery_id)
        ).scalar_one()
    return state


async def test_dead_letters_are_listed_with_their_reason(harness: Harness) -> None:
    """The admin API lists dead letters with tenant, group, channel and reason, by tenant."""
    dead = add_dead_letter(harness.engine, TENANT, "Dead", "channel_not_found")

    response = await admin(harness, "GET", "/admin/deadletters")

    assert response.status_code == 200
    [letter] = response.json()["dead_letters"]
    assert letter["id"] == dead
    assert (letter["tenant"], letter["channel"], letter["reason"]) == (
        TENANT,
        "#dead",
        "channel_not_found",
    )
    assert letter["group_key"] == "generic/Dead"
    mine = await admin(harness, "GET", f"/admin/deadletters?tenant={TENANT}")
    theirs = await admin(harness, "GET", f"/admin/deadletters?tenant={OTHER}")
    assert [d["id"] for d in mine.json()["dead_letters"]] == [dead]
    assert theirs.json()["dead_letters"] == []


async def test_replay_by_id_queues_the_dead_letter_again(harness: Harness) -> None:
    """Replaying a dead letter by id makes it pending again and takes it off the list."""
    dead = add_dead_letter(harness.engine, TENANT, "Dead", "invalid_auth")
    kept = add_dead_letter(harness.engine, TENANT, "AlsoDead", "invalid_auth")

    response = await admin(harness, "POST", "/admin/deadletters/replay", {"ids": [dead]})

    assert (response.status_code, response.json()) == (200, {"replayed": 1})
    assert delivery_state(harness.engine, dead) != "dead"
    assert delivery_state(harness.engine, kept) == "dead"
    listed = await admin(harness, "GET", "/admin/deadletters")
    assert [d["id"] for d in listed.json()["dead_letters"]] == [kept]
    again = await admin(harness, "POST", "/admin/deadletters/replay", {"ids": [dead]})
    assert again.json() == {"replayed": 0}
    entries = AuditLog.of(harness.runtime).list(action="deadletters.replay")
    assert [e.diff["replayed"] for e in reversed(entries)] == [1, 0]
    assert {e.actor_kind for e in entries} == {"token"}


async def test_replay_by_tenant_touches_only_that_tenant(harness: Harness) -> None:
    """Replaying one tenant's dead letters leaves another tenant's dead."""
    harness.new_key(OTHER)
    mine = add_dead_letter(harness.engine, TENANT, "Dead", "is_archived")
    theirs = add_dead_letter(harness.engine, OTHER, "Dead", "is_archived")

    response = await admin(harness, "POST", "/admin/deadletters/replay", {"tenant": TENANT})

    assert response.json() == {"replayed": 1}
    assert delivery_state(harness.engine, mine) != "dead"
    assert delivery_state(harness.engine, theirs) == "dead"


async def test_a_bad_replay_request_is_422_naming_the_field(harness: Harness) -> None:
    """A replay body of the wrong shape is a 422 problem naming the field."""
    response = await admin(harness, "POST", "/admin/deadletters/replay", {"ids": "all"})

    problem = assert_problem(response, 422)
    assert "body.ids" in error_fields(problem)


# --- metrics and other errors ------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_accepted_alerts_are_counted_by_tenant_and_source(
    harness: Harness, endpoint: Endpoint
) -> None:
    """slack_tools_alerts_received_total counts accepted alerts with the tenant label."""
    response = await harness.post(endpoint, endpoint.firing("Counted"))
    alerts = response.json()["alerts"]

    samples = await harness.metrics()

    received = sample_value(
        samples, "slack_tools_alerts_received_total", tenant=TENANT, source=endpoint.source.value
    )
    assert received == alerts


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_request_durations_carry_the_tenant_plan(
    harness: Harness, endpoint: Endpoint
) -> None:
    """Ingest durations carry the tenant's plan as tenant_class, from the first request on."""
    for name in ("First", "Second"):
        assert (await harness.post(endpoint, endpoint.firing(name))).status_code == 202

    samples = await harness.metrics()

    classes = {
        labels["tenant_class"]: value
        for labels, value in samples["slack_tools_request_duration_seconds_count"]
        if labels["route"] == endpoint.path and labels["status"] == "202"
    }
    assert classes == {"standard": 2.0}


async def test_request_durations_of_unauthenticated_requests_have_no_tenant_class(
    harness: Harness,
) -> None:
    """A refused request before authentication is labelled tenant_class="none"."""
    await harness.post(GENERIC, GENERIC.firing("Anon"), authorization="")

    samples = await harness.metrics()

    labels = [
        labels
        for labels, _ in samples["slack_tools_request_duration_seconds_count"]
        if labels["route"] == GENERIC.path
    ]
    assert labels == [
        {"route": GENERIC.path, "method": "POST", "status": "401", "tenant_class": "none"}
    ]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/alerts/alertmanager", 405),
        ("GET", "/api/v1/alerts", 405),
        ("GET", "/api/v1/nothing-here", 404),
    ],
)
async def test_routing_errors_are_problem_documents(
    harness: Harness, method: str, path: str, status: int
) -> None:
    """Unknown paths and wrong methods are problem documents too."""
    response = await harness.client.request(method, path)

    assert_problem(response, status)


# --- the alert endpoints answered before the middleware stack -----------------------------


async def test_an_unexpected_error_while_ingesting_is_a_503_problem_without_its_text(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the ingest path answers 503 + Retry-After, as the app's error handler does."""
    secret = PAYLOAD_SECRETS[0]

    async def broken(*_: object) -> None:
        raise RuntimeError(secret)

    monkeypatch.setattr(harness.service.ingestor, "accept", broken)

    response = await harness.post(GENERIC, GENERIC.firing("Broken"))

    problem = assert_problem(response, 503)
    assert response.headers["retry-after"] == "5"
    assert problem["detail"] == "An unexpected error; retry later."
    assert_no_secret(response.text, secret)
    samples = await harness.metrics()
    statuses = [
        labels["status"]
        for labels, _ in samples["slack_tools_request_duration_seconds_count"]
        if labels["route"] == GENERIC.path
    ]
    assert statuses == ["503"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_ingest_under_a_root_path_answers_the_same(
    harness: Harness, endpoint: Endpoint
) -> None:
    """Behind a proxy's root path the alert endpoints take the full stack, with one answer."""
    direct = await harness.post(endpoint, endpoint.firing("Rooted"))
    transport = httpx.ASGITransport(app=create_app(harness.service), root_path="/proxy")
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as proxied:
        again = await proxied.post(
            endpoint.path,
            content=encode(endpoint.firing("Rooted")),
            headers={"Content-Type": JSON, "Authorization": f"Bearer {harness.key}"},
        )

    assert direct.status_code == again.status_code == 202
    assert again.json() == {
        **direct.json(),
        "groups": [{**g, "outcome": "duplicate", "deliveries": 0} for g in direct.json()["groups"]],
    }


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_accepted_answer_is_compact_json(harness: Harness, endpoint: Endpoint) -> None:
    """The 202 body is the compact UTF-8 JSON the framework would write, as application/json."""
    response = await harness.post(endpoint, endpoint.firing("Compact"))

    assert response.status_code == 202
    assert response.headers["content-type"] == JSON
    assert (
        response.content
        == json.dumps(response.json(), ensure_ascii=False, separators=(",", ":")).encode()
    )


async def test_an_empty_tenant_is_refused_by_the_dead_letter_routes(harness: Harness) -> None:
    """An empty tenant is a bad request, never read as every tenant."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    listed = await harness.client.get("/admin/deadletters?tenant=", headers=admin)
    assert_problem(listed, 422)
    replayed = await harness.client.post(
        "/admin/deadletters/replay", json={"tenant": ""}, headers=admin
    )
    assert_problem(replayed, 422)
