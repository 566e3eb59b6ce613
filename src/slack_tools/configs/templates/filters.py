"""What every message template sees: gettext bound to the reader's localizer, and Slack filters.

The localizer of the message being rendered sits in a context variable for the
duration of one render, so one compiled template serves every locale and time
zone, and concurrent renders (threads, tasks) never see each other's.

``_``, ``gettext`` and ``ngettext`` are Jinja's "newstyle" gettext: the callable
formats the translation with its keyword arguments, and the text is always a
``%`` format (write ``%%`` for a percent sign). ``ngettext`` also fills
``count`` and ``num`` with the count, formatted as a number of the reader's
locale ("1 456", "1,456"), as :meth:`Localizer.ngettext` does.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from slack_tools.configs.localization import Localizer

if TYPE_CHECKING:
    from slack_tools.configs.templates.budget import Budget

_json_string: Callable[[str], str] = json.encoder.encode_basestring  # C, as json.dumps uses
TimeFormat = Literal["short", "medium", "long", "full"]
TIME_FORMATS: frozenset[str] = frozenset({"short", "medium", "long", "full"})


@dataclass(frozen=True)
class RenderState:
    """The localizer of the message being rendered, and the work budget of a tenant template."""

    localizer: Localizer
    budget: Budget | None = None


STATE: ContextVar[RenderState | None] = ContextVar("slack_tools_template_render", default=None)


def current() -> RenderState:
    """The state of the render in progress."""
    state = STATE.get()
    if state is None:
        raise RuntimeError("no template render is in progress")
    return state


def escape_mrkdwn(text: object) -> str:
    """Slack mrkdwn escaping: only &, < and > are special (a name can never mention @channel)."""
    value = text if isinstance(text, str) else ("" if text is None else str(text))
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: object, limit: int) -> str:
    """At most ``limit`` characters (not bytes), with an ellipsis when cut."""
    value = text if isinstance(text, str) else ("" if text is None else str(text))
    if len(value) <= limit:
        return value
    return value[: max(limit - 1, 0)] + "…" if limit > 0 else ""


def gettext(message: str, /, **values: object) -> str:
    """The reader's translation of ``message``, %-formatted with ``values`` (newstyle)."""
    return str(current().localizer.translations.gettext(message)) % values


def ngettext(singular: str, plural: str, count: int, /, **values: object) -> str:
    """The reader's plural form for ``count``, with ``count`` and ``num`` as localized numbers.

    ``{% trans count=n %}`` passes ``count`` again as a value; it is formatted the same way.
    """
    localizer = current().localizer
    text = str(localizer.translations.ngettext(singular, plural, count))
    formatted = dict(values)
    for key in ("count", "num"):
        value = formatted.get(key, count)
        if type(value) is int or type(value) is float:
            formatted[key] = localizer.number(value)
    return text % formatted


def slack_date(moment: datetime | None) -> str:
    """Slack's date token: each reader sees the time in their own zone (empty for no time)."""
    return "" if moment is None else current().localizer.slack_date(moment)


def duration(span: timedelta | None) -> str:
    """A duration in the reader's words: "2 h 5 min", "3 T., 4 Std."."""
    return "" if span is None else current().localizer.duration(span)


def number(value: float) -> str:
    """A number as the reader writes it: "1 234,5", "1,234.5"."""
    return current().localizer.number(value)


def percent(value: float) -> str:
    """A ratio as a percentage of the reader's locale (0.25 → "25 %")."""
    return current().localizer.percent(value)


def format_datetime(moment: datetime | None, fmt: TimeFormat = "medium") -> str:
    """A date and time in the tenant's time zone, in a named CLDR format."""
    if moment is None:
        return ""
    if fmt not in TIME_FORMATS:
        # Named formats only: Babel caches every pattern it parses, without bound.
        raise ValueError(f"unknown time format {fmt!r}; use short, medium, long or full")
    return current().localizer.format_time(moment, fmt)


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def tojson(value: object) -> str:
    """``value`` as JSON text: a string comes out quoted and escaped, ready to place in JSON."""
    if type(value) is str:
        return _json_string(value)
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def header_block(text: object) -> str:
    """A header block (plain text, emoji shown) as JSON text."""
    plain = f'{{"type": "plain_text", "text": {tojson(text)}, "emoji": true}}'
    return f'{{"type": "header", "text": {plain}}}'


def section_block(text: object) -> str:
    """A section block of one mrkdwn text as JSON text."""
    return f'{{"type": "section", "text": {{"type": "mrkdwn", "text": {tojson(text)}}}}}'


def context_block(text: object) -> str:
    """A context block of one mrkdwn text as JSON text."""
    return f'{{"type": "context", "elements": [{{"type": "mrkdwn", "text": {tojson(text)}}}]}}'


FILTERS: Mapping[str, Callable[..., Any]] = {
    "mrkdwn": escape_mrkdwn,
    # Output is Slack mrkdwn inside JSON, never HTML: Jinja's HTML escape would show &#39;.
    "escape": escape_mrkdwn,
    "e": escape_mrkdwn,
    "clip": clip,
    "tojson": tojson,
    "slack_date": slack_date,
    "duration": duration,
    "number": number,
    "percent": percent,
    "datetime": format_datetime,
}

GLOBALS: Mapping[str, Callable[..., Any]] = {
    "_": gettext,
    "gettext": gettext,
    "ngettext": ngettext,
    "header_block": header_block,
    "section_block": section_block,
    "context_block": context_block,
}
