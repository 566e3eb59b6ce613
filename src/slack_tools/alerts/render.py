"""Block Kit messages from alert groups, in the reader's language, within Slack's limits.

The blocks sit inside one attachment so that the message gets the coloured bar
of its severity (Block Kit has no colour of its own); ``text`` is the fallback
shown in notifications. Every visible word goes through the localizer.
Limits (SLACK-API-FACTS): 50 blocks, 150 characters of header, 3000 per section,
10 fields of 2000; counted in characters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from slack_tools.alerts.models import Alert, AlertGroup, SlackMessage, Status
from slack_tools.configs.localization import Localizer
from slack_tools.configs.schema import Severity

MAX_BLOCKS = 50
MAX_HEADER = 150
MAX_SECTION = 3000
MAX_FIELDS = 10
MAX_FIELD = 2000
MAX_BUTTON = 75
MAX_TEXT = 40_000
MAX_URL = 3000

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


def escape(text: str) -> str:
    """Slack mrkdwn escaping: only &, < and > are special."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def severity_name(t: Localizer, severity: Severity) -> str:
    names = {
        # TRANSLATORS: severity of an alert, as in the header "🔴 Critical · HighErrorRate";
        # agree it with your word for "alert".
        Severity.CRITICAL: t.gettext("Critical"),
        Severity.ERROR: t.gettext("Error"),
        Severity.WARNING: t.gettext("Warning"),
        Severity.INFO: t.gettext("Info"),
        Severity.NONE: t.gettext("Notice"),
    }
    return names[severity]


def _header(t: Localizer, group: AlertGroup) -> str:
    if group.status is Status.RESOLVED:
        # TRANSLATORS: state of an alert group, as in the header "✅ Resolved · HighErrorRate".
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


def _timing(t: Localizer, group: AlertGroup, now: datetime) -> str:
    starts = [a.starts_at for a in group.alerts if a.starts_at]
    start = min(starts) if starts else None
    if group.status is Status.RESOLVED:
        ends = [a.ends_at for a in group.alerts if a.ends_at]
        end = max(ends) if ends else now
        # The date comes after a separator, never inside the sentence: Slack shows it as
        # "today" or "Yesterday" in the reader's language and zone.
        if start is None:
            # TRANSLATORS: followed by " · " and a date.
            return f"{t.gettext('Resolved')} · {t.slack_date(end)}"
        resolved = t.gettext("Resolved after %(duration)s", duration=t.duration(end - start))
        return f"{resolved} · {t.slack_date(end)}"
    firing = len(group.firing)
    if start is None:
        return t.ngettext("%(count)s alert firing", "%(count)s alerts firing", firing)
    since = t.ngettext(
        "%(count)s alert firing for %(duration)s",
        "%(count)s alerts firing for %(duration)s",
        firing,
        duration=t.duration(now - start),
    )
    return f"{since} · {t.slack_date(start)}"


def _fields(t: Localizer, group: AlertGroup) -> list[dict[str, str]]:
    labels = group.common_labels or (group.alerts[0].labels if len(group.alerts) == 1 else {})
    shown = [(k, v) for k, v in sorted(labels.items()) if k not in _SHOWN_ELSEWHERE]
    room = MAX_FIELDS if len(shown) <= MAX_FIELDS else MAX_FIELDS - 1
    fields = [
        {"type": "mrkdwn", "text": clip(f"*{escape(name)}*\n{escape(value)}", MAX_FIELD)}
        for name, value in shown[:room]
    ]
    if len(shown) > room:
        hidden = len(shown) - room
        more = t.ngettext("and %(count)s more label", "and %(count)s more labels", hidden)
        fields.append({"type": "mrkdwn", "text": f"_{more}_"})
    return fields


def _alert_line(t: Localizer, alert: Alert, common: Mapping[str, str]) -> str:
    own = [f"{k}={v}" for k, v in sorted(alert.labels.items()) if common.get(k) != v]
    mark = EMOJI["resolved"] if alert.is_resolved else EMOJI[alert.severity]
    parts = [f"{mark} `{escape(', '.join(own) or alert.name)}`"]
    description = alert.annotations.get("description") or alert.annotations.get("summary")
    if description:
        parts.append(escape(description))
    if alert.value:
        # TRANSLATORS: the measured value that triggered the alert, e.g. "value: B=91.2".
        parts.append(t.gettext("value: %(value)s", value=escape(alert.value)))
    return clip(" — ".join(parts), MAX_SECTION)


def _buttons(t: Localizer, group: AlertGroup) -> list[dict[str, Any]]:
    first = group.alerts[0].links if group.alerts else None
    if first is None:
        return []
    candidates = [
        # TRANSLATORS: button opening the graph or rule that produced the alert.
        ("source", t.gettext("Source"), first.generator),
        # TRANSLATORS: button opening the procedure to follow for this alert.
        (
            "runbook",
            t.gettext("Runbook"),
            first.runbook or _link(group.common_annotations.get("runbook_url")),
        ),
        ("dashboard", t.gettext("Dashboard"), first.dashboard),
        ("panel", t.gettext("Panel"), first.panel),
        # TRANSLATORS: button that silences the alert (Alertmanager/Grafana), a verb.
        ("silence", t.gettext("Silence"), group.silence_url or first.silence),
    ]
    return [
        {
            "type": "button",
            "action_id": f"link_{name}",
            "text": {"type": "plain_text", "text": clip(label, MAX_BUTTON)},
            "url": url,
        }
        for name, label, url in candidates
        # A longer URL makes Slack refuse the whole message; the link is dropped instead.
        if url and len(url) <= MAX_URL
    ]


def _link(value: str | None) -> str | None:
    return value if value and value.startswith(("http://", "https://")) else None


def _color(group: AlertGroup) -> str:
    return COLORS["resolved"] if group.status is Status.RESOLVED else COLORS[group.severity]


def fallback_text(t: Localizer, group: AlertGroup) -> str:
    summary, _ = _summary(group)
    head = escape(_header(t, group))
    return clip(f"{head}: {escape(summary)}" if summary else head, MAX_TEXT)


def render_group(group: AlertGroup, t: Localizer, now: datetime) -> SlackMessage:
    """The message of one group: header, summary, labels, timing, alerts, links."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": clip(_header(t, group), MAX_HEADER),
                "emoji": True,
            },
        }
    ]
    summary, description = _summary(group)
    value = group.alerts[0].value if len(group.alerts) == 1 else None
    parts = (
        f"*{escape(summary)}*" if summary else "",
        escape(description),
        t.gettext("value: %(value)s", value=escape(value)) if value else "",
    )
    text = "\n".join(p for p in parts if p)
    if text:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION)}}
        )
    fields = _fields(t, group)
    if fields:
        blocks.append({"type": "section", "fields": fields})
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _timing(t, group, now)}]}
    )

    buttons = _buttons(t, group)
    tail: list[dict[str, Any]] = []
    if group.truncated_alerts:
        tail.append(
            _context(
                t.ngettext(
                    "%(count)s more alert was left out by the sender",
                    "%(count)s more alerts were left out by the sender",
                    group.truncated_alerts,
                )
            )
        )
    if buttons:
        tail.append({"type": "actions", "elements": buttons})

    if len(group.alerts) > 1:
        ordered = sorted(group.alerts, key=lambda a: (a.is_resolved, -a.severity.rank))
        room = MAX_BLOCKS - len(blocks) - len(tail)
        shown = ordered if len(ordered) <= room else ordered[: room - 1]
        common = {**group.group_labels, **group.common_labels}
        blocks += [
            {"type": "section", "text": {"type": "mrkdwn", "text": _alert_line(t, a, common)}}
            for a in shown
        ]
        if len(shown) < len(ordered):
            hidden = len(ordered) - len(shown)
            more = t.ngettext("and %(count)s more alert", "and %(count)s more alerts", hidden)
            blocks.append(_context(more))
    blocks += tail
    attachment = {"color": _color(group), "blocks": blocks, "fallback": fallback_text(t, group)}
    return SlackMessage(text=fallback_text(t, group), attachments=(attachment,))


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, MAX_SECTION)}]}


def render_reply(group: AlertGroup, t: Localizer, now: datetime) -> SlackMessage:
    """A short thread reply saying what changed (the parent message shows the whole group)."""
    return SlackMessage(
        text=clip(f"{escape(_header(t, group))} — {_timing(t, group, now)}", MAX_TEXT)
    )


def render_digest(groups: Sequence[AlertGroup], t: Localizer, now: datetime) -> SlackMessage:
    """One message for many groups at once, when a channel has more than its pace can send."""
    header = t.ngettext(
        "%(count)s alert group changed", "%(count)s alert groups changed", len(groups)
    )
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": clip(f"📋 {header}", MAX_HEADER), "emoji": True},
        },
        _context(
            t.gettext(
                "Grouped into one message to stay within Slack's limits; "
                "changes follow in the thread."
            )
        ),
    ]
    ordered = sorted(groups, key=lambda g: (g.status is Status.RESOLVED, -g.severity.rank))
    room = MAX_BLOCKS - len(blocks)
    shown = ordered if len(ordered) <= room else ordered[: room - 1]
    for group in shown:
        summary, _ = _summary(group)
        line = f"*{escape(_header(t, group))}*"
        if summary:
            line += f" — {escape(summary)}"
        line += f"\n{_timing(t, group, now)}"
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": clip(line, MAX_SECTION)}}
        )
    if len(shown) < len(ordered):
        hidden = len(ordered) - len(shown)
        more = t.ngettext("and %(count)s more group", "and %(count)s more groups", hidden)
        blocks.append(_context(more))
    worst = max(
        (g.severity for g in groups if g.status is Status.FIRING),
        key=lambda s: s.rank,
        default=None,
    )
    color = COLORS[worst] if worst is not None else COLORS["resolved"]
    fallback = clip(f"📋 {header}", MAX_TEXT)
    return SlackMessage(
        text=fallback, attachments=({"color": color, "blocks": blocks, "fallback": fallback},)
    )


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
