"""Localization: gettext catalogs and CLDR formatting (Babel) in a locale and time zone.

Catalogs are the ``.po`` files under ``configs/locales/<locale>/LC_MESSAGES/``,
compiled in memory when loaded (no build step, and an edited ``.po`` can be
reloaded). A message missing from a locale's catalog comes from the fallback
locale's, then from the English source text.

Times shown in Slack use its ``<!date^…|fallback>`` token, so each reader sees
their own time zone; the fallback is formatted here, in the tenant's.
"""

from __future__ import annotations

import gettext
import io
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import structlog
from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime, format_timedelta
from babel.lists import format_list
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from babel.support import Translations
from babel.units import format_unit

from slack_tools.configs.schema import SUPPORTED_LOCALES

log = structlog.get_logger(__name__)

DOMAIN = "messages"
ListStyle = Literal[
    "standard", "standard-short", "or", "or-short", "unit", "unit-short", "unit-narrow"
]
_MAX_LOCALIZERS = 4096  # (locale, time zone) pairs kept; real deployments use a few dozen


def packaged_catalogs() -> Path:
    """The catalogs shipped with the package."""
    return Path(str(resources.files("slack_tools.configs") / "locales"))


def compile_catalog(po_file: Path, locale: str) -> gettext.NullTranslations:
    """Read a ``.po`` file and compile it in memory."""
    with po_file.open("rb") as handle:
        catalog = read_po(handle, locale=locale, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def negotiate(requested: str | None, supported: tuple[str, ...], default: str) -> str:
    """The supported locale closest to ``requested`` (``fr-CA`` → ``fr_FR``), else ``default``."""
    if not requested:
        return default
    tag = requested.replace("-", "_")
    if tag in supported:
        return tag
    try:
        language = Locale.parse(tag).language
    except (ValueError, UnknownLocaleError):
        log.warning("localization.unknown_locale", requested=requested, using=default)
        return default
    for candidate in supported:
        if candidate.split("_")[0] == language:
            return candidate
    log.warning("localization.unsupported_locale", requested=requested, using=default)
    return default


@dataclass
class Catalogs:
    """Every supported locale's translations, loaded once, with the fallback chain."""

    directory: Path = field(default_factory=packaged_catalogs)
    supported: tuple[str, ...] = SUPPORTED_LOCALES
    default_locale: str = "fr_FR"
    fallback_locale: str = "en_US"

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._translations: dict[str, gettext.NullTranslations] = {}
        self.reload()

    def _load(self, locale: str) -> gettext.NullTranslations:
        po_file = self.directory / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
        if not po_file.exists():
            return gettext.NullTranslations()
        return compile_catalog(po_file, locale)

    def reload(self) -> None:
        """Read every catalog again; the new set replaces the old one at once."""
        loaded = {locale: self._load(locale) for locale in self.supported}
        for locale, translations in loaded.items():
            if locale != self.fallback_locale:
                translations.add_fallback(loaded[self.fallback_locale])
        with self._lock:
            self._translations = loaded
            self._localizers: dict[tuple[str | None, str], Localizer] = {}

    def localizer(self, locale: str | None = None, timezone: str = "UTC") -> Localizer:
        """A localizer for the closest supported locale and the given IANA time zone."""
        key = (locale, timezone)
        found = self._localizers.get(key)
        if found is None:
            chosen = negotiate(locale, self.supported, self.default_locale)
            found = Localizer(chosen, ZoneInfo(timezone), self._translations[chosen])
            if len(self._localizers) < _MAX_LOCALIZERS:
                self._localizers[key] = found
        return found


_DURATION_UNITS = (
    ("duration-day", 86400),
    ("duration-hour", 3600),
    ("duration-minute", 60),
    ("duration-second", 1),
)


@dataclass(frozen=True)
class Localizer:
    """Translate and format for one locale and time zone."""

    locale: str
    timezone: ZoneInfo
    translations: gettext.NullTranslations = field(repr=False, compare=False)

    def gettext(self, message: str, **values: object) -> str:
        text = self.translations.gettext(message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, count: int, **values: object) -> str:
        text = self.translations.ngettext(singular, plural, count)
        return text % {"count": self.number(count), **values}

    def number(self, value: float) -> str:
        return format_decimal(value, locale=self.locale)

    def percent(self, value: float) -> str:
        return format_percent(value, locale=self.locale)

    def format_time(self, moment: datetime, fmt: str = "medium") -> str:
        """A date and time in this time zone (``medium``: "26 nov. 2026, 15:03:12")."""
        return format_datetime(moment, fmt, tzinfo=self.timezone, locale=self.locale)

    def relative(self, moment: datetime, now: datetime) -> str:
        """ "il y a 5 minutes", "in 2 hours"."""
        return format_timedelta(moment - now, add_direction=True, locale=self.locale)

    def duration(self, span: timedelta) -> str:
        """The largest unit of a duration and the next one: "2 h 5 min", "3 T., 4 Std."."""
        remaining = max(int(span.total_seconds()), 0)
        amounts: list[tuple[str, int]] = []
        for unit, size in _DURATION_UNITS:
            amount, remaining = divmod(remaining, size)
            amounts.append((unit, amount))
        first = next((i for i, (_, amount) in enumerate(amounts) if amount), len(amounts) - 1)
        chosen = amounts[first : first + 2]
        parts = [
            format_unit(amount, unit, length="short", locale=self.locale)
            for index, (unit, amount) in enumerate(chosen)
            if amount or index == 0
        ]
        return self.join(parts, style="unit-narrow")

    def join(self, items: list[str], style: ListStyle = "standard") -> str:
        try:
            return format_list(items, style=style, locale=self.locale)
        except KeyError:  # some CLDR locales lack the narrow unit pattern for two items
            return format_list(items, style="unit", locale=self.locale)

    def slack_date(self, moment: datetime) -> str:
        """Slack's date token: each reader sees it in their time zone; the fallback is ours."""
        epoch = int(moment.timestamp())
        fallback = self.format_time(moment, "medium").replace("|", "/").replace(">", "")
        return f"<!date^{epoch}^{{date_short_pretty}} {{time_secs}}|{fallback}>"
