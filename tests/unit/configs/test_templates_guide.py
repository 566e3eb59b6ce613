"""docs/templates.md: its worked example is accepted when saved and renders what the guide shows."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from slack_tools.alerts.models import AlertGroup, Source
from slack_tools.alerts.render import alert_facts, group_facts, plain_view, render_group
from slack_tools.alerts.sources import parse
from slack_tools.configs.documents import template_issues
from slack_tools.configs.localization import Catalogs
from slack_tools.configs.templates import TemplateEngine, TemplateLimits
from slack_tools.configs.templates.filters import FILTERS, GLOBALS

ROOT = Path(__file__).resolve().parents[3]
GUIDE = ROOT / "docs" / "templates.md"
SAMPLE = ROOT / "tests" / "fixtures" / "alertmanager-webhook-v4.json"
NOW = datetime(2026, 11, 26, 16, 8, tzinfo=UTC)  # the time the guide's example is written at
CATALOGS = Catalogs()


def guide() -> str:
    """The text of the guide."""
    return GUIDE.read_text(encoding="utf-8")


def example(name: str) -> str:
    """The code block that follows ``<!-- example: name -->`` in the guide."""
    pattern = rf"<!-- example: {re.escape(name)} -->\n```[\w-]*\n(.*?)```"
    found = re.search(pattern, guide(), re.DOTALL)
    assert found is not None, f"docs/templates.md has no example {name!r}"
    return found.group(1)


def example_templates(name: str = "acme-templates.yaml") -> dict[str, str]:
    """The tenant templates of one of the guide's YAML files."""
    document: Any = YAML(typ="safe").load(example(name))
    templates = document["templates"]
    assert isinstance(templates, dict)
    return {str(name): str(source) for name, source in templates.items()}


def sample_group() -> AlertGroup:
    """The group of the repository's Alertmanager sample, which the guide renders."""
    (group,) = parse(Source.ALERTMANAGER, SAMPLE.read_bytes())
    return group


def readable(text: str) -> str:
    """``text`` with CLDR's no-break spaces as the plain spaces the guide shows."""
    return text.replace("\u202f", " ").replace("\xa0", " ")


def test_the_example_is_accepted_when_saved() -> None:
    """The guide's templates pass the checks `config apply` makes (names, size, syntax)."""
    templates = example_templates()
    assert set(templates) == {"group"}
    assert template_issues(templates, TemplateLimits(), {}) == []


@pytest.mark.parametrize("locale", ["fr_FR", "en_US"])
def test_the_example_renders_what_the_guide_shows(locale: str) -> None:
    """The tenant template itself (no fallback) writes the message the guide prints."""
    engine = TemplateEngine()
    message = render_group(
        sample_group(),
        CATALOGS.localizer(locale, "Europe/Paris"),
        NOW,
        templates=example_templates(),
        engine=engine,
    )
    assert engine.fallbacks.total == 0
    assert readable(plain_view(message)) + "\n" == example(f"output {locale}")


def test_the_notification_text_is_the_one_the_guide_quotes() -> None:
    """The French notification text is the sentence the guide gives."""
    message = render_group(
        sample_group(),
        CATALOGS.localizer("fr_FR", "Europe/Paris"),
        NOW,
        templates=example_templates(),
        engine=TemplateEngine(),
    )
    quoted = re.search(r'The notification reads "(.*?)"\.', guide(), re.DOTALL)
    assert quoted is not None
    assert message.text == " ".join(quoted.group(1).split())


def test_the_minimal_example_renders_without_falling_back() -> None:
    """The first, one-block template of the guide is a message of its own."""
    engine = TemplateEngine()
    message = render_group(
        sample_group(),
        CATALOGS.localizer("fr_FR", "Europe/Paris"),
        NOW,
        templates=example_templates("minimal"),
        engine=engine,
    )
    assert engine.fallbacks.total == 0
    assert plain_view(message) == "## 🔴 HighErrorRate"
    assert message.text == "HighErrorRate"


def test_the_try_it_script_prints_the_french_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The guide's script, run beside the example file, prints the French output, no fallback."""
    (tmp_path / "acme-templates.yaml").write_text(example("acme-templates.yaml"), encoding="utf-8")
    fixtures = tmp_path / "tests" / "fixtures"
    fixtures.mkdir(parents=True)
    shutil.copy(SAMPLE, fixtures / SAMPLE.name)
    monkeypatch.chdir(tmp_path)
    code = compile(example("try"), "docs/templates.md (try.py)", "exec")
    exec(code, {"__name__": "__main__"})  # noqa: S102 - the guide's own script, as a reader runs it
    printed = readable(capsys.readouterr().out)
    assert printed == example("output fr_FR") + "fallbacks: 0\n"


def test_every_variable_a_template_receives_is_documented() -> None:
    """The guide's tables name exactly the fields of `group` and `alert` a template is given."""
    group = sample_group()
    first_cells = " ".join(
        line.split("|")[1] for line in guide().splitlines() if line.startswith("| `")
    )
    given_group = set(group_facts(group, NOW))
    given_alert = set(alert_facts(group.alerts[0], group.common_labels))
    assert set(re.findall(r"`group\.(\w+)", first_cells)) == given_group
    assert set(re.findall(r"`alert\.(\w+)", first_cells)) == given_alert


def test_every_filter_and_function_is_documented() -> None:
    """Each filter and global function every template sees appears in the guide."""
    text = guide()
    missing = [name for name in [*FILTERS, *GLOBALS] if f"`{name}" not in text]
    assert missing == []


def test_the_localization_guide_links_here() -> None:
    """Translators find the template guide from theirs."""
    localization = (ROOT / "docs" / "localization.md").read_text(encoding="utf-8")
    assert "(templates.md)" in localization
