"""The Slack interactions endpoint refuses, with a problem body, anything but a signed press."""

from __future__ import annotations

from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_ingest_http import OpenService, open_service
from tests.slack_signing import INTERACTIONS, SIGNING_SECRET, acknowledge_payload, form, signed

__all__ = ["open_service"]  # the fixture, shared with the ingest tests

SECRET_SETTING = {"SLACK__SIGNING_SECRET": SIGNING_SECRET}
PROBLEM = "application/problem+json"


async def send(client: httpx.AsyncClient, body: bytes, **signing: Any) -> httpx.Response:
    return await client.post(INTERACTIONS, content=body, headers=signed(body, **signing))


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def test_interactivity_is_off_without_a_signing_secret(open_service: OpenService) -> None:
    """Nothing can be verified, so nothing is read: 404 saying what to set."""
    harness = await open_service()
    body = form(acknowledge_payload("acme", "C1", "1.2"))
    detail = problem(await send(harness.client, body), 404)["detail"]
    assert "slack.signing_secret" in detail


async def test_refusals_say_what_is_wrong(open_service: OpenService) -> None:
    """Content type, signature, form, JSON, payload type and fields, each with its status."""
    client = (await open_service(**SECRET_SETTING)).client
    good = form(acknowledge_payload("acme", "C1", "1.2"))

    wrong_type = await client.post(
        INTERACTIONS, content=good, headers={**signed(good), "Content-Type": "application/json"}
    )
    problem(wrong_type, 415)
    unsigned = await client.post(
        INTERACTIONS,
        content=good,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    problem(unsigned, 401)
    bad_stamp = {**signed(good), "X-Slack-Request-Timestamp": "yesterday"}
    problem(await client.post(INTERACTIONS, content=good, headers=bad_stamp), 401)

    problem(await send(client, b"payload=\xff\xfe"), 401)  # Slack only ever sends UTF-8

    for body, words in [
        (b"payload", "not a form"),
        (b"other=1", "exactly one 'payload'"),
        (b"payload=1&payload=2", "exactly one 'payload'"),
        (b"payload=%7Bnot+json", "not JSON"),
        (b"payload=%5B1%2C2%5D", "JSON object"),
    ]:
        assert words in problem(await send(client, body), 400)["detail"]

    view = form({"type": "view_submission", "view": {}})
    assert "view_submission" in problem(await send(client, view), 422)["detail"]
    no_container = acknowledge_payload("acme", "C1", "1.2")
    del no_container["container"]
    fields = problem(await send(client, form(no_container)), 422)["errors"]
    assert [f["field"] for f in fields] == ["container"]
    other_action = acknowledge_payload("acme", "C1", "1.2")
    other_action["actions"][0]["action_id"] = "something_else"
    problem(await send(client, form(other_action)), 422)


async def test_a_press_on_no_known_message_is_answered_and_changes_nothing(
    open_service: OpenService,
) -> None:
    """A well-formed, signed press for a message that is not a tenant's: 200, unknown."""
    client = (await open_service(**SECRET_SETTING)).client
    response = await send(client, form(acknowledge_payload("acme", "C404", "1.2")))
    assert response.status_code == 200
    assert response.json() == {"outcome": "unknown"}


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)


async def test_any_signed_payload_gets_an_answer_never_a_crash(
    open_service: OpenService,
) -> None:
    """Signed JSON of any shape, and shapes close to a real press: 200, 400 or 422."""
    client = (await open_service(**SECRET_SETTING)).client
    near_press = st.fixed_dictionaries(
        {"type": st.sampled_from(["block_actions", "x"])},
        optional={
            "user": JSON_VALUES | st.fixed_dictionaries({"id": st.text(max_size=12)}),
            "container": JSON_VALUES,
            "actions": st.lists(
                st.fixed_dictionaries(
                    {"action_id": st.just("slack_tools.acknowledge")},
                    optional={"value": JSON_VALUES},
                ),
                max_size=2,
            ),
        },
    )
    # Hypothesis drives a synchronous function: it draws the bodies, the loop sends them.
    bodies: list[bytes] = []

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(payload=JSON_VALUES | near_press)
    def draw(payload: Any) -> None:
        bodies.append(form(payload))

    draw()
    assert bodies
    for body in bodies:
        response = await send(client, body)
        assert response.status_code in (200, 400, 422), (body[:300], response.text)
