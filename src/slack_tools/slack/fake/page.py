"""The fake's HTML page: each channel's messages as a Slack reader would see them.

Slack's mrkdwn is rendered by a few regular expressions: no maintained library
renders Slack's dialect (``<url|text>``, ``<!date^…|fallback>``, ``*bold*``), and
Markdown renderers would accept HTML from alert text. Everything from a message
is escaped first; only markup built here reaches the page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import jinja2
from markupsafe import Markup, escape

REFRESH_SECONDS = 3

_TOKEN = re.compile(r"```(?P<pre>.+?)```|`(?P<code>[^`\n]+)`|<(?P<angle>[^<>\n]+)>", re.DOTALL)
_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])")
_STRIKE = re.compile(r"(?<![\w~])~(?=\S)([^~\n]+?)(?<=\S)~(?![\w~])")
_PLACEHOLDER = re.compile(r"\x00(\d+)\x00")
_SAFE_URL = re.compile(r"^(https?://|mailto:)", re.IGNORECASE)
_HEX_COLOR = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")
_NAMED_COLORS = {"good": "#2eb67d", "warning": "#ecb22e", "danger": "#e01e5a"}
_DEFAULT_COLOR = "#dddddd"
_EMOJI = {
    ":rotating_light:": "🚨",
    ":fire:": "🔥",
    ":warning:": "⚠️",
    ":white_check_mark:": "✅",
    ":heavy_check_mark:": "✔️",
    ":x:": "❌",
    ":red_circle:": "🔴",
    ":large_orange_circle:": "🟠",
    ":large_yellow_circle:": "🟡",
    ":large_green_circle:": "🟢",
    ":large_blue_circle:": "🔵",
    ":bell:": "🔔",
    ":no_bell:": "🔕",
    ":mag:": "🔍",
}
_EMOJI_CODE = re.compile(r":[a-z0-9_+-]+:")


def _unescape_slack(text: str) -> str:
    """Undo Slack's own escaping of ``&``, ``<`` and ``>`` in message text."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _emoji(text: str) -> str:
    return _EMOJI_CODE.sub(lambda m: _EMOJI.get(m.group(0), m.group(0)), text)


def link(url: object, label: object, css_class: str = "") -> Markup:
    """Render a link when the URL is http(s) or mailto, else the label (in a span if styled)."""
    text = label if isinstance(label, Markup) else escape(label if isinstance(label, str) else "")
    if not isinstance(url, str) or not _SAFE_URL.match(url):
        return Markup('<span class="{}">{}</span>').format(css_class, text) if css_class else text
    attributes = Markup(' class="{}"').format(css_class) if css_class else Markup("")
    return Markup('<a{} href="{}" target="_blank" rel="noopener noreferrer">{}</a>').format(
        attributes, url, text
    )


def _angle(content: str) -> str:
    """Render one ``<…>`` token: a link, a mention, or a date token's fallback."""
    target, _, label = content.partition("|")
    label = _unescape_slack(label)
    if target.startswith("!date^"):
        return str(escape(label or target))
    if target.startswith("!"):
        return str(escape(label or "@" + target[1:].split("^")[0]))
    if target[:1] in "@#":
        sigil = target[0]
        return str(escape(label if label.startswith(sigil) else sigil + (label or target[1:])))
    if _SAFE_URL.match(target):
        return str(link(_unescape_slack(target), label or _unescape_slack(target)))
    return str(escape(f"<{_unescape_slack(content)}>"))  # not a Slack token: show it as typed


def render_mrkdwn(text: object) -> Markup:
    """Render Slack mrkdwn as safe HTML: bold, italic, strike, code, links, dates, mentions."""
    if not isinstance(text, str):
        return Markup("")
    pieces: list[str] = []

    def stash(match: re.Match[str]) -> str:
        if match.group("pre") is not None:
            piece = f"<pre>{escape(_unescape_slack(match.group('pre')))}</pre>"
        elif match.group("code") is not None:
            piece = f"<code>{escape(_unescape_slack(match.group('code')))}</code>"
        else:
            piece = _angle(match.group("angle"))
        pieces.append(piece)
        return f"\x00{len(pieces) - 1}\x00"

    source = _TOKEN.sub(stash, text.replace("\x00", ""))
    rendered = str(escape(_emoji(_unescape_slack(source))))
    rendered = _BOLD.sub(r"<b>\1</b>", rendered)
    rendered = _ITALIC.sub(r"<i>\1</i>", rendered)
    rendered = _STRIKE.sub(r"<s>\1</s>", rendered)
    rendered = rendered.replace("\n", "<br>")
    # Every piece and every character outside them was escaped above.
    return Markup(_PLACEHOLDER.sub(lambda m: pieces[int(m.group(1))], rendered))  # noqa: S704 - escaped above  # nosec B704


def render_plain(text: object) -> Markup:
    """Render plain text: escaped, emoji shortcodes shown, line breaks kept."""
    if not isinstance(text, str):
        return Markup("")
    return escape(_emoji(text)).replace("\n", Markup("<br>"))


def render_text_object(obj: object) -> Markup:
    """Render a Block Kit text object (``mrkdwn`` or ``plain_text``), or a bare string."""
    if isinstance(obj, Mapping):
        if obj.get("type") == "mrkdwn":
            return render_mrkdwn(obj.get("text"))
        return render_plain(obj.get("text"))
    return render_plain(obj)


def slack_color(value: object) -> str:
    """Turn an attachment ``color`` into a CSS colour, never anything else."""
    if isinstance(value, str):
        if value in _NAMED_COLORS:
            return _NAMED_COLORS[value]
        if match := _HEX_COLOR.match(value):
            return "#" + match.group(1)
    return _DEFAULT_COLOR


def ts_time(ts: object) -> str:
    """Show a Slack ``ts`` as a UTC time."""
    try:
        moment = datetime.fromtimestamp(float(str(ts)), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return str(ts)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{% if refresh %}<meta http-equiv="refresh" content="{{ refresh }}">{% endif %}
<title>Slack fake · {{ total }} message{{ "" if total == 1 else "s" }}</title>
<style>
:root { --ink:#1d1c1d; --muted:#616061; --line:#e8e8e8; --bg:#f8f8f8; --link:#1264a3; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.46 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color:var(--ink); background:var(--bg); }
.top { background:#3f0e40; color:#fff; padding:12px 24px; display:flex; align-items:baseline;
  gap:16px; }
.top h1 { font-size:18px; margin:0; } .top p { margin:0; opacity:.8; font-size:13px; }
.top a { color:#fff; }
main { max-width:960px; margin:0 auto; padding:16px; }
.channel { background:#fff; border:1px solid var(--line); border-radius:8px; margin:0 0 20px; }
.channel > h2 { font-size:16px; margin:0; padding:10px 16px; border-bottom:1px solid var(--line); }
.meta { color:var(--muted); font-size:12px; font-weight:normal; }
.empty { color:var(--muted); padding:8px 16px; margin:0; }
.message { display:flex; gap:8px; padding:8px 16px; }
.message:hover { background:#f8f8f8; }
.avatar { flex:none; width:36px; height:36px; border-radius:6px; background:#e01e5a; color:#fff;
  display:flex; align-items:center; justify-content:center; font-weight:bold; }
.body { flex:1; min-width:0; }
.who b { margin-right:4px; } time { color:var(--muted); font-size:12px; }
.app { background:#ddd; color:var(--muted); font-size:10px; padding:1px 3px; border-radius:2px;
  margin-right:6px; }
details.edited { display:inline; color:var(--muted); font-size:12px; }
details.edited summary { display:inline; cursor:pointer; }
details.edited ol { background:var(--bg); border-radius:4px; padding:4px 8px 4px 28px;
  margin:4px 0; }
.header { font-size:18px; font-weight:900; margin:4px 0; }
.section { display:flex; gap:12px; margin:4px 0; } .section > .content { flex:1; min-width:0; }
.fields { display:grid; grid-template-columns:1fr 1fr; gap:6px 16px; margin:6px 0; }
.fields .long { grid-column:1 / -1; }
.context { color:var(--muted); font-size:12px; margin:4px 0; display:flex; gap:8px;
  flex-wrap:wrap; }
.actions { display:flex; gap:8px; flex-wrap:wrap; margin:6px 0; }
.button { display:inline-block; border:1px solid #bbb; border-radius:4px; padding:2px 10px;
  font-size:13px; font-weight:bold; color:var(--ink); text-decoration:none; }
.button.primary { background:#007a5a; border-color:#007a5a; color:#fff; }
.button.danger { background:#e01e5a; border-color:#e01e5a; color:#fff; }
.attachment { border-left:4px solid #ddd; border-radius:2px; padding:2px 0 2px 12px; margin:6px 0; }
.attachment .title { font-weight:bold; }
a { color:var(--link); } hr { border:0; border-top:1px solid var(--line); }
code { background:#f6f6f6; border:1px solid #ddd; border-radius:3px; padding:0 3px; color:#e01e5a;
  font-size:12px; }
pre { background:#f6f6f6; border:1px solid #ddd; border-radius:4px; padding:8px;
  white-space:pre-wrap; }
.thread { border-left:2px solid var(--line); margin:6px 0 0; }
.thread .message { padding:6px 8px; } .thread .avatar { width:24px; height:24px; font-size:12px; }
.replies { color:var(--link); font-size:12px; font-weight:bold; }
.unknown { color:var(--muted); font-style:italic; }
</style></head>
<body>
<header class="top"><h1>Slack fake</h1>
<p>{{ total }} message{{ "" if total == 1 else "s" }} in {{ channels|length }}
channel{{ "" if channels|length == 1 else "s" }}
{%- if refresh %} · refreshes every {{ refresh }} s{% endif %}
&nbsp;· <a href="fake/messages">messages JSON</a>
· <a href="fake/requests">request log</a></p></header>
<main>
{% macro element(e) -%}
{%- if e.type == "button" -%}
{%- set label = e.text | text_object -%}
{%- if e.url %}{{ link(e.url, label, "button " ~ (e.style or "")) }}
{%- else %}<span class="button {{ e.style or '' }}">{{ label }}</span>{% endif -%}
{%- elif e.type == "image" %}<span class="meta">[{{ e.alt_text or "image" }}]</span>
{%- else %}<span class="unknown">[{{ e.type }}]</span>{% endif -%}
{%- endmacro %}
{% macro blocks(items) -%}
{%- for b in items -%}
{%- if b.type == "header" %}<div class="header">{{ b.text | text_object }}</div>
{%- elif b.type == "section" %}<div class="section"><div class="content">
{%- if b.text %}<div class="text">{{ b.text | text_object }}</div>{% endif -%}
{%- if b.fields and b.fields is sequence and b.fields is not string %}<div class="fields">
{%- for f in b.fields %}<div>{{ f | text_object }}</div>{% endfor %}</div>{% endif -%}
</div>{% if b.accessory is mapping %}<div>{{ element(b.accessory) }}</div>{% endif %}</div>
{%- elif b.type == "context" %}<div class="context">
{%- for e in b.elements or [] %}{% if e.type == "image" %}{{ element(e) }}
{%- else %}<span>{{ e | text_object }}</span>{% endif %}{% endfor %}</div>
{%- elif b.type == "actions" %}<div class="actions">
{%- for e in b.elements or [] %}{{ element(e) }}{% endfor %}</div>
{%- elif b.type == "divider" %}<hr>
{%- elif b.type == "image" %}<div class="meta">image:
{{ link(b.image_url, b.alt_text or b.image_url) }}</div>
{%- else %}<div class="unknown">[{{ b.type }} block]</div>{% endif -%}
{%- endfor -%}
{%- endmacro %}
{% macro message(m, bot) -%}
<article class="message" id="m{{ m.ts }}">
<div class="avatar">{{ (bot or "B")[:1] | upper }}</div>
<div class="body">
<div class="who"><b>{{ bot }}</b><span class="app">APP</span>
<time title="ts {{ m.ts }}">{{ m.ts | ts_time }}</time>
{%- if m.reply_broadcast %} <span class="meta">· also sent to the channel</span>{% endif -%}
{%- if m.edits %} <details class="edited"><summary>(edited)</summary><ol>
{%- for e in m.edits %}<li><time>{{ e.ts | ts_time }}</time> before:
{{ e.text | mrkdwn }}</li>{% endfor -%}
</ol></details>{% endif %}</div>
{% if m.blocks %}{{ blocks(m.blocks) }}
{%- elif m.text %}<div class="text">{{ m.text | mrkdwn }}</div>{% endif %}
{% for a in m.attachments or [] if a is mapping -%}
<div class="attachment" style="border-left-color: {{ a.color | slack_color }}">
{%- if a.pretext %}<div>{{ a.pretext | mrkdwn }}</div>{% endif -%}
{%- if a.title %}<div class="title">{{ link(a.title_link, a.title) }}</div>{% endif -%}
{%- if a.blocks %}{{ blocks(a.blocks) }}{% endif -%}
{%- if a.text %}<div>{{ a.text | mrkdwn }}</div>{% endif -%}
{%- if a.fields and a.fields is sequence and a.fields is not string %}<div class="fields">
{%- for f in a.fields if f is mapping -%}
<div class="{{ 'short' if f.short else 'long' }}"><b>{{ f.title }}</b><br>
{{- f.value | mrkdwn }}</div>{% endfor %}</div>{% endif -%}
{%- if a.footer %}<div class="context">{{ a.footer | mrkdwn }}</div>{% endif -%}
</div>
{%- endfor %}
{% if m.thread %}<div class="replies">{{ m.thread|length }}
{{- " reply" if m.thread|length == 1 else " replies" }}</div>
<div class="thread">{% for r in m.thread %}{{ message(r, bot) }}{% endfor %}</div>{% endif %}
</div></article>
{%- endmacro %}
{% for c in channels %}
<section class="channel" id="{{ c.id }}">
<h2># {{ c.name }} <span class="meta">{{ c.id }} · {{ c.team_name }}
{%- if c.is_archived %} · archived{% endif %}
{%- if not c.is_member %} · bot not a member{% endif %}</span></h2>
{% for m in c.top %}{{ message(m, c.bot_name) }}
{%- else %}<p class="empty">No messages yet.</p>{% endfor %}
</section>
{% else %}<p class="empty">No channels yet.</p>{% endfor %}
</main></body></html>
"""

_ENV = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
_ENV.filters.update(
    mrkdwn=render_mrkdwn, text_object=render_text_object, slack_color=slack_color, ts_time=ts_time
)
_ENV.globals["link"] = link
_PAGE = _ENV.from_string(_TEMPLATE)


def render_page(
    channels: Sequence[Mapping[str, Any]], *, refresh_seconds: int = REFRESH_SECONDS
) -> str:
    """Render the page from channels as :meth:`FakeSlack.page_view` describes them.

    Each channel holds its messages flat (parents and replies, in posting order);
    replies are nested under the parent whose ``ts`` their ``thread_ts`` names.
    """
    views = []
    total = 0
    for channel in channels:
        messages = list(channel.get("messages", []))
        total += len(messages)
        threads: dict[str, list[Mapping[str, Any]]] = {}
        for item in messages:
            if item.get("thread_ts"):
                threads.setdefault(item["thread_ts"], []).append(item)
        top = [
            {**m, "thread": threads.get(m["ts"], [])} for m in messages if not m.get("thread_ts")
        ]
        views.append({**channel, "top": top})
    return _PAGE.render(channels=views, total=total, refresh=refresh_seconds)


__all__ = ["link", "render_mrkdwn", "render_page", "render_text_object", "slack_color", "ts_time"]
