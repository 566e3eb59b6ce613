"""The Slack fake answers like Slack: errors, limits, 429s, threads, faults, inspection, page."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from slack_tools.slack.fake import (
    DEV_TOKEN,
    MAX_TEXT,
    FakeSlack,
    RateLimits,
    create_app,
    fake_from_args,
    parse_args,
)
from slack_tools.slack.fake.page import render_mrkdwn, slack_color
from tests.conftest import unavailable
from tests.helpers import assert_no_secret

WALL = 1732628592.0
TS = re.compile(r"^\d{10}\.\d{6}$")
OTHER_TOKEN = "xoxb-other-workspace"


@dataclass
class ManualClock:
    """A clock that moves only when a test says so."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class SleepRecorder:
    """An ``asyncio.sleep`` stand-in that records the delays asked for."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def clock() -> ManualClock:
    """The fake's monotonic clock."""
    return ManualClock()


@pytest.fixture
def sleeps() -> SleepRecorder:
    """The fake's sleep, recorded instead of waited."""
    return SleepRecorder()


@pytest.fixture
def fake(clock: ManualClock, sleeps: SleepRecorder) -> FakeSlack:
    """The dev-mode fake on a manual clock and a wall clock that stands still."""
    return FakeSlack.dev(clock=clock, wall_clock=lambda: WALL, sleep=sleeps)


@pytest.fixture
async def client(fake: FakeSlack) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client speaking to the fake in-process."""
    transport = httpx.ASGITransport(app=create_app(fake))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def call(
    client: httpx.AsyncClient,
    method: str,
    body: dict[str, Any] | None = None,
    *,
    token: str | None = DEV_TOKEN,
    form: bool = False,
) -> httpx.Response:
    """Call a Web API method with a bearer token, as JSON or form-encoded."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if form:
        return await client.post(f"/api/{method}", data=body or {}, headers=headers)
    return await client.post(f"/api/{method}", json=body or {}, headers=headers)


async def post(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    """Post a message and return Slack's answer."""
    response = await call(client, "chat.postMessage", {"channel": "#alerts", **body})
    answer: dict[str, Any] = response.json()
    return answer


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


# -- auth and tokens ------------------------------------------------------------------------


async def test_auth_test_returns_the_bot_identity(client: httpx.AsyncClient) -> None:
    """auth.test answers ok with url, team, team_id, user, user_id and bot_id."""
    body = (await call(client, "auth.test")).json()
    assert body["ok"] is True
    assert body["url"] == "https://dev.slack.com/"
    assert body["team"] == "Dev Workspace"
    assert body["team_id"].startswith("T")
    assert body["user_id"].startswith("U")
    assert body["bot_id"].startswith("B")
    assert body["user"]


@pytest.mark.parametrize(
    ("token", "error"),
    [(None, "not_authed"), ("xoxb-nobody", "invalid_auth"), ("xoxb-revoked", "token_revoked")],
)
async def test_bad_tokens_answer_slack_error_codes(
    fake: FakeSlack, client: httpx.AsyncClient, token: str | None, error: str
) -> None:
    """A missing, unknown or revoked token answers HTTP 200 with Slack's error code."""
    fake.add_token("xoxb-revoked")
    fake.revoke_token("xoxb-revoked")
    response = await call(
        client, "chat.postMessage", {"channel": "#alerts", "text": "x"}, token=token
    )
    assert response.status_code == 200
    assert response.json() == {"ok": False, "error": error}


async def test_token_may_come_as_a_form_field(client: httpx.AsyncClient) -> None:
    """A ``token`` field authenticates like the Authorization header."""
    response = await client.post("/api/auth.test", data={"token": DEV_TOKEN})
    assert response.json()["ok"] is True


async def test_unknown_method_and_unreadable_json_answer_slack_codes(
    client: httpx.AsyncClient,
) -> None:
    """An unknown method answers unknown_method and a broken JSON body invalid_json."""
    assert (await call(client, "chat.delete")).json()["error"] == "unknown_method"
    broken = await client.post(
        "/api/chat.postMessage",
        content=b"{not json",
        headers={"Authorization": f"Bearer {DEV_TOKEN}", "Content-Type": "application/json"},
    )
    assert broken.json() == {"ok": False, "error": "invalid_json"}


# -- posting --------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["#alerts", "alerts"])
async def test_post_by_name_returns_the_channel_id_and_a_slack_ts(
    fake: FakeSlack, client: httpx.AsyncClient, channel: str
) -> None:
    """chat.postMessage by ``#name`` or ``name`` answers the channel ID, a Slack ts, the message."""
    body = (await call(client, "chat.postMessage", {"channel": channel, "text": "hi"})).json()
    alerts = fake.find_channel("alerts")
    assert alerts is not None
    assert body["ok"] is True
    assert body["channel"] == alerts.id
    assert body["channel"].startswith("C0")
    assert TS.match(body["ts"])
    assert body["message"]["text"] == "hi"
    assert body["message"]["ts"] == body["ts"]


async def test_ts_values_are_unique_and_increasing_when_the_wall_clock_stands_still(
    fake: FakeSlack, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """Each post gets a new, larger ts even within one microsecond of wall time."""
    seen = []
    for _ in range(3):
        seen.append((await post(client, text="x"))["ts"])
        clock.advance(1)
    assert seen == sorted(set(seen))
    assert seen[0] == "1732628592.000000"


async def test_form_encoded_post_reads_blocks_and_attachments_from_json_strings(
    fake: FakeSlack, client: httpx.AsyncClient
) -> None:
    """Form bodies carry blocks and attachments as JSON strings, stored as lists."""
    blocks = [section("*hello*")]
    attachments = [{"color": "danger", "blocks": [section("inside")]}]
    body = {
        "channel": "#alerts",
        "text": "fallback",
        "blocks": json.dumps(blocks),
        "attachments": json.dumps(attachments),
    }
    answer = (await call(client, "chat.postMessage", body, form=True)).json()
    assert answer["ok"] is True
    [message] = fake.messages("alerts")
    assert message.blocks == blocks
    assert message.attachments == attachments


@pytest.mark.parametrize(
    ("setup", "channel", "error"),
    [
        ("none", "C0999999999", "channel_not_found"),
        ("no-auto-create", "#nowhere", "channel_not_found"),
        ("not-member", "#private-ops", "not_in_channel"),
        ("archived", "#old", "is_archived"),
        ("other-team", "#theirs", "channel_not_found"),
    ],
)
async def test_channel_problems_answer_slack_error_codes(
    fake: FakeSlack, client: httpx.AsyncClient, setup: str, channel: str, error: str
) -> None:
    """Unknown, foreign, archived or bot-less channels refuse the post with Slack's code."""
    if setup == "no-auto-create":
        fake.auto_create_channels = False
    elif setup == "not-member":
        fake.add_channel("private-ops", is_member=False)
    elif setup == "archived":
        fake.add_channel("old", is_archived=True)
    elif setup == "other-team":
        team = fake.add_workspace("Other", tokens=[OTHER_TOKEN])
        theirs = fake.add_channel("theirs", team_id=team.team_id)
        fake.auto_create_channels = False
        by_id = await call(client, "chat.postMessage", {"channel": theirs.id, "text": "x"})
        assert by_id.json()["error"] == "channel_not_found"
    response = await call(client, "chat.postMessage", {"channel": channel, "text": "x"})
    assert response.status_code == 200
    assert response.json() == {"ok": False, "error": error}
    assert fake.messages() == []


async def test_posting_to_a_new_name_creates_the_channel_in_dev_mode(
    client: httpx.AsyncClient,
) -> None:
    """With auto-create on, a post to an unknown name creates a channel the bot is in."""
    answer = await post(client, channel="#team-payments", text="x")
    assert answer["ok"] is True
    listed = (await call(client, "conversations.list")).json()["channels"]
    created = next(c for c in listed if c["name"] == "team-payments")
    assert created == {**created, "id": answer["channel"], "is_member": True, "is_archived": False}


# -- limits ---------------------------------------------------------------------------------


def header(length: int) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": "h" * length}}


def fields(count: int, length: int = 10) -> dict[str, Any]:
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * length}] * count}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"blocks": [section("x")] * 51}, "invalid_blocks"),
        (
            {"blocks": [section("x")] * 26, "attachments": [{"blocks": [section("y")] * 25}]},
            "invalid_blocks",
        ),
        ({"blocks": [header(151)]}, "invalid_blocks"),
        ({"blocks": [section("s" * 3001)]}, "invalid_blocks"),
        ({"blocks": [fields(11)]}, "invalid_blocks"),
        ({"blocks": [fields(2, length=2001)]}, "invalid_blocks"),
        ({"blocks": [{**section("x"), "block_id": "b" * 256}]}, "invalid_blocks"),
        ({"blocks": [{"type": "section"}]}, "invalid_blocks"),
        ({"blocks": {"type": "section"}}, "invalid_blocks_format"),
        ({"blocks": [{"text": "no type"}]}, "invalid_blocks_format"),
        ({"blocks": ["section"]}, "invalid_blocks_format"),
        ({"blocks": "[not json"}, "invalid_blocks_format"),
        ({}, "no_text"),
        ({"text": "", "blocks": [], "attachments": []}, "no_text"),
        ({"text": "x", "attachments": [{"text": "a"}] * 101}, "too_many_attachments"),
    ],
)
async def test_message_limits_answer_slack_error_codes(
    fake: FakeSlack, client: httpx.AsyncClient, body: dict[str, Any], error: str
) -> None:
    """Block Kit and attachment limits refuse the post with Slack's code, nothing stored."""
    text = {} if error == "no_text" else {"text": "t"}
    response = await call(client, "chat.postMessage", {"channel": "#alerts", **text, **body})
    assert response.json()["ok"] is False
    assert response.json()["error"] == error
    assert fake.messages() == []


async def test_invalid_blocks_names_each_problem_with_a_json_pointer(
    client: httpx.AsyncClient,
) -> None:
    """invalid_blocks lists the offending paths, as Slack does, so a client can log them."""
    answer = await post(client, text="t", blocks=[header(151), section("ok")])
    assert answer["error"] == "invalid_blocks"
    assert answer["errors"] == [
        "must be less than 151 characters [json-pointer:/blocks/0/text/text]"
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"blocks": [section("x")] * 50},
        {"blocks": [section("x")] * 25, "attachments": [{"blocks": [section("y")] * 25}]},
        {"blocks": [header(150), section("s" * 3000), fields(10, length=2000)]},
        {"blocks": [{**section("x"), "block_id": "b" * 255}]},
        {"attachments": [{"text": "a"}] * 100},
    ],
)
async def test_messages_at_the_limits_are_accepted(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    """Exactly at each limit the post is accepted."""
    assert (await post(client, text="t", **body))["ok"] is True


async def test_long_text_is_truncated_by_characters_not_bytes(
    fake: FakeSlack, client: httpx.AsyncClient
) -> None:
    """Text over 40,000 characters is cut to 40,000 characters, a multi-byte one counting once."""
    answer = await post(client, text="é" * (MAX_TEXT + 10))
    assert answer["ok"] is True
    assert answer["message"]["text"] == "é" * MAX_TEXT
    assert fake.messages()[0].text == "é" * MAX_TEXT


# -- rate limits ----------------------------------------------------------------------------


async def test_second_post_within_a_second_gets_429_and_succeeds_after_retry_after(
    fake: FakeSlack, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """A post 0.5 s after the last in its channel gets 429 + Retry-After; after the wait it goes."""
    assert (await post(client, text="one"))["ok"] is True
    clock.advance(0.5)
    limited = await call(client, "chat.postMessage", {"channel": "#alerts", "text": "two"})
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    assert limited.json() == {"ok": False, "error": "ratelimited"}
    other = await post(client, channel="#elsewhere", text="other channel")
    assert other["ok"] is True
    clock.advance(int(limited.headers["Retry-After"]))
    assert (await post(client, text="two"))["ok"] is True
    assert [m.text for m in fake.messages("alerts")] == ["one", "two"]


async def test_retry_after_is_whole_seconds_of_the_remaining_wait(
    fake: FakeSlack, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """Retry-After rounds the remaining wait up to whole seconds."""
    fake.rate_limits = RateLimits(post_interval=3.0)
    await post(client, text="one")
    clock.advance(0.5)
    limited = await call(client, "chat.postMessage", {"channel": "#alerts", "text": "two"})
    assert limited.headers["Retry-After"] == "3"


async def test_refused_posts_do_not_move_the_rate_window(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """Only accepted posts count: a refused post does not delay the next one."""
    await post(client, text="one")
    clock.advance(1.0)
    assert (await post(client, blocks=[header(151)]))["error"] == "invalid_blocks"
    clock.advance(0.1)
    assert (await post(client, text="two"))["ok"] is True


async def test_rate_limits_can_be_turned_off(fake: FakeSlack, client: httpx.AsyncClient) -> None:
    """With rate limits disabled, posts at the same instant are all accepted."""
    fake.rate_limits = RateLimits(enabled=False)
    for _ in range(5):
        assert (await post(client, text="x"))["ok"] is True


async def test_chat_update_budget_is_per_workspace_over_a_rolling_window(
    fake: FakeSlack, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """The 51st chat.update in a minute answers 429 until the oldest one leaves the window."""
    first = await post(client, text="v0")
    for number in range(50):
        clock.advance(0.5)
        answer = await call(
            client,
            "chat.update",
            {"channel": first["channel"], "ts": first["ts"], "text": f"v{number}"},
        )
        assert answer.json()["ok"] is True
    limited = await call(
        client, "chat.update", {"channel": first["channel"], "ts": first["ts"], "text": "x"}
    )
    assert limited.status_code == 429
    assert limited.json()["error"] == "ratelimited"
    # oldest update at +0.5 s, now +25 s: it leaves the window 35.5 s from now
    assert limited.headers["Retry-After"] == "36"
    clock.advance(36)
    again = await call(
        client, "chat.update", {"channel": first["channel"], "ts": first["ts"], "text": "y"}
    )
    assert again.json()["ok"] is True


# -- chat.update ----------------------------------------------------------------------------


async def test_update_edits_the_message_and_keeps_its_history(
    fake: FakeSlack, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """chat.update replaces what it sends, keeps what it omits, and records the old version."""
    blocks = [section("*firing*")]
    first = await post(client, text="firing", blocks=blocks, attachments=[{"color": "danger"}])
    clock.advance(5)
    answer = (
        await call(
            client,
            "chat.update",
            {"channel": first["channel"], "ts": first["ts"], "text": "resolved", "attachments": []},
        )
    ).json()
    assert answer["ok"] is True
    assert (answer["channel"], answer["ts"], answer["text"]) == (
        first["channel"],
        first["ts"],
        "resolved",
    )
    assert "edited" in answer["message"]
    [message] = fake.messages("alerts")
    assert message.text == "resolved"
    assert message.blocks == blocks
    assert message.attachments == []
    [edit] = message.edits
    assert (edit.at, edit.text, edit.attachments) == (clock.now, "firing", [{"color": "danger"}])


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"ts": "1.000000"}, "message_not_found"),
        ({"ts": None}, "message_not_found"),
        ({"channel": "#alerts"}, "channel_not_found"),
        ({"channel": "C0999999999"}, "channel_not_found"),
        ({"text": None}, "no_text"),
        ({"blocks": [header(151)]}, "invalid_blocks"),
    ],
)
async def test_update_errors_answer_slack_codes(
    client: httpx.AsyncClient, change: dict[str, Any], error: str
) -> None:
    """chat.update needs the channel ID and an existing ts, and checks content like a post."""
    first = await post(client, text="x")
    body = {"channel": first["channel"], "ts": first["ts"], "text": "y", **change}
    answer = await call(client, "chat.update", {k: v for k, v in body.items() if v is not None})
    assert answer.json() == {**answer.json(), "ok": False, "error": error}


async def test_update_after_the_edit_window_answers_edit_window_closed(
    fake: FakeSlack, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """A message older than the configured edit window can no longer be edited."""
    fake.edit_window = 60.0
    first = await post(client, text="x")
    clock.advance(60)
    inside = await call(
        client, "chat.update", {"channel": first["channel"], "ts": first["ts"], "text": "y"}
    )
    assert inside.json()["ok"] is True
    clock.advance(0.001)
    late = await call(
        client, "chat.update", {"channel": first["channel"], "ts": first["ts"], "text": "z"}
    )
    assert late.json() == {"ok": False, "error": "edit_window_closed"}


# -- threads --------------------------------------------------------------------------------


async def test_thread_replies_attach_to_the_parent_even_when_given_a_reply_ts(
    fake: FakeSlack, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """A reply names its parent; a reply's ts as thread_ts lands in the same parent thread."""
    parent = await post(client, text="parent")
    clock.advance(1)
    reply = await post(client, text="reply", thread_ts=parent["ts"], reply_broadcast=True)
    clock.advance(1)
    nested = await post(client, text="reply to reply", thread_ts=reply["ts"])
    assert reply["message"]["thread_ts"] == parent["ts"]
    assert nested["message"]["thread_ts"] == parent["ts"]
    messages = {m.ts: m for m in fake.messages("alerts")}
    assert messages[parent["ts"]].replies == [reply["ts"], nested["ts"]]
    assert messages[reply["ts"]].reply_broadcast is True
    assert messages[nested["ts"]].reply_broadcast is False


async def test_thread_ts_of_no_message_answers_thread_not_found(client: httpx.AsyncClient) -> None:
    """A thread_ts that names no message in the channel is refused, not posted at top level."""
    assert (await post(client, text="x", thread_ts="1.000000"))["error"] == "thread_not_found"


# -- conversations.list ---------------------------------------------------------------------


async def test_conversations_list_pages_with_cursor_and_limit(
    fake: FakeSlack, client: httpx.AsyncClient
) -> None:
    """conversations.list returns the workspace's channels a page at a time, GET or POST."""
    for name in ("b", "c", "d", "e"):
        fake.add_channel(name, is_archived=name == "e")
    fake.add_workspace("Other", tokens=[OTHER_TOKEN])
    names: list[str] = []
    cursor = ""
    while True:
        page = (
            await client.get(
                "/api/conversations.list",
                params={"limit": 2, "cursor": cursor},
                headers={"Authorization": f"Bearer {DEV_TOKEN}"},
            )
        ).json()
        assert page["ok"] is True
        assert len(page["channels"]) <= 2
        names += [c["name"] for c in page["channels"]]
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert names == ["alerts", "b", "c", "d", "e"]
    active = (await call(client, "conversations.list", {"exclude_archived": True})).json()
    assert [c["name"] for c in active["channels"]] == ["alerts", "b", "c", "d"]
    bad = await call(client, "conversations.list", {"cursor": "not a cursor"})
    assert bad.json()["error"] == "invalid_cursor"
    other = (await call(client, "conversations.list", token=OTHER_TOKEN)).json()
    assert other["channels"] == []


# -- faults ---------------------------------------------------------------------------------


async def test_injected_error_fails_the_next_n_calls_of_one_method(
    fake: FakeSlack, client: httpx.AsyncClient
) -> None:
    """inject(times=2) answers the error twice for that method only, then Slack behaves again."""
    fake.inject(method="chat.postMessage", error="internal_error", times=2)
    assert (await call(client, "auth.test")).json()["ok"] is True
    for _ in range(2):
        failed = await call(client, "chat.postMessage", {"channel": "#alerts", "text": "x"})
        assert (failed.status_code, failed.json()) == (
            200,
            {"ok": False, "error": "internal_error"},
        )
    assert (await post(client, text="x"))["ok"] is True
    assert fake.faults == []


@pytest.mark.parametrize(
    ("status", "error", "retry_after"),
    [(500, "internal_error", None), (503, "service_unavailable", None), (429, "ratelimited", "7")],
)
async def test_injected_http_status_answers_that_status(
    fake: FakeSlack, client: httpx.AsyncClient, status: int, error: str, retry_after: str | None
) -> None:
    """inject(status=…) answers that HTTP status with Slack's matching error (429: Retry-After)."""
    fake.inject(status=status, times=1, retry_after=7)
    response = await call(client, "auth.test")
    assert response.status_code == status
    assert response.json() == {"ok": False, "error": error}
    assert response.headers.get("Retry-After") == retry_after


async def test_outage_answers_503_until_the_clock_passes(
    fake: FakeSlack, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """outage(10) answers 503 to every call, even unauthenticated, until 10 s have passed."""
    fake.outage(10)
    assert (await call(client, "auth.test", token=None)).status_code == 503
    clock.advance(9.9)
    assert (
        await call(client, "chat.postMessage", {"channel": "#alerts", "text": "x"})
    ).status_code == 503
    clock.advance(0.1)
    assert (await post(client, text="x"))["ok"] is True


async def test_latency_is_added_through_the_injected_sleep(
    fake: FakeSlack, client: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    """A latency-only fault delays matching calls and lets them succeed."""
    fake.inject(method="auth.test", latency=0.25)
    assert (await call(client, "auth.test")).json()["ok"] is True
    assert (await post(client, text="x"))["ok"] is True
    assert sleeps.delays == [0.25]


async def test_failure_rate_is_reproducible_with_a_seed(fake: FakeSlack) -> None:
    """The same seed fails the same calls; the rate is roughly honoured."""

    async def outcomes(seed: int) -> list[bool]:
        fake.clear_faults()
        fake.inject(method="auth.test", error="fatal_error", rate=0.3, seed=seed)
        results = [await fake.handle("auth.test", {}, DEV_TOKEN) for _ in range(200)]
        return [r.body["ok"] for r in results]

    first, second = await outcomes(7), await outcomes(7)
    assert first == second
    assert 30 < first.count(False) < 90
    assert first != await outcomes(8)


def test_inject_rejects_nonsense_with_the_bad_value_named(fake: FakeSlack) -> None:
    """Bad fault arguments raise ValueError naming the argument."""
    with pytest.raises(ValueError, match=r"unknown method 'chat\.delete'"):
        fake.inject(method="chat.delete", error="x")
    with pytest.raises(ValueError, match="rate must be between 0 and 1"):
        fake.inject(error="x", rate=1.5)
    with pytest.raises(ValueError, match="HTTP error status"):
        fake.inject(status=200)


async def test_faults_can_be_driven_over_http(
    fake: FakeSlack, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """POST /fake/faults injects, GET lists, DELETE clears; outages too; bad bodies get 400."""
    added = await client.post(
        "/fake/faults", json={"method": "chat.postMessage", "error": "internal_error", "times": 1}
    )
    assert added.json()["faults"][0]["remaining"] == 1
    assert (await post(client, text="x"))["error"] == "internal_error"
    assert (await post(client, text="x"))["ok"] is True
    several = {"faults": [{"outage": 5}, {"method": "auth.test", "latency": 0.1}]}
    assert len((await client.post("/fake/faults", json=several)).json()["faults"]) == 2
    assert (await call(client, "auth.test")).status_code == 503
    assert len((await client.get("/fake/faults")).json()["faults"]) == 2
    assert (await client.delete("/fake/faults")).json()["faults"] == []
    assert (await call(client, "auth.test")).status_code == 200
    bad = await client.post("/fake/faults", json={"method": "nope", "error": "x"})
    assert bad.status_code == 400
    assert "unknown method 'nope'" in bad.json()["detail"]
    typo = await client.post("/fake/faults", json={"eror": "x"})
    assert typo.status_code == 400


# -- inspection and control -----------------------------------------------------------------


async def test_messages_endpoint_shows_messages_by_channel_id_or_name(
    fake: FakeSlack, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """GET /fake/messages filters by channel ID or name and shows threads, edits and team."""
    parent = await post(client, text="parent", blocks=[section("b")])
    await post(client, channel="#other", text="elsewhere")
    clock.advance(1)
    reply = await post(client, text="reply", thread_ts=parent["ts"])
    await call(
        client, "chat.update", {"channel": parent["channel"], "ts": parent["ts"], "text": "new"}
    )
    by_name = (await client.get("/fake/messages", params={"channel": "alerts"})).json()["messages"]
    by_id = (await client.get("/fake/messages", params={"channel": parent["channel"]})).json()
    assert by_name == by_id["messages"]
    assert [m["ts"] for m in by_name] == [parent["ts"], reply["ts"]]
    first = by_name[0]
    assert first["channel"] == parent["channel"]
    assert first["channel_name"] == "alerts"
    assert first["team_id"] == fake.workspaces[0].team_id
    assert first["text"] == "new"
    assert first["blocks"] == [section("b")]
    assert first["replies"] == [reply["ts"]]
    assert first["edits"][0]["text"] == "parent"
    assert first["edits"][0]["at"] == clock.now
    assert by_name[1]["thread_ts"] == parent["ts"]
    everything = (await client.get("/fake/messages")).json()["messages"]
    assert len(everything) == 3


async def test_request_log_shows_every_call_with_time_status_and_error(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """GET /fake/requests lets a test count 429s and check nothing came before Retry-After."""
    await post(client, text="one")
    clock.advance(0.2)
    await post(client, text="two")
    clock.advance(0.8)
    await post(client, text="two")
    await call(client, "auth.test", token="xoxb-wrong")
    log = (await client.get("/fake/requests")).json()["requests"]
    assert [(r["method"], r["status"], r["error"]) for r in log] == [
        ("chat.postMessage", 200, None),
        ("chat.postMessage", 429, "ratelimited"),
        ("chat.postMessage", 200, None),
        ("auth.test", 200, "invalid_auth"),
    ]
    limited = log[1]
    assert limited["retry_after"] == 1
    assert all(r["at"] >= limited["at"] + limited["retry_after"] - 0.2 for r in log[2:])
    assert log[0]["channel"].startswith("C0")
    posts = (await client.get("/fake/requests", params={"method": "auth.test"})).json()
    assert len(posts["requests"]) == 1
    assert_no_secret(json.dumps(log), DEV_TOKEN, "xoxb-wrong")


async def test_reset_forgets_messages_requests_faults_and_rate_history(
    fake: FakeSlack, client: httpx.AsyncClient
) -> None:
    """POST /fake/reset empties the fake but keeps workspaces and channels."""
    await post(client, text="x")
    fake.inject(error="internal_error", method="conversations.list")
    assert (await client.post("/fake/reset")).json() == {"ok": True}
    assert fake.messages() == []
    assert fake.requests() == []
    assert fake.faults == []
    assert (await post(client, text="right away"))["ok"] is True
    assert fake.find_channel("alerts") is not None


async def test_workspaces_and_channels_can_be_added_over_http(
    fake: FakeSlack, client: httpx.AsyncClient
) -> None:
    """POST /fake/workspaces adds a team and tokens; POST /fake/channels adds or edits channels."""
    created = await client.post(
        "/fake/workspaces",
        json={
            "name": "Acme",
            "team_id": "TACME0001",
            "tokens": [OTHER_TOKEN],
            "revoked_tokens": ["xoxb-old"],
        },
    )
    assert created.json()["workspace"]["team_id"] == "TACME0001"
    assert_no_secret(created.text, OTHER_TOKEN, "xoxb-old")
    assert (await call(client, "auth.test", token=OTHER_TOKEN)).json()["team_id"] == "TACME0001"
    assert (await call(client, "auth.test", token="xoxb-old")).json()["error"] == "token_revoked"
    channel = await client.post(
        "/fake/channels", json={"name": "acme-alerts", "team_id": "TACME0001", "id": "C0ACME0001"}
    )
    assert channel.json()["channel"]["id"] == "C0ACME0001"
    acme = await call(
        client, "chat.postMessage", {"channel": "C0ACME0001", "text": "x"}, token=OTHER_TOKEN
    )
    assert acme.json()["ok"] is True
    assert acme.json()["message"]["team"] == "TACME0001"
    kicked = await client.post("/fake/channels", json={"name": "alerts", "is_member": False})
    assert kicked.json()["channel"]["is_member"] is False
    assert (await post(client, text="x"))["error"] == "not_in_channel"
    bad = await client.post("/fake/channels", json={"name": "Has Spaces"})
    assert bad.status_code == 400
    duplicate = await client.post("/fake/workspaces", json={"tokens": [DEV_TOKEN]})
    assert duplicate.status_code == 400
    assert_no_secret(duplicate.text, DEV_TOKEN)
    listed = (await client.get("/fake/workspaces")).json()["workspaces"]
    assert [w["name"] for w in listed] == ["Dev Workspace", "Acme"]


async def test_settings_endpoint_switches_limits_at_run_time(
    fake: FakeSlack, client: httpx.AsyncClient
) -> None:
    """POST /fake/settings turns rate limits off and sets the edit window; absent keys stay."""
    answer = (
        await client.post("/fake/settings", json={"rate_limits_enabled": False, "edit_window": 30})
    ).json()
    assert answer["rate_limits_enabled"] is False
    assert answer["update_limit"] == 50
    assert fake.edit_window == 30
    assert (await post(client, text="a"))["ok"] is True
    assert (await post(client, text="b"))["ok"] is True
    cleared = (await client.post("/fake/settings", json={"no_edit_window": True})).json()
    assert cleared["edit_window"] is None
    assert cleared["rate_limits_enabled"] is False


# -- the page -------------------------------------------------------------------------------


async def test_page_shows_messages_escaped_with_threads_edits_colour_and_links(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """The page renders blocks, mrkdwn, colour, buttons, edits and replies, escaping alert text."""
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Disk <b>full</b>"}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "*Host* <https://grafana.example/d?a=1&b=2|dashboard> "
                "<!date^1732628592^{date_short} {time}|26 Nov 14:43> <script>alert(1)</script>",
            },
            "fields": [{"type": "mrkdwn", "text": "*Severity*\ncritical"}],
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "_tenant_ `acme`"}]},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Runbook"},
                    "url": "https://runbook.example",
                },
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Evil"},
                    "url": "javascript:alert(1)",
                },
            ],
        },
    ]
    parent = await post(client, text="fallback", blocks=blocks, attachments=[{"color": "danger"}])
    clock.advance(1)
    await post(client, text="reply <img src=x onerror=alert(1)>", thread_ts=parent["ts"])
    await call(
        client, "chat.update", {"channel": parent["channel"], "ts": parent["ts"], "text": "now"}
    )
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "<script>" not in html
    assert "<img" not in html
    assert "Disk &lt;b&gt;full&lt;/b&gt;" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>Host</b>" in html
    assert '<a href="https://grafana.example/d?a=1&amp;b=2"' in html
    assert "26 Nov 14:43" in html
    assert "<b>Severity</b><br>critical" in html
    assert "<i>tenant</i> <code>acme</code>" in html
    assert 'href="https://runbook.example"' in html
    assert "javascript:" not in html
    assert "border-left-color: #e01e5a" in html
    assert "(edited)" in html
    assert "1 reply" in html
    assert html.index('class="thread"') < html.index("reply &lt;img")
    assert '<meta http-equiv="refresh"' in html


async def test_page_can_be_left_out_and_mounted_under_a_prefix(fake: FakeSlack) -> None:
    """with_page=False serves no page; mounted at /dev/slack the API and page live under it."""
    bare = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(fake, with_page=False)), base_url="http://t"
    )
    async with bare:
        assert (await bare.get("/")).status_code == 404
    outer = Starlette(routes=[Mount("/dev/slack", app=create_app(fake))])
    mounted = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=outer), base_url="http://t", follow_redirects=True
    )
    async with mounted:
        page = await mounted.get("/dev/slack")
        assert page.status_code == 200
        assert "Slack fake" in page.text
        answer = await mounted.post(
            "/dev/slack/api/auth.test", headers={"Authorization": f"Bearer {DEV_TOKEN}"}
        )
        assert answer.json()["ok"] is True


@pytest.mark.parametrize(
    ("mrkdwn", "html"),
    [
        ("*bold* and _italic_ and ~gone~", "<b>bold</b> and <i>italic</i> and <s>gone</s>"),
        ("`a <b> c`", "<code>a &lt;b&gt; c</code>"),
        (
            "<https://x.example|the *site*>",
            '<a href="https://x.example" target="_blank" rel="noopener noreferrer">the *site*</a>',
        ),
        ("<!date^1732628592^{date}|Nov 26>", "Nov 26"),
        ("<!here> <@U123|ana> <#C123|ops>", "@here @ana #ops"),
        ("a &lt;b&gt; &amp; c", "a &lt;b&gt; &amp; c"),
        (
            'say "hi" & <javascript:alert(1)|x>',
            "say &#34;hi&#34; &amp; &lt;javascript:alert(1)|x&gt;",
        ),
        ("line one\nline two", "line one<br>line two"),
        ("snake_case_name and 2*3*4", "snake_case_name and 2*3*4"),
        (":fire: hot", "🔥 hot"),
    ],
)
def test_mrkdwn_renders_slack_markup_and_escapes_the_rest(mrkdwn: str, html: str) -> None:
    """Slack mrkdwn becomes minimal HTML; anything else is escaped text."""
    assert str(render_mrkdwn(mrkdwn)) == html


@pytest.mark.parametrize(
    ("color", "css"),
    [("good", "#2eb67d"), ("#FF0000", "#FF0000"), ("abc", "#abc"), ("red;}body{", "#dddddd")],
)
def test_attachment_colours_become_safe_css(color: str, css: str) -> None:
    """Named and hex colours map to CSS; anything else falls back to grey."""
    assert slack_color(color) == css


# -- standalone server and the real slack_sdk ------------------------------------------------


def test_command_line_builds_the_fake_it_describes() -> None:
    """Options add tokens, workspaces and channels and switch the limits."""
    options = parse_args(
        [
            "--no-rate-limits",
            "--edit-window",
            "90",
            "--token",
            "xoxb-extra",
            "--workspace",
            "Acme=xoxb-acme",
            "--channel",
            "ops",
            "--channel",
            "old:archived",
            "--channel",
            "quiet:not-member",
            "--no-auto-create",
        ]
    )
    fake = fake_from_args(options)
    assert fake.rate_limits.enabled is False
    assert fake.edit_window == 90
    assert fake.auto_create_channels is False
    assert [w.name for w in fake.workspaces] == ["Dev Workspace", "Acme"]
    assert fake.workspaces[0].tokens == {DEV_TOKEN, "xoxb-extra"}
    assert [c.name for c in fake.channels(fake.workspaces[0].team_id)] == [
        "alerts",
        "ops",
        "old",
        "quiet",
    ]
    old, quiet = fake.find_channel("old"), fake.find_channel("quiet")
    assert old is not None
    assert old.is_archived
    assert quiet is not None
    assert not quiet.is_member


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def served(fake: FakeSlack) -> AsyncIterator[str]:
    """The fake behind a real uvicorn server on a free port; yields the API base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(fake),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        ws="none",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
            await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}/api/"
    server.should_exit = True
    await task


async def test_slack_sdk_client_talks_to_the_fake_over_real_http(
    served: str, fake: FakeSlack, clock: ManualClock
) -> None:
    """slack_sdk's AsyncWebClient posts, edits, lists and gets 429 + Retry-After, as from Slack."""
    try:
        import aiohttp  # noqa: F401, PLC0415 - slack_sdk's async transport, checked before use
    except ImportError as exc:
        unavailable("aiohttp", str(exc))
    from slack_sdk.errors import SlackApiError  # noqa: PLC0415 - needs aiohttp above
    from slack_sdk.web.async_client import AsyncWebClient  # noqa: PLC0415 - needs aiohttp above

    slack = AsyncWebClient(token=DEV_TOKEN, base_url=served, retry_handlers=[])
    identity = await slack.auth_test()
    assert identity["team_id"] == fake.workspaces[0].team_id
    posted = await slack.chat_postMessage(
        channel="#alerts", text="firing", blocks=[section("*firing*")]
    )
    assert posted["channel"].startswith("C0")
    with pytest.raises(SlackApiError) as limited:
        await slack.chat_postMessage(channel=posted["channel"], text="too soon")
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "1"
    assert limited.value.response["error"] == "ratelimited"
    clock.advance(1)
    reply = await slack.chat_postMessage(
        channel=posted["channel"], text="reply", thread_ts=posted["ts"]
    )
    assert reply["message"]["thread_ts"] == posted["ts"]
    updated = await slack.chat_update(channel=posted["channel"], ts=posted["ts"], text="resolved")
    assert updated["text"] == "resolved"
    listed = await slack.conversations_list(limit=10)
    assert [c["name"] for c in listed["channels"]] == ["alerts"]
    clock.advance(1)
    form = await slack.api_call(
        "chat.postMessage",
        data={"channel": "alerts", "text": "form", "blocks": json.dumps([section("form")])},
    )
    assert form["ok"] is True
    with pytest.raises(SlackApiError) as missing:
        await slack.chat_postMessage(channel="C0999999999", text="x")
    assert missing.value.response["error"] == "channel_not_found"
    assert [m.text for m in fake.messages("alerts")] == ["resolved", "reply", "form"]
