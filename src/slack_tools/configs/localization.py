"""Localization: gettext catalogs and CLDR formatting (Babel) in a locale and time zone.

Catalogs are the ``.po`` files under ``configs/locales/<locale>/LC_MESSAGES/``,
compiled in memory when loaded (no build step, and an edited ``.po`` can be
reloaded). A message missing from a locale's catalog comes from the fallback
locale's, then from the English source text.

Times shown in Slack use its ``<!date^…|fallback>`` token, so each reader sees
their own time zone; the fallback is formatted here, in the tenant's.
"""

from __future__ import annotations

import functools
import gettext
import io
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Literal, cast, get_args
from zoneinfo import ZoneInfo

import structlog
from babel import Locale, UnknownLocaleError
from babel.dates import (
    format_date,
    format_datetime,
    format_time,
    format_timedelta,
    get_datetime_format,
)
from babel.lists import format_list
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po
from babel.numbers import format_currency, format_decimal, format_percent
from babel.support import Translations
from babel.units import format_unit

from slack_tools.configs.schema import SUPPORTED_LOCALES
from slack_tools.errors import ConfigError

log = structlog.get_logger(__name__)

DOMAIN = "messages"
ListStyle = Literal[
    "standard", "standard-short", "or", "or-short", "unit", "unit-short", "unit-narrow"
]
_MAX_LOCALIZERS = 4096  # (locale, time zone) pairs kept; real deployments use a few dozen


def packaged_catalogs() -> Path:
    """The catalogs shipped with the package."""
    return Path(str(resources.files("slack_tools.configs") / "locales"))


@dataclass(frozen=True)
class CatalogProblem:
    """Why a catalog file was not loaded, and where."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def compile_catalog(po_file: Path, locale: str) -> bytes:
    """Read a ``.po`` file and compile it to ``.mo`` bytes in memory.

    Raises ``CatalogError`` when the file cannot be used: unreadable, not valid
    PO, or a translation whose placeholders would fail when formatted.
    """
    try:
        with po_file.open("rb") as handle:
            catalog = read_po(handle, locale=locale, domain=DOMAIN, abort_invalid=True)
    except PoFileError as exc:
        reason = str(exc).removesuffix(f" on {exc.lineno}")  # Babel counts lines from 0
        raise CatalogError(CatalogProblem(po_file, exc.lineno + 1, reason)) from None
    except (OSError, ValueError, UnknownLocaleError) as exc:  # unreadable, not UTF-8
        raise CatalogError(CatalogProblem(po_file, 1, f"cannot read: {exc}")) from None
    for message, errors in catalog.check():
        if errors:
            problem = CatalogProblem(po_file, message.lineno or 1, f"{message.id!r}: {errors[0]}")
            raise CatalogError(problem)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    return buffer.getvalue()


class CatalogError(ConfigError):
    """A catalog file that cannot be loaded; ``problem`` says where."""

    def __init__(self, problem: CatalogProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


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
        self._compiled: dict[str, bytes] = {}  # the last good .mo of each locale
        self._translations: dict[str, gettext.NullTranslations] = {}
        self._localizers: dict[tuple[str | None, str], Localizer] = {}
        self.problems: tuple[CatalogProblem, ...] = ()
        self.reload()

    def reload(self) -> tuple[CatalogProblem, ...]:
        """Read every catalog again; the new set replaces the old one at once.

        A catalog that cannot be loaded keeps its previous version (none at start:
        its readers get the fallback locale's words). Returns what was refused,
        also logged with file and line.
        """
        with self._lock:
            problems: list[CatalogProblem] = []
            compiled = dict(self._compiled)
            for locale in self.supported:
                po_file = self.directory / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
                if not po_file.exists():
                    compiled.pop(locale, None)
                    continue
                try:
                    compiled[locale] = compile_catalog(po_file, locale)
                except CatalogError as exc:
                    problems.append(exc.problem)
            loaded = {locale: _translations(compiled.get(locale)) for locale in self.supported}
            for locale, translations in loaded.items():
                if locale != self.fallback_locale:
                    translations.add_fallback(loaded[self.fallback_locale])
            self._compiled = compiled
            self._translations = loaded
            self._localizers = {}
            self.problems = tuple(problems)
        for problem in problems:
            log.error(
                "localization.catalog_rejected",
                file=str(problem.path),
                line=problem.line,
                error=problem.message,
            )
        return self.problems

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


def _formatted(text: str, source: str, values: dict[str, object]) -> str:
    """``text % values``; the English source if a translation's placeholders do not fit.

    Loaded catalogs are checked, so this guards the delivery path against what
    the check cannot see (a value passed under a name no message uses).
    """
    try:
        return text % values
    except (KeyError, ValueError, TypeError) as exc:
        log.error("localization.format_failed", message=source, error=repr(exc))
        return source % values


def _translations(mo: bytes | None) -> gettext.NullTranslations:
    if mo is None:
        return gettext.NullTranslations()
    return Translations(io.BytesIO(mo), domain=DOMAIN)


_DURATION_UNITS = (
    ("duration-day", 86400),
    ("duration-hour", 3600),
    ("duration-minute", 60),
    ("duration-second", 1),
)
NamedFormat = Literal["short", "medium", "long", "full"]
_NAMED_FORMATS: frozenset[str] = frozenset(get_args(NamedFormat))
# Babel spends 5 to 20 µs a call, much of it parsing the locale's identifier and finding
# its patterns again. The parsed locale is reused, and what depends only on small values
# that repeat while serving (counts, the date of a day, the amounts of a duration) is
# kept: every result is Babel's own, at most _KEPT per cache (well under a megabyte).
_KEPT = 4096


@functools.lru_cache(maxsize=64)
def _babel_locale(tag: str) -> Locale:
    return Locale.parse(tag)


@functools.lru_cache(maxsize=_KEPT)
def _integer(tag: str, value: int) -> str:
    return format_decimal(value, locale=_babel_locale(tag))


@functools.lru_cache(maxsize=_KEPT)
def _date(tag: str, fmt: str, day: date) -> str:
    return format_date(day, fmt, locale=_babel_locale(tag))


@functools.lru_cache(maxsize=64)
def _date_time_pattern(tag: str, fmt: NamedFormat) -> str:
    # Annotated as a DateTimePattern by Babel, it is the text "{1}, {0}" (time in {0}).
    return str(get_datetime_format(fmt, locale=_babel_locale(tag))).replace("'", "")


@functools.lru_cache(maxsize=_KEPT)
def _unit(tag: str, unit: str, amount: int) -> str:
    return format_unit(amount, unit, length="short", locale=_babel_locale(tag))


@functools.lru_cache(maxsize=_KEPT)
def _duration(tag: str, amounts: tuple[tuple[str, int], ...]) -> str:
    parts = [
        _unit(tag, unit, amount)
        for index, (unit, amount) in enumerate(amounts)
        if amount or index == 0
    ]
    return _join(parts, "unit-narrow", _babel_locale(tag))


def _join(items: list[str], style: ListStyle, locale: Locale) -> str:
    try:
        return format_list(items, style=style, locale=locale)
    except KeyError:  # some CLDR locales lack the narrow unit pattern for two items
        return format_list(items, style="unit", locale=locale)


@dataclass(frozen=True)
class Localizer:
    """Translate and format for one locale and time zone."""

    locale: str
    timezone: ZoneInfo
    translations: gettext.NullTranslations = field(repr=False, compare=False)

    def gettext(self, message: str, **values: object) -> str:
        text = self.translations.gettext(message)
        return _formatted(text, message, values) if values else text

    def ngettext(self, singular: str, plural: str, count: int, **values: object) -> str:
        text = self.translations.ngettext(singular, plural, count)
        source = singular if count == 1 else plural
        return _formatted(text, source, {"count": self.number(count), **values})

    def number(self, value: float) -> str:
        if type(value) is int:  # not bool, nor a float equal to an integer
            return _integer(self.locale, value)
        return format_decimal(value, locale=_babel_locale(self.locale))

    def percent(self, value: float) -> str:
        return format_percent(value, locale=_babel_locale(self.locale))

    def currency(self, amount: Decimal | float, currency: str) -> str:
        """An amount of money: "1 234,50 €", "€1,234.50" (pass a ``Decimal`` for billing)."""
        return format_currency(amount, currency, locale=_babel_locale(self.locale))

    def format_time(self, moment: datetime, fmt: str = "medium") -> str:
        """A date and time in this time zone (``medium``: "26 nov. 2026, 15:03:12")."""
        if type(moment) is not datetime or fmt not in _NAMED_FORMATS:
            return format_datetime(
                moment, fmt, tzinfo=self.timezone, locale=_babel_locale(self.locale)
            )
        # Babel's format_datetime for a named format, with the date part kept (it changes
        # once a day); only the time is formatted each call.
        local = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(self.timezone)
        time = format_time(local, fmt, tzinfo=None, locale=_babel_locale(self.locale))
        return (
            _date_time_pattern(self.locale, cast("NamedFormat", fmt))
            .replace("{0}", time)
            .replace("{1}", _date(self.locale, fmt, local.date()))
        )

    def relative(self, moment: datetime, now: datetime) -> str:
        """ "il y a 5 minutes", "in 2 hours"."""
        return format_timedelta(moment - now, add_direction=True, locale=_babel_locale(self.locale))

    def duration(self, span: timedelta) -> str:
        """The largest unit of a duration and the next one: "2 h 5 min", "3 T., 4 Std."."""
        remaining = max(int(span.total_seconds()), 0)
        amounts: list[tuple[str, int]] = []
        for unit, size in _DURATION_UNITS:
            amount, remaining = divmod(remaining, size)
            amounts.append((unit, amount))
        first = next((i for i, (_, amount) in enumerate(amounts) if amount), len(amounts) - 1)
        return _duration(self.locale, tuple(amounts[first : first + 2]))

    def join(self, items: list[str], style: ListStyle = "standard") -> str:
        return _join(items, style, _babel_locale(self.locale))

    def slack_date(self, moment: datetime) -> str:
        """Slack's date token: each reader sees it in their time zone; the fallback is ours."""
        epoch = int(moment.timestamp())
        fallback = self.format_time(moment, "medium").replace("|", "/").replace(">", "")
        return f"<!date^{epoch}^{{date_short_pretty}} {{time_secs}}|{fallback}>"
