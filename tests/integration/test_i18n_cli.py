"""`slack-tools i18n`: check, preview, extract and update, on real catalogs and broken copies."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from slack_tools.cli import run
from slack_tools.configs.localization import packaged_catalogs

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "fixtures" / "alertmanager-webhook-v4.json"
# The sample's first alert started at 14:03:12Z: 15:03:12 in Paris, 1 h 56 min before NOW.
NOW = "2026-11-26T16:00:00Z"
PO = "{}/LC_MESSAGES/messages.po"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def spaced(text: str) -> str:
    """CLDR puts no-break spaces in "1 h 56 min"; compare with plain ones."""
    return " ".join(text.split())


@pytest.fixture
def locales(tmp_path: Path) -> Path:
    """A private copy of the packaged catalogs, free to break."""
    copy = tmp_path / "locales"
    shutil.copytree(packaged_catalogs(), copy)
    return copy


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    """A private copy of what extraction reads: babel.cfg and the package's sources."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "babel.cfg", copy / "babel.cfg")
    return copy


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_check_passes_on_the_packaged_catalogs(capsys: pytest.CaptureFixture[str]) -> None:
    """`i18n check` on the shipped catalogs and sources exits 0 with a one-line summary."""
    code, out, err = cli(capsys, "i18n", "check")
    assert (code, err) == (0, "")
    [line] = out.splitlines()
    assert line.startswith("ok: ")
    assert "5 catalogs (de_DE, en_US, es_ES, fr_FR, it_IT)" in line


def remove_panel(locales: Path) -> None:
    edit(locales / PO.format("de_DE"), 'msgid "Panel"\nmsgstr "Panel"\n', "")


def empty_warning(locales: Path) -> None:
    edit(
        locales / PO.format("es_ES"),
        'msgid "Warning"\nmsgstr "Advertencia"',
        'msgid "Warning"\nmsgstr ""',
    )


def fuzzy_silence(locales: Path) -> None:
    edit(locales / PO.format("fr_FR"), 'msgid "Silence"', '#, fuzzy\nmsgid "Silence"')


def renamed_placeholder(locales: Path) -> None:
    edit(locales / PO.format("de_DE"), "%(count)s Alarme aktiv", "%(anzahl)s Alarme aktiv")


def dropped_placeholder(locales: Path) -> None:
    edit(locales / PO.format("it_IT"), 'msgstr "valore: %(value)s"', 'msgstr "valore"')


def empty_plural_form(locales: Path) -> None:
    edit(locales / PO.format("fr_FR"), 'msgstr[2] "%(count)s alertes en cours"', 'msgstr[2] ""')


@pytest.mark.parametrize(
    ("breakage", "file", "expected"),
    [
        (remove_panel, "messages.pot", r'"Panel" is missing from de_DE/LC_MESSAGES/messages\.po'),
        (empty_warning, PO.format("es_ES"), r'"Warning" is not translated yet'),
        (fuzzy_silence, PO.format("fr_FR"), r'"Silence" is marked fuzzy'),
        (renamed_placeholder, PO.format("de_DE"), r"unknown named placeholder 'anzahl'"),
        (dropped_placeholder, PO.format("it_IT"), r'"value: %\(value\)s": .* lacks %\(value\)s'),
        (
            empty_plural_form,
            PO.format("fr_FR"),
            r"not translated for every number: msgstr\[2\] empty",
        ),
    ],
)
def test_check_names_the_file_line_and_message_of_each_problem(
    capsys: pytest.CaptureFixture[str],
    locales: Path,
    breakage: Callable[[Path], None],
    file: str,
    expected: str,
) -> None:
    """A broken copy of the catalogs fails with exactly one `file:line: message` line for it."""
    breakage(locales)
    code, out, err = cli(capsys, "i18n", "check", "--locales", str(locales))
    assert code == 1
    assert out == ""
    problems = [line for line in err.splitlines() if not line.endswith("see docs/localization.md")]
    assert len(problems) == 1, err
    assert re.match(rf"{re.escape(str(locales / file))}:\d+: .*{expected}", problems[0]), err


def test_check_fails_on_a_template_older_than_the_sources(
    capsys: pytest.CaptureFixture[str], locales: Path, sources: Path
) -> None:
    """A message added to the code but not extracted fails at its source line as a stale .pot."""
    new_module = sources / "src" / "slack_tools" / "paging.py"
    new_module.write_text(
        'def ack(t):\n    return t.gettext("Paged the on-call rota of %(team)s", team="x")\n'
    )
    code, _, err = cli(
        capsys, "i18n", "check", "--locales", str(locales), "--sources", str(sources)
    )
    assert code == 1
    assert (
        f'{new_module}:2: "Paged the on-call rota of %(team)s" is not in messages.pot '
        "(stale template)" in err
    )


def test_check_fails_on_a_template_message_gone_from_the_sources(
    capsys: pytest.CaptureFixture[str], locales: Path
) -> None:
    """A template message that no code translates any more is reported at its .pot line."""
    with (locales / "messages.pot").open("a", encoding="utf-8") as template:
        template.write('\nmsgid "Acknowledged"\nmsgstr ""\n')
    code, _, err = cli(capsys, "i18n", "check", "--locales", str(locales))
    assert code == 1
    pot = re.escape(str(locales / "messages.pot"))
    assert re.search(rf'^{pot}:\d+: "Acknowledged" is no longer in the sources', err, re.MULTILINE)


def test_extract_then_update_bring_a_new_message_to_every_catalog(
    capsys: pytest.CaptureFixture[str], locales: Path, sources: Path
) -> None:
    """`extract` puts a new source message in the .pot; `update` adds it, empty, to each .po."""
    module = sources / "src" / "slack_tools" / "paging.py"
    module.write_text(
        'def ack(t):\n    return t.gettext("Paged the on-call rota of %(team)s", team="x")\n'
    )
    code, out, _ = cli(
        capsys, "i18n", "extract", "--locales", str(locales), "--sources", str(sources)
    )
    assert code == 0
    assert "wrote" in out
    template = (locales / "messages.pot").read_text(encoding="utf-8")
    assert (
        '#: src/slack_tools/paging.py\n#, python-format\nmsgid "Paged the on-call rota' in template
    )
    code, out, _ = cli(capsys, "i18n", "update", "--locales", str(locales))
    assert code == 0
    assert re.search(r"^fr_FR: \d+ messages, 1 to translate, 0 fuzzy$", out, re.MULTILINE)
    code, _, err = cli(
        capsys, "i18n", "check", "--locales", str(locales), "--sources", str(sources)
    )
    assert code == 1
    assert err.count('"Paged the on-call rota of %(team)s" is not translated yet') == 5


def test_extract_leaves_an_up_to_date_template_untouched(
    capsys: pytest.CaptureFixture[str], locales: Path, sources: Path
) -> None:
    """A second `extract` with nothing new keeps the file byte for byte (no new creation date)."""
    argv = ("i18n", "extract", "--locales", str(locales), "--sources", str(sources))
    assert cli(capsys, *argv)[0] == 0
    first = (locales / "messages.pot").read_bytes()
    code, out, _ = cli(capsys, *argv)
    assert code == 0
    assert "is up to date" in out
    assert (locales / "messages.pot").read_bytes() == first


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        (
            "fr_FR",
            (
                "## 🔴 Critique · HighErrorRate",
                "2 alertes en cours depuis 1 h 56 min",
                "|26 nov. 2026, 15:03:12>",
                "[Mettre en silence]",
            ),
        ),
        (
            "de_DE",
            (
                "## 🔴 Kritisch · HighErrorRate",
                "2 Alarme seit 1 Std., 56 Min. aktiv",
                "|26.11.2026, 15:03:12>",
                "[Stummschalten]",
            ),
        ),
    ],
)
def test_preview_prints_the_localized_text_view(
    capsys: pytest.CaptureFixture[str], locale: str, expected: tuple[str, ...]
) -> None:
    """The text view is in the reader's language, timed from --now, with a Paris fallback time."""
    code, out, err = cli(
        capsys,
        "i18n",
        "preview",
        str(SAMPLE),
        "--locale",
        locale,
        "--tz",
        "Europe/Paris",
        "--now",
        NOW,
    )
    assert (code, err) == (0, "")
    for text in expected:
        assert text in spaced(out)


def test_preview_reads_a_time_without_offset_in_the_given_zone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--now without an offset is a local time in --tz (17:00 in Paris is 16:00 UTC)."""
    code, out, _ = cli(
        capsys,
        "i18n",
        "preview",
        str(SAMPLE),
        "--locale",
        "fr_FR",
        "--tz",
        "Europe/Paris",
        "--now",
        "2026-11-26T17:00:00",
    )
    assert code == 0
    assert "depuis 1 h 56 min" in spaced(out)


def test_preview_json_is_block_kit_with_attachments(capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one valid JSON message whose attachment holds the localized blocks."""
    code, out, _ = cli(
        capsys,
        "i18n",
        "preview",
        str(SAMPLE),
        "--locale",
        "de_DE",
        "--tz",
        "Europe/Berlin",
        "--now",
        NOW,
        "--json",
    )
    assert code == 0
    message = json.loads(out)
    [attachment] = message["attachments"]
    assert attachment["blocks"][0]["text"]["text"] == "🔴 Kritisch · HighErrorRate"
    assert message["text"].startswith("🔴 Kritisch · HighErrorRate")


def test_preview_falls_back_with_a_warning_for_an_unknown_locale(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A locale without a catalog previews the default locale and says so on stderr."""
    code, out, err = cli(
        capsys, "i18n", "preview", str(SAMPLE), "--locale", "pt-BR", "--tz", "UTC", "--now", NOW
    )
    assert code == 0
    assert "warning: no catalog for 'pt-BR'; previewing the default locale fr_FR" in err
    assert "Critique · HighErrorRate" in out


def test_preview_refuses_an_unknown_time_zone(capsys: pytest.CaptureFixture[str]) -> None:
    """A misspelt time zone is a usage error that suggests the closest IANA name."""
    code, out, err = cli(
        capsys, "i18n", "preview", str(SAMPLE), "--locale", "fr_FR", "--tz", "Europe/Pariss"
    )
    assert code == 2
    assert out == ""
    assert "unknown time zone 'Europe/Pariss': did you mean Europe/Paris?" in err


def test_check_names_the_line_of_a_malformed_catalog(
    capsys: pytest.CaptureFixture[str], locales: Path, sources: Path
) -> None:
    path = locales / PO.format("de_DE")
    edit(path, 'msgid "Panel"\nmsgstr "Panel"\n', 'msgid "Panel"\nnot a keyword\n')
    line = path.read_text(encoding="utf-8").splitlines().index("not a keyword") + 1

    code, _, err = cli(
        capsys, "i18n", "check", "--locales", str(locales), "--sources", str(sources)
    )

    assert code == 1
    assert f"{path}:{line}: not a valid PO file" in err
