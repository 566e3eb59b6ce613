"""Block Kit messages from alert groups, in the reader's language, within Slack's limits.

The words and layout come from message templates (``configs/templates``: the
packaged defaults, a per-locale override, or a tenant's own, sandboxed); this
module gives them the facts of a group, then makes what they produce a message
Slack accepts: every block rebuilt from the keys Slack knows, texts clipped,
links kept only when http(s) and short enough, and lists cut to 50 blocks with
an "and N more" line. That holds for any template, a tenant's included.

The blocks sit inside one attachment so that the message gets the coloured bar
of its severity (Block Kit has no colour of its own); ``text`` is the fallback
shown in notifications. Limits (SLACK-API-FACTS): 50 blocks, 150 characters of
header, 3000 per section, 10 fields of 2000; counted in characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeGuard, cast

from slack_tools.alerts.models import Alert, AlertGroup, SlackMessage, Source, Status
from slack_tools.configs.localization import Localizer
from slack_tools.configs.schema import Severity
from slack_tools.configs.templates import TemplateEngine, clip, default_engine
from slack_tools.configs.templates import escape_mrkdwn as escape

MAX_BLOCKS = 50
MAX_HEADER = 150
MAX_SECTION = 3000
MAX_FIELDS = 10
MAX_FIELD = 2000
MAX_BUTTON = 75
MAX_TEXT = 40_000
MAX_URL = 3000
MAX_BLOCK_ID = 255
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTION_ELEMENTS = 25

COLORS: Mapping[Severity | str, str] = {
    Severity.CRITICAL: "#D92D20",
    Severity.ERROR: "#F04438",
    Severity.WARNING: "#F79009",
    Severity.INFO: "#2E90FA",
    Severity.NONE: "#98A2B3",
    "resolved": "#12B76A",
}
EMOJI: Mapping[Severity | str, str] = {
    Severity.CRITICAL: "🔴",
    Severity.ERROR: "🟠",
    Severity.WARNING: "🟡",
    Severity.INFO: "🔵",
    Severity.NONE: "⚪",
    "resolved": "✅",
}
# Labels shown elsewhere in the message, not repeated as fields.
_SHOWN_ELSEWHERE = frozenset({"alertname", "severity"})
# An enum's .value is a descriptor call (~0.5 µs on 3.11); the facts of a message need
# a few dozen of them, so they are looked up here instead.
_RANKS: Mapping[Severity, int] = {severity: severity.rank for severity in Severity}
_NAMES: Mapping[Severity | Status | Source, str] = {
    member: member.value for kind in (Severity, Status, Source) for member in kind
}


_OPEN_TOKEN = re.compile(r"<[^>]*$|&[a-z]{0,3}$")


def clip_mrkdwn(text: str, limit: int) -> str:
    """:func:`clip`, never cutting a ``<!date…>`` token or an ``&amp;`` entity in two."""
    if len(text) <= limit:
        return text
    kept = text[: limit - 1]
    cut = _OPEN_TOKEN.search(kept)
    return (kept[: cut.start()] if cut else kept) + "…"


def severity_name(t: Localizer, severity: Severity) -> str:
    # The same words as the templates' (_common.j2, where their notes to translators are).
    names = {
        Severity.CRITICAL: t.gettext("Critical"),
        Severity.ERROR: t.gettext("Error"),
        Severity.WARNING: t.gettext("Warning"),
        Severity.INFO: t.gettext("Info"),
        Severity.NONE: t.gettext("Notice"),
    }
    return names[severity]


def _header(t: Localizer, group: AlertGroup) -> str:
    if group.status is Status.RESOLVED:
        resolved = t.gettext("Resolved")
        return f"{EMOJI['resolved']} {resolved} · {group.name}"
    severity = group.severity
    return f"{EMOJI[severity]} {severity_name(t, severity)} · {group.name}"


def _summary(group: AlertGroup) -> tuple[str, str]:
    first = group.alerts[0].annotations if group.alerts else {}
    summary = group.common_annotations.get("summary") or first.get("summary") or group.title or ""
    description = group.common_annotations.get("description", "")
    if not description and len(group.alerts) == 1:
        description = first.get("description", "")
    return summary, description


def fallback_text(t: Localizer, group: AlertGroup) -> str:
    """The notification text of a group's message (what the default template writes)."""
    summary, _ = _summary(group)
    head = escape(_header(t, group))
    return clip(f"{head}: {escape(summary)}" if summary else head, MAX_TEXT)


# --- what a template is given -------------------------------------------------------------


def _data(text: str) -> str:
    # Nothing in a message can show more than MAX_TEXT characters of one value, and a
    # shorter value costs a template less; cutting here changes nothing a reader sees.
    return text if type(text) is str and len(text) <= MAX_TEXT else clip(text, MAX_TEXT)


def _data_map(values: Mapping[str, str]) -> dict[str, str]:
    """:func:`_data` of each value, without a call for the (usual) short strings."""
    return {
        k: v if type(v) is str and len(v) <= MAX_TEXT else clip(v, MAX_TEXT)
        for k, v in values.items()
    }


def _pairs(labels: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": _data(k), "value": _data(v)} for k, v in labels.items()]


def _display_labels(group: AlertGroup) -> dict[str, str]:
    labels = group.common_labels or (group.alerts[0].labels if len(group.alerts) == 1 else {})
    return {k: v for k, v in sorted(labels.items()) if k not in _SHOWN_ELSEWHERE}


def _links(group: AlertGroup) -> list[dict[str, str]]:
    first = group.alerts[0].links if group.alerts else None
    if first is None:
        return []
    candidates = (
        ("source", first.generator),
        ("runbook", first.runbook or group.common_annotations.get("runbook_url")),
        ("dashboard", first.dashboard),
        ("panel", first.panel),
        ("silence", group.silence_url or first.silence),
    )
    return [{"name": name, "url": url} for name, url in candidates if _usable_url(url)]


def _usable_url(url: object) -> TypeGuard[str]:
    # A longer URL makes Slack refuse the whole message; the link is dropped instead.
    return isinstance(url, str) and url.startswith(("http://", "https://")) and len(url) <= MAX_URL


def group_facts(group: AlertGroup, now: datetime) -> dict[str, Any]:
    """What a template knows of a group (plain data: strings, numbers, lists, times)."""
    summary, description = _summary(group)
    resolved = group.status is Status.RESOLVED
    starts = [a.starts_at for a in group.alerts if a.starts_at]
    start = min(starts) if starts else None
    end = None
    if resolved:
        ends = [a.ends_at for a in group.alerts if a.ends_at]
        end = max(ends) if ends else now
    value = group.alerts[0].value if len(group.alerts) == 1 else None
    firing = len(group.firing)
    return {
        "name": _data(group.name),
        "status": _NAMES[group.status],
        "is_resolved": resolved,
        "severity": _NAMES[group.severity],
        "emoji": EMOJI["resolved"] if resolved else EMOJI[group.severity],
        "color": _color(group),
        "summary": _data(summary),
        "description": _data(description),
        "value": _data(value) if value else None,
        "labels": _pairs(_display_labels(group)),
        "alert_count": len(group.alerts),
        "firing_count": firing,
        "resolved_count": len(group.alerts) - firing,
        "truncated_alerts": group.truncated_alerts,
        "starts_at": start,
        "ends_at": end,
        "elapsed": None if start is None else (end or now) - start,
        "links": _links(group),
        "group_labels": _data_map(group.group_labels),
        "common_labels": _data_map(group.common_labels),
        "common_annotations": _data_map(group.common_annotations),
        "source": _NAMES[group.source],
        "receiver": group.receiver,
        "title": group.title,
    }


def alert_facts(alert: Alert, common: Mapping[str, str]) -> dict[str, Any]:
    """What a template knows of one alert; ``own_labels`` are those not common to the group."""
    # Called for every listed alert of every message: attributes are read once each.
    labels, annotations, links = alert.labels, alert.annotations, alert.links
    resolved = alert.is_resolved
    severity = alert.severity
    own = {k: v for k, v in sorted(labels.items()) if common.get(k) != v}
    return {
        "name": _data(alert.name),
        "fingerprint": alert.fingerprint,
        "status": _NAMES[alert.status],
        "is_resolved": resolved,
        "severity": _NAMES[severity],
        "emoji": EMOJI["resolved"] if resolved else EMOJI[severity],
        "labels": _data_map(labels),
        "own_labels": _pairs(own),
        "annotations": _data_map(annotations),
        "summary": _data(annotations.get("summary", "")),
        "description": _data(annotations.get("description", "")),
        "value": _data(alert.value) if alert.value else None,
        "starts_at": alert.starts_at,
        "ends_at": alert.ends_at,
        "links": {
            name: url
            for name, url in (
                ("generator", links.generator),
                ("runbook", links.runbook),
                ("silence", links.silence),
                ("dashboard", links.dashboard),
                ("panel", links.panel),
            )
            if url is not None and _usable_url(url)
        },
    }


def _listed_alerts(group: AlertGroup) -> list[Alert]:
    # Firing and most severe first; never more than a message can list.
    ordered = sorted(group.alerts, key=lambda a: (a.is_resolved, -_RANKS[a.severity]))
    return ordered[:MAX_BLOCKS]


def _listed_groups(groups: Sequence[AlertGroup]) -> list[AlertGroup]:
    ordered = sorted(groups, key=lambda g: (g.status is Status.RESOLVED, -g.severity.rank))
    return ordered[:MAX_BLOCKS]


# --- what a template produces, made a message Slack accepts -----------------------------------


class MessageShapeError(ValueError):
    """A template's output that is not a message (the next template renders it instead).

    The text never quotes the output: it may hold alert data, and it is logged.
    """


_TOP_KEYS = frozenset({"text", "color", "blocks", "items", "tail"})
_COLOR = re.compile(r"^(#[0-9A-Fa-f]{6}|good|warning|danger)$")


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MessageShapeError(f"{what} must be a non-empty string")
    return value


def _text_object(value: object, limit: int, kinds: frozenset[str]) -> dict[str, Any] | None:
    """A text object clipped to ``limit``; ``None`` when its text is empty."""
    if not isinstance(value, dict) or value.get("type") not in kinds:
        raise MessageShapeError(f"a text object must have a type among {sorted(kinds)}")
    text = value.get("text")
    if not isinstance(text, str):
        raise MessageShapeError("a text object must have a text")
    if not text or text.isspace():  # what strip() would leave empty, without the copy
        return None
    kind = value["type"]
    if len(text) > limit:
        text = clip_mrkdwn(text, limit) if kind == "mrkdwn" else clip(text, limit)
    found: dict[str, Any] = {"type": kind, "text": text}
    for flag in ("emoji", "verbatim"):
        if isinstance(value.get(flag), bool):
            found[flag] = value[flag]
    return found


_TEXTS = frozenset({"mrkdwn", "plain_text"})
_PLAIN = frozenset({"plain_text"})


def _list(block: Mapping[str, Any], key: str) -> list[Any]:
    value = block.get(key, [])
    if not isinstance(value, list):
        raise MessageShapeError(f"{key} must be a list")
    return value


def _header_block(block: Mapping[str, Any], _t: Localizer) -> dict[str, Any] | None:
    text = _text_object(block.get("text"), MAX_HEADER, _PLAIN)
    return None if text is None else {"type": "header", "text": text}


def _section_block(block: Mapping[str, Any], t: Localizer) -> dict[str, Any] | None:
    found: dict[str, Any] = {"type": "section"}
    if "text" in block:
        text = _text_object(block["text"], MAX_SECTION, _TEXTS)
        if text is not None:
            found["text"] = text
    fields = [f for f in (_text_object(f, MAX_FIELD, _TEXTS) for f in _list(block, "fields")) if f]
    if len(fields) > MAX_FIELDS:
        hidden = len(fields) - (MAX_FIELDS - 1)
        more = t.ngettext("and %(count)s more label", "and %(count)s more labels", hidden)
        fields = [*fields[: MAX_FIELDS - 1], {"type": "mrkdwn", "text": f"_{more}_"}]
    if fields:
        found["fields"] = fields
    return found if len(found) > 1 else None


def _context_block(block: Mapping[str, Any], _t: Localizer) -> dict[str, Any] | None:
    elements = [
        e for e in (_text_object(e, MAX_SECTION, _TEXTS) for e in _list(block, "elements")) if e
    ]
    return {"type": "context", "elements": elements[:MAX_CONTEXT_ELEMENTS]} if elements else None


def _actions_block(block: Mapping[str, Any], _t: Localizer) -> dict[str, Any] | None:
    buttons: list[dict[str, Any]] = []
    for index, element in enumerate(_list(block, "elements")):
        if not isinstance(element, dict) or element.get("type") != "button":
            raise MessageShapeError("actions may only hold link buttons")
        text = _text_object(element.get("text"), MAX_BUTTON, _PLAIN)
        if text is None or not _usable_url(element.get("url")):
            continue
        action_id = element.get("action_id")
        if not isinstance(action_id, str) or not 0 < len(action_id) <= MAX_BLOCK_ID:
            action_id = f"link_{index}"
        button = {"type": "button", "action_id": action_id, "text": text, "url": element["url"]}
        if element.get("style") in ("primary", "danger"):
            button["style"] = element["style"]
        buttons.append(button)
    return {"type": "actions", "elements": buttons[:MAX_ACTION_ELEMENTS]} if buttons else None


def _divider_block(_block: Mapping[str, Any], _t: Localizer) -> dict[str, Any]:
    return {"type": "divider"}


_BLOCKS: Mapping[str, Callable[[Mapping[str, Any], Localizer], dict[str, Any] | None]] = {
    "header": _header_block,
    "section": _section_block,
    "context": _context_block,
    "actions": _actions_block,
    "divider": _divider_block,
}


def _blocks(value: object, t: Localizer) -> list[dict[str, Any]]:
    """Blocks rebuilt from the keys Slack knows, clipped; empty ones left out."""
    if not isinstance(value, list):
        raise MessageShapeError("blocks, items and tail must be lists")
    found: list[dict[str, Any]] = []
    for block in value:
        if not isinstance(block, dict) or block.get("type") not in _BLOCKS:
            raise MessageShapeError("a block is not an object of a known type")
        built = _BLOCKS[block["type"]](block, t)
        if built is None:
            continue
        block_id = block.get("block_id")
        if isinstance(block_id, str) and 0 < len(block_id) <= MAX_BLOCK_ID:
            built["block_id"] = block_id
        found.append(built)
    return found


def _fit(
    head: list[dict[str, Any]],
    items: list[dict[str, Any]],
    tail: list[dict[str, Any]],
    unlisted: int,
    more: Callable[[int], str],
) -> list[dict[str, Any]]:
    """At most MAX_BLOCKS blocks: the items that fit, then "and N more", between head and tail.

    ``unlisted`` items were never given to the template (beyond what a message can list).
    When the template's own blocks leave no room, its last ones count as not listed.
    """
    tail = tail[: MAX_BLOCKS // 2]
    total = len(items) + unlisted
    room = MAX_BLOCKS - len(head) - len(tail)
    shown = items if total <= room else items[: max(room - 1, 0)]
    hidden = total - len(shown)
    fixed = len(head) + len(tail)
    if fixed > MAX_BLOCKS or (fixed == MAX_BLOCKS and hidden):
        excess = fixed + 1 - MAX_BLOCKS
        head, hidden = head[: len(head) - excess], hidden + excess
    return [*head, *shown, *([_context(more(hidden))] if hidden else []), *tail]


def _message(
    output: object, t: Localizer, *, color: str, unlisted: int, more: Callable[[int], str]
) -> SlackMessage:
    if not isinstance(output, dict) or not output.keys() <= _TOP_KEYS:
        raise MessageShapeError(f"a message template must produce an object of {sorted(_TOP_KEYS)}")
    text = clip(_text(output.get("text"), "text"), MAX_TEXT)
    chosen = output.get("color", color)
    if not isinstance(chosen, str) or not _COLOR.match(chosen):
        raise MessageShapeError("color must be #RRGGBB, good, warning or danger")
    items = _blocks(output.get("items", []), t)
    blocks = _fit(
        _blocks(output.get("blocks", []), t),
        items,
        _blocks(output.get("tail", []), t),
        unlisted if items else 0,
        more,
    )
    if not blocks:
        raise MessageShapeError("a message needs at least one block")
    attachment = {"color": chosen, "blocks": blocks, "fallback": text}
    return SlackMessage(text=text, attachments=(attachment,))


def _reply(output: object) -> SlackMessage:
    if not isinstance(output, dict) or output.keys() != {"text"}:
        raise MessageShapeError('a reply template must produce {"text": …}')
    return SlackMessage(text=clip(_text(output["text"], "text"), MAX_TEXT))


def _color(group: AlertGroup) -> str:
    return COLORS["resolved"] if group.status is Status.RESOLVED else COLORS[group.severity]


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, MAX_SECTION)}]}


# --- the messages -------------------------------------------------------------------------------

# The action id of the "Acknowledge" button; the interaction handler (service/interactions.py)
# recognises the button by it.
ACKNOWLEDGE_ACTION = "slack_tools.acknowledge"


def _with_last_block(
    message: SlackMessage, block: Mapping[str, Any], text_line: str | None = None
) -> SlackMessage:
    """``message`` with ``block`` last (taking the last block's place when full)."""
    text = clip(f"{message.text}\n{text_line}", MAX_TEXT) if text_line else message.text
    if message.attachments:
        first, *others = message.attachments
        blocks = [*cast("Sequence[Mapping[str, object]]", first.get("blocks", ()))]
        blocks = [*blocks[: MAX_BLOCKS - 1], block]
        attachment = {**first, "blocks": blocks, "fallback": text}
        return SlackMessage(text=text, attachments=(attachment, *others))
    blocks = [*message.blocks[: MAX_BLOCKS - 1], block]
    return SlackMessage(text=text, blocks=tuple(blocks), attachments=message.attachments)


def with_held_note(message: SlackMessage, t: Localizer, alerts: int) -> SlackMessage:
    """The message with a last line saying ``alerts`` were held back by the tenant's quota.

    Added to whatever template made the message, so no tenant template can lose it; it
    takes the last block's place when the message has no room left.
    """
    note = t.ngettext(
        "%(count)s alert was held back by this team's quota and is shown now",
        "%(count)s alerts were held back by this team's quota and are shown now",
        alerts,
    )
    return _with_last_block(message, _context(f"⏳ {note}"), note)


def with_acknowledge_button(message: SlackMessage, t: Localizer, value: str) -> SlackMessage:
    """The message of a firing group with an "Acknowledge" button under it.

    Added by code, after any template, so no tenant template can lose it. ``value`` comes
    back in the interaction Slack sends when someone presses it.
    """
    button = {
        "type": "button",
        "action_id": ACKNOWLEDGE_ACTION,
        "text": {"type": "plain_text", "text": clip(t.gettext("Acknowledge"), MAX_BUTTON)},
        "style": "primary",
        "value": value,
    }
    return _with_last_block(message, {"type": "actions", "elements": [button]})


def with_acknowledgement(
    message: SlackMessage, t: Localizer, by: str | None, at: datetime
) -> SlackMessage:
    """The message with a last line saying who acknowledged it, and when (reader's time)."""
    when = t.slack_date(at)
    if by is None:  # the person was erased; the fact remains
        note = t.gettext("Acknowledged %(when)s") % {"when": when}
    else:
        note = t.gettext("Acknowledged by %(user)s %(when)s") % {"user": f"<@{by}>", "when": when}
    return _with_last_block(message, _context(f"☑️ {note}"), note)


def render_group(
    group: AlertGroup,
    t: Localizer,
    now: datetime,
    *,
    templates: Mapping[str, str] | None = None,
    engine: TemplateEngine | None = None,
) -> SlackMessage:
    """The message of one group: header, summary, labels, timing, alerts, links.

    ``templates`` are the tenant's own (name → source), tried first; ``engine`` holds the
    default templates (the packaged ones unless given).
    """
    listed = _listed_alerts(group)
    common = {**group.group_labels, **group.common_labels}
    context = {
        "group": group_facts(group, now),
        "alerts": [alert_facts(a, common) for a in listed],
        "now": now,
    }

    def accept(output: object) -> SlackMessage:
        return _message(
            output,
            t,
            color=_color(group),
            unlisted=len(group.alerts) - len(listed),
            more=lambda n: t.ngettext("and %(count)s more alert", "and %(count)s more alerts", n),
        )

    chosen = engine or default_engine()
    return chosen.render("group", t, context, accept, tenant_templates=templates)


def render_reply(
    group: AlertGroup,
    t: Localizer,
    now: datetime,
    *,
    templates: Mapping[str, str] | None = None,
    engine: TemplateEngine | None = None,
) -> SlackMessage:
    """A short thread reply saying what changed (the parent message shows the whole group)."""
    context = {"group": group_facts(group, now), "now": now}
    chosen = engine or default_engine()
    return chosen.render("reply", t, context, _reply, tenant_templates=templates)


def render_digest(
    groups: Sequence[AlertGroup],
    t: Localizer,
    now: datetime,
    *,
    templates: Mapping[str, str] | None = None,
    engine: TemplateEngine | None = None,
) -> SlackMessage:
    """One message for many groups at once, when a channel has more than its pace can send."""
    listed = _listed_groups(groups)
    worst = max(
        (g.severity for g in groups if g.status is Status.FIRING),
        key=lambda s: s.rank,
        default=None,
    )
    color = COLORS[worst] if worst is not None else COLORS["resolved"]
    context = {
        "groups": [group_facts(g, now) for g in listed],
        "group_count": len(groups),
        "color": color,
        "now": now,
    }

    def accept(output: object) -> SlackMessage:
        return _message(
            output,
            t,
            color=color,
            unlisted=len(groups) - len(listed),
            more=lambda n: t.ngettext("and %(count)s more group", "and %(count)s more groups", n),
        )

    chosen = engine or default_engine()
    return chosen.render("digest", t, context, accept, tenant_templates=templates)


def plain_view(message: SlackMessage) -> str:
    """A readable text view of a message, as a reader would see it (previews, CLI)."""
    lines: list[str] = []
    attached: list[Any] = [b for a in message.attachments for b in a.get("blocks", [])]  # type: ignore[attr-defined]
    block: Any
    for block in [*message.blocks, *attached]:
        kind = block.get("type")
        if kind == "header":
            lines.append(f"## {block['text']['text']}")
        elif kind == "section":
            if "text" in block:
                lines.append(str(block["text"]["text"]))
            lines += ["  " + str(f["text"]).replace("\n", ": ", 1) for f in block.get("fields", [])]
        elif kind == "context":
            lines += [f"  ({e['text']})" for e in block.get("elements", [])]
        elif kind == "actions":
            lines += [f"  [{e['text']['text']}] {e.get('url', '')}" for e in block["elements"]]
    return "\n".join(lines) if lines else message.text
