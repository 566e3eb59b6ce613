"""Locale negotiation, CLDR formatting in the reader's time zone, and catalog (re)loading."""

from __future__ import annotations

import gettext
import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from slack_tools.configs.localization import Catalogs, negotiate, packaged_catalogs
from slack_tools.configs.schema import SUPPORTED_LOCALES

CATALOGS = Catalogs()
SUMMER = datetime(2026, 7, 14, 12, 30, tzinfo=UTC)
WINTER = datetime(2026, 1, 14, 12, 30, tzinfo=UTC)
NNBSP, NBSP = "\u202f", "\xa0"


@pytest.mark.parametrize(
    ("requested", "chosen"),
    [
        ("fr", "fr_FR"),
        ("fr-CA", "fr_FR"),
        ("de-AT", "de_DE"),
        ("es_MX", "es_ES"),
        ("en-GB", "en_US"),
        ("it", "it_IT"),
        ("de_DE", "de_DE"),
        (None, "fr_FR"),
        ("", "fr_FR"),
    ],
)
def test_tags_map_to_the_closest_supported_locale(requested: str | None, chosen: str) -> None:
    assert negotiate(requested, SUPPORTED_LOCALES, "fr_FR") == chosen


@pytest.mark.parametrize("requested", ["pt_BR", "xx-YY", "not a tag", "zz"])
def test_an_unknown_locale_falls_back_with_a_warning(requested: str) -> None:
    with capture_logs() as logs:
        assert negotiate(requested, SUPPORTED_LOCALES, "fr_FR") == "fr_FR"
    assert [entry["log_level"] for entry in logs] == ["warning"]


@given(st.text(max_size=30))
def test_negotiation_never_raises(requested: str) -> None:
    assert negotiate(requested, SUPPORTED_LOCALES, "en_US") in SUPPORTED_LOCALES


@pytest.mark.parametrize(
    ("locale", "zone", "summer", "winter"),
    [
        ("fr_FR", "Europe/Paris", "14 juil. 2026, 14:30:00", "14 janv. 2026, 13:30:00"),
        (
            "en_US",
            "America/New_York",
            f"Jul 14, 2026, 8:30:00{NNBSP}AM",
            f"Jan 14, 2026, 7:30:00{NNBSP}AM",
        ),
        ("de_DE", "Europe/Berlin", "14.07.2026, 14:30:00", "14.01.2026, 13:30:00"),
        ("es_ES", "Europe/Madrid", "14 jul 2026, 14:30:00", "14 ene 2026, 13:30:00"),
        ("it_IT", "Europe/Rome", "14 lug 2026, 14:30:00", "14 gen 2026, 13:30:00"),
    ],
)
def test_times_in_the_readers_zone_follow_daylight_saving(
    locale: str, zone: str, summer: str, winter: str
) -> None:
    localizer = CATALOGS.localizer(locale, zone)
    assert localizer.format_time(SUMMER) == summer
    assert localizer.format_time(WINTER) == winter


@pytest.mark.parametrize(
    ("locale", "ago", "ahead", "since", "days"),
    [
        (
            "fr_FR",
            "il y a 5 minutes",
            "dans 2 heures",
            f"2{NNBSP}h 5{NBSP}min",
            f"3{NNBSP}j 4{NNBSP}h",
        ),
        ("en_US", "5 minutes ago", "in 2 hours", "2 hr 5 min", "3 days 4 hr"),
        ("de_DE", "vor 5 Minuten", "in 2 Stunden", "2 Std., 5 Min.", "3 Tg., 4 Std."),
        ("es_ES", "hace 5 minutos", "dentro de 2 horas", "2 h 5 min", "3 d 4 h"),
        ("it_IT", "5 minuti fa", "tra 2 ore", "2 h 5 min", "3 giorni 4 h"),
    ],
)
def test_relative_times_and_durations(
    locale: str, ago: str, ahead: str, since: str, days: str
) -> None:
    localizer = CATALOGS.localizer(locale)
    assert localizer.relative(SUMMER - timedelta(minutes=5), SUMMER) == ago
    assert localizer.relative(SUMMER + timedelta(hours=2), SUMMER) == ahead
    assert localizer.duration(timedelta(hours=2, minutes=5)) == since
    assert localizer.duration(timedelta(days=3, hours=4, seconds=9)) == days


@pytest.mark.parametrize(
    ("locale", "number", "percent", "euros", "dollars", "listed"),
    [
        (
            "fr_FR",
            f"1{NNBSP}234{NNBSP}567,891",
            f"26{NBSP}%",
            f"1{NNBSP}234,50{NBSP}€",
            f"1{NNBSP}234,50{NBSP}$US",
            "a, b et c",
        ),
        ("en_US", "1,234,567.891", "26%", "€1,234.50", "$1,234.50", "a, b, and c"),
        (
            "de_DE",
            "1.234.567,891",
            f"26{NBSP}%",
            f"1.234,50{NBSP}€",
            f"1.234,50{NBSP}$",
            "a, b und c",
        ),
        (
            "es_ES",
            "1.234.567,891",
            f"26{NBSP}%",
            f"1.234,50{NBSP}€",
            f"1.234,50{NBSP}US$",
            "a, b y c",
        ),
        ("it_IT", "1.234.567,891", "26%", f"1.234,50{NBSP}€", f"1.234,50{NBSP}USD", "a, b e c"),
    ],
)
def test_numbers_percentages_currencies_and_lists(
    locale: str, number: str, percent: str, euros: str, dollars: str, listed: str
) -> None:
    localizer = CATALOGS.localizer(locale)
    assert localizer.number(1234567.891) == number
    assert localizer.percent(0.256) == percent
    assert localizer.currency(Decimal("1234.5"), "EUR") == euros
    assert localizer.currency(Decimal("1234.5"), "USD") == dollars
    assert localizer.join(["a", "b", "c"]) == listed


# --- loading and reloading catalogs -------------------------------------------------------


@pytest.fixture
def locales(tmp_path: Path) -> Path:
    """A copy of the packaged catalogs that a test may edit."""
    copy = tmp_path / "locales"
    shutil.copytree(packaged_catalogs(), copy)
    return copy


def po(locales: Path, locale: str) -> Path:
    return locales / locale / "LC_MESSAGES" / "messages.po"


def retranslate(path: Path, msgid: str, msgstr: str) -> None:
    """Give ``msgid`` a new translation in the .po file at ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    at = lines.index(f'msgid "{msgid}"')
    lines[at + 1] = f'msgstr "{msgstr}"'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_an_edited_catalog_is_used_after_reload(locales: Path) -> None:
    catalogs = Catalogs(directory=locales)
    assert catalogs.localizer("fr_FR").gettext("Resolved") == "Résolue"

    retranslate(po(locales, "fr_FR"), "Resolved", "Réglée")

    assert catalogs.reload() == ()
    assert catalogs.localizer("fr_FR").gettext("Resolved") == "Réglée"


@pytest.mark.parametrize(
    ("breakage", "line_of", "says"),
    [
        ('msgid "Orphan"\n\nmsgid "Other"\nmsgstr "x"\n', "Orphan", "missing msgstr"),
        ('msgid "Other"\nmsgstr "x"\nnot po at all\n', "not po", "misformatted"),
        ("\xff", None, "cannot read"),
    ],
    ids=["no-msgstr", "stray-line", "encoding"],
)
def test_a_broken_catalog_is_refused_with_its_line_and_the_previous_keeps_serving(
    locales: Path, breakage: str, line_of: str | None, says: str
) -> None:
    catalogs = Catalogs(directory=locales)
    retranslate(po(locales, "de_DE"), "Resolved", "Erledigt")
    path = po(locales, "fr_FR")
    if breakage == "\xff":
        path.write_bytes(path.read_bytes() + b"\n\xff\xfe\n")
    else:
        path.write_text(path.read_text(encoding="utf-8") + "\n" + breakage, encoding="utf-8")

    with capture_logs() as logs:
        [problem] = catalogs.reload()

    assert problem.path == path
    assert says in problem.message
    if line_of is not None:
        lines = path.read_text(encoding="utf-8").splitlines()
        assert line_of in lines[problem.line - 1]
    assert logs[0]["event"] == "localization.catalog_rejected"
    assert logs[0]["line"] == problem.line
    assert catalogs.localizer("fr_FR").gettext("Resolved") == "Résolue"  # the previous one
    assert catalogs.localizer("de_DE").gettext("Resolved") == "Erledigt"  # the others reload


def test_a_translation_with_an_unknown_placeholder_is_refused(locales: Path) -> None:
    """It would fail each time the message is formatted; the catalog check stops it."""
    catalogs = Catalogs(directory=locales)
    path = po(locales, "it_IT")
    text = path.read_text(encoding="utf-8")
    start = text.index('msgid "Resolved after %(duration)s"')
    end = text.index("\n\n", start)
    path.write_text(
        text[:start]
        + '#, python-format\nmsgid "Resolved after %(duration)s"\nmsgstr "Risolta dopo %(durata)s"'
        + text[end:],
        encoding="utf-8",
    )

    [problem] = catalogs.reload()

    assert "Resolved after" in problem.message
    assert catalogs.localizer("it_IT").gettext("Resolved after %(duration)s", duration="5 min") == (
        catalogs.localizer("it_IT").translations.gettext("Resolved after %(duration)s")
        % {"duration": "5 min"}
    )


def test_a_catalog_broken_from_the_start_falls_back_to_english(locales: Path) -> None:
    po(locales, "es_ES").write_bytes(b"\xff\xfe not a catalog")

    catalogs = Catalogs(directory=locales)

    assert [p.path for p in catalogs.problems] == [po(locales, "es_ES")]
    assert catalogs.localizer("es_ES").gettext("Resolved") == "Resolved"
    assert catalogs.localizer("fr_FR").gettext("Resolved") == "Résolue"


def test_a_translation_that_cannot_be_formatted_gives_the_source_text(locales: Path) -> None:
    """Never an error in the delivery path: the English source is used and the fault logged."""
    catalogs = Catalogs(directory=locales)
    localizer = catalogs.localizer("fr_FR")
    message = "Resolved after %(duration)s"

    with capture_logs() as logs:
        text = localizer.gettext(message, duration="5 min", extra=1)
    assert text == localizer.translations.gettext(message) % {"duration": "5 min"}
    assert not logs

    broken = type(localizer)(localizer.locale, localizer.timezone, _Wrong())
    with capture_logs() as logs:
        assert broken.gettext(message, duration="5 min") == "Resolved after 5 min"
    assert logs[0]["event"] == "localization.format_failed"


class _Wrong(gettext.NullTranslations):
    """Translations that name a placeholder the source does not have."""

    def gettext(self, message: str) -> str:
        return super().gettext(message).replace("%(duration)s", "%(nope)s")
