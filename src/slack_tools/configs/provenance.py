"""Where each configuration value came from: a file position, a variable, a stored version."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from slack_tools.configs.schema import Path


class OriginKind(StrEnum):
    DEFAULT = "default"
    FILE = "file"
    ENV = "env"
    DATABASE = "database"


@dataclass(frozen=True, slots=True)
class Origin:
    """One layer's claim on a value: ``kind`` and where exactly.

    ``line`` and ``column`` are 1-based, as editors count. ``via`` names an
    environment variable that a file interpolated (``${SLACK_BOT_TOKEN}``).
    """

    kind: OriginKind
    source: str
    line: int = 0
    column: int = 0
    via: str | None = None

    @property
    def location(self) -> str:
        """``file:line:col`` for files, a readable name for the other kinds."""
        if self.kind is OriginKind.FILE:
            return f"{self.source}:{self.line}:{self.column}"
        if self.kind is OriginKind.ENV:
            return f"${self.source}"
        return self.source

    def describe(self) -> str:
        text = {
            OriginKind.DEFAULT: "schema default",
            OriginKind.FILE: self.location,
            OriginKind.ENV: f"environment variable {self.source}",
            OriginKind.DATABASE: self.source,
        }[self.kind]
        return f"{text} (via ${{{self.via}}})" if self.via else text


SCHEMA_DEFAULT = Origin(OriginKind.DEFAULT, "<schema default>")

Positions = Mapping[Path, Origin]


def dotted(path: Path) -> str:
    """``("a", 0, "b")`` → ``a.0.b``, the form users type and read."""
    return ".".join(str(part) for part in path) if path else "<root>"


def nearest(positions: Positions, path: Path) -> Origin | None:
    """The origin of ``path``, or of its closest ancestor that has one."""
    for end in range(len(path), -1, -1):
        origin = positions.get(path[:end])
        if origin is not None:
            return origin
    return None
