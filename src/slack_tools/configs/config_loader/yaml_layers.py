"""Layers, and YAML files read into them with the position of every key.

YAML is read with ruamel.yaml because it keeps the line and column of every key
(PyYAML's ``safe_load`` loses them), which is what lets every error say where.
``${VAR:-default}`` in a value is replaced from the variables passed in (never
read here from the process), and a value that is one set variable keeps it as
its origin.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import resources
from pathlib import Path as FsPath
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from slack_tools.configs.provenance import Origin, OriginKind, Positions
from slack_tools.configs.schema import EnvName, Path
from slack_tools.configs.trees import get_at
from slack_tools.configs.validator import Issue, Level, Stage

_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DUPLICATE = re.compile(r'found duplicate key "(.*?)"')


# --- layers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One source's contribution: plain data, and the origin of every key in it."""

    name: str
    data: Mapping[str, Any] = field(repr=False)  # may hold secrets in clear
    positions: Positions = field(repr=False)

    def get(self, path: Path) -> tuple[bool, Any]:
        """Whether this layer sets ``path``, and to what."""
        return get_at(self.data, path)


def packaged_file(environment: EnvName) -> FsPath:
    """The environment defaults shipped inside the package."""
    return FsPath(str(resources.files("slack_tools.configs") / f"{environment.value}.yaml"))


def expand_paths(paths: Iterable[FsPath]) -> tuple[list[FsPath], list[Issue]]:
    """Files named directly, and the ``*.yaml``/``*.yml`` files of named directories, in order."""
    files: list[FsPath] = []
    issues: list[Issue] = []
    for path in paths:
        if path.is_dir():
            # Kubernetes mounts ConfigMaps as symlinks into a hidden ``..data`` folder; the
            # visible names are what we want, and glob skips dot-entries.
            files.extend(
                sorted(
                    p
                    for p in path.iterdir()
                    if p.suffix in (".yaml", ".yml") and not p.name.startswith(".")
                )
            )
        elif path.is_file():
            files.append(path)
        else:
            issues.append(
                Issue(
                    Level.ERROR,
                    Stage.SYNTAX,
                    (),
                    "no such file or directory",
                    Origin(OriginKind.FILE, str(path), 1, 1),
                )
            )
    return files, issues


def _yaml() -> YAML:
    loader = YAML(typ="rt")
    loader.allow_duplicate_keys = False
    return loader


def read_yaml_layer(
    path: FsPath, variables: Mapping[str, str], *, label: str | None = None
) -> tuple[Layer | None, list[Issue]]:
    """Parse one YAML file into a layer; syntax problems become issues, never exceptions."""
    source = label or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not valid UTF-8"
        return None, [
            Issue(
                Level.ERROR,
                Stage.SYNTAX,
                (),
                f"cannot read: {reason}",
                Origin(OriginKind.FILE, source, 1, 1),
            )
        ]
    return parse_yaml_layer(text, source, variables)


def parse_yaml_layer(
    text: str, source: str, variables: Mapping[str, str]
) -> tuple[Layer | None, list[Issue]]:
    """Parse YAML ``text`` (named ``source`` in messages) into a layer; never raises."""
    try:
        document = _yaml().load(text)
    except DuplicateKeyError as exc:
        found = _DUPLICATE.search(str(exc.problem))
        key = found.group(1) if found else "?"
        return None, [_syntax_issue(source, exc, f"duplicate key {key!r}")]
    except MarkedYAMLError as exc:
        # Only ``problem`` and the mark: ruamel's full message quotes the line (maybe a secret).
        problem = str(exc.problem or exc.context or "invalid YAML")
        return None, [_syntax_issue(source, exc, _without_quoted_text(problem))]
    except (YAMLError, ValueError, TypeError, AssertionError, RecursionError) as exc:
        # ruamel raises plain errors for impossible dates, odd tags and directives,
        # and very deep nesting; their text may quote the value, so only the kind is kept.
        return None, [_file_issue(source, f"invalid YAML ({type(exc).__name__})")]
    if document is None:
        return Layer(source, {}, {}), []
    if not isinstance(document, CommentedMap):
        return None, [_file_issue(source, "the document must be a mapping of keys")]
    converter = _Converter(source, variables)
    try:
        data = converter.mapping(document, ())
    except RecursionError:
        return None, [_file_issue(source, "invalid YAML (nested too deeply)")]
    return Layer(source, data, converter.positions), converter.issues


def _file_issue(source: str, message: str) -> Issue:
    return Issue(Level.ERROR, Stage.SYNTAX, (), message, Origin(OriginKind.FILE, source, 1, 1))


_QUOTED_CHARACTERS = 2  # "',' or ']'" names characters; anything longer may be input
_QUOTED = re.compile(r"""(['"])([^'"]*)\1""")


def _without_quoted_text(problem: str) -> str:
    """Drop quoted input ("undefined alias 'xoxb-…'") but keep quoted characters (',')."""
    return _QUOTED.sub(
        lambda m: m.group(0) if len(m.group(2)) <= _QUOTED_CHARACTERS else "…", problem
    )


def _syntax_issue(source: str, exc: MarkedYAMLError, message: str) -> Issue:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return Issue(
        Level.ERROR, Stage.SYNTAX, (), message, Origin(OriginKind.FILE, source, line, column)
    )


def _position(node: Any, of: Any) -> tuple[int, int]:
    """A key's or item's (line, column); the node's own when ruamel has none for it
    (keys brought in by a merge ``<<: *base``, entries of ``!!omap``)."""
    try:
        found = of(node.lc)
    except (KeyError, IndexError, TypeError):
        found = None
    if isinstance(found, tuple) and len(found) >= 2:  # noqa: PLR2004 - (line, column)
        return int(found[0]), int(found[1])
    return int(node.lc.line or 0), int(node.lc.col or 0)


class _Converter:
    """ruamel's round-trip nodes → plain Python values, with positions and interpolation."""

    def __init__(self, source: str, variables: Mapping[str, str]) -> None:
        self.source = source
        self.variables = variables
        self.positions: dict[Path, Origin] = {}
        self.issues: list[Issue] = []

    def _origin(self, line: int, column: int, via: str | None = None) -> Origin:
        return Origin(OriginKind.FILE, self.source, line + 1, column + 1, via)

    def mapping(self, node: CommentedMap, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key in node:
            line, column = _position(node, lambda lc, k=key: lc.key(k))
            if not isinstance(key, str):
                self.issues.append(
                    Issue(
                        Level.ERROR,
                        Stage.SYNTAX,
                        path,
                        "keys must be strings",
                        self._origin(line, column),
                    )
                )
                continue
            child = (*path, key)
            self.positions[child] = self._origin(line, column)
            result[key] = self.value(node[key], child, line, column)
        return result

    def value(self, node: Any, path: Path, line: int, column: int) -> Any:
        if isinstance(node, CommentedMap):
            return self.mapping(node, path)
        if isinstance(node, CommentedSeq):
            items = []
            for index, item in enumerate(node):
                item_line, item_column = _position(node, lambda lc, i=index: lc.item(i))
                self.positions[(*path, index)] = self._origin(item_line, item_column)
                items.append(self.value(item, (*path, index), item_line, item_column))
            return items
        if isinstance(node, str):
            return self.interpolate(str(node), path, line, column)
        # ruamel's scalar subclasses (ScalarFloat, …) become the plain built-in types.
        for kind in (bool, int, float):
            if isinstance(node, kind):
                return kind(node)
        if node is None:
            return None
        if isinstance(node, datetime | date):
            return node.isoformat()
        self.issues.append(
            Issue(
                Level.ERROR,
                Stage.SYNTAX,
                path,
                f"unsupported YAML value ({type(node).__name__})",
                self._origin(line, column),
            )
        )
        return None

    def interpolate(self, text: str, path: Path, line: int, column: int) -> str:
        def substitute(found: re.Match[str]) -> str:
            if found.group(0) == "$$":
                return "$"
            name, default = found.group(1), found.group(2)
            value = self.variables.get(name)
            if value is not None and (value != "" or default is None):
                return value
            if default is not None:
                return default
            self.issues.append(
                Issue(
                    Level.ERROR,
                    Stage.SYNTAX,
                    path,
                    f"environment variable {name} is not set "
                    f"(write ${{{name}:-default}} to give a default)",
                    self._origin(line, column),
                )
            )
            return ""

        result = _INTERPOLATION.sub(substitute, text)
        # "From the environment" only when the whole value is one variable that is set:
        # "xoxb-${X:-}abc" or "${UNSET:-clear}" keep text written in the file.
        whole = _INTERPOLATION.fullmatch(text)
        if whole and whole.group(1) and self.variables.get(whole.group(1)):
            self.positions[path] = self._origin(line, column, via=whole.group(1))
        return result
