"""``slack-tools i18n …``: check the translations, preview a message, extract and update catalogs.

``check`` re-extracts the messages in memory with Babel's extractor and babel.cfg,
so a template (``messages.pot``) that lags behind the code fails too. Placeholders
go through Babel's checkers first; they accept a translation that leaves a
placeholder out, which is a bug here, so that is checked on top. ``extract`` and
``update`` run the documented pybabel commands in this process.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import typer
from babel import Locale, UnknownLocaleError
from babel.messages.catalog import PYTHON_FORMAT, Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import CommandLineInterface, parse_mapping_cfg
from babel.messages.pofile import PoFileError, read_po

import slack_tools
from slack_tools.alerts import sources
from slack_tools.alerts.models import AlertGroup, Source
from slack_tools.alerts.render import plain_view, render_group
from slack_tools.cli.common import err, out
from slack_tools.cli.delivery import detect_source
from slack_tools.configs.localization import DOMAIN, Catalogs, packaged_catalogs
from slack_tools.configs.schema import SUPPORTED_LOCALES
from slack_tools.errors import PayloadError, SlackToolsError

i18n_app = typer.Typer(
    help="Translations: check them, preview a message, extract and update the catalogs.",
    no_args_is_help=True,
)

# The settings of the documented `pybabel extract` (see babel.cfg); check uses the same.
MAPPING = "babel.cfg"
TEMPLATE = f"{DOMAIN}.pot"
COMMENT_TAG = "TRANSLATORS:"
EXTRACT_OPTIONS = (
    "--project=slack-tools",
    "--copyright-holder=the slack-tools authors",
    f"--add-comments={COMMENT_TAG}",
    "--add-location=file",
    "--no-wrap",
)
_CREATION_DATE = re.compile(rb'^"POT-Creation-Date: [^"]*"$', re.MULTILINE)
_QUOTED = 60  # characters of a message quoted in a problem

Locales = Annotated[
    Path | None,
    typer.Option(help="Folder of the catalogs (default: the package's configs/locales)."),
]
Sources = Annotated[
    Path | None,
    typer.Option(
        "--sources", help="Folder holding babel.cfg, the repository root (default: this checkout)."
    ),
]


@dataclass(frozen=True)
class Problem:
    """One thing to fix, at a file and line."""

    path: Path
    line: int
    message: str

    def format(self) -> str:
        return f"{shown(self.path)}:{self.line}: {self.message}"


def shown(path: Path) -> str:
    """``path`` relative to the working directory when it is under it."""
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    return str(path)


def _locales_dir(given: Path | None) -> Path:
    return given.resolve() if given is not None else packaged_catalogs()


def _sources_dir(given: Path | None) -> Path:
    # src/slack_tools/__init__.py → the checkout's root, where babel.cfg lives.
    root = given.resolve() if given is not None else Path(slack_tools.__file__).resolve().parents[2]
    if not (root / MAPPING).is_file():
        raise SlackToolsError(
            f"{root}: no {MAPPING} here; run from a clone of the repository "
            "or pass --sources DIR (the folder that holds babel.cfg)"
        )
    return root


def _ids(message: Message) -> tuple[str, ...]:
    return tuple(message.id) if isinstance(message.id, list | tuple) else (message.id,)


def _forms(message: Message) -> tuple[str, ...]:
    value = message.string
    return tuple(value) if isinstance(value, list | tuple) else (value or "",)


def _quote(message: Message) -> str:
    text = _ids(message)[0]
    return json.dumps(
        text if len(text) <= _QUOTED else text[: _QUOTED - 1] + "…", ensure_ascii=False
    )


def _placeholders(text: str) -> Counter[str]:
    return Counter(m.group(0) for m in PYTHON_FORMAT.finditer(text) if m.group(3) != "%")


def _listed(placeholders: Counter[str]) -> str:
    return ", ".join(sorted(placeholders.elements())) or "none"


# --- reading and extracting -----------------------------------------------------------------


def read_catalog(path: Path, locale: str | None, problems: list[Problem]) -> Catalog | None:
    """The catalog at ``path``, or None with the reason added to ``problems``."""
    try:
        with path.open("rb") as handle:
            return read_po(handle, locale=locale, domain=DOMAIN, abort_invalid=True)
    except OSError as exc:
        problems.append(Problem(path, 1, f"cannot read: {exc.strerror}"))
    except PoFileError as exc:
        reason = str(exc).removesuffix(f" on {exc.lineno}")  # Babel counts lines from 0
        problems.append(Problem(path, exc.lineno + 1, f"not a valid PO file: {reason}"))
    except (UnknownLocaleError, ValueError) as exc:  # a folder name Babel does not know; bad text
        problems.append(Problem(path, 1, f"cannot read: {exc}"))
    return None


def extract_messages(root: Path) -> Catalog:
    """The template `pybabel extract` would write from the sources under ``root``, in memory."""
    with (root / MAPPING).open(encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle, str(root / MAPPING))  # type: ignore[no-untyped-call]
    catalog = Catalog(domain=DOMAIN)
    for filename, lineno, message, comments, context in extract_from_dir(
        str(root),
        method_map,
        options_map,
        keywords=DEFAULT_KEYWORDS,
        comment_tags=(COMMENT_TAG,),
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


# --- checking -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """The messages every catalog must translate, and where each is written."""

    catalog: Catalog
    path: Path | None  # the .pot file, or None when the sources stand in for a missing one
    root: Path

    def messages(self) -> list[Message]:
        return [m for m in self.catalog if m.id]

    def where(self, message: Message) -> tuple[Path, int]:
        if self.path is not None:
            return self.path, message.lineno or 1
        filename, lineno = message.locations[0]
        return self.root / filename, lineno or 1


def template_problems(
    pot: Path, template: Catalog, extracted: Catalog, root: Path
) -> list[Problem]:
    """Where the template and the messages in the sources disagree (a stale ``messages.pot``)."""
    problems: list[Problem] = []
    rerun = "run `slack-tools i18n extract`"
    for message in extracted:
        if not message.id:
            continue
        filename, lineno = message.locations[0]
        known = template.get(message.id, message.context)
        if known is None:
            text = f"{_quote(message)} is not in {pot.name} (stale template): {rerun}"
            problems.append(Problem(root / filename, lineno, text))
        elif _ids(known) != _ids(message):
            text = f"the plural of {_quote(message)} differs from {pot.name}: {rerun}"
            problems.append(Problem(root / filename, lineno, text))
    for message in template:
        if message.id and extracted.get(message.id, message.context) is None:
            text = f"{_quote(message)} is no longer in the sources (stale template): {rerun}"
            problems.append(Problem(pot, message.lineno or 1, text))
    return problems


def _placeholder_problem(wanted: Message, index: int, text: str) -> str | None:
    found = _placeholders(text)
    expected = [_placeholders(source) for source in _ids(wanted)]
    if found in expected:
        return None
    closest = expected[0] if index == 0 else expected[-1]
    missing, extra = closest - found, found - closest
    parts = (
        f"lacks {_listed(missing)}" if missing else "",
        f"has {_listed(extra)}" if extra else "",
    )
    where = f"msgstr[{index}]" if wanted.pluralizable else "the translation"
    detail = " and ".join(p for p in parts if p)
    return (
        f"{_quote(wanted)}: {where} {detail}; keep the placeholders of the source exactly "
        f"({_listed(closest)})"
    )


def _message_problems(
    path: Path, wanted: Message, message: Message, babel_errors: list[str]
) -> list[Problem]:
    line = message.lineno or 1
    problems: list[Problem] = []
    if _ids(message) != _ids(wanted):
        text = f"{_quote(wanted)} differs from the template: run `slack-tools i18n update`"
        return [Problem(path, line, text)]
    if message.fuzzy:
        text = (
            f"{_quote(wanted)} is marked fuzzy (not used): check the translation, "
            'then delete its "#, fuzzy" line'
        )
        problems.append(Problem(path, line, text))
    forms = _forms(message)
    empty = [f"msgstr[{index}]" for index, text in enumerate(forms) if not text.strip()]
    if len(empty) == len(forms):
        problems.append(Problem(path, line, f"{_quote(wanted)} is not translated yet"))
    elif empty:
        text = f"{_quote(wanted)} is not translated for every number: {', '.join(empty)} empty"
        problems.append(Problem(path, line, text))
    problems += [Problem(path, line, f"{_quote(wanted)}: {error}") for error in babel_errors]
    if not babel_errors and wanted.python_format:
        for index, text in enumerate(forms):
            found = _placeholder_problem(wanted, index, text) if text.strip() else None
            if found:
                problems.append(Problem(path, line, found))
    return problems


def catalog_problems(
    path: Path, locale: str, catalog: Catalog, template: Template
) -> list[Problem]:
    """What is missing, empty, fuzzy or inconsistent in one locale's catalog."""
    problems: list[Problem] = []
    if catalog.fuzzy:
        text = 'the header is marked fuzzy: delete the "#, fuzzy" line above msgid ""'
        problems.append(Problem(path, 1, text))
    expected = Catalog(locale=locale).plural_forms
    if catalog.plural_forms != expected:
        text = f"Plural-Forms header is {catalog.plural_forms!r}; {locale} needs {expected!r}"
        problems.append(Problem(path, 1, text))
    # Babel's checkers: placeholders unknown or of another type, number of plural forms.
    babel_errors = {
        (_ids(message), message.context): [str(error) for error in errors]
        for message, errors in catalog.check()
    }
    relative = f"{locale}/LC_MESSAGES/{path.name}"
    for wanted in template.messages():
        message = catalog.get(wanted.id, wanted.context)
        if message is None:
            where, line = template.where(wanted)
            text = (
                f"{_quote(wanted)} is missing from {relative}: "
                "run `slack-tools i18n update`, then translate it"
            )
            problems.append(Problem(where, line, text))
            continue
        errors = babel_errors.get((_ids(message), message.context), [])
        problems += _message_problems(path, wanted, message, errors)
    for message in catalog:
        if message.id and template.catalog.get(message.id, message.context) is None:
            text = f"{_quote(message)} is not in the template: run `slack-tools i18n update`"
            problems.append(Problem(path, message.lineno or 1, text))
    return problems


def find_catalogs(locales: Path) -> dict[str, Path]:
    """Each locale's ``.po`` file under ``locales``, by locale name."""
    paths = sorted(locales.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
    return {path.parent.parent.name: path for path in paths}


def check_translations(locales: Path, root: Path) -> tuple[list[Problem], str]:
    """Every problem of the template and the catalogs, and a one-line summary."""
    problems: list[Problem] = []
    pot = locales / TEMPLATE
    extracted = extract_messages(root)
    read = read_catalog(pot, None, problems) if pot.exists() else None
    if read is None:
        if not pot.exists():
            problems.append(Problem(pot, 1, "no template: run `slack-tools i18n extract`"))
        template = Template(extracted, None, root)
    else:
        template = Template(read, pot, root)
        problems += template_problems(pot, read, extracted, root)
    found = find_catalogs(locales)
    for locale in SUPPORTED_LOCALES:
        if locale not in found:
            path = locales / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
            text = f"no catalog for the supported locale {locale} (see docs/localization.md)"
            problems.append(Problem(path, 1, text))
    for locale, path in found.items():
        if locale not in SUPPORTED_LOCALES:
            text = (
                f"{locale} is not offered to tenants: add it to SUPPORTED_LOCALES "
                "in src/slack_tools/configs/schema/types.py"
            )
            problems.append(Problem(path, 1, text))
        catalog = read_catalog(path, locale, problems)
        if catalog is not None:
            problems += catalog_problems(path, locale, catalog, template)
    count = len(template.messages())
    summary = (
        f"{count} messages translated in {len(found)} catalogs ({', '.join(found)}); "
        f"{TEMPLATE} matches the sources"
    )
    return problems, summary


@i18n_app.command("check")
def check(locales: Locales = None, sources_dir: Sources = None) -> None:
    """Fail if a message is missing, empty or fuzzy, a placeholder differs, or the .pot is stale."""
    problems, summary = check_translations(_locales_dir(locales), _sources_dir(sources_dir))
    for problem in problems:
        err.print(problem.format(), markup=False, highlight=False, emoji=False)
    if problems:
        err.print(f"{len(problems)} problem(s); see docs/localization.md", markup=False)
        raise typer.Exit(1)
    out.print(f"ok: {summary}", markup=False, highlight=False)


# --- preview --------------------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(name, available_timezones(), n=1)
        hint = f"did you mean {close[0]}?" if close else "use an IANA name such as Europe/Paris"
        raise typer.BadParameter(
            f"unknown time zone {name!r}: {hint}", param_hint="'--tz'"
        ) from None


def _moment(text: str | None, zone: ZoneInfo) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 time such as 2026-11-26T16:00:00Z", param_hint="'--now'"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _groups(path: Path, source: Source | None) -> list[AlertGroup]:
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise SlackToolsError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        groups = sources.parse(source or detect_source(body), body)
    except PayloadError as exc:
        details = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
        raise SlackToolsError(f"{path}: {exc}" + (f" ({details})" if details else "")) from None
    if not groups:
        raise SlackToolsError(f"{path}: no alerts in this payload")
    return groups


def _known_locales(locales: Path) -> tuple[str, ...]:
    """The supported locales, then any other catalog on disk (a locale being translated)."""
    extra: list[str] = []
    for locale in find_catalogs(locales):
        if locale not in SUPPORTED_LOCALES:
            with contextlib.suppress(ValueError, UnknownLocaleError):
                Locale.parse(locale)
                extra.append(locale)
    return (*SUPPORTED_LOCALES, *extra)


def _say_negotiated(requested: str, chosen: str) -> None:
    if requested.replace("-", "_") == chosen:
        return
    if requested.replace("-", "_").split("_")[0].lower() == chosen.split("_", maxsplit=1)[0]:
        err.print(f"note: previewing {chosen}, the closest to {requested!r}", markup=False)
    else:
        err.print(
            f"warning: no catalog for {requested!r}; previewing the default locale {chosen}",
            markup=False,
        )


@i18n_app.command("preview")
def preview(
    alert_file: Annotated[Path, typer.Argument(help="A payload as a sender would POST it.")],
    locale: Annotated[str, typer.Option(help="Locale of the reader, e.g. de_DE or fr-CA.")],
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone of the fallback times.")],
    source: Annotated[
        Source | None, typer.Option(help="Default: detected from the payload.")
    ] = None,
    now: Annotated[
        str | None,
        typer.Option(help="The current time, ISO 8601 (default: now; no offset means --tz)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the Block Kit JSON (a list for several groups).")
    ] = False,
    locales: Locales = None,
) -> None:
    """Print a message as a reader in LOCALE and TZ would see it, without a running service."""
    zone = _zone(tz)
    moment = _moment(now, zone)
    groups = _groups(alert_file, source)
    directory = _locales_dir(locales)
    localizer = Catalogs(directory=directory, supported=_known_locales(directory)).localizer(
        locale, tz
    )
    _say_negotiated(locale, localizer.locale)
    messages = [render_group(group, localizer, moment) for group in groups]
    if as_json:
        payloads = [message.payload() for message in messages]
        document = payloads[0] if len(payloads) == 1 else payloads
        text = json.dumps(document, ensure_ascii=False, indent=2)
    else:
        text = "\n\n".join(plain_view(message) for message in messages)
    out.print(text, markup=False, highlight=False, emoji=False)


# --- extract and update ---------------------------------------------------------------------


def _pybabel(*argv: str) -> None:
    """Run a pybabel command in this process, quietly; its errors become ours."""
    babel_log = logging.getLogger("babel")  # pybabel sets its level and adds a handler
    level, handlers = babel_log.level, list(babel_log.handlers)
    try:
        code = CommandLineInterface().run(["pybabel", "--quiet", *argv])  # type: ignore[no-untyped-call]
    except SystemExit as exc:  # optparse reports bad options by exiting
        raise SlackToolsError(f"pybabel {argv[0]} failed (exit status {exc.code})") from None
    except OSError as exc:
        raise SlackToolsError(f"pybabel {argv[0]}: {exc.filename}: {exc.strerror}") from None
    finally:
        babel_log.setLevel(level)
        babel_log.handlers[:] = handlers
    if code:
        raise SlackToolsError(f"pybabel {argv[0]} failed with {code} error(s)")


def _state(locale: str, path: Path) -> str:
    catalog = read_catalog(path, locale, [])
    if catalog is None:
        return f"{locale}: unreadable (run `slack-tools i18n check`)"
    messages = [m for m in catalog if m.id]
    empty = sum(1 for m in messages if not all(t.strip() for t in _forms(m)))
    fuzzy = sum(1 for m in messages if m.fuzzy)
    state = "complete" if not empty and not fuzzy else f"{empty} to translate, {fuzzy} fuzzy"
    return f"{locale}: {len(messages)} messages, {state}"


@i18n_app.command("extract")
def extract(locales: Locales = None, sources_dir: Sources = None) -> None:
    """Write messages.pot from the sources (`pybabel extract` with babel.cfg's settings)."""
    root = _sources_dir(sources_dir)
    pot = _locales_dir(locales) / TEMPLATE
    before = pot.read_bytes() if pot.exists() else None
    # Patterns in babel.cfg, and the locations written, are relative to the root.
    with contextlib.chdir(root):
        _pybabel("extract", "-F", MAPPING, "-o", str(pot), *EXTRACT_OPTIONS, ".")
    after = pot.read_bytes()
    if before is not None and _CREATION_DATE.sub(b"", before) == _CREATION_DATE.sub(b"", after):
        pot.write_bytes(before)  # nothing changed but the date: leave the file alone
        out.print(f"{shown(pot)} is up to date", markup=False)
        return
    count = sum(1 for message in read_catalog(pot, None, []) or () if message.id)
    out.print(f"wrote {shown(pot)}: {count} messages", markup=False)
    out.print("next: slack-tools i18n update", markup=False)


@i18n_app.command("update")
def update(locales: Locales = None) -> None:
    """Bring every locale's .po up to date with messages.pot (`pybabel update`)."""
    directory = _locales_dir(locales)
    pot = directory / TEMPLATE
    if not pot.exists():
        raise SlackToolsError(f"{shown(pot)}: no template; run `slack-tools i18n extract` first")
    _pybabel(
        "update", "-i", str(pot), "-d", str(directory), "-D", DOMAIN,
        "--no-wrap", "--ignore-pot-creation-date",
    )  # fmt: skip
    for locale, path in find_catalogs(directory).items():
        out.print(_state(locale, path), markup=False)
    out.print("next: translate what is empty or fuzzy, then slack-tools i18n check", markup=False)
