"""What the dispatcher decides to send for claimed deliveries (a pure decision)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from slack_tools.alerts.models import (
    Alert,
    AlertGroup,
    SlackMessage,
    Source,
    Status,
    alert_to_dict,
    group_meta,
)
from slack_tools.alerts.render import ACKNOWLEDGE_ACTION
from slack_tools.configs.localization import Catalogs
from slack_tools.service.dispatcher.planning import Action, Plan, plan_delivery
from slack_tools.storage.delivery import Ack, Claimed, StoredGroup
from slack_tools.storage.delivery.ingest import ChangeReason, KnownState, classify_change

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
CATALOGS = Catalogs()


def stored(name: str, status: str = "firing", episode: int = 1) -> StoredGroup:
    alert = Alert(
        f"fp-{name}", Status(status), {"alertname": name, "severity": "critical"}, {}, NOW, None
    )
    group = AlertGroup(
        Source.ALERTMANAGER, name, Status(status), (alert,), common_labels=dict(alert.labels)
    )
    return StoredGroup(
        "acme",
        name,
        name,
        "alertmanager",
        status,
        "h",
        episode,
        [alert_to_dict(alert)],
        group_meta(group),
        NOW,
        NOW,
    )


def claimed(
    name: str, *, ts: str | None = None, episode: int | None = None, kind: str | None = None
) -> Claimed:
    return Claimed(
        1, "acme", name, "#ops", "en_US", 3, 0, kind, "C1" if ts else None, ts, episode, NOW
    )


def plan(
    rows: list[Claimed],
    groups: dict[str, StoredGroup],
    *,
    replies: bool = True,
    acknowledge: bool = False,
) -> Plan | None:
    return plan_delivery(
        rows,
        groups,
        lambda locale: CATALOGS.localizer(locale, "UTC"),
        NOW,
        thread_replies=replies,
        acknowledge=acknowledge,
    )


@pytest.mark.parametrize(
    ("row", "group", "action"),
    [
        (claimed("A"), stored("A"), Action.POST),  # never posted
        (claimed("A", ts="1.1", episode=1, kind="group"), stored("A"), Action.UPDATE),
        (claimed("A", ts="1.1", episode=1, kind="group"), stored("A", episode=2), Action.POST),
        (claimed("A", ts="1.1", episode=1, kind="digest"), stored("A"), Action.REPLY),
    ],
    ids=["first-post", "same-episode-edits", "fired-again-posts-anew", "digested-replies"],
)
def test_single_delivery_plans(row: Claimed, group: StoredGroup, action: Action) -> None:
    """One delivery is a post, an edit, or a reply in its digest's thread."""
    decided = plan([row], {"A": group})
    assert decided is not None
    assert decided.action is action
    assert decided.episodes == (group.episode,)
    if action is Action.REPLY:
        assert decided.thread_ts == "1.1"


def test_several_deliveries_make_one_digest() -> None:
    """Claimed together, deliveries of one channel become one digest of all their groups."""
    groups = {name: stored(name) for name in ("A", "B", "C")}
    decided = plan([claimed(name) for name in groups], groups)
    assert decided is not None
    assert decided.action is Action.DIGEST
    assert len(decided.rows) == 3
    assert all(name in str(decided.message.attachments) for name in groups)


@pytest.mark.parametrize("replies", [True, False])
def test_resolve_edit_adds_a_thread_reply_when_configured(replies: bool) -> None:
    """Editing a message to resolved also replies in its thread, if thread replies are on."""
    row = claimed("A", ts="1.1", episode=1, kind="group")
    decided = plan([row], {"A": stored("A", "resolved")}, replies=replies)
    assert decided is not None
    assert decided.action is Action.UPDATE
    assert (decided.reply is not None) is replies


def test_nothing_to_send_when_the_group_is_gone() -> None:
    """A delivery whose group was pruned plans nothing (it is buried by the caller)."""
    assert plan([claimed("A")], {}) is None


@pytest.mark.parametrize(
    ("known", "status", "state_hash", "reason"),
    [
        (None, "firing", "h1", ChangeReason.FIRST),
        (KnownState("h1", "firing", 1), "firing", "h1", ChangeReason.DUPLICATE),
        (KnownState("h1", "firing", 1), "firing", "h2", ChangeReason.CHANGED),
        (KnownState("h1", "firing", 1), "resolved", "h2", ChangeReason.CHANGED),
        (KnownState("h2", "resolved", 1), "firing", "h3", ChangeReason.REFIRED),
        (KnownState("h2", "resolved", 1), "resolved", "h2", ChangeReason.DUPLICATE),
    ],
)
def test_classify_change(
    known: KnownState | None, status: str, state_hash: str, reason: ChangeReason
) -> None:
    """A notification is a first one, a copy, a change, or a new episode of its group."""
    assert classify_change(known, status, state_hash) is reason


def _texts(message: object) -> str:
    import json  # noqa: PLC0415 - only here

    payload = message.payload() if isinstance(message, SlackMessage) else message
    return json.dumps(payload, ensure_ascii=False)


@pytest.mark.parametrize("names", [["A"], ["A", "B", "C"]], ids=["post", "digest"])
def test_deliveries_held_by_the_quota_say_how_many_alerts_waited(names: list[str]) -> None:
    """Only held deliveries count; the note closes the message, in the reader's language."""
    groups = {name: stored(name) for name in names}
    rows = [
        replace(claimed(n), id=i, held_at=NOW if n != "C" else None) for i, n in enumerate(names)
    ]
    held = sum(1 for n in names if n != "C")

    decided = plan(rows, groups)

    assert decided is not None
    message = decided.message
    blocks = message.attachments[0]["blocks"] if message.attachments else message.blocks
    last = _texts(list(blocks)[-1])  # type: ignore[call-overload]
    expected = f"{held} alert{'s were' if held > 1 else ' was'} held back by this team's quota"
    assert expected in last
    assert expected in message.text
    assert len(list(blocks)) <= 50  # type: ignore[call-overload]


def test_nothing_is_said_of_deliveries_that_were_not_held() -> None:
    decided = plan([claimed("A")], {"A": stored("A")})
    assert decided is not None
    assert "held back" not in _texts(decided.message)


def _buttons(decided: Plan | None) -> list[dict[str, Any]]:
    assert decided is not None
    attachments: Any = decided.message.payload()["attachments"]
    blocks: list[dict[str, Any]] = attachments[0]["blocks"]
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def _acknowledge_buttons(decided: Plan | None) -> list[dict[str, Any]]:
    return [b for b in _buttons(decided) if b["action_id"] == ACKNOWLEDGE_ACTION]


@pytest.mark.parametrize(
    ("row", "status", "shown"),
    [
        (claimed("A"), "firing", True),
        (claimed("A", ts="1.1", episode=1, kind="group"), "firing", True),
        (claimed("A", ts="1.1", episode=1, kind="group"), "resolved", False),
    ],
    ids=["post", "edit-while-firing", "resolved"],
)
def test_a_firing_groups_message_carries_the_acknowledge_button(
    row: Claimed, status: str, shown: bool
) -> None:
    """The button names the tenant; a resolved group has nothing left to acknowledge."""
    decided = plan([row], {"A": stored("A", status)}, acknowledge=True)
    buttons = _acknowledge_buttons(decided)
    assert bool(buttons) is shown
    if shown:
        assert buttons[0]["value"] == "acme"
        assert buttons[0]["text"] == {"type": "plain_text", "text": "Acknowledge"}


def test_no_button_without_interactivity_nor_on_a_digest() -> None:
    """No signing secret, no button (no press could be verified); a digest has none."""
    assert _acknowledge_buttons(plan([claimed("A")], {"A": stored("A")})) == []
    groups = {name: stored(name) for name in ("A", "B")}
    rows = [replace(claimed(n), id=i) for i, n in enumerate(groups)]
    assert _acknowledge_buttons(plan(rows, groups, acknowledge=True)) == []


@pytest.mark.parametrize("status", ["firing", "resolved"])
def test_an_acknowledged_message_says_who_and_when_instead_of_the_button(status: str) -> None:
    """In the message's language, with Slack's date token so each reader sees their time."""
    row = replace(
        claimed("A", ts="1.1", episode=1, kind="group"),
        locale="de_DE",
        ack=Ack("U0ADA", NOW),
    )
    decided = plan([row], {"A": stored("A", status)}, acknowledge=True)
    assert _acknowledge_buttons(decided) == []
    assert decided is not None
    text = _texts(decided.message)
    assert f"Bestätigt von <@U0ADA> <!date^{int(NOW.timestamp())}^" in text
    assert "Bestätigt von <@U0ADA>" in decided.message.text


def test_an_erased_acknowledger_leaves_the_fact_without_the_name() -> None:
    row = replace(claimed("A", ts="1.1", episode=1, kind="group"), ack=Ack(None, NOW))
    decided = plan([row], {"A": stored("A")}, acknowledge=True)
    text = _texts(decided.message if decided else None)
    assert "Acknowledged <!date^" in text
    assert "<@" not in text


def test_a_new_post_does_not_carry_an_older_messages_acknowledgement() -> None:
    """Fired again after the acknowledged episode: a new message, with the button again."""
    row = replace(claimed("A", ts="1.1", episode=1, kind="group"), ack=Ack("U0ADA", NOW))
    decided = plan([row], {"A": stored("A", episode=2)}, acknowledge=True)
    assert decided is not None
    assert decided.action is Action.POST
    assert len(_acknowledge_buttons(decided)) == 1
