"""What the dispatcher sends for a channel's claimed work, and which budgets it spends."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from slack_tools.alerts.models import SlackMessage, Status, group_from_stored
from slack_tools.alerts.render import (
    render_digest,
    render_group,
    render_reply,
    with_acknowledge_button,
    with_acknowledgement,
    with_held_note,
)
from slack_tools.configs.localization import Localizer
from slack_tools.configs.schema import AppConfig
from slack_tools.configs.templates import TemplateEngine
from slack_tools.slack.ratelimit import (
    Bucket,
    Request,
    channel_posts_key,
    workspace_posts_key,
    workspace_updates_key,
)
from slack_tools.storage import delivery as outbox


class Action(StrEnum):
    POST = "posted"
    UPDATE = "updated"
    REPLY = "replied"
    DIGEST = "digest"


@dataclass(frozen=True)
class Plan:
    """One Slack call for a channel's claimed work."""

    action: Action
    message: SlackMessage
    rows: tuple[outbox.Claimed, ...]
    episodes: tuple[int, ...]  # the episode of each row's group, as sent
    thread_ts: str | None = None
    reply: SlackMessage | None = None  # optional thread reply after an update (resolved)


@dataclass(frozen=True)
class Budgets:
    channel_posts: Bucket
    workspace_posts: Bucket
    workspace_updates: Bucket

    @classmethod
    def from_config(cls, config: AppConfig) -> Budgets:
        settings = config.delivery
        return cls(
            Bucket(settings.channel_posts_per_second, 1.0),
            Bucket(settings.workspace_posts_per_second, settings.workspace_posts_per_second),
            Bucket.per_minute(settings.updates_per_minute, burst=5.0),
        )


def plan_delivery(
    claimed: Sequence[outbox.Claimed],
    stored: Mapping[str, outbox.StoredGroup],
    localizer: Callable[[str], Localizer],
    now: datetime,
    *,
    thread_replies: bool,
    engine: TemplateEngine | None = None,
    templates: Mapping[str, str] | None = None,
    acknowledge: bool = False,
) -> Plan | None:
    """What to send for a channel's claimed deliveries (pure: no I/O, ``now`` given).

    Several at once make a digest. One makes a new post (first message of this episode),
    an edit of its message, or a reply in the digest that holds it. ``templates`` are
    the tenant's own, tried before ``engine``'s. Deliveries the tenant's quota held back
    get a last line saying how many alerts waited. With ``acknowledge`` (Slack
    interactivity configured), a group's own message carries an "Acknowledge" button
    while it fires, and says who acknowledged it once someone has.
    """
    plan = _plan(
        claimed,
        stored,
        localizer,
        now,
        thread_replies=thread_replies,
        engine=engine,
        templates=templates,
    )
    if plan is None:
        return None
    t = localizer(plan.rows[0].locale)
    held = sum(len(stored[row.group_hash].alerts) for row in plan.rows if row.held_at)
    if held:
        plan = replace(plan, message=with_held_note(plan.message, t, held))
    if acknowledge and plan.action in (Action.POST, Action.UPDATE):
        plan = replace(plan, message=_acknowledgement(plan, stored, t))
    return plan


def _acknowledgement(
    plan: Plan, stored: Mapping[str, outbox.StoredGroup], t: Localizer
) -> SlackMessage:
    row = plan.rows[0]
    # A new post is a new message: an acknowledgement of the previous one does not carry over.
    if row.ack is not None and plan.action is Action.UPDATE:
        return with_acknowledgement(plan.message, t, row.ack.by, row.ack.at)
    if stored[row.group_hash].status == Status.FIRING.value:
        return with_acknowledge_button(plan.message, t, row.tenant_id)
    return plan.message


def _plan(
    claimed: Sequence[outbox.Claimed],
    stored: Mapping[str, outbox.StoredGroup],
    localizer: Callable[[str], Localizer],
    now: datetime,
    *,
    thread_replies: bool,
    engine: TemplateEngine | None = None,
    templates: Mapping[str, str] | None = None,
) -> Plan | None:
    groups = {
        h: group_from_stored(s.source, s.group_key, s.status, s.alerts, s.meta)
        for h, s in stored.items()
    }
    present = [c for c in claimed if c.group_hash in groups]
    if not present:
        return None
    first = present[0]
    t = localizer(first.locale)
    group_message = functools.partial(render_group, engine=engine, templates=templates)
    reply_message = functools.partial(render_reply, engine=engine, templates=templates)
    digest_message = functools.partial(render_digest, engine=engine, templates=templates)
    if len(present) > 1:
        message = digest_message([groups[c.group_hash] for c in present], t, now)
        episodes = tuple(stored[c.group_hash].episode for c in present)
        return Plan(Action.DIGEST, message, tuple(present), episodes)
    group = groups[first.group_hash]
    episode = (stored[first.group_hash].episode,)
    same_episode = first.message_ts is not None and first.message_episode == episode[0]
    if same_episode and first.message_kind == Action.DIGEST.value:
        return Plan(
            Action.REPLY,
            reply_message(group, t, now),
            (first,),
            episode,
            thread_ts=first.message_ts,
        )
    if same_episode:
        reply = (
            reply_message(group, t, now)
            if (thread_replies and group.status is Status.RESOLVED)
            else None
        )
        message = group_message(group, t, now)
        return Plan(Action.UPDATE, message, (first,), episode, reply=reply)
    return Plan(Action.POST, group_message(group, t, now), (first,), episode)


def pacing_requests(plan: Plan, workspace: str, channel: str, budgets: Budgets) -> list[Request]:
    if plan.action is Action.UPDATE:
        return [(workspace_updates_key(workspace), budgets.workspace_updates, 1.0)]
    return [
        (channel_posts_key(workspace, channel), budgets.channel_posts, 1.0),
        (workspace_posts_key(workspace), budgets.workspace_posts, 1.0),
    ]


def needs_new_message(row: outbox.Claimed, group: outbox.StoredGroup | None) -> bool:
    """Whether this delivery makes a new message (none yet for the group's episode)."""
    return group is None or row.message_ts is None or row.message_episode != group.episode
