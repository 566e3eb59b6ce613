"""The English, French and German READMEs say the same things: sections, commands and links."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGLISH = "README.md"
TRANSLATIONS = ("README.fr.md", "README.de.md")
READMES = (ENGLISH, *TRANSLATIONS)
COMMAND_STARTS = ("python3 ", "slack-tools ", ".venv/bin/", "curl ", "export ", "echo ")
CODE_BLOCK = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^(#{1,6}) (.+)$", re.MULTILINE)
LINK = re.compile(r"\]\(([^)\s]+)\)|<(https?://[^>\s]+)>")
# A comment after a command: blanks, then "#" and a blank ('#acme-alerts' is an argument).
TRAILING_COMMENT = re.compile(r"\s+#(\s.*)?$")


def text(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def prose(name: str) -> str:
    """The README without its code blocks, where a "#" starts a comment, not a heading."""
    return CODE_BLOCK.sub("", text(name))


def heading_levels(name: str) -> list[int]:
    return [len(marks) for marks, _ in HEADING.findall(prose(name))]


def sections(name: str) -> list[str]:
    return [title for marks, title in HEADING.findall(prose(name)) if marks == "##"]


def commands(name: str) -> set[str]:
    """Command lines inside code blocks, without their trailing comments."""
    lines = (line.strip() for block in CODE_BLOCK.findall(text(name)) for line in block.split("\n"))
    return {TRAILING_COMMENT.sub("", line) for line in lines if line.startswith(COMMAND_STARTS)}


def link_targets(name: str) -> set[str]:
    """Every link target, except the links between the READMEs themselves."""
    found = {markdown or bare for markdown, bare in LINK.findall(prose(name))}
    return found - set(READMES)


def test_the_english_readme_has_sections_commands_and_links() -> None:
    """The reference README is not empty, so the comparisons below compare something."""
    assert len(sections(ENGLISH)) >= 4
    assert "python3 dev.py test" in commands(ENGLISH)
    assert "docs/delivery.md" in link_targets(ENGLISH)


@pytest.mark.parametrize("name", TRANSLATIONS)
def test_same_sections_in_the_same_order(name: str) -> None:
    """A translation has as many headings as the English README, at the same levels in order."""
    assert len(sections(name)) == len(sections(ENGLISH))
    assert heading_levels(name) == heading_levels(ENGLISH)


@pytest.mark.parametrize("name", TRANSLATIONS)
def test_same_commands(name: str) -> None:
    """The code blocks of a translation hold exactly the English README's commands."""
    assert commands(name) == commands(ENGLISH)


@pytest.mark.parametrize("name", TRANSLATIONS)
def test_same_link_targets(name: str) -> None:
    """A translation links to the same documents and addresses as the English README."""
    assert link_targets(name) == link_targets(ENGLISH)


@pytest.mark.parametrize("name", READMES)
def test_each_readme_links_the_other_two(name: str) -> None:
    """Each README offers the other two languages."""
    targets = {markdown for markdown, _ in LINK.findall(prose(name))}
    assert targets >= set(READMES) - {name}
