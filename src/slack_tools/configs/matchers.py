"""Label matchers in Alertmanager's syntax: ``name="value"``, ``!=``, ``=~``, ``!~``.

Regular expressions are anchored at both ends, as in Alertmanager; a label that
is absent matches as the empty string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

_SYNTAX = re.compile(
    r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([^"\s]*))\s*'
)
# Inside quotes, as in Alertmanager (pkg/labels/parse.go): \\ \" and \n are escapes;
# any other backslash is kept, so a regular expression such as 5\d\d survives.
_ESCAPES = re.compile(r'\\([\\"n])')


def _unescape(quoted: str) -> str:
    return _ESCAPES.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), quoted)


class Operator(StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    operator: Operator
    value: str
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.operator is Operator.EQUAL:
            return actual == self.value
        if self.operator is Operator.NOT_EQUAL:
            return actual != self.value
        assert self.pattern is not None
        found = self.pattern.fullmatch(actual) is not None
        return found if self.operator is Operator.REGEX else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.operator.value}"{escaped}"'


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher; raises ValueError saying what form was expected."""
    found = _SYNTAX.fullmatch(text)
    if found is None:
        raise ValueError('expected a label matcher such as severity="critical" or team=~"db|infra"')
    name, symbol = found.group(1), found.group(2)
    quoted, bare = found.group(3), found.group(4)
    value = _unescape(quoted) if quoted is not None else (bare or "")
    operator = Operator(symbol)
    pattern = None
    if operator in (Operator.REGEX, Operator.NOT_REGEX):
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
    return Matcher(name, operator, value, pattern)
