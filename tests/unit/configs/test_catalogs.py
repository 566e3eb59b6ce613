"""Tests of the gettext catalogs: complete, consistent with the template, right in each language."""

from __future__ import annotations

import ast
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po
from babel.support import Translations

from slack_tools.alerts.models import AlertGroup, Source
from slack_tools.alerts.render import render_group
from slack_tools.alerts.sources import parse
from slack_tools.configs.localization import Catalogs, compile_catalog, packaged_catalogs
from slack_tools.configs.schema import SUPPORTED_LOCALES

LOCALES = packaged_catalogs()
TEMPLATE = LOCALES / "messages.pot"
SOURCES = Path(__file__).resolve().parents[3] / "src" / "slack_tools"
SAMPLE = Path(__file__).resolve().parents[2] / "fixtures" / "alertmanager-webhook-v4.json"
TRANSLATED = ("fr_FR", "de_DE", "es_ES", "it_IT")

# gettext's Plural-Forms as CLDR (and `pybabel init`) give them; French, Spanish and Italian
# have a "many" form for exact millions (index 1), English and German two forms.
PLURAL_FORMS = {
    "fr_FR": "nplurals=3; plural=(n == 0 || n == 1) ? 0 : n != 0 && n % 1000000 == 0 ? 1 : 2;",
    "en_US": "nplurals=2; plural=(n != 1);",
    "de_DE": "nplurals=2; plural=(n != 1);",
    "es_ES": "nplurals=3; plural=(n == 1 ? 0 : n != 0 && n % 1000000 == 0 ? 1 : 2);",
    "it_IT": "nplurals=3; plural=(n == 1 ? 0 : n != 0 && n % 1000000 == 0 ? 1 : 2);",
}
# Index of the plural form each count must use.
PLURAL_INDEX = {
    "fr_FR": {0: 0, 1: 0, 2: 2, 5: 2, 1_000_000: 1},
    "en_US": {0: 1, 1: 0, 2: 1, 5: 1, 1_000_000: 1},
    "de_DE": {0: 1, 1: 0, 2: 1, 5: 1, 1_000_000: 1},
    "es_ES": {0: 2, 1: 0, 2: 2, 5: 2, 1_000_000: 1},
    "it_IT": {0: 2, 1: 0, 2: 2, 5: 2, 1_000_000: 1},
}
# The context line's count, as a reader sees it.
FIRING = {
    "fr_FR": ("0 alerte en cours", "1 alerte en cours", "2 alertes en cours", "5 alertes en cours"),
    "en_US": ("0 alerts firing", "1 alert firing", "2 alerts firing", "5 alerts firing"),
    "de_DE": (
        "0 Alarme aktiv",
        "1 Alarm aktiv",
        "2 Alarme aktiv",
        "5 Alarme aktiv",
    ),
    "es_ES": ("0 alertas activas", "1 alerta activa", "2 alertas activas", "5 alertas activas"),
    "it_IT": ("0 allerte attive", "1 allerta attiva", "2 allerte attive", "5 allerte attive"),
}
# English words of the source strings that are also ordinary words of a language.
SAME_WORD = {
    "fr_FR": {"info", "source"},
    "de_DE": {"info", "in", "was", "runbook", "dashboard", "panel"},
    "es_ES": {"info", "error", "panel"},
    "it_IT": {"info", "in", "dashboard"},
}
PLACEHOLDER = re.compile(r"%(?:\(\w+\))?[#0 +-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[diouxXeEfFgGcrsa%]")
WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
SLACK_DATE = re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>")
NOW = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)


def read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=locale)


def po_path(locale: str) -> Path:
    return LOCALES / locale / "LC_MESSAGES" / "messages.po"


def as_tuple(value: object) -> tuple[str, ...]:
    return tuple(map(str, value)) if isinstance(value, tuple | list) else (str(value or ""),)


def forms(message: Message) -> tuple[str, ...]:
    """The translation, one text per plural form."""
    return as_tuple(message.string)


def ids(message: Message) -> tuple[str, ...]:
    """The source text: the singular, then the plural if any."""
    return as_tuple(message.id)


def placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


def template_messages() -> list[Message]:
    return [message for message in read(TEMPLATE) if message.id]


def source_messages() -> dict[str, tuple[str, ...]]:
    """Every literal passed to ``gettext``/``ngettext`` in the package, f-strings included."""
    found: dict[str, tuple[str, ...]] = {}
    for path in sorted(SOURCES.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            wanted = {"gettext": 1, "ngettext": 2}.get(name or "")
            literals = [
                a.value
                for a in node.args[: wanted or 0]
                if isinstance(a, ast.Constant) and isinstance(a.value, str)
            ]
            if wanted and len(literals) == wanted:
                found[literals[0]] = tuple(literals)
    return found


@pytest.fixture(scope="module")
def catalogs() -> Catalogs:
    return Catalogs(directory=LOCALES)


def test_supported_locales_are_the_five_catalogs() -> None:
    """The catalogs on disk are exactly the supported locales."""
    on_disk = {path.parent.parent.name for path in LOCALES.glob("*/LC_MESSAGES/messages.po")}
    assert on_disk == set(SUPPORTED_LOCALES) == set(PLURAL_FORMS)


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_every_template_message_is_translated(locale: str) -> None:
    """Each message of the template is in the locale's catalog with every plural form filled."""
    catalog = read(po_path(locale), locale)
    for template in template_messages():
        message = catalog.get(template.id)
        assert message is not None, f"{locale}: missing {template.id!r}"
        assert ids(message) == ids(template), f"{locale}: plural source differs for {template.id!r}"
        expected = catalog.num_plurals if template.pluralizable else 1
        assert len(forms(message)) == expected, f"{locale}: wrong number of forms {message.id!r}"
        assert all(text.strip() for text in forms(message)), f"{locale}: empty {message.id!r}"


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_no_fuzzy_entries(locale: str) -> None:
    """No entry of a catalog, header included, is marked fuzzy (compiled catalogs skip them)."""
    catalog = read(po_path(locale), locale)
    assert not catalog.fuzzy
    assert [m.id for m in catalog if m.id and m.fuzzy] == []


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_plural_forms_header(locale: str) -> None:
    """The catalog's Plural-Forms header is the language's own."""
    text = po_path(locale).read_text(encoding="utf-8")
    header = re.search(r'^"Plural-Forms: (.*)\\n"$', text, re.MULTILINE)
    assert header is not None
    assert header.group(1) == PLURAL_FORMS[locale]
    assert re.search(rf'^"Language: {locale}\\n"$', text, re.MULTILINE)


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_placeholders_match_the_source(locale: str) -> None:
    """Every translation, each plural form included, has exactly the placeholders of its source."""
    catalog = read(po_path(locale), locale)
    for message in catalog:
        if not message.id:
            continue
        source = [placeholders(text) for text in ids(message)]
        assert all(found == source[-1] for found in source), f"source differs: {message.id!r}"
        for text in forms(message):
            assert placeholders(text) == source[-1], f"{locale}: {text!r} vs {message.id!r}"
    assert list(catalog.check()) == []


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_catalogs_compile_and_serve_every_message(locale: str, catalogs: Catalogs) -> None:
    """Catalogs compiles each .po and answers every message from the locale itself."""
    compiled = Translations(io.BytesIO(compile_catalog(po_path(locale), locale)))
    translations = catalogs.localizer(locale).translations
    for message in read(po_path(locale), locale):
        if not message.id:
            continue
        if message.pluralizable:
            singular, plural = ids(message)
            for found in (compiled, translations):
                assert found.ngettext(singular, plural, 1) == forms(message)[0]
        else:
            for found in (compiled, translations):
                assert found.gettext(ids(message)[0]) == forms(message)[0]


@pytest.mark.parametrize("count", [0, 1, 2, 5, 1_000_000])
@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_plural_form_for_count(locale: str, count: int, catalogs: Catalogs) -> None:
    """Each plural message picks the language's form for the count, rendered through a Localizer."""
    localizer = catalogs.localizer(locale)
    index = PLURAL_INDEX[locale][count]
    for message in read(po_path(locale), locale):
        if message.id and message.pluralizable:
            singular, plural = ids(message)
            values = {"count": localizer.number(count), "duration": "2 h"}
            expected = forms(message)[index] % values
            assert localizer.ngettext(singular, plural, count, duration="2 h") == expected


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_firing_count_reads_naturally(locale: str, catalogs: Catalogs) -> None:
    """The firing count of the context line reads as a native speaker would write it."""
    localizer = catalogs.localizer(locale)
    rendered = tuple(
        localizer.ngettext("%(count)s alert firing", "%(count)s alerts firing", count)
        for count in (0, 1, 2, 5)
    )
    assert rendered == FIRING[locale]


def test_source_messages_are_in_every_catalog() -> None:
    """Every literal the code translates, even inside an f-string, is translated in each catalog."""
    wanted = source_messages()
    assert wanted, "no gettext call found in the sources"
    for locale in SUPPORTED_LOCALES:
        catalog = read(po_path(locale), locale)
        missing = [text for text in wanted if not all(forms(catalog.get(text) or Message(text)))]
        assert missing == [], f"{locale}: {missing}"


def test_template_has_every_source_message() -> None:
    """`pybabel extract` finds every literal the code translates, so the template is complete."""
    in_template = {ids(message)[0] for message in template_messages()}
    assert sorted(set(source_messages()) - in_template) == []


def english_words() -> set[str]:
    """The words of the English source strings, placeholders left out."""
    words: set[str] = set()
    for message in read(po_path("en_US"), "en_US"):
        for text in ids(message) if message.id else ():
            words |= {w.lower() for w in WORD.findall(PLACEHOLDER.sub(" ", text))}
    return words


def sample_group(status: str) -> AlertGroup:
    """The shared Alertmanager sample, as sent or as its resolution."""
    payload = json.loads(SAMPLE.read_bytes())
    if status == "resolved":
        payload["status"] = "resolved"
        for alert in payload["alerts"]:
            alert["status"] = "resolved"
            alert["endsAt"] = "2026-11-26T15:41:07.000Z"
    [group] = parse(Source.ALERTMANAGER, json.dumps(payload).encode())
    return group


@pytest.mark.parametrize("status", ["firing", "resolved"])
@pytest.mark.parametrize("locale", TRANSLATED)
def test_rendered_sample_has_no_english_ui_word(
    locale: str, status: str, catalogs: Catalogs
) -> None:
    """The header and context lines of a rendered Alertmanager group hold no English UI word."""
    group = sample_group(status)
    message = render_group(group, catalogs.localizer(locale, "Europe/Paris"), NOW)
    attachment: Any = message.attachments[0]
    blocks: list[dict[str, Any]] = attachment["blocks"]
    texts = [b["text"]["text"] for b in blocks if b["type"] == "header"]
    texts += [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]
    assert len(texts) >= 2
    forbidden = english_words() - SAME_WORD[locale] - {w.lower() for w in WORD.findall(group.name)}
    for text in texts:
        seen = {w.lower() for w in WORD.findall(SLACK_DATE.sub(r"\1", text))}
        assert seen & forbidden == set(), f"{locale}: English in {text!r}"
